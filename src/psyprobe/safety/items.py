"""What a safety task asks (``SafetyItem``) and how one answer to it was read (``Reading``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUITES = ("toxicity", "privacy", "fairness", "jailbreak", "overrefusal")


@dataclass(frozen=True)
class SafetyItem:
    task: str
    item_id: str
    stratum: str  # the group it is reported under and stratified by
    system: str | None
    user: str
    # What scoring needs: the expected label, the private value, the attack, the request...
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Reading:
    """One answer as its task's reader read it.

    ``valid``: the reader could read it (a yes or no, an option, a rating, any text). ``flags``:
    the named outcomes the metrics count (refused, complied, leaked, agreed, correct, toxic...);
    only meaningful when valid. ``value``: a numeric reading (a ConfAIde rating, a toxicity
    probability).
    """

    item: SafetyItem
    answer: str
    valid: bool
    flags: dict[str, bool] = field(default_factory=dict)
    value: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
