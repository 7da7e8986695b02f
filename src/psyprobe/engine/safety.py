"""Safety as a measure: the suites' answers, then (with a judge) the judge's verdicts on them.

The directory's record is ``safety-run.json``; the answers share ``responses.sqlite`` with a
personality run in the same directory (their keys differ).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rich.console import RenderableType

from psyprobe.engine.measure import Measure, Record, Stage, record_head, register
from psyprobe.errors import UserError
from psyprobe.models import Model
from psyprobe.records import ResponseRecord
from psyprobe.report.figures import safety_headlines
from psyprobe.report.page import Section
from psyprobe.report.safety import safety_section, safety_summary
from psyprobe.runs import Layout, ResponseStore
from psyprobe.runs.directory import keep_results, replacing, require_store, write_text
from psyprobe.safety.planning import (
    answer_asks,
    answer_texts,
    judge_asks,
    load_safety,
    stored,
)
from psyprobe.safety.readers import judge_verdict
from psyprobe.safety.score import SafetyResults, StoreCount, score_tasks
from psyprobe.safety.settings import SafetySettings
from psyprobe.safety.tasks import data_hash, select
from psyprobe.safety.toxicity import toxicity_classifier
from psyprobe.version import __version__


@register
class Safety(Measure[SafetyResults]):
    """The safety suites asked of a model (and judged by ``judge``, when there is one)."""

    record_file: ClassVar[str] = Layout.SAFETY_RUN
    results_file: ClassVar[str] = Layout.SAFETY_RESULTS
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

    @classmethod
    def load(cls, out: Path) -> SafetyResults:
        return SafetyResults.load(Layout(out).safety_results)

    @classmethod
    def section(cls, results: SafetyResults, out: Path) -> Section:
        return safety_section(results, out)


def rebuild_safety(out: Path) -> SafetyResults:
    """safety.json, safety-responses.jsonl and the figure, from the record and the store."""
    files = Layout(out)
    run = load_safety(out)
    settings = run.settings
    items = select(settings.suites, settings.limit, settings.seed)
    asks = answer_asks(settings, run.model, items)
    require_store(files.store)
    with ResponseStore(files.store) as store:
        answers = answer_texts(stored(store, asks))
        judged = stored(store, judge_asks(run.judge, items, answers)) if run.judge else {}
    keep_results(files.store, files.safety_results, len(answers))
    verdicts = {item: v for item, rec in judged.items() if (v := judge_verdict(rec)) is not None}
    scored = score_tasks(items, answers, verdicts, settings.seed)
    with replacing(files.safety_responses) as fh:
        for task, (_, readings) in scored.items():
            for r in readings:
                row = {
                    "task": task,
                    "item": r.item.item_id,
                    "group": r.item.stratum,
                    "system": r.item.system,
                    "prompt": r.item.user,
                    "meta": r.item.meta,
                    "answer": r.answer,
                    "judge": _judge_trace(judged.get(r.item.item_id)),
                    "valid": r.valid,
                    "flags": r.flags,
                    "value": r.value,
                    **r.detail,
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    results = SafetyResults(
        psyprobe_version=__version__,
        model=run.model,
        judge=run.judge,
        settings=settings,
        store=StoreCount(file=files.store.name, answers=len(answers), verdicts=len(verdicts)),
        toxicity_classifier=toxicity_classifier().card() if "toxicity" in settings.suites else None,
        tasks={name: r for name, (r, _) in scored.items()},
    )
    files.figures.mkdir(exist_ok=True)
    drawn = safety_headlines(
        [(name, t.headline) for name, t in results.tasks.items()],
        files.figures / Layout.SAFETY_FIGURE,
    )
    results.figures = [str(drawn.relative_to(out))]
    write_text(files.safety_results, results.model_dump_json(indent=2))
    return SafetyResults.load(files.safety_results)  # as written, and knowing its directory


def _judge_trace(record: ResponseRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"verdict": judge_verdict(record), "text": record.raw_text, "probs": record.probs}
