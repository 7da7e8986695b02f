"""Capability check before and after an edit: ARC accuracy and perplexity on held-out text.

Both ship offline (provenance in ``data/PROVENANCE.md``). ARC is asked like the instruments (a
numbered option list, the answer read as the most probable option label), so it runs on any
backend with logprobs; perplexity needs the transformers backend (the torch module), and is
computed inside the model's edits (steering hooks, merged adapter).
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from psyprobe.editing.edited import EditedModel
from psyprobe.models import Model, ModelInfo, OptionProbs
from psyprobe.prompting import Prompt
from psyprobe.safety.metrics import Estimate, proportion

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


def arc_accuracy(model: Model, limit: int | None = None, seed: int = 0) -> dict[str, Estimate]:
    items = arc_items(limit, seed)
    prompts = [
        Prompt(
            None,
            ARC_PROMPT.format(
                question=r["question"],
                numbered="\n".join(f"{k + 1}. {c}" for k, c in enumerate(r["choices"])),
            ),
            tuple(str(k + 1) for k in range(len(r["choices"]))),
        )
        for r in items
    ]
    correct: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(prompts), 64):
        answers = model.option_probs(prompts[start : start + 64])
        for row, answer in zip(items[start : start + 64], answers, strict=True):
            if isinstance(answer, OptionProbs):
                chosen = max(range(len(answer.probs)), key=answer.probs.__getitem__)
                correct[row["source"]].append(chosen == row["answer"])
    # Report each ARC part on its own (Easy and Challenge differ in difficulty by design).
    return {source: proportion(flags) for source, flags in sorted(correct.items())}


def _torch_model(model: Model) -> tuple[Any, AbstractContextManager[None]]:
    if isinstance(model, EditedModel):
        inner, context = model.inner, model.steered()
    else:
        inner, context = model, nullcontext()
    return inner, context


def perplexity(model: Model, max_tokens: int = 2048, window: int = 512) -> float | None:
    """Perplexity of the first ``max_tokens`` tokens of the WikiText-2 excerpt, in windows;
    None for backends without a torch module."""
    inner, context = _torch_model(model)
    if not hasattr(inner, "model") or not hasattr(inner, "tokenizer"):
        return None
    import torch

    text = (DATA / "wikitext2_test_first8.txt").read_text(encoding="utf-8")
    ids = inner.tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    nll, count = 0.0, 0
    with context, torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window + 1]], device=inner.device)
            logits = inner.model(input_ids=chunk[:, :-1]).logits.double()
            logp = torch.log_softmax(logits, dim=-1)
            target = chunk[:, 1:]
            nll -= float(logp.gather(-1, target.unsqueeze(-1)).sum())
            count += target.numel()
    return math.exp(nll / count)


class CapabilityResults(BaseModel):
    """capability.json: ARC accuracy per part (Wilson CI) and perplexity, with the model."""

    model: ModelInfo
    arc: dict[str, Estimate]
    arc_limit_per_part: int | None
    perplexity: float | None  # None for backends without a torch module
    perplexity_text: str = "wikitext2_test_first8.txt, first 2,048 tokens, 512-token windows"


def capability(model: Model, arc_limit: int | None = 50, seed: int = 0) -> CapabilityResults:
    return CapabilityResults(
        model=model.info,
        arc=arc_accuracy(model, arc_limit, seed),
        arc_limit_per_part=arc_limit,
        perplexity=perplexity(model),
    )
