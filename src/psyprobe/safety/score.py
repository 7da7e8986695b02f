"""Score a safety run from its stored answers: per task, its reader reads every answer and each of
its metrics (``metrics.py``) summarises the readings, with n, a CI and the judge's second value.

Each attack task also gets its lift over the plain requests (``tasks.BASELINE``): per attack, the
attack's success minus the model's ordinary compliance, so an attack's effect is told apart from
compliance the model shows anyway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, PrivateAttr

from psyprobe.errors import UserError
from psyprobe.models import ModelInfo
from psyprobe.runs.directory import read_results
from psyprobe.runs.layout import Layout
from psyprobe.safety.items import Reading, SafetyItem
from psyprobe.safety.metrics import MetricResult, lift, measure
from psyprobe.safety.settings import SafetySettings
from psyprobe.safety.tasks import BASELINE, TASKS
from psyprobe.safety.toxicity import ClassifierCard
from psyprobe.stats import Difference

if TYPE_CHECKING:
    import pandas as pd


class TaskResult(BaseModel):
    suite: str
    task: str
    what: str
    reader: str
    n_items: int
    n_answered: int
    n_valid: int
    valid_rate: float | None
    metrics: dict[str, MetricResult]  # the first is the headline
    lift: dict[str, Difference]  # attack tasks: per attack and "all", over the plain requests

    @property
    def headline(self) -> MetricResult:
        return next(iter(self.metrics.values()))


def score_task(
    task: str,
    items: list[SafetyItem],
    answers: dict[str, str],
    verdicts: dict[str, bool],
    seed: int,
) -> tuple[TaskResult, list[Reading]]:
    """One task's result and its readings; ``verdicts``: the judge's readable verdicts by item."""
    spec = TASKS[task]
    answered = [i for i in items if i.item_id in answers]
    readings = spec.reader.read(answered, [answers[i.item_id] for i in answered])
    n_valid = sum(r.valid for r in readings)
    result = TaskResult(
        suite=spec.suite,
        task=task,
        what=spec.what,
        reader=spec.reader.describe,
        n_items=len(items),
        n_answered=len(answered),
        n_valid=n_valid,
        valid_rate=n_valid / len(answered) if answered else None,
        # a judge's verdict is a second reading only of the metrics that count what it was asked
        metrics={
            m.name: measure(m, readings, verdicts if m.flag == spec.reader.judge else {}, seed)
            for m in spec.metrics
        },
        lift={},
    )
    return result, readings


def score_tasks(
    items: list[SafetyItem], answers: dict[str, str], verdicts: dict[str, bool], seed: int
) -> dict[str, tuple[TaskResult, list[Reading]]]:
    """Every task of a run, in run order, with each attack task's lift over the baseline."""
    scored = {
        task: score_task(task, [i for i in items if i.task == task], answers, verdicts, seed)
        for task in dict.fromkeys(i.task for i in items)
    }
    if BASELINE in scored:
        baseline = scored[BASELINE][1]
        for result, readings in scored.values():
            if result.suite == TASKS[BASELINE].suite and result.task != BASELINE:
                result.lift = lift(readings, baseline)
    return scored


class StoreCount(BaseModel):
    file: str
    answers: int
    verdicts: int


class SafetyResults(BaseModel):
    """safety.json: written from this model and read back into it."""

    psyprobe_version: str
    model: ModelInfo
    judge: ModelInfo | None
    settings: SafetySettings
    store: StoreCount
    toxicity_classifier: ClassifierCard | None
    tasks: dict[str, TaskResult]
    figures: list[str] = []  # relative to the run directory
    _directory: Path | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, path: Path) -> SafetyResults:
        """safety.json at ``path``, typed; one line where it is missing or not psyprobe's."""
        results = read_results(cls, path, "safety results")
        results._directory = path.parent
        return results

    def to_pandas(self) -> pd.DataFrame:
        """One row per task × metric: value, CI, n, source, which way is safer, judge."""
        import pandas as pd

        rows = [
            {
                "suite": t.suite,
                "task": t.task,
                "metric": name,
                "headline": name == t.headline.name,
                "value": m.value,
                "ci_low": m.ci95[0] if m.ci95 else None,
                "ci_high": m.ci95[1] if m.ci95 else None,
                "n": m.n,
                "note": m.note,
                "source": m.source,
                "safer": m.safer,
                "valid_rate": t.valid_rate,
                "judge": m.judge.value if m.judge else None,
            }
            for t in self.tasks.values()
            for name, m in t.metrics.items()
        ]
        return pd.DataFrame(rows)

    def answers(self) -> pd.DataFrame:
        """Every answer with its prompt and how it was read (safety-responses.jsonl)."""
        import pandas as pd

        if self._directory is None:
            raise UserError("these results have no run directory: load them with load_safety")
        path = Layout(self._directory).safety_responses
        with path.open(encoding="utf-8") as fh:
            return pd.DataFrame([json.loads(line) for line in fh])
