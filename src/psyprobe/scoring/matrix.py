"""Stored responses of one instrument as arrays: respondents (order × sample) by items.

Everything downstream — scores, reliability, bias diagnostics, comparisons — reads this one
structure, built from stored records only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from psyprobe.instruments import Dimension, Instrument, Question
from psyprobe.prompting.conditions import DEFAULT_LEVEL
from psyprobe.records import ResponseRecord
from psyprobe.scoring.parse import ParsedAnswer, parse_answer


def parse_record(
    record: ResponseRecord, question: Question, numbers_are_values: bool
) -> ParsedAnswer:
    shown = [question.options[i] for i in record.option_order]
    agree = None
    if question.format == "likert":
        agree = record.option_order.index(len(question.options) - 1)
    style = record.conditions.get("labels", "numbers")
    return parse_answer(
        record.raw_text,
        [o.text for o in shown],
        statement=question.text if question.format == "likert" else None,
        agree_position=agree,
        # letters shown as labels are the answer's keys; numbers were not offered then
        keys=list(record.labels) if style == "letters" else [o.key for o in shown],
        numbers=[o.value for o in shown] if numbers_are_values else None,
        numbered=style == "numbers",
    )


Slot = tuple[str, int, int, int, tuple[tuple[str, str], ...]]


def final_attempts(
    records: Sequence[ResponseRecord], numbers_are_values: bool, questions: dict[str, Question]
) -> dict[Slot, tuple[ResponseRecord, ParsedAnswer | None]]:
    """Per (item, respondent, order, sample, conditions): the first attempt that answered, else
    the last."""
    chosen: dict[Slot, tuple[ResponseRecord, ParsedAnswer | None]] = {}
    for rec in sorted(records, key=lambda r: r.attempt):
        asked_under = tuple(sorted(rec.conditions.items()))
        slot = (rec.item, rec.respondent, rec.order_index, rec.sample, asked_under)
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
    # each varied nuisance factor (``--vary``): the level of every answer, and the levels' names
    factors: dict[str, np.ndarray] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)

    def subset(self, keep: np.ndarray) -> Answers:
        return Answers(
            self.row[keep],
            self.item[keep],
            self.order[keep],
            self.raw[keep],
            self.by_position[keep],
            self.by_option[keep],
            self.shown[keep],
            {name: codes[keep] for name, codes in self.factors.items()},
            self.levels,
        )

    def nuisance(self) -> dict[str, np.ndarray]:
        """Every factor that should not matter, by name: the option order and each varied
        factor."""
        return {"order": self.order} | self.factors


def dummies(codes: np.ndarray) -> np.ndarray:
    """Indicator columns of a factor, its first level left out (the intercept carries it)."""
    levels = np.unique(codes)
    return np.asarray(codes[:, None] == levels[None, 1:], dtype=float)


def nuisance_effects(a: Answers) -> dict[str, np.ndarray]:
    """Each answer's effect of every nuisance factor (option order, and the varied ones) in an
    additive model raw ~ item + respondent + order + factors, each centred so that it averages
    to zero over the answers given."""
    varied = {name: codes for name, codes in a.nuisance().items() if len(np.unique(codes)) > 1}
    if not varied or len(a.raw) < 3:
        return {}
    x = np.column_stack([np.ones(len(a.raw)), dummies(a.item), dummies(a.row)])
    blocks = {name: dummies(codes) for name, codes in varied.items()}
    coef = np.linalg.lstsq(np.column_stack([x, *blocks.values()]), a.raw, rcond=None)[0]
    out, at = {}, x.shape[1]
    for name, block in blocks.items():
        effect = block @ coef[at : at + block.shape[1]]
        out[name] = np.asarray(effect - effect.mean())
        at += block.shape[1]
    return out


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
        respondents = sorted({(slot[1], slot[3]) for slot in answers})
        r_index = {r: i for i, r in enumerate(respondents)}
        i_index = {q.item_id: j for j, q in enumerate(questions)}
        n = max(len(q.options) for q in questions)
        shape = (len(respondents), len(questions))
        count, mass_sum = np.zeros(shape), np.zeros(shape)
        long: dict[str, list[float]] = {k: [] for k in ("row", "item", "order", "raw")}
        positions, options, shown = [], [], []
        asked = {f for rec, _ in answers.values() for f in rec.conditions}
        named = [f for f in DEFAULT_LEVEL if f in asked]  # in --vary's order
        level_names: list[list[str]] = []
        refusals = 0
        for (item, resp, order, sample, _), (rec, parsed) in answers.items():
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
            level_names.append([rec.conditions.get(f, DEFAULT_LEVEL[f]) for f in named])
        factors, levels = {}, {}
        for i, f in enumerate(named):
            given = [row[i] for row in level_names]
            # the default level first: the one every run without the factor is asked under
            default = DEFAULT_LEVEL[f]
            names = sorted(set(given), key=lambda v: (v != default, v))
            factors[f] = np.array([names.index(v) for v in given], dtype=int)
            levels[f] = names
        table = Answers(
            np.asarray(long["row"], dtype=int),
            np.asarray(long["item"], dtype=int),
            np.asarray(long["order"], dtype=int),
            np.asarray(long["raw"], dtype=float),
            np.asarray(positions).reshape(-1, n),
            np.asarray(options).reshape(-1, n),
            np.asarray(shown, dtype=int).reshape(-1, n),
            factors,
            levels,
        )
        # A cell is the mean of its answers with the nuisance factors' own effects taken out:
        # under rotation an order habit would otherwise sit in each respondent's items as
        # structured noise (enough to fake key consistency); under full balance it cancels.
        adjusted = table.raw - sum(nuisance_effects(table).values(), np.zeros(len(table.raw)))
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
            len({slot[2] for slot in answers}),
            refusals,
            len(answers),
        )

    def keyed_answers(self, raw: np.ndarray) -> np.ndarray:
        """Per-answer raw values (one per row of ``answers``) keyed by their item."""
        ends, flip = np.zeros(len(self.questions)), np.zeros(len(self.questions), dtype=bool)
        for j, q in enumerate(self.questions):
            dim = self.dimensions[q.dimension]
            ends[j], flip[j] = dim.scale_min + dim.scale_max, q.reverse
        items = self.answers.item
        return np.where(flip[items], ends[items] - raw, raw)

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
