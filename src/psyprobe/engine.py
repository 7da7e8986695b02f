"""Measure a model into a run directory: the one path the command line, sweeps, studies and the
Python API all take.

A personality measurement records the run (``run.json``), asks what the store lacks through the
one ask-loop, and rebuilds every output from the store; a safety measurement does the same with
``safety-run.json``. Both resume: the same call on the same directory asks only what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from psyprobe.errors import UserError
from psyprobe.instruments import STUDY_A_INSTRUMENTS
from psyprobe.models import Mode, Model
from psyprobe.prompting import BALANCES, RESPONDENTS, TEMPLATES, check_design
from psyprobe.report import rebuild
from psyprobe.report.results import RunResults
from psyprobe.runs import ResponseStore, RunFiles, RunSettings, SafetyFiles, collect
from psyprobe.runs.runner import missing, resolve_instruments, write_run_json
from psyprobe.safety.report import rebuild_safety
from psyprobe.safety.runner import SafetyRun, SafetySettings, collect_safety, write_safety_json
from psyprobe.safety.score import SafetyResults


class Watcher(Protocol):
    """Who follows a measurement: the command line's progress (cli/progress.py) or nothing."""

    def log_to(self, folder: Path) -> None:
        """The run directory is recorded as this run's: its log may go there."""

    def phase(self, text: str) -> None:
        """A new phase: asking, scoring, writing."""

    def asking(self, what: str, done: int, total: int) -> None:
        """The ask-loop's progress (``runs.asking.Progress``)."""


def check_choices(mode: str, orders: str, balance: str, template: str) -> None:
    """The named choices of a run, checked before any model loads (one line each)."""
    if mode not in ("logprob", "generate"):
        raise UserError(f"--mode: {mode!r} is not one of logprob, generate")
    check_design(orders)
    if balance not in BALANCES:
        raise UserError(f"--balance: {balance!r} is not one of {', '.join(BALANCES)}")
    if template not in TEMPLATES:
        raise UserError(f"--template: {template!r} is not one of {', '.join(TEMPLATES)}")


def personality_settings(
    model: Model,
    instruments: Sequence[str] | None = None,
    *,
    orders: str = "latin",
    respondents: int = RESPONDENTS,
    balance: str = "rotate",
    mode: str = "logprob",
    samples: int = 1,
    temperature: float = 0.7,
    max_tokens: int = 48,
    retries: int = 2,
    seed: int = 0,
    template: str = "study-a",
    stop_when_read: bool = True,
) -> tuple[RunSettings, str | None]:
    """The settings of a run of ``model``, and a note where the model changed one of them.

    Recorded answers (replay) define their own design; a backend without next-token
    probabilities is asked in generate mode instead (the note says so). Generated answers end
    once they can be read unless ``stop_when_read`` is off.
    """
    check_choices(mode, orders, balance, template)
    names = tuple(instruments) if instruments else STUDY_A_INSTRUMENTS
    recorded = model.recorded_design()
    if recorded is not None:
        # Recorded answers are what they are: one per line, asked in the order they were.
        names = tuple(instruments) if instruments else recorded.instruments
        orders, mode, samples, retries, respondents = "fixed", "generate", recorded.samples, 0, 0
        stop_when_read = False
    note = None
    if mode not in model.info.modes:
        note = (
            f"{model.notice or model.info.backend} — --mode {mode} is not available, using generate"
        )
        mode = "generate"
    chosen: Mode = "generate" if mode == "generate" else "logprob"
    settings = RunSettings(
        model=model.info.spec,
        instruments=names,
        orders=orders,
        respondents=respondents,
        balance="within" if balance == "within" else "rotate",
        mode=chosen,
        samples=samples if chosen == "generate" else 1,
        temperature=temperature,
        max_tokens=max_tokens,
        retries=retries,
        seed=seed,
        template=template,
        stop_when_read=stop_when_read and chosen == "generate",
    )
    return settings, note


@dataclass(frozen=True)
class Measured:
    """What a personality measurement gave: the results, and how complete they are."""

    results: RunResults
    asked: int  # answers asked for by this call (0 when everything was stored)
    lacking: int  # planned answers still missing (failed requests, asked again next time)
    planned: int


def run_personality(
    model: Model, settings: RunSettings, out: Path, watcher: Watcher | None = None
) -> Measured:
    """Record the run in ``out`` (or check it is the same run), ask what the store lacks and
    rebuild results.json, responses.jsonl, report.md, report.html and the figures."""
    settings = settings.model_copy(update={"model": model.info.spec})
    instruments = resolve_instruments(settings.instruments)
    files = RunFiles(out)
    write_run_json(files, settings, model.info, instruments)
    if watcher:
        watcher.log_to(out)
        watcher.phase(f"asking {settings.model} ({settings.mode})")
    with ResponseStore(files.store) as store:
        asked = collect(settings, model, instruments, store, watcher.asking if watcher else None)
        lacking, planned = missing(settings, model.info, instruments, store)
    if watcher:
        watcher.phase("scoring, drawing the figures and writing the reports")
    return Measured(rebuild(out), asked, lacking, planned)


def run_suites(
    model: Model,
    settings: SafetySettings,
    out: Path,
    judge: Model | None = None,
    watcher: Watcher | None = None,
) -> tuple[SafetyResults, int]:
    """The safety suites into ``out``: record the run (or check it is the same), ask what the
    store lacks (then the judge), rebuild safety.json, safety-responses.jsonl, safety.md and
    report.html; returns the results and how many answers this call asked for."""
    files = SafetyFiles(out)
    settings = settings.model_copy(update={"model": model.info.spec})
    write_safety_json(files, SafetyRun(settings, model.info, judge.info if judge else None))
    if watcher:
        watcher.log_to(out)
        watcher.phase(
            f"asking {settings.model}" + (f", judged by {judge.info.spec}" if judge else "")
        )
    with ResponseStore(files.store) as store:
        asked = collect_safety(settings, model, judge, store, watcher.asking if watcher else None)
    if watcher:
        watcher.phase("scoring and writing the reports")
    return rebuild_safety(out), asked
