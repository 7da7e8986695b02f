"""Nuisance factors beyond the option order: how an item is worded, labelled and preceded.

A score that changes with any of these is a property of the prompt, not of the model (Gupta et
al., BlackboxNLP 2024, on instruction wording; PERSIST, AAAI 2026, on item context). Each factor
a run varies (``--vary``) enters the design the way option orders do: rotated across respondents
and items (``rotate``) or crossed in full (``within``), its effect measured and removed from
every answer (``scoring.matrix``), its stability reported and judged (``scoring.diagnostics``).

- ``templates``: three equivalent instruction wordings per format (level 0 is study A's);
- ``labels``: option labels as numbers (1, 2, …), letters (A, B, …) or, in generate mode only,
  the options' own text (a multi-token label has no next-token probability to read);
- ``context``: each item asked alone and again after the K items before it in the instrument
  (cyclically), with the respondent's own answers to them, asked alone, in the conversation.
  Context is always paired, whatever the balance: the conversation is made of the answers the
  same respondent gave alone, so both levels exist for every answer asked in context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psyprobe.errors import UserError

Factor = Literal["templates", "labels", "context"]
FACTORS: tuple[Factor, ...] = ("templates", "labels", "context")
LabelStyle = Literal["numbers", "letters", "text"]
LABEL_STYLES: tuple[LabelStyle, ...] = ("numbers", "letters", "text")
WORDINGS = 3  # instruction wordings per format; 0 is study A's own
CONTEXT_ITEMS = 3  # the items before one asked in context, by default


@dataclass(frozen=True)
class Conditions:
    """The levels of the nuisance factors one prompt is asked under (all defaults: study A's
    prompt, asked alone)."""

    wording: int = 0
    labels: LabelStyle = "numbers"
    context: int = 0  # items of conversation before it; 0: asked alone

    def stored(self) -> tuple[tuple[str, str], ...]:
        """The levels that differ from the default, as stored with an answer and in its key (an
        answer asked under defaults is stored exactly as before the factors existed)."""
        out = []
        if self.wording:
            out.append(("templates", str(self.wording)))
        if self.labels != "numbers":
            out.append(("labels", self.labels))
        if self.context:
            out.append(("context", str(self.context)))
        return tuple(out)


DEFAULT_CONDITIONS = Conditions()  # study A's prompt, asked alone
# Each factor's level where an answer's record does not name it (``Conditions.stored`` leaves
# the defaults out): the level every run without the factor is asked under.
DEFAULT_LEVEL = {"templates": "0", "labels": "numbers", "context": "0"}


def check_vary(factors: tuple[str, ...] | list[str]) -> tuple[Factor, ...]:
    """The factors named by ``--vary``, in a fixed order, checked before anything loads."""
    out: list[Factor] = []
    for name in factors:
        if name not in FACTORS:
            raise UserError(f"--vary: {name!r} is not one of {', '.join(FACTORS)}")
        out.append(name)
    return tuple(f for f in FACTORS if f in out)


def label_styles(mode: str) -> tuple[LabelStyle, ...]:
    """The label styles a mode can read: text labels have no single next token."""
    return LABEL_STYLES if mode == "generate" else LABEL_STYLES[:2]


def crossed(vary: tuple[str, ...], mode: str) -> list[Conditions]:
    """Every combination of the varied wording and label levels (asked alone); context is
    added after the answers it shows exist."""
    wordings = range(WORDINGS) if "templates" in vary else range(1)
    styles = label_styles(mode) if "labels" in vary else ("numbers",)
    return [Conditions(w, s) for s in styles for w in wordings]


def assign(
    balance: str, respondent: int, item_position: int, n_orders: int, n_conditions: int
) -> list[tuple[int, int]]:
    """The (order, conditions) cells one respondent answers one item under.

    ``within``: every order under every condition (the respondent's answer is their mean), so
    no order can move one respondent's items together. ``rotate``: one cell. The order is
    ``(respondent + item) mod K``: successive items of a respondent go through the orders and
    every item meets every order equally often across a population of K·m respondents — a K-th
    of the prompts, with the order effect left in the noise of each respondent and removed by
    the decomposition. The condition is ``(respondent // K + item) mod C``: each respondent meets
    the conditions in turn along its items, and no condition is a function of the order (which
    would make the two effects one).
    """
    if balance == "within":
        return [(k, c) for c in range(n_conditions) for k in range(n_orders)]
    return [
        ((respondent + item_position) % n_orders,
         (respondent // n_orders + item_position) % n_conditions)
    ]  # fmt: skip


FACTOR_TITLES = {"templates": "instruction wording", "labels": "label style", "context": "context"}


def level_names(factor: str, levels: list[str]) -> list[str]:
    """A factor's levels as a reader names them."""
    if factor == "templates":
        return ["study A" if lv == "0" else f"paraphrase {lv}" for lv in levels]
    if factor == "context":
        return ["alone" if lv == "0" else f"after {lv} items" for lv in levels]
    return levels
