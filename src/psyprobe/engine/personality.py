"""Personality as a measure: questionnaires asked under counterbalanced orders, scored with norms.

The directory's record is ``run.json`` (settings, model identity, the instruments as asked);
the first stage asks every planned answer, later stages re-ask (with fresh seeds) the answers
that could not be read at all, up to ``settings.retries`` times.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType

from psyprobe.engine.measure import Measure, Record, Stage, record_head
from psyprobe.errors import UserError
from psyprobe.instruments import STUDY_A_INSTRUMENTS, canonical_name
from psyprobe.models import Mode, Model
from psyprobe.prompting import (
    BALANCES,
    CONTEXT_ITEMS,
    RESPONDENTS,
    TEMPLATES,
    check_design,
    check_vary,
)
from psyprobe.report import rebuild
from psyprobe.report.console import personality_summary
from psyprobe.report.results import RunResults
from psyprobe.runs import ResponseStore, RunSettings
from psyprobe.runs.asking import Request
from psyprobe.runs.planning import (
    Planned,
    check_workload,
    plan,
    plan_in_context,
    replan,
    resolve_instruments,
)
from psyprobe.runs.workload import Workload


def check_choices(
    mode: str,
    orders: str,
    balance: str,
    template: str,
    vary: Sequence[str] = (),
    instruments: Sequence[str] | None = None,
) -> None:
    """The named choices of a run, checked before any model loads (one line each)."""
    for name in instruments or ():
        canonical_name(name)
    check_vary(list(vary))
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
    vary: Sequence[str] = (),
    context_items: int = CONTEXT_ITEMS,
) -> tuple[RunSettings, str | None]:
    """The settings of a run of ``model``, and a note where the model changed one of them.

    Recorded answers (replay) define their own design; a backend without next-token
    probabilities is asked in generate mode instead (the note says so). Generated answers end
    once they can be read unless ``stop_when_read`` is off.
    """
    check_choices(mode, orders, balance, template, vary)
    names = tuple(instruments) if instruments else STUDY_A_INSTRUMENTS
    recorded = model.recorded_design()
    if recorded is not None:
        # Recorded answers are what they are: one per line, asked in the order they were.
        names = tuple(instruments) if instruments else recorded.instruments
        orders, mode, samples, retries, respondents = "fixed", "generate", recorded.samples, 0, 0
        stop_when_read, vary = False, ()
    names = tuple(canonical_name(name) for name in names)
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
        vary=check_vary(list(vary)),
        context_items=context_items,
    )
    return settings, note


class Personality(Measure[RunResults]):
    """Instruments administered to a model; results.json, report.md/html and the figures."""

    record_file: ClassVar[str] = "run.json"
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
        alone = plan(settings, self.instruments, info)
        yield from self._asked(model, store, alone)
        if "context" in settings.vary:  # after the answers the conversations show
            in_context = plan_in_context(settings, self.instruments, info, alone, store)
            yield from self._asked(model, store, in_context)

    def _asked(self, model: Model, store: ResponseStore, slots: list[Planned]) -> Iterator[Stage]:
        """``slots`` asked, then (generate mode) re-asked while their answers are unreadable."""
        settings = self.settings
        yield Stage(model, [p.request for p in slots])
        attempts = settings.retries + 1 if settings.mode == "generate" else 1
        for attempt in range(1, attempts):
            slots = replan(settings, model.info, slots, store, attempt)
            if not slots:
                return
            yield Stage(model, [p.request for p in slots], needed=False)

    def describe(self, model: Model) -> str:
        return f"asking {model.info.spec} ({self.settings.mode})"

    def workload(self, model: Model, first: Sequence[Request]) -> list[Workload]:
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
