"""Simulated respondents: persona preambles crossed with item framings (PsyBORGS' design).

A respondent is what reliability and validity are computed over. Option orders are *not*
respondents: an order habit moves every item asked under one order together, which looks
exactly like a consistent trait. Orders are a nuisance factor instead, balanced inside the
population (see ``conditions.assign``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from psyprobe.errors import UserError

# Twenty personas: two of each Big Five pole, a multiple of the latin design's 10 orders for
# 5-point scales (so rotation balances exactly), and α's CI narrow enough to tell 0.7 from 0.
RESPONDENTS = 20
Balance = Literal["rotate", "within"]
BALANCES: tuple[Balance, ...] = ("rotate", "within")


@dataclass(frozen=True)
class Respondent:
    index: int
    persona: str | None = None  # None: the model answers as itself
    framing: str | None = None
    # Big Five domains the persona names a level of (+1 high, −1 low): the criterion
    markers: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    def system(self, base: str, preamble: str) -> str:
        """The system message: the template's line, then who to answer as and how."""
        if self.persona is None:
            return base
        return f"{base}\n{preamble.format(persona=self.persona)} {self.framing}"


@cache
def _bank() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (files("psyprobe.prompting") / "data" / "respondents.json").read_text(encoding="utf-8")
    )
    return data


def preamble() -> str:
    return str(_bank()["preamble"])


def check_size(n: int) -> int:
    """A population size the bank can fill; settings check it before anything is written."""
    bank = len(_bank()["personas"]) * len(_bank()["framings"])
    if not 0 <= n <= bank:
        raise UserError(
            f"respondents: {n} is not between 0 and {bank} (the bank's personas × framings)"
        )
    return n


def population(n: int) -> list[Respondent]:
    """The first ``n`` respondents of the bank; 0: the model itself.

    Every persona in turn, each with the framing after the previous persona's; past the last
    persona, every persona again with the framing after the one it had (PsyBORGS crosses
    personas with framings), up to personas × framings respondents, none twice. A population
    no larger than the bank is therefore the same whatever the bank's size. Personas cycle
    through the ten Big Five poles and the bank holds a multiple of ten, so any population of
    10k holds k of each.
    """
    bank = _bank()
    personas, framings = bank["personas"], bank["framings"]
    if check_size(n) == 0:
        return [Respondent(0)]
    respondents = []
    for i in range(n):
        again, k = divmod(i, len(personas))  # the round, and the persona in it
        persona = personas[k]
        framing = framings[(k + again) % len(framings)]
        respondents.append(Respondent(i, persona["text"], framing, dict(persona["markers"])))
    return respondents
