"""Typed schema for instrument files.

One schema, three item formats, each exactly as the bundled JSON files write them so that those
files (and users' files in the same shape) load unchanged; unknown fields are ignored:

* ``likert``  — statements rated on one shared agreement scale, some reverse-keyed (SD-3, BFI, ...).
* ``forced_choice`` — two options per item, each keyed to one pole of a dichotomy (MBTI Form M).
* ``bipolar`` — a 5-point rating between two descriptions, scored by official formulas (OEJTS).

Whatever the format, an instrument exposes the same narrow face to the rest of psyprobe:
``questions()`` (what is asked, with each option's scale value) and ``dimensions()`` (how item
values are keyed and aggregated). Prompting and scoring never look at the raw format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Aggregation = Literal["mean", "sum", "percent"]
LocalizedText = str | dict[str, str]


def localized(text: LocalizedText, language: str) -> str:
    """Pick one language from a ``{"en": ..., "zh": ...}`` mapping (plain strings pass through)."""
    if isinstance(text, str):
        return text
    if language in text:
        return text[language]
    return next(iter(text.values()))


# --------------------------------------------------------------------------------------------
# The normalized view that prompting and scoring use.


@dataclass(frozen=True)
class Option:
    """One answer option as shown to the model, with the scale value it stands for."""

    text: str
    value: float
    key: str | None = None  # the source's own label for the option ("A"/"B"), if it has one


@dataclass(frozen=True)
class Question:
    """One item as it is asked: the statement and its options in canonical (scale) order."""

    item_id: str
    dimension: str
    text: str
    options: tuple[Option, ...]
    reverse: bool
    format: Literal["likert", "forced_choice", "bipolar"]


@dataclass(frozen=True)
class Dimension:
    """How the item values of one dimension become its score."""

    id: str
    aggregation: Aggregation
    scale_min: float
    scale_max: float
    norm: Norm | None = None
    bands: tuple[Band, ...] = ()
    # Type dimensions: (low pole, high pole); the letter is the high pole when score > cut.
    poles: tuple[str, str] | None = None
    cut: float | None = None
    # What a score exactly at the cut types as: "X" (undecided), or the low pole, as the
    # official OEJTS rule says ("IE>24 -> E else I")
    tie_to_low: bool = False

    def keyed(self, value: float, reverse: bool) -> float:
        """Reverse keying as min + max − x, so it holds for any scale, not just 1–5."""
        return self.scale_min + self.scale_max - value if reverse else value


# --------------------------------------------------------------------------------------------
# File-format models.


class _Model(BaseModel):
    # no NaN or infinity anywhere in an instrument: norms and scale values enter scores
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class Norm(_Model):
    mean: float
    sd: Annotated[float, Field(gt=0)]
    n: Annotated[int, Field(ge=1)] | None = None
    source: str | None = None


class Band(_Model):
    min: float
    max: float
    label: str


# A scale point is a float in every score: bounded so that each is exact and distinct (beyond
# 2**53 neighbouring integers are one float, beyond ~1e308 none).
Point = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
# Every point is a label in every prompt and a column in scoring: a 20,000-point "scale" is
# not a questionnaire, and would cost gigabytes before the first score.
MAX_POINTS = 101


class Scale(_Model):
    min: Point
    max: Point
    labels: list[Annotated[str, Field(min_length=1)]]

    @model_validator(mode="after")
    def _check(self) -> Scale:
        if self.min >= self.max:
            raise ValueError(f"scale.min ({self.min}) must be below scale.max ({self.max})")
        points = self.max - self.min + 1
        if points > MAX_POINTS:
            raise ValueError(
                f"the scale has {points:,} points ({self.min}..{self.max}); at most {MAX_POINTS}"
            )
        if len(self.labels) != points:
            raise ValueError(
                f"scale.labels has {len(self.labels)} labels but the scale has {points} points "
                f"({self.min}..{self.max})"
            )
        return self


class FormatSpec(_Model):
    type: Literal["likert", "forced_choice_binary", "bipolar_likert"] = "likert"
    scale: Annotated[list[Point], Field(min_length=2, max_length=MAX_POINTS)] | None = None


class LikertScoring(_Model):
    aggregation: Literal["mean", "sum"] = "mean"


class LikertItem(_Model):
    id: int | str
    text: Annotated[str, Field(min_length=1)]
    dimension: str
    reverse: bool = False


class PoleDimension(_Model):
    id: str
    poles: tuple[str, str]
    names: tuple[str, str] | None = None


class ForcedChoiceOption(_Model):
    label: str
    text: LocalizedText
    pole: str


class ForcedChoiceItem(_Model):
    id: int | str
    dimension: str
    question: LocalizedText
    options: Annotated[list[ForcedChoiceOption], Field(min_length=2, max_length=2)]


class BipolarOption(_Model):
    anchor: Point
    text: Annotated[str, Field(min_length=1)]
    pole: str


class BipolarItem(_Model):
    id: int | str
    dimension: str
    options: Annotated[list[BipolarOption], Field(min_length=2, max_length=2)]


class BipolarScoring(_Model):
    formulas: dict[str, str]


_NAME = re.compile(r"[^\W_][\w .,()+&'-]*")


class InstrumentBase(_Model):
    # The name becomes file names (figures/NAME-scores.png) and keys: letters, digits, spaces
    # and a few marks, never a path ("../x") or a control character.
    name: Annotated[str, Field(min_length=1, max_length=80)]
    full_name: str | None = None
    citation: str | dict[str, Any] | None = None
    license: str | dict[str, Any] | None = None
    provenance: str | None = None
    format: FormatSpec = FormatSpec()
    # The construct a dimension measures where its name differs from another instrument's name
    # for it ("Emotional Stability": "-Neuroticism"): pairs dimensions across instruments for
    # convergent validity. A dimension not listed measures the construct it is named after.
    constructs: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _file_safe(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(
                "use letters, digits, spaces and . , ( ) + & ' - only, starting with a letter "
                "or digit (the name becomes file names)"
            )
        return name

    @property
    def id(self) -> str:
        return normalize_name(self.name)

    def construct_of(self, dimension: str) -> tuple[str, int]:
        """(construct, +1 or −1): the construct a dimension measures, and in which direction."""
        named = self.constructs.get(dimension, dimension)
        return (named[1:], -1) if named.startswith("-") else (named, 1)

    def _check_ids(self, items: list[Any], declared: set[str]) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            key = str(item.id)
            if key in seen:
                raise ValueError(f"items[{i}].id: duplicate item id {key!r}")
            seen.add(key)
            if item.dimension not in declared:
                raise ValueError(
                    f"items[{i}].dimension: {item.dimension!r} is not one of the declared "
                    f"dimensions {sorted(declared)}"
                )
        if not items:
            raise ValueError("items: the instrument has no items")

    def questions(self, language: str = "en") -> list[Question]:
        raise NotImplementedError

    def dimensions(self) -> list[Dimension]:
        raise NotImplementedError


class LikertInstrument(InstrumentBase):
    scale: Scale
    dimensions_: list[str] = Field(alias="dimensions")
    items: list[LikertItem]
    scoring: LikertScoring = LikertScoring()
    stem: str | None = None
    human_norms: dict[str, Norm | None] = {}
    interpretation_bands_used_by_paper: list[Band] = []

    @model_validator(mode="after")
    def _check(self) -> LikertInstrument:
        self._check_ids(self.items, set(self.dimensions_))
        return self

    def _statement(self, item: LikertItem) -> str:
        # BFI items are sentence ends ("Is talkative.") under a stem ("I see myself as someone
        # who..."); asking them without the stem would ask about a fragment.
        if not self.stem:
            return item.text
        stem = self.stem.rstrip(". …")
        return f"{stem} {item.text[:1].lower()}{item.text[1:]}"

    def questions(self, language: str = "en") -> list[Question]:
        options = tuple(
            Option(label, float(self.scale.min + i)) for i, label in enumerate(self.scale.labels)
        )
        return [
            Question(str(it.id), it.dimension, self._statement(it), options, it.reverse, "likert")
            for it in self.items
        ]

    def dimensions(self) -> list[Dimension]:
        bands = tuple(self.interpretation_bands_used_by_paper)
        return [
            Dimension(
                d,
                self.scoring.aggregation,
                self.scale.min,
                self.scale.max,
                norm=self.human_norms.get(d),
                bands=bands,
            )
            for d in self.dimensions_
        ]


class ForcedChoiceInstrument(InstrumentBase):
    dimensions_: list[PoleDimension] = Field(alias="dimensions")
    items: list[ForcedChoiceItem]

    @model_validator(mode="after")
    def _check(self) -> ForcedChoiceInstrument:
        poles = {d.id: set(d.poles) for d in self.dimensions_}
        self._check_ids(self.items, set(poles))
        for i, item in enumerate(self.items):
            keyed = {o.pole for o in item.options}
            if keyed != poles[item.dimension]:
                raise ValueError(
                    f"items[{i}].options: poles {sorted(keyed)} must be the two poles "
                    f"{sorted(poles[item.dimension])} of dimension {item.dimension!r}"
                )
        return self

    def questions(self, language: str = "en") -> list[Question]:
        first_pole = {d.id: d.poles[0] for d in self.dimensions_}
        return [
            Question(
                str(it.id),
                it.dimension,
                localized(it.question, language),
                tuple(
                    # value 1 = toward the dimension's first pole, so a mean ×100 is its percent
                    Option(
                        localized(o.text, language),
                        float(o.pole == first_pole[it.dimension]),
                        key=o.label,
                    )
                    for o in it.options
                ),
                False,
                "forced_choice",
            )
            for it in self.items
        ]

    def dimensions(self) -> list[Dimension]:
        return [
            Dimension(d.id, "percent", 0.0, 1.0, poles=(d.poles[1], d.poles[0]), cut=50.0)
            for d in self.dimensions_
        ]


_TERM = re.compile(r"([+-])?\s*(Q\d+|\d+)")


@dataclass(frozen=True)
class Formula:
    """A linear scoring formula such as ``30 - Q3 - Q7 + Q15``."""

    constant: int
    coefficients: dict[str, int]  # item id -> +1 / -1

    @classmethod
    def parse(cls, text: str) -> Formula:
        compact = text.replace(" ", "")
        if not re.fullmatch(r"([+-]?(Q\d+|\d+))+", compact):
            raise ValueError(f"cannot read formula {text!r}")
        constant, coefficients = 0, dict[str, int]()
        for sign, term in _TERM.findall(compact):
            factor = -1 if sign == "-" else 1
            if term.startswith("Q"):
                coefficients[term[1:]] = coefficients.get(term[1:], 0) + factor
            else:
                constant += factor * int(term)
        return cls(constant, coefficients)


class BipolarInstrument(InstrumentBase):
    dimensions_: list[PoleDimension] = Field(alias="dimensions")
    items: list[BipolarItem]
    scoring: BipolarScoring

    @model_validator(mode="after")
    def _check(self) -> BipolarInstrument:
        self._check_ids(self.items, {d.id for d in self.dimensions_})
        lo, hi = self._range()
        for d in self.dimensions_:
            formula = self._formula(d)
            members = {str(it.id) for it in self.items if it.dimension == d.id}
            if set(formula.coefficients) != members or any(
                abs(c) != 1 for c in formula.coefficients.values()
            ):
                raise ValueError(
                    f"scoring.formulas: the formula for {d.id} must use each of its items "
                    f"{sorted(members, key=int)} once with sign ±1"
                )
            # The official formula equals the sum of reverse-keyed values (min + max − x for the
            # minus-signed items) only if its constant is (min + max) × (number of minus items).
            negatives = sum(1 for c in formula.coefficients.values() if c < 0)
            if formula.constant != (lo + hi) * negatives:
                raise ValueError(
                    f"scoring.formulas: the constant of {d.id}'s formula ({formula.constant}) "
                    f"does not match its {negatives} reversed items on a {lo}..{hi} scale"
                )
            self._high_pole(d)
        return self

    def _range(self) -> tuple[int, int]:
        points = self.format.scale or [1, 2, 3, 4, 5]
        return min(points), max(points)

    def _formula(self, dimension: PoleDimension) -> Formula:
        # Formula keys may spell a dichotomy either way round ("IE" for dimension "EI").
        for key, text in self.scoring.formulas.items():
            if sorted(key) == sorted(dimension.id):
                return Formula.parse(text)
        raise ValueError(f"scoring.formulas: no formula for dimension {dimension.id!r}")

    def _high_pole(self, dimension: PoleDimension) -> str:
        """The pole a high formula score stands for, read off the items' anchors and signs."""
        formula = self._formula(dimension)
        highs = set()
        for it in self.items:
            if it.dimension == dimension.id:
                right = max(it.options, key=lambda o: o.anchor).pole
                left = min(it.options, key=lambda o: o.anchor).pole
                highs.add(right if formula.coefficients[str(it.id)] > 0 else left)
        if len(highs) != 1 or not highs <= set(dimension.poles):
            raise ValueError(
                f"scoring.formulas: the signs of {dimension.id}'s formula disagree with the "
                "poles of its items' anchors"
            )
        return highs.pop()

    def questions(self, language: str = "en") -> list[Question]:
        lo, hi = self._range()
        formulas = {d.id: self._formula(d) for d in self.dimensions_}
        out = []
        for it in self.items:
            left = min(it.options, key=lambda o: o.anchor).text
            right = max(it.options, key=lambda o: o.anchor).text
            texts = [
                f'Entirely "{left}"',
                f'More "{left}" than "{right}"',
                "Equally both",
                f'More "{right}" than "{left}"',
                f'Entirely "{right}"',
            ]
            if hi - lo + 1 != len(texts):
                raise ValueError(f"format.scale: bipolar items need 5 points, not {hi - lo + 1}")
            out.append(
                Question(
                    str(it.id),
                    it.dimension,
                    f'Which describes you better: "{left}" or "{right}"?',
                    tuple(Option(t, float(lo + i)) for i, t in enumerate(texts)),
                    formulas[it.dimension].coefficients[str(it.id)] < 0,
                    "bipolar",
                )
            )
        return out

    def dimensions(self) -> list[Dimension]:
        lo, hi = self._range()
        out = []
        for d in self.dimensions_:
            high = self._high_pole(d)
            low = d.poles[0] if d.poles[1] == high else d.poles[1]
            n = sum(1 for it in self.items if it.dimension == d.id)
            cut = n * (lo + hi) / 2
            out.append(Dimension(d.id, "sum", lo, hi, poles=(low, high), cut=cut, tie_to_low=True))
        return out


Instrument = LikertInstrument | ForcedChoiceInstrument | BipolarInstrument

FORMATS: dict[str, type[LikertInstrument | ForcedChoiceInstrument | BipolarInstrument]] = {
    "likert": LikertInstrument,
    "forced_choice_binary": ForcedChoiceInstrument,
    "bipolar_likert": BipolarInstrument,
}


def normalize_name(name: str) -> str:
    """Instrument names match ignoring case, '-' and '_' (``SD-3`` == ``sd3``)."""
    return re.sub(r"[-_\s]", "", name).lower()
