"""Safety as a measure: the suites' answers, then (with a judge) the judge's verdicts on them.

The directory's record is ``safety-run.json``; the answers share ``responses.sqlite`` with a
personality run in the same directory (their keys differ).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType

from psyprobe.engine.measure import Measure, Record, Stage, record_head
from psyprobe.errors import UserError
from psyprobe.models import Model
from psyprobe.report.console import safety_summary
from psyprobe.runs import ResponseStore
from psyprobe.safety.planning import (
    SafetySettings,
    answer_asks,
    answer_texts,
    judge_asks,
    stored,
)
from psyprobe.safety.report import rebuild_safety
from psyprobe.safety.score import SafetyResults
from psyprobe.safety.tasks import data_hash, select


class Safety(Measure[SafetyResults]):
    """The safety suites asked of a model (and judged by ``judge``, when there is one)."""

    record_file: ClassVar[str] = "safety-run.json"
    what: ClassVar[str] = "safety run"

    def __init__(self, settings: SafetySettings, judge: Model | None = None):
        self.settings = settings
        self.judge = judge

    def record(self, model: Model) -> Record:
        settings = self.settings.model_copy(update={"model": model.info.spec})
        data = record_head(settings, model) | {
            "judge": self.judge.info.model_dump(mode="json") if self.judge else None,
            "data_hash": data_hash(settings.suites),
        }
        return Record(data, ("settings", "model", "judge", "data_hash"))

    def stages(self, model: Model, store: ResponseStore) -> Iterator[Stage]:
        if "generate" not in model.info.modes:
            raise UserError(f"--model {self.settings.model}: the safety suites need generate mode")
        items = select(self.settings.suites, self.settings.limit, self.settings.seed)
        asks = answer_asks(self.settings, model.info, items)
        yield Stage(model, asks)
        if self.judge is not None:
            answers = answer_texts(stored(store, asks))
            yield Stage(self.judge, judge_asks(self.judge.info, items, answers))

    def describe(self, model: Model) -> str:
        judged = f", judged by {self.judge.info.spec}" if self.judge else ""
        return f"asking {model.info.spec}{judged}"

    @classmethod
    def summary(cls, results: SafetyResults) -> RenderableType:
        return safety_summary(results)

    @classmethod
    def rebuild(cls, out: Path) -> SafetyResults:
        return rebuild_safety(out)
