"""Personality as a measure: questionnaires asked under counterbalanced orders, scored with norms.

The directory's record is ``run.json`` (settings, model identity, the instruments as asked);
the first stage asks every planned answer, later stages re-ask (with fresh seeds) the answers
that could not be read at all, up to ``settings.retries`` times.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType

from psyprobe.engine.measure import Measure, Record, Stage, record_head, register
from psyprobe.errors import UserError
from psyprobe.instruments import canonical_name
from psyprobe.models import Model
from psyprobe.report.build import personality_section, rebuild
from psyprobe.report.console import personality_summary
from psyprobe.report.page import Section
from psyprobe.report.results import RunResults
from psyprobe.runs import Layout, ResponseStore, RunSettings
from psyprobe.runs.asking import Remade, Request
from psyprobe.runs.planning import (
    Planned,
    check_workload,
    plan,
    plan_in_context,
    replan,
    resolve_instruments,
)
from psyprobe.runs.workload import Workload


def asked_settings(**given: object) -> RunSettings:
    """What a caller asked for (the command line's flags, the API's keywords, a study's fields),
    checked before any model loads: one line for a bad value, instruments by their one name."""
    asked = RunSettings.model_validate(given)
    for name in asked.instruments if "instruments" in asked.model_fields_set else ():
        canonical_name(name)  # a name that is no instrument fails here, in one line
    return asked


def personality_settings(
    model: Model, asked: RunSettings | None = None
) -> tuple[RunSettings, str | None]:
    """The settings of a run of ``model``: what ``asked`` chose (``asked_settings``), the rest
    RunSettings' defaults, and a note where the model changed one of them.

    Recorded answers (replay) define their own design; a backend without next-token
    probabilities is asked in generate mode instead (the note says so). Generated answers end
    once they can be read unless ``stop_when_read`` is off.
    """
    asked = asked or RunSettings()
    # the values as chosen, not their stored form (which leaves switches out)
    chosen = {name: getattr(asked, name) for name in asked.model_fields_set}
    recorded = model.recorded_design()
    if recorded is not None:
        # Recorded answers are what they are: one per line, asked in the order they were.
        chosen.setdefault("instruments", recorded.instruments)
        chosen |= {"orders": "fixed", "mode": "generate", "samples": recorded.samples}
        chosen |= {"retries": 0, "respondents": 0, "stop_when_read": False, "vary": ()}
    settings = RunSettings.model_validate(chosen | {"model": model.info.spec})
    note = None
    if settings.mode not in model.info.modes:
        note = (
            f"{model.notice or model.info.backend} — --mode {settings.mode} is not available, "
            "using generate"
        )
        settings = RunSettings.model_validate(
            chosen | {"model": settings.model, "mode": "generate"}
        )
    names = tuple(canonical_name(name) for name in settings.instruments)
    fixed: dict[str, object] = {"instruments": names}
    if settings.mode != "generate":
        fixed |= {"samples": 1, "stop_when_read": False}
    return settings.model_copy(update=fixed), note


def _requests(slots: Iterable[Planned]) -> Remade[Request]:
    return Remade(lambda: (p.request for p in slots))


@register
class Personality(Measure[RunResults]):
    """Instruments administered to a model; results.json, report.md/html and the figures."""

    record_file: ClassVar[str] = Layout.RUN
    results_file: ClassVar[str] = Layout.RESULTS
    what: ClassVar[str] = "run"

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self.instruments = resolve_instruments(settings.instruments)
        check_workload(settings, self.instruments)  # before the directory is written

    def record(self, model: Model) -> Record:
        settings = self.settings.model_copy(update={"model": model.info.spec})
        data = record_head(settings, model) | {
            "instruments": {
                name: inst.model_dump(mode="json", by_alias=True)
                for name, inst in self.instruments.items()
            },
        }
        # an instrument file edited since the run would score new answers with the old labels
        return Record(data, ("settings", "model", "instruments"))

    def stages(self, model: Model, store: ResponseStore) -> Iterator[Stage]:
        info, settings = model.info, self.settings
        if settings.mode not in info.modes:
            raise UserError(
                f"--mode {settings.mode}: {info.backend} models support {', '.join(info.modes)}"
            )
        alone = Remade(partial(plan, settings, self.instruments, info))
        yield from self._asked(model, store, alone)
        if "context" in settings.vary:  # after the answers the conversations show
            in_context = plan_in_context(settings, self.instruments, info, alone, store)
            yield from self._asked(model, store, in_context)

    def _asked(
        self, model: Model, store: ResponseStore, slots: Iterable[Planned]
    ) -> Iterator[Stage]:
        """``slots`` asked, then (generate mode) re-asked while their answers are unreadable."""
        settings = self.settings
        yield Stage(model, _requests(slots))
        attempts = settings.retries + 1 if settings.mode == "generate" else 1
        for attempt in range(1, attempts):
            slots = Remade(partial(replan, settings, model.info, slots, store, attempt))
            if next(iter(slots), None) is None:
                return
            yield Stage(model, _requests(slots), needed=False)

    def describe(self, model: Model) -> str:
        return f"asking {model.info.spec} ({self.settings.mode})"

    def workload(self, model: Model, first: Iterable[Request]) -> list[Workload]:
        rows = super().workload(model, first)
        if "context" not in self.settings.vary:
            return rows
        # Each item is asked again after K earlier items with their answers: about K + 1 times
        # its tokens (the answers are not known before the run: counted, not exact).
        k = self.settings.context_items
        return [
            r.model_copy(
                update={
                    "prompts": 2 * r.prompts,
                    "prompt_tokens": r.prompt_tokens * (k + 2),
                    "tokens_counted": False,
                    "output_tokens": 2 * r.output_tokens,
                }
            )
            for r in rows
        ]

    @classmethod
    def summary(cls, results: RunResults) -> RenderableType:
        return personality_summary(results)

    @classmethod
    def rebuild(cls, out: Path) -> RunResults:
        return rebuild(out)

    @classmethod
    def load(cls, out: Path) -> RunResults:
        return RunResults.load(out)

    @classmethod
    def section(cls, results: RunResults, out: Path) -> Section:
        return personality_section(results, out)
