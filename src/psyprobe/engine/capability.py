"""Capability as a measure: ARC answers through the store, perplexity computed from the model.

The directory's record is ``capability-run.json``; ARC answers go to ``responses.sqlite`` (so a
rerun resumes and every accuracy traces to stored option probabilities), perplexity to
``perplexity.json``; ``capability.json`` is rebuilt from the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rich.console import RenderableType

from psyprobe.capability import (
    PERPLEXITY_TEXT,
    CapabilityResults,
    CapabilitySettings,
    arc_accuracy,
    arc_items,
    arc_prompt,
    data_hash,
    perplexity,
)
from psyprobe.engine.measure import Measure, Record, Stage, record_head, register
from psyprobe.errors import UserError
from psyprobe.models import Model, ModelInfo, Sampling
from psyprobe.records import Origin
from psyprobe.report.capability import capability_section, capability_summary
from psyprobe.report.page import Section
from psyprobe.runs import Layout, ResponseStore
from psyprobe.runs.asking import Request, make_request
from psyprobe.runs.directory import keep_results, read_record, require_store, write_json


def arc_asks(settings: CapabilitySettings, info: ModelInfo) -> list[Request]:
    return [
        make_request(
            info, arc_prompt(row), "logprob", Sampling(), 0, Origin(row["source"], row["id"])
        )
        for row in arc_items(settings.arc_limit, settings.seed)
    ]


@register
class Capability(Measure[CapabilityResults]):
    """ARC accuracy per part and WikiText-2 perplexity, before and after an edit."""

    record_file: ClassVar[str] = Layout.CAPABILITY_RUN
    results_file: ClassVar[str] = Layout.CAPABILITY_RESULTS
    what: ClassVar[str] = "capability run"

    def __init__(self, settings: CapabilitySettings):
        self.settings = settings

    def record(self, model: Model) -> Record:
        data = record_head(self.settings, model) | {
            "data_hash": data_hash(),
        }
        return Record(data, ("settings", "model", "data_hash"))

    def stages(self, model: Model, store: ResponseStore) -> Iterator[Stage]:
        if "logprob" not in model.info.modes:
            raise UserError(f"{model.info.spec}: ARC is read from next-token probabilities")
        yield Stage(model, arc_asks(self.settings, model.info))

    def computed(self, model: Model, out: Path) -> None:
        path = Layout(out).perplexity
        if not path.is_file():  # the record pins the model: a value there is this model's
            tokens = self.settings.perplexity_tokens
            write_json(path, {"text": PERPLEXITY_TEXT, "perplexity": perplexity(model, tokens)})

    def describe(self, model: Model) -> str:
        return f"asking {model.info.spec} ARC questions"

    @classmethod
    def summary(cls, results: CapabilityResults) -> RenderableType:
        return capability_summary(results)

    @classmethod
    def load(cls, out: Path) -> CapabilityResults:
        return CapabilityResults.load(out)

    @classmethod
    def section(cls, results: CapabilityResults, out: Path) -> Section:
        return capability_section(results, out)

    @classmethod
    def rebuild(cls, out: Path) -> CapabilityResults:
        data = read_record(out / cls.record_file, cls.what)
        settings = CapabilitySettings(**data["settings"])
        info = ModelInfo(**data["model"])
        asks = arc_asks(settings, info)
        layout = Layout(out)
        require_store(layout.store)
        with ResponseStore(layout.store) as store:
            by_key = {r.key: r for r in store.records()}
        answers = {
            a.origin.item: probs
            for a in asks
            if a.key in by_key and (probs := by_key[a.key].probs) is not None
        }
        keep_results(layout.store, layout.capability_results, len(answers))
        held: dict[str, Any] = {}
        if layout.perplexity.is_file():
            held = read_record(layout.perplexity, "capability run")
        results = CapabilityResults(
            model=info,
            arc=arc_accuracy(arc_items(settings.arc_limit, settings.seed), answers),
            arc_limit_per_part=settings.arc_limit,
            perplexity=held.get("perplexity"),
            perplexity_text=settings.perplexity_text(),
        )
        write_json(layout.capability_results, results.model_dump(mode="json"))
        return results
