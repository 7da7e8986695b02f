"""The seam every measurement plugs into, and the one function that runs any of them.

A ``Measure`` says what it is (the record its directory holds, written once and compared on
resume), what it asks (``Request``s in stages: a stage may depend on the answers stored by the
one before, as a judge reads answers and a retry re-reads unreadable ones), how its typed
result is rebuilt from the directory without a model, and how that result is shown: on the
console, and as its section of report.md and report.html. ``run`` does the rest the same way
for all of them: claim the directory, hold the record, ask what the store lacks, rebuild, and
write the reports from the sections of every measure the directory holds.

A new measure is one module: a ``Measure`` subclass declared with ``@register``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel
from rich.console import RenderableType

from psyprobe.models import Model
from psyprobe.models.base import EndpointLoad
from psyprobe.report.page import Section, write_reports
from psyprobe.runs.asking import Progress, Request, ask
from psyprobe.runs.directory import hold_record
from psyprobe.runs.layout import Layout
from psyprobe.runs.store import ResponseStore
from psyprobe.runs.workload import Workload, workloads
from psyprobe.version import __version__

Result = TypeVar("Result", bound=BaseModel)


class Watcher(Protocol):
    """Who follows a measurement: the command line's or the API's progress (progress.py)."""

    def log_to(self, folder: Path) -> None:
        """The run directory is recorded as this run's: its log may go there."""

    def phase(self, text: str) -> None:
        """A new phase: asking, scoring, writing."""

    def asking(
        self, what: str, done: int, total: int, endpoints: Sequence[EndpointLoad] = ()
    ) -> None:
        """The ask-loop's progress (``runs.asking.Progress``)."""


@dataclass(frozen=True)
class Stage:
    """Requests for one model (the one measured, or a judge of its answers)."""

    model: Model
    # walked more than once (counted, then asked): a list, or a plan made afresh on each pass
    requests: Iterable[Request]
    # False for requests the result can do without (a retry of an answer that is stored but
    # unreadable): they do not count as missing when they fail.
    needed: bool = True


@dataclass(frozen=True)
class Record:
    """What a directory computes, as its record file holds it."""

    data: dict[str, Any]
    compared: tuple[str, ...]  # the parts a resume must match


def record_head(settings: BaseModel, model: Model) -> dict[str, Any]:
    """What every record opens with: the psyprobe that wrote it, the settings and the model
    (and the CPU threads it computed with, where the backend chose them)."""
    head = {
        "psyprobe_version": __version__,
        "settings": settings.model_dump(mode="json"),
        "model": model.info.model_dump(mode="json"),
    }
    return head | ({"threads": model.threads} if model.threads is not None else {})


class Measure(ABC, Generic[Result]):
    """One kind of measurement: personality, safety, capability."""

    record_file: ClassVar[str]  # the file that marks a directory as holding this measurement
    results_file: ClassVar[str]  # its typed results (``load``), rebuilt from record and store
    what: ClassVar[str]  # how errors name it: "run", "safety run"

    @abstractmethod
    def record(self, model: Model) -> Record:
        """The record of this measurement of ``model`` (settings, identities, data hashes)."""

    @abstractmethod
    def stages(self, model: Model, store: ResponseStore) -> Iterator[Stage]:
        """The requests, stage by stage; each stage is planned after the one before is stored."""

    def computed(self, model: Model, out: Path) -> None:
        """Numbers computed from the model itself rather than from answers (perplexity), kept in
        ``out``; none by default."""

    def describe(self, model: Model) -> str:
        return f"asking {model.info.spec}"

    def workload(self, model: Model, first: Iterable[Request]) -> list[Workload]:
        """What the measurement would ask (``--dry-run``), from its ``first`` stage's requests:
        by default those alone, part by part; a measure whose later stages are known in size
        adds them."""
        return workloads(model, first)

    @classmethod
    @abstractmethod
    def rebuild(cls, out: Path) -> Result:
        """Every output of the directory rebuilt from its record and store; no model."""

    @classmethod
    @abstractmethod
    def load(cls, out: Path) -> Result:
        """The results the directory holds (``results_file``), as last rebuilt."""

    @classmethod
    @abstractmethod
    def summary(cls, results: Result) -> RenderableType:
        """The results as the command line prints them after a run or a report."""

    @classmethod
    @abstractmethod
    def section(cls, results: Result, out: Path) -> Section:
        """The results' part of the directory's report.md and report.html."""

    @classmethod
    def held_in(cls, out: Path) -> bool:
        return (out / cls.record_file).is_file()


# Every measure a directory can hold, in the order ``psyprobe report`` rebuilds them and the
# reports show them: the built-in ones (engine/__init__) and any registered since.
MEASURES: list[type[Measure[Any]]] = []

Registered = TypeVar("Registered", bound=type[Measure[Any]])


def register(measure: Registered) -> Registered:
    """Declare a measure: ``psyprobe report`` rebuilds it and the reports show its section."""
    if measure not in MEASURES:
        MEASURES.append(measure)
    return measure


def write_directory_reports(out: Path) -> None:
    """report.md and report.html of ``out``: the section of every measure with results there."""
    held = [m for m in MEASURES if (out / m.results_file).is_file()]
    write_reports(out, [m.section(m.load(out), out) for m in held])


def rebuild(measure: type[Measure[Result]], out: Path) -> Result:
    """Every output of ``measure`` in ``out`` rebuilt from its record and store (no model), and
    the directory's reports with it."""
    results = measure.rebuild(out)
    write_directory_reports(out)
    return results


@dataclass(frozen=True)
class Tally:
    """How complete a measurement's answers are after asking."""

    asked: int  # answers asked for by this call (0 when everything was stored)
    lacking: int  # needed answers still missing (failed requests, asked again next time)
    planned: int


@dataclass(frozen=True)
class Measured(Tally, Generic[Result]):
    """What a measurement gave: the results, and how complete they are."""

    results: Result


def collect(
    measure: Measure[Any], model: Model, store: ResponseStore, progress: Progress | None = None
) -> Tally:
    """Ask every stage of ``measure`` for what ``store`` lacks."""
    asked = lacking = planned = 0
    for stage in measure.stages(model, store):
        done = ask(stage.model, stage.requests, store, progress)
        asked += done.asked
        if stage.needed:
            lacking += done.lacking
            planned += done.planned
    return Tally(asked, lacking, planned)


def run(
    measure: Measure[Result], model: Model, out: Path, watcher: Watcher | None = None
) -> Measured[Result]:
    """Record the measurement in ``out`` (or check it is the same one), ask what the store
    lacks, and rebuild the outputs. The same call on the same directory resumes."""
    record = measure.record(model)
    hold_record(out / measure.record_file, record.data, record.compared, measure.what)
    if watcher:
        watcher.log_to(out)
        watcher.phase(measure.describe(model))
    with ResponseStore(Layout(out).store) as store:
        tally = collect(measure, model, store, watcher.asking if watcher else None)
    measure.computed(model, out)
    if watcher:
        watcher.phase("scoring, drawing the figures and writing the reports")
    return Measured(tally.asked, tally.lacking, tally.planned, rebuild(type(measure), out))
