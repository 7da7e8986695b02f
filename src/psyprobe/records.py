"""The stored form of one answer: the unit that runs write and scoring reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from psyprobe.models.base import Ending, Mode

# An answer to what was asked, or a judge's verdict on such an answer.
Role = Literal["answer", "verdict"]


@dataclass(frozen=True)
class Origin:
    """What an answer answers — the one type of an answer's identity: the instrument (or safety
    task, or ARC part), the item, for questionnaires the order, sample and respondent; a
    judge's verdict on an answer has the answer's origin with the role "verdict". A request
    carries it (``runs.asking.Request``), a stored record is a view of it
    (``ResponseRecord.origin``)."""

    instrument: str
    item: str
    order_index: int = 0
    option_order: tuple[int, ...] = ()
    sample: int = 0
    respondent: int = 0
    attempt: int = 0
    role: Role = "answer"
    # the nuisance factors' levels where not the defaults (``Conditions.stored``)
    conditions: tuple[tuple[str, str], ...] = ()

    def question(self) -> tuple[object, ...]:
        """The question in an answer's store key (``request_key``'s ``identity``): two
        questions with the same prompt are two answers, the samples and attempts of one are
        told apart by the key's own fields."""
        asked: tuple[object, ...] = (
            self.instrument, self.item, self.order_index, self.respondent, self.role
        )  # fmt: skip
        return asked + ((dict(self.conditions),) if self.conditions else ())

    def stored(self) -> dict[str, Any]:
        """The store's columns that say which question an answer answers (``ResponseRecord``'s
        fields; ``runs.store.adopt`` matches an old store's rows on them)."""
        return {
            "instrument": self.instrument, "item": self.item, "order_index": self.order_index,
            "respondent": self.respondent, "sample": self.sample, "attempt": self.attempt,
            "role": self.role,
        }  # fmt: skip

    def any_attempt(self) -> Origin:
        """The same question and sample, whichever attempt answered it."""
        return replace(self, attempt=0, conditions=tuple(sorted(self.conditions)))


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

    @property
    def origin(self) -> Origin:
        """What this answer answers (the fields above, as one ``Origin``)."""
        return Origin(
            self.instrument, self.item, self.order_index, self.option_order, self.sample,
            self.respondent, self.attempt, self.role, tuple(sorted(self.conditions.items())),
        )  # fmt: skip

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
