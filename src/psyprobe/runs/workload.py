"""What a plan of requests costs: prompts, prompt tokens and output tokens, before any is asked."""

from __future__ import annotations

from collections.abc import Sequence

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


def workloads(model: Model, requests: Sequence[Request]) -> list[Workload]:
    """``requests`` counted part by part (what their origin names), in the order first met."""
    parts: dict[str, list[Request]] = {}
    for r in requests:
        parts.setdefault(r.origin.instrument, []).append(r)
    rows = []
    for part, mine in parts.items():
        counted = [prompt_tokens(model, r.prompt) for r in mine]
        rows.append(
            Workload(
                part=part,
                prompts=len(mine),
                prompt_tokens=sum(n for n, _ in counted),
                tokens_counted=all(exact for _, exact in counted),
                output_tokens=sum(
                    1 if r.mode == "logprob" else int(r.decoding.get("max_tokens", 0)) for r in mine
                ),
            )
        )
    return rows
