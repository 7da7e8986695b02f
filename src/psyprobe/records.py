"""The stored form of one answer: the unit that runs write and scoring reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from psyprobe.models.base import Ending, Mode

# An answer to what was asked, or a judge's verdict on such an answer.
Role = Literal["answer", "verdict"]


class ResponseRecord(BaseModel):
    """One raw answer with everything needed to trace and rescore it."""

    model_config = ConfigDict(frozen=True)

    key: str
    instrument: str
    item: str
    order_index: int
    option_order: tuple[int, ...]
    sample: int
    # The simulated respondent (persona × framing) of a population; 0 also for the model itself
    respondent: int = 0
    attempt: int
    role: Role = "answer"
    mode: Mode
    system: str | None
    user: str
    labels: tuple[str, ...]
    decoding: dict[str, Any]
    seed: int
    model_fingerprint: str
    raw_text: str | None = None  # generate mode
    probs: tuple[float, ...] | None = None  # logprob mode: P(label) by position
    # generate mode, where the backend counts: tokens generated, and how the answer ended
    tokens: int | None = None
    ended: Ending | None = None
    # an answer imported from elsewhere: the file and row it came from (psyprobe import)
    source: str | None = None
    # the nuisance factors' levels it was asked under, where not the defaults (--vary)
    conditions: dict[str, str] = Field(default_factory=dict)
    # item context: the earlier (question, answer) turns of its conversation
    history: tuple[tuple[str, str], ...] = ()
    created: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _old_verdicts(cls, data: Any) -> Any:
        """Stores written before the role field filed a verdict under instrument "judge:TASK"."""
        if isinstance(data, dict) and str(data.get("instrument", "")).startswith("judge:"):
            data = data | {"instrument": data["instrument"][6:], "role": "verdict"}
        return data


def request_key(
    fingerprint: str,
    system: str | None,
    user: str,
    labels: Iterable[str],
    mode: Mode,
    decoding: dict[str, Any],
    sample: int,
    attempt: int,
    seed: int,
    identity: Sequence[object] = (),
    history: Sequence[tuple[str, str]] = (),
) -> str:
    """The key an answer is stored under. ``identity`` names the question (instrument, item,
    order, respondent, role): two questions with the same prompt — an item text two
    instruments share, or an instrument that repeats one — are two answers, never one. Keys
    without it are those of stores written before (``runs.store`` adopts such answers)."""
    parts: list[Any] = [
        fingerprint, system, user, list(labels), mode, decoding, sample, attempt, seed
    ]  # fmt: skip
    if identity:
        parts.append(list(identity))
    if history:
        parts.append([list(turn) for turn in history])
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
