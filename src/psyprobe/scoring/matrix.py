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


def final_attempts(
    records: Sequence[ResponseRecord], numbers_are_values: bool, questions: dict[str, Question]
) -> dict[tuple[str, int, int, int], tuple[ResponseRecord, ParsedAnswer | None]]:
    """Per (item, respondent, order, sample): the first attempt that answered, else the last."""
    chosen: dict[tuple[str, int, int, int], tuple[ResponseRecord, ParsedAnswer | None]] = {}
    for rec in sorted(records, key=lambda r: r.attempt):
        slot = (rec.item, rec.respondent, rec.order_index, rec.sample)
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
class Answers:
    """Every answer with a valid option, one row each (the long table order effects need)."""

    row: np.ndarray  # (N,) respondent row in the matrix
    item: np.ndarray  # (N,) item column
    order: np.ndarray  # (N,) order index within the design
    raw: np.ndarray  # (N,) expected scale value as answered
    by_position: np.ndarray  # (N, n) probability of each option position
    by_option: np.ndarray  # (N, n) probability of each canonical option
    shown: np.ndarray  # (N, n) canonical option at each position

    def subset(self, keep: np.ndarray) -> Answers:
        return Answers(
            self.row[keep],
            self.item[keep],
            self.order[keep],
            self.raw[keep],
            self.by_position[keep],
            self.by_option[keep],
            self.shown[keep],
        )


def dummies(codes: np.ndarray) -> np.ndarray:
    """Indicator columns of a factor, its first level left out (the intercept carries it)."""
    levels = np.unique(codes)
    return np.asarray(codes[:, None] == levels[None, 1:], dtype=float)


def order_effects(a: Answers) -> np.ndarray:
    """Each answer's option-order effect in an additive model raw ~ item + respondent + order,
    centred so that the effects average to zero over the answers given."""
    if len(np.unique(a.order)) < 2 or len(a.raw) < 3:
        return np.zeros(len(a.raw))
    x = np.column_stack([np.ones(len(a.raw)), dummies(a.item), dummies(a.row)])
    o = dummies(a.order)
    coef = np.linalg.lstsq(np.column_stack([x, o]), a.raw, rcond=None)[0]
    effect = o @ coef[x.shape[1] :]
    return np.asarray(effect - effect.mean())


@dataclass
class AnswerMatrix:
    """Respondents × items. A respondent is a (persona × framing, sample); where it answered
    an item under several option orders, the cell holds the mean over them."""

    questions: list[Question]
    dimensions: dict[str, Dimension]
    respondents: list[tuple[int, int]]  # (respondent, sample)
    keyed: np.ndarray  # (R, I) keyed value, NaN where no valid answer
    raw: np.ndarray  # (R, I) scale value as answered, before reverse keying
    weight: np.ndarray  # (R, I) share of a valid answer (logprob: label mass)
    answers: Answers
    n_orders: int  # distinct option orders asked
    refusals: int
    n_answers: int

    @classmethod
    def build(
        cls, instrument: Instrument, records: Sequence[ResponseRecord], numbers_are_values: bool
    ) -> AnswerMatrix:
        questions = instrument.questions()
        by_id = {q.item_id: q for q in questions}
        dims = {d.id: d for d in instrument.dimensions()}
        answers = final_attempts(records, numbers_are_values, by_id)
        respondents = sorted({(resp, sample) for _, resp, _, sample in answers})
        r_index = {r: i for i, r in enumerate(respondents)}
        i_index = {q.item_id: j for j, q in enumerate(questions)}
        n = max(len(q.options) for q in questions)
        shape = (len(respondents), len(questions))
        count, mass_sum = np.zeros(shape), np.zeros(shape)
        long: dict[str, list[float]] = {k: [] for k in ("row", "item", "order", "raw")}
        positions, options, shown = [], [], []
        refusals = 0
        for (item, resp, order, sample), (rec, parsed) in answers.items():
            q = by_id[item]
            r, j = r_index[(resp, sample)], i_index[item]
            count[r, j] += 1
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
            mass_sum[r, j] += float(mass)
            for key, v in (("row", r), ("item", j), ("order", order), ("raw", share @ values)):
                long[key].append(float(v))
            position, option, order_shown = np.zeros(n), np.zeros(n), np.zeros(n, dtype=int)
            position[: len(share)] = share
            option[list(rec.option_order)] = share
            order_shown[: len(rec.option_order)] = rec.option_order
            positions.append(position)
            options.append(option)
            shown.append(order_shown)
        table = Answers(
            np.asarray(long["row"], dtype=int),
            np.asarray(long["item"], dtype=int),
            np.asarray(long["order"], dtype=int),
            np.asarray(long["raw"], dtype=float),
            np.asarray(positions).reshape(-1, n),
            np.asarray(options).reshape(-1, n),
            np.asarray(shown, dtype=int).reshape(-1, n),
        )
        # A cell is the mean of its answers with the option order's own effect taken out: under
        # rotation an order habit would otherwise sit in each respondent's items as structured
        # noise (enough to fake key consistency); under full balance it cancels anyway.
        adjusted = table.raw - order_effects(table)
        raw_sum, valid = np.zeros(shape), np.zeros(shape)
        np.add.at(raw_sum, (table.row, table.item), adjusted)
        np.add.at(valid, (table.row, table.item), 1)
        raw = np.divide(raw_sum, valid, out=np.full(shape, np.nan), where=valid > 0)
        keyed = raw.copy()
        for j, q in enumerate(questions):
            keyed[:, j] = dims[q.dimension].keyed(raw[:, j], q.reverse)
        weight = np.divide(mass_sum, count, out=np.zeros(shape), where=count > 0)
        return cls(
            questions,
            dims,
            respondents,
            keyed,
            raw,
            weight,
            table,
            len({order for _, _, order, _ in answers}),
            refusals,
            len(answers),
        )

    def columns(self, dimension: str) -> list[int]:
        return [j for j, q in enumerate(self.questions) if q.dimension == dimension]

    def select(self, columns: list[int]) -> AnswerMatrix:
        """The same respondents on a subset of the items."""
        keep = np.isin(self.answers.item, columns)
        remap = np.full(len(self.questions), -1)
        remap[columns] = np.arange(len(columns))
        sub = self.answers.subset(keep)
        sub.item = remap[sub.item]
        return AnswerMatrix(
            [self.questions[j] for j in columns],
            self.dimensions,
            self.respondents,
            self.keyed[:, columns],
            self.raw[:, columns],
            self.weight[:, columns],
            sub,
            self.n_orders,
            self.refusals,
            self.n_answers,
        )
