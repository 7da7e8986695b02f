"""Stored responses of one instrument as arrays: respondents (order × sample) by items.

Everything downstream — scores, reliability, bias diagnostics, comparisons — reads this one
structure, built from stored records only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from psyprobe.instruments import Dimension, Instrument, Question
from psyprobe.records import ResponseRecord
from psyprobe.scoring.parse import ParsedAnswer, parse_answer


def parse_record(
    record: ResponseRecord, question: Question, numbers_are_values: bool
) -> ParsedAnswer:
    shown = [question.options[i] for i in record.option_order]
    agree = None
    if question.format == "likert":
        agree = record.option_order.index(len(question.options) - 1)
    return parse_answer(
        record.raw_text,
        [o.text for o in shown],
        statement=question.text if question.format == "likert" else None,
        agree_position=agree,
        keys=[o.key for o in shown],
        numbers=[o.value for o in shown] if numbers_are_values else None,
    )


def _final_attempts(
    records: Sequence[ResponseRecord], numbers_are_values: bool, questions: dict[str, Question]
) -> dict[tuple[str, int, int], tuple[ResponseRecord, ParsedAnswer | None]]:
    """Per (item, order, sample): the first attempt that answered, else the last attempt."""
    chosen: dict[tuple[str, int, int], tuple[ResponseRecord, ParsedAnswer | None]] = {}
    for rec in sorted(records, key=lambda r: r.attempt):
        slot = (rec.item, rec.order_index, rec.sample)
        parsed = (
            parse_record(rec, questions[rec.item], numbers_are_values)
            if (rec.mode == "generate")
            else None
        )
        held = chosen.get(slot)
        if held is None or (held[1] is not None and held[1].status == "invalid"):
            chosen[slot] = (rec, parsed)
    return chosen


@dataclass
class AnswerMatrix:
    questions: list[Question]
    dimensions: dict[str, Dimension]
    respondents: list[tuple[int, int]]  # (order index, sample)
    keyed: np.ndarray  # (R, I) keyed value, NaN where no valid answer
    raw: np.ndarray  # (R, I) scale value as answered, before reverse keying
    weight: np.ndarray  # (R, I) share of a valid answer (logprob: label mass)
    # (R, I, n): probability of each option *position* and of each canonical *option*
    by_position: np.ndarray
    by_option: np.ndarray
    orders: np.ndarray  # (R, I, n) the canonical option shown at each position
    refusals: int
    n_answers: int

    @classmethod
    def build(
        cls, instrument: Instrument, records: Sequence[ResponseRecord], numbers_are_values: bool
    ) -> AnswerMatrix:
        questions = instrument.questions()
        by_id = {q.item_id: q for q in questions}
        dims = {d.id: d for d in instrument.dimensions()}
        answers = _final_attempts(records, numbers_are_values, by_id)
        respondents = sorted({(order, sample) for _, order, sample in answers})
        r_index = {r: i for i, r in enumerate(respondents)}
        i_index = {q.item_id: j for j, q in enumerate(questions)}
        n = max(len(q.options) for q in questions)
        shape = (len(respondents), len(questions))
        keyed, raw = np.full(shape, np.nan), np.full(shape, np.nan)
        weight = np.zeros(shape)
        by_position, by_option = np.zeros((*shape, n)), np.zeros((*shape, n))
        orders = np.zeros((*shape, n), dtype=int)
        refusals = 0
        for (item, order, sample), (rec, parsed) in answers.items():
            q = by_id[item]
            dim = dims[q.dimension]
            r, j = r_index[(order, sample)], i_index[item]
            orders[r, j, : len(rec.option_order)] = rec.option_order
            probs = np.zeros(len(rec.option_order))
            if rec.probs is not None:
                probs = np.asarray(rec.probs, dtype=float)
            elif parsed is not None:
                refusals += parsed.status == "refusal"
                if parsed.position is not None:
                    probs[parsed.position] = 1.0
            mass = probs.sum()
            if mass <= 0:
                continue
            # logprob mode: the expected value over the labels, renormalised; the mass itself
            # is the probabilistic analogue of a parse success.
            share = probs / mass
            values = np.array([q.options[i].value for i in rec.option_order])
            raw[r, j] = float(share @ values)
            keyed[r, j] = dim.keyed(raw[r, j], q.reverse)
            weight[r, j] = float(mass)
            by_position[r, j, : len(share)] = share
            by_option[r, j, list(rec.option_order)] = share
        return cls(
            questions,
            dims,
            respondents,
            keyed,
            raw,
            weight,
            by_position,
            by_option,
            orders,
            refusals,
            len(answers),
        )

    def columns(self, dimension: str) -> list[int]:
        return [j for j, q in enumerate(self.questions) if q.dimension == dimension]

    def select(self, columns: list[int]) -> AnswerMatrix:
        """The same respondents on a subset of the items."""
        return AnswerMatrix(
            [self.questions[j] for j in columns],
            self.dimensions,
            self.respondents,
            self.keyed[:, columns],
            self.raw[:, columns],
            self.weight[:, columns],
            self.by_position[:, columns],
            self.by_option[:, columns],
            self.orders[:, columns],
            self.refusals,
            self.n_answers,
        )
