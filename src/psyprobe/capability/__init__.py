"""Capability check before and after an edit: ARC accuracy and perplexity on held-out text.

Both ship offline (provenance in ``data/PROVENANCE.md``). ARC is asked like the instruments (a
numbered option list, the answer read as the most probable option label), so it runs on any
backend with logprobs, through the answer store like every other answer; perplexity needs a
backend that scores text (transformers), and is computed inside the model's edits (steering
hooks, merged adapter). ``engine.capability`` runs both.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from psyprobe.models import Model, ModelInfo
from psyprobe.models.base import leave_out_at_default
from psyprobe.prompting import Prompt
from psyprobe.runs.layout import Layout
from psyprobe.stats import Estimate, proportion

DATA = Path(__file__).parent / "data"
ARC_PROMPT = (
    "Answer the following science question.\nQuestion: {question}\nOptions:\n{numbered}\n"
    "Reply with the number of the correct option.\nAnswer:"
)


def arc_items(limit: int | None, seed: int) -> list[dict[str, Any]]:
    """ARC questions; ``limit`` takes that many from each of ARC-Easy and ARC-Challenge."""
    rows = [json.loads(line) for line in (DATA / "arc_test_subset.jsonl").open(encoding="utf-8")]
    if limit is None:
        return rows
    out = []
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        random.Random(f"{seed}:{source}").shuffle(mine)
        out.extend(mine[:limit])
    return out


def arc_prompt(row: dict[str, Any]) -> Prompt:
    numbered = "\n".join(f"{k + 1}. {c}" for k, c in enumerate(row["choices"]))
    return Prompt(
        None,
        ARC_PROMPT.format(question=row["question"], numbered=numbered),
        tuple(str(k + 1) for k in range(len(row["choices"]))),
    )


def arc_accuracy(
    items: list[dict[str, Any]], answers: Mapping[str, Sequence[float]]
) -> dict[str, Estimate]:
    """Accuracy per ARC part (Easy and Challenge differ in difficulty by design, so each is
    reported on its own): an answer is the most probable option label; items without a stored
    answer are left out."""
    correct: dict[str, list[bool]] = defaultdict(list)
    for row in items:
        answer = answers.get(row["id"])
        if answer is not None:
            chosen = max(range(len(answer)), key=answer.__getitem__)
            correct[row["source"]].append(chosen == row["answer"])
    return {source: proportion(flags) for source, flags in sorted(correct.items())}


def data_hash() -> str:
    digest = hashlib.sha256()
    for name in ("arc_test_subset.jsonl", "wikitext2_test_first8.txt"):
        digest.update((DATA / name).read_bytes())
    return f"sha256:{digest.hexdigest()}"


PERPLEXITY_TEXT = "wikitext2_test_first8.txt"


PERPLEXITY_TOKENS = 2048
WINDOW = 512


def perplexity(
    model: Model, max_tokens: int = PERPLEXITY_TOKENS, window: int = WINDOW
) -> float | None:
    """Perplexity of the first ``max_tokens`` tokens of the WikiText-2 excerpt in windows,
    inside the model's edits; None for backends that cannot score text (no torch module)."""
    text = (DATA / PERPLEXITY_TEXT).read_text(encoding="utf-8")
    return model.perplexity(text, max_tokens, window)


class CapabilitySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    arc_limit: int | None = Field(50, ge=1, description="ARC questions per part (Easy, Challenge)")
    seed: int = Field(0, ge=0, description="Seed for the ARC sample")
    # fewer tokens: a quicker, rougher figure
    perplexity_tokens: int = Field(
        PERPLEXITY_TOKENS,
        ge=WINDOW // 8,
        le=100_000,
        description="WikiText-2 tokens of the perplexity (hf:)",
    )

    @model_serializer(mode="wrap")
    def _stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_at_default(self, handler, "perplexity_tokens")

    def perplexity_text(self) -> str:
        return f"{PERPLEXITY_TEXT}, first {self.perplexity_tokens:,} tokens, {WINDOW}-token windows"


class CapabilityResults(BaseModel):
    """capability.json: ARC accuracy per part (Wilson CI) and perplexity, with the model."""

    model: ModelInfo
    arc: dict[str, Estimate]
    arc_limit_per_part: int | None
    perplexity: float | None  # None for backends without a torch module
    perplexity_text: str = CapabilitySettings().perplexity_text()

    @classmethod
    def load(cls, out: Path) -> CapabilityResults:
        return cls.model_validate_json(Layout(out).capability_results.read_text(encoding="utf-8"))
