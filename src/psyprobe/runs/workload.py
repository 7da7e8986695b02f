"""What a plan of requests costs: prompts, prompt tokens and output tokens, before any is asked."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from psyprobe.models import Model
from psyprobe.prompting import Prompt
from psyprobe.runs.asking import Request


class Workload(BaseModel):
    """What a measurement would ask of one part (an instrument, a safety task, an ARC part)."""

    part: str
    prompts: int
    prompt_tokens: int
    tokens_counted: bool  # False: estimated at 4 characters a token
    output_tokens: int  # at most


def prompt_tokens(model: Model, prompt: Prompt) -> tuple[int, bool]:
    """The prompt's tokens with the model's tokenizer (True), or estimated (False): 4 characters
    a token, the usual rule of thumb for English, plus a few tokens of chat framing a message."""
    counted = model.count_tokens(prompt)
    if counted is not None:
        return counted, True
    text = prompt.user + (prompt.system or "") + "".join(m for turn in prompt.history for m in turn)
    return len(text) // 4 + 8 * (1 + 2 * len(prompt.history)), False


def workloads(model: Model, requests: Iterable[Request]) -> list[Workload]:
    """``requests`` counted part by part (what their origin names), in the order first met."""
    rows: dict[str, Workload] = {}
    for r in requests:
        tokens, counted = prompt_tokens(model, r.prompt)
        output = 1 if r.mode == "logprob" else int(r.decoding.get("max_tokens", 0))
        row = rows.setdefault(
            r.origin.instrument,
            Workload(
                part=r.origin.instrument,
                prompts=0,
                prompt_tokens=0,
                tokens_counted=True,
                output_tokens=0,
            ),
        )
        row.prompts += 1
        row.prompt_tokens += tokens
        row.tokens_counted &= counted
        row.output_tokens += output
    return list(rows.values())
