"""From stored responses to dimension scores, with uncertainty and human norms.

Each option order (× sample) is one *respondent*: order k is applied to every item, so it yields
a full answer sheet. A dimension's score aggregates item means over respondents; its SD is the SD
of the respondents' dimension scores (how much the option order moves the score), and its 95 %
CI is a percentile bootstrap over respondents. Scoring reads stored responses only: a changed
parser or key rescored with ``psyprobe report`` asks the model nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from scipy import stats

from psyprobe.instruments import Dimension, Instrument, Question
from psyprobe.records import ResponseRecord
from psyprobe.scoring.parse import ParsedAnswer, parse_answer

BOOTSTRAP_RESAMPLES = 2000


class NormComparison(BaseModel):
    mean: float
    sd: float
    n: int | None
    source: str | None
    z: float  # (score − norm mean) / norm SD: where the model sits among people
    d: float | None  # one-sample Cohen's d: (score − norm mean) / SD over respondents
    p: float | None  # one-sample t-test of respondent scores against the norm mean


class DimensionScore(BaseModel):
    score: float | None
    sd: float | None
    ci95: tuple[float, float] | None
    n_items: int
    n_respondents: int
    valid_rate: float
    norm: NormComparison | None
    band: str | None = None
    letter: str | None = None
    pole_percent: dict[str, float] | None = None


class InstrumentScore(BaseModel):
    name: str
    full_name: str | None
    format: str
    aggregation: str
    n_prompts: int
    valid_rate: float
    refusal_rate: float
    dimensions: dict[str, DimensionScore]
    type: str | None = None


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


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """nanmean without the warning for all-missing slices (they are NaN, and handled)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(values, axis=axis))


def _aggregate(values: np.ndarray, dim: Dimension) -> np.ndarray:
    """Aggregate the last axis (items), ignoring missing answers.

    Sums are prorated (mean × number of items) so a missing answer does not read as a zero.
    """
    mean = _nanmean(values, axis=-1)
    if dim.aggregation == "sum":
        return np.asarray(mean * values.shape[-1])
    if dim.aggregation == "percent":
        return np.asarray(mean * 100.0)
    return np.asarray(mean)


def _clean(x: float | np.floating | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def score_instrument(
    name: str,
    instrument: Instrument,
    records: Sequence[ResponseRecord],
    *,
    numbers_are_values: bool = False,
    seed: int = 0,
) -> InstrumentScore:
    questions = {q.item_id: q for q in instrument.questions()}
    dims = {d.id: d for d in instrument.dimensions()}
    answers = _final_attempts(records, numbers_are_values, questions)
    respondents = sorted({(order, sample) for _, order, sample in answers})
    r_index = {r: i for i, r in enumerate(respondents)}
    items = list(questions)
    i_index = {item: j for j, item in enumerate(items)}

    values = np.full((len(respondents), len(items)), np.nan)
    weight = np.zeros((len(respondents), len(items)))  # share of a valid answer per prompt
    refusals = 0
    for (item, order, sample), (rec, parsed) in answers.items():
        q = questions[item]
        dim = dims[q.dimension]
        keyed = np.array([dim.keyed(q.options[i].value, q.reverse) for i in rec.option_order])
        r, j = r_index[(order, sample)], i_index[item]
        if rec.probs is not None:
            probs = np.asarray(rec.probs)
            if probs.sum() > 0:
                # Expected value over the labels, renormalised; the mass itself is the
                # probabilistic analogue of a parse success.
                values[r, j] = float(probs @ keyed / probs.sum())
                weight[r, j] = float(probs.sum())
        elif parsed is not None:
            refusals += parsed.status == "refusal"
            if parsed.position is not None:
                values[r, j] = keyed[parsed.position]
                weight[r, j] = 1.0

    rng = np.random.default_rng(seed)
    boot = rng.integers(0, max(len(respondents), 1), size=(BOOTSTRAP_RESAMPLES, len(respondents)))
    dimensions: dict[str, DimensionScore] = {}
    for dim_id, dim in dims.items():
        cols = [i_index[q.item_id] for q in questions.values() if q.dimension == dim_id]
        sub = values[:, cols]
        item_means = _nanmean(sub, axis=0) if len(respondents) else np.full(len(cols), np.nan)
        score = (
            _clean(float(_aggregate(item_means, dim))) if not np.all(np.isnan(item_means)) else None
        )
        per_resp = _aggregate(sub, dim) if len(respondents) else np.array([])
        per_resp = per_resp[np.isfinite(per_resp)]
        sd = _clean(np.std(per_resp, ddof=1)) if len(per_resp) > 1 else None
        ci: tuple[float, float] | None = None
        if score is not None and len(respondents) > 1:
            boot_means = _nanmean(sub[boot], axis=1)  # (B, items)
            boot_scores = _aggregate(boot_means, dim)
            boot_scores = boot_scores[np.isfinite(boot_scores)]
            lo, hi = np.percentile(boot_scores, [2.5, 97.5])
            ci = (float(lo), float(hi))
        elif score is not None:
            ci = (score, score)  # one respondent: no order-to-order variation to speak of

        norm = None
        if dim.norm is not None and score is not None:
            d = p = None
            if sd and len(per_resp) > 1:
                d = (float(np.mean(per_resp)) - dim.norm.mean) / sd
                p = _clean(stats.ttest_1samp(per_resp, dim.norm.mean).pvalue)
            norm = NormComparison(
                mean=dim.norm.mean,
                sd=dim.norm.sd,
                n=dim.norm.n,
                source=dim.norm.source,
                z=(score - dim.norm.mean) / dim.norm.sd,
                d=d,
                p=p,
            )
        band = None
        if score is not None:
            band = next((b.label for b in dim.bands if b.min <= round(score) <= b.max), None)
        letter = pole_percent = None
        if dim.poles is not None and dim.cut is not None and score is not None:
            low, high = dim.poles
            letter = high if score > dim.cut else low if score < dim.cut else "X"
            n = len(cols)
            lo_s, hi_s = (
                (0.0, 100.0)
                if dim.aggregation == "percent"
                else (n * dim.scale_min, n * dim.scale_max)
            )
            high_pct = 100.0 * (score - lo_s) / (hi_s - lo_s)
            pole_percent = {high: high_pct, low: 100.0 - high_pct}
        dimensions[dim_id] = DimensionScore(
            score=score,
            sd=sd,
            ci95=ci,
            n_items=len(cols),
            n_respondents=len(per_resp),
            valid_rate=float(weight[:, cols].mean()) if weight.size else 0.0,
            norm=norm,
            band=band,
            letter=letter,
            pole_percent=pole_percent,
        )

    type_letters = [d.letter for d in dimensions.values() if d.letter]
    fmt = next(iter(questions.values())).format
    return InstrumentScore(
        name=name,
        full_name=instrument.full_name,
        format=fmt,
        aggregation=next(iter(dims.values())).aggregation,
        n_prompts=len(records),
        valid_rate=float(weight.mean()) if weight.size else 0.0,
        refusal_rate=refusals / max(len(answers), 1),
        dimensions=dimensions,
        type="".join(type_letters) if type_letters and len(type_letters) == len(dims) else None,
    )
