"""Rows of the long format as stored answers: each row's item, option order, respondent, sample
and response read against its instrument, or the reason it cannot be used.

Nothing is guessed. An item is its instrument's id or its text (compared after case, spacing and
punctuation are set aside); a text that matches no item, or two, is unknown. A number is a scale
value unless the collection says positions were answered; one off the scale is not rounded. A
row that repeats another's question (the same item, order, respondent and sample) is a
duplicate, since nothing says which of the two to keep.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from psyprobe.instruments import Instrument, Question
from psyprobe.records import ResponseRecord, request_key
from psyprobe.scoring.matrix import parse_record

Responses = Literal["values", "positions"]
# Why a row could not be used (the file's problem, not the model's: nothing is stored) ...
UNUSABLE = (
    "unknown instrument",
    "unknown item",
    "missing response",
    "value off the scale",
    "unreadable order",
    "duplicate",
)
# ... and an answer that was stored but says no option (it lowers the valid rate, as an
# unreadable generated answer does)
UNREADABLE = "unreadable response"


def normalised(text: str) -> str:
    """Text compared as published files write items: case, spacing and punctuation aside."""
    kept = "".join(c for c in text.casefold() if not unicodedata.category(c).startswith("P"))
    return " ".join(kept.split())


@dataclass
class ItemIndex:
    """One instrument's items by id and by text (a text two items share finds neither)."""

    instrument: Instrument
    questions: dict[str, Question]
    by_text: dict[str, str | None]

    @classmethod
    def of(cls, instrument: Instrument) -> ItemIndex:
        questions = {q.item_id: q for q in instrument.questions()}
        by_text: dict[str, str | None] = {}
        raw = {
            str(it.id): it.text for it in getattr(instrument, "items", []) if hasattr(it, "text")
        }
        for item_id, question in questions.items():
            for text in {question.text, raw.get(item_id, question.text)}:
                key = normalised(text)
                by_text[key] = item_id if by_text.get(key, item_id) == item_id else None
        return cls(instrument, questions, by_text)

    def find(self, item: Any) -> str | None:
        text = cell(item)
        if text in self.questions:
            return text
        return self.by_text.get(normalised(text))


@dataclass
class ModelAnswers:
    """One model's stored answers from a collection, and its rows that could not be used."""

    name: str
    records: list[ResponseRecord] = field(default_factory=list)
    unusable: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    rows: int = 0
    files: set[str] = field(default_factory=set)
    respondents: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    seen: set[tuple[str, str, tuple[int, ...], str, str]] = field(default_factory=set)


def cell(value: Any) -> str:
    """A cell as text: integral numbers without ".0" (pandas reads ids of 1..n as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _present(value: Any) -> bool:
    return cell(value).strip() != ""


def read_order(value: Any, question: Question) -> tuple[int, ...] | None:
    """The options' order as shown: forward / reverse (the labels from the scale's first or last
    point), or the shown options' scale values or keys in order ("5,4,3,2,1"; "B,A"); absent:
    forward. None where it is none of these."""
    n = len(question.options)
    text = cell(value).strip().lower()
    if text in ("", "forward"):
        return tuple(range(n))
    if text == "reverse":
        return tuple(reversed(range(n)))
    names = {cell(o.value).lower(): i for i, o in enumerate(question.options)}
    names |= {o.key.lower(): i for i, o in enumerate(question.options) if o.key}
    tokens = [t for t in re.split(r"[\s,;|]+", text) if t]
    order = tuple(names.get(t, -1) for t in tokens)
    return order if sorted(order) == list(range(n)) else None


def response_text(
    value: Any, question: Question, shown: tuple[int, ...], responses: Responses
) -> str | None:
    """The answer as psyprobe's reader reads it, or None where it is off the scale: a scale
    value (or a position) as a number, otherwise the text as given. A JSON object answers with
    its ``score`` (else its ``response``)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):  # else text that starts with a brace
            value = json.loads(value)
    if isinstance(value, dict):
        value = value.get("score", value.get("response"))
    text = cell(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text  # words: read by the same reader as generated answers
    if responses == "positions":
        ok = number.is_integer() and 1 <= number <= len(shown)
    else:
        ok = number in {o.value for o in question.options}
    return cell(number) if ok else None


def collect(
    model: ModelAnswers,
    row: dict[str, Any],
    index: ItemIndex | None,
    responses: Responses,
    source: str,
) -> str | None:
    """File one row under ``model``: a stored answer, or a count of why it is unusable.
    Returns why the row is unusable or its answer unreadable (None: a readable answer)."""
    model.rows += 1
    why = _answer(model, row, index, responses, source)
    if why == UNREADABLE:
        model.unreadable += 1
    elif why is not None:
        model.unusable[why] += 1
    return why


def _answer(
    model: ModelAnswers,
    row: dict[str, Any],
    index: ItemIndex | None,
    responses: Responses,
    source: str,
) -> str | None:
    if index is None:
        return "unknown instrument"
    item = index.find(row.get("item"))
    if item is None:
        return "unknown item"
    if not _present(row.get("response")) and not isinstance(row.get("response"), dict):
        return "missing response"
    question = index.questions[item]
    order = read_order(row.get("order"), question)
    if order is None:
        return "unreadable order"
    text = response_text(row.get("response"), question, order, responses)
    if text is None:
        return "value off the scale"
    respondent, sample = cell(row.get("respondent")), cell(row.get("sample"))
    slot = (index.instrument.id, item, order, respondent, sample)
    if slot in model.seen:
        return "duplicate"
    model.seen.add(slot)
    record = ResponseRecord(
        key="",
        instrument=index.instrument.id,
        item=item,
        order_index=0,  # numbered once the model's orders are all known (``finish``)
        option_order=order,
        sample=model.samples.setdefault(sample, len(model.samples)),
        respondent=model.respondents.setdefault(respondent, len(model.respondents)),
        attempt=0,
        mode="generate",
        system=None,
        user=cell(row.get("prompt")),
        labels=(),
        decoding={},
        seed=0,
        model_fingerprint="",
        raw_text=text,
        source=source,
    )
    model.records.append(record)
    parsed = parse_record(record, question, responses == "values")
    return UNREADABLE if parsed.status == "invalid" else None


def finish(model: ModelAnswers) -> str:
    """Number each instrument's orders (the scale's own first), respondents and samples in a
    fixed sequence, fingerprint the answers and key them; returns the fingerprint."""
    orders: dict[str, list[tuple[int, ...]]] = {}
    for r in model.records:
        orders.setdefault(r.instrument, [])
        if r.option_order not in orders[r.instrument]:
            orders[r.instrument].append(r.option_order)
    numbered = {
        name: {o: k for k, o in enumerate(sorted(seen, key=lambda o: (o != tuple(sorted(o)), o)))}
        for name, seen in orders.items()
    }
    respondents = _renumbered(model.respondents)
    samples = _renumbered(model.samples)
    digest = hashlib.sha256()
    records = []
    for r in sorted(
        model.records, key=lambda r: (r.instrument, r.item, r.option_order, r.respondent, r.sample)
    ):
        r = r.model_copy(
            update={
                "order_index": numbered[r.instrument][r.option_order],
                "respondent": respondents[r.respondent],
                "sample": samples[r.sample],
            }
        )
        digest.update(
            json.dumps(
                [r.instrument, r.item, r.option_order, r.respondent, r.sample, r.raw_text, r.user]
            ).encode()
        )
        records.append(r)
    fingerprint = f"sha256:{digest.hexdigest()}"
    model.records = [
        r.model_copy(
            update={
                "model_fingerprint": fingerprint,
                "key": request_key(
                    f"import|{fingerprint}", None, r.user, (), "generate", {}, r.sample, 0, 0,
                    identity=r.origin.question(),
                ),
            }
        )
        for r in records
    ]  # fmt: skip
    model.respondents = {name: respondents[k] for name, k in model.respondents.items()}
    model.samples = {name: samples[k] for name, k in model.samples.items()}
    return fingerprint


def _renumbered(names: dict[str, int]) -> dict[int, int]:
    """First-seen numbers → numbers in the names' own order (numerically where all are numbers),
    so that the same collection in another row order gives the same respondents and samples."""

    def order(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)

    return {names[name]: k for k, name in enumerate(sorted(names, key=order))}
