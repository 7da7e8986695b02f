"""From stored responses to dimension scores, with uncertainty and human norms.

A *respondent* is one persona × framing (× sample) of the population (or the model as itself);
option orders are balanced inside it. A dimension's score aggregates item means over
respondents; its SD is the SD of the respondents' dimension scores, and its 95 % CI is a
percentile bootstrap over respondents, those of one persona drawn together (over items where
there is one respondent), as are α's and ω's (``diagnostics.reliability``) and the t-test's
units (``drawn_scores``). Scoring reads stored responses only: a changed parser or key rescored
with ``psyprobe report`` asks the model nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
from pydantic import BaseModel
from scipy import stats

from psyprobe.instruments import Dimension, Instrument
from psyprobe.records import ResponseRecord
from psyprobe.scoring.diagnostics import (
    OMEGA_BOOTSTRAP,
    Decomposition,
    Evidence,
    ItemCheck,
    KeyCheck,
    Stability,
    Uniformity,
    Validity,
    acquiescence,
    decompose,
    fleiss_kappa,
    key_consistency,
    order_consistency,
    position_bias,
    reliability,
    stability,
    uniformity,
    verdict,
)
from psyprobe.scoring.matrix import AnswerMatrix
from psyprobe.scoring.validity import Convergence, Correlation, criterion, mtmm
from psyprobe.stats import percentile_ci

BOOTSTRAP_RESAMPLES = 2000
WITHHELD = "no_signal: the answers follow a response style, not the statement"


class NormComparison(BaseModel):
    mean: float
    sd: float
    n: int | None
    source: str | None
    # null where the score is no_signal: a response style has no place among people
    z: float | None  # (score − norm mean) / norm SD: where the model sits among people
    d: float | None  # one-sample Cohen's d: (score − norm mean) / SD over respondents
    p: float | None  # one-sample t-test of respondent scores against the norm mean
    withheld: str | None = None  # why z, d, p (and the band) are null


class DimensionScore(BaseModel):
    score: float | None
    scale: tuple[float, float]  # the lowest and highest score the dimension can take
    sd: float | None
    ci95: tuple[float, float] | None
    n_items: int
    n_respondents: int
    valid_rate: float
    norm: NormComparison | None
    band: str | None = None
    letter: str | None = None
    pole_percent: dict[str, float] | None = None
    alpha: float | None = None
    alpha_ci95: tuple[float, float] | None = None
    omega: float | None = None
    omega_ci95: tuple[float, float] | None = None
    position_bias: float | None = None
    # α over option orders: how much an order moves the items together (a habit, not a trait)
    order_consistency: float | None = None
    key_consistency: KeyCheck | None = None
    convergent: Convergence | None = None
    criterion: Correlation | None = None  # persona-named level × score, across respondents
    # per varied nuisance factor: the score under each level, and how far it moves
    stability: dict[str, Stability] = {}
    uniformity: Uniformity | None = None  # are the answers more than a position habit?
    validity: Validity = "ok"
    validity_reasons: list[str] = []
    items: list[ItemCheck] = []


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
    n_orders: int = 0
    n_respondents: int = 0
    position_bias: float | None = None
    position_table: list[list[float | None]] = []  # option (scale order) × position shown
    # how often the first (last) option shown is chosen; chance is 1 / options
    primacy: float | None = None
    recency: float | None = None
    chance: float | None = None  # 1 / options: primacy and recency without a habit
    uniformity: Uniformity | None = None
    acquiescence: float | None = None
    content_sensitivity: float | None = None  # = decomposition.content
    decomposition: Decomposition | None = None
    kappa: float | None = None  # Fleiss' kappa between repeats on each item's modal choice


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


def spread(values: np.ndarray) -> float | None:
    """SD (ddof 1) of respondent scores; 0.0 where they differ by float rounding alone, so that
    no statistic divides by a rounding error (a d of 1e15 from identical respondents)."""
    if len(values) < 2:
        return None
    sd = float(np.std(values, ddof=1))
    return 0.0 if sd <= 1e-9 * max(1.0, float(np.max(np.abs(values)))) else _clean(sd)


def respondent_scores(m: AnswerMatrix, dimension: str) -> np.ndarray:
    """Each respondent's (order × sample) score on one dimension; those with no answer dropped."""
    if not m.respondents:
        return np.array([])
    scores = _aggregate(m.keyed[:, m.columns(dimension)], m.dimensions[dimension])
    return np.asarray(scores[np.isfinite(scores)])


def score_run(
    instruments: dict[str, Instrument],
    records: Mapping[str, Sequence[ResponseRecord]],
    *,
    numbers_are_values: bool = False,
    seed: int = 0,
    markers: dict[int, dict[str, int]] | None = None,
    personas: dict[int, str] | None = None,
    omega_resamples: int = OMEGA_BOOTSTRAP,
) -> tuple[dict[str, InstrumentScore], list[Convergence]]:
    """Every instrument of a run, with the MTMM table of the constructs they share."""
    measured = {
        name: (inst, AnswerMatrix.build(inst, records.get(name, ()), numbers_are_values))
        for name, inst in instruments.items()
    }
    table = mtmm(measured)
    scores = {
        name: score_instrument(
            name,
            inst,
            records.get(name, ()),
            numbers_are_values=numbers_are_values,
            seed=seed,
            omega_resamples=omega_resamples,
            markers=markers,
            personas=personas,
            convergent=table,
            matrix=m,
        )
        for name, (inst, m) in measured.items()
    }
    return scores, table


def clusters(m: AnswerMatrix, personas: Mapping[int, str]) -> np.ndarray:
    """Each row's cluster, numbered in row order: the respondents who share a persona (past the
    bank's 70 personas each returns with another framing) are one cluster, as are a
    respondent's samples; a respondent with no persona of the bank (the model as itself, answers
    imported) is its own. Where the persona sets the answers, its respondents are one draw.
    Where every row is one respondent's (its samples), each row is its own cluster."""
    keys = [("persona", personas[r]) if r in personas else ("respondent", r)
            for r, _ in m.respondents]  # fmt: skip
    numbers: dict[tuple[str, object], int] = {}
    groups = np.array([numbers.setdefault(key, len(numbers)) for key in keys], dtype=int)
    return groups if len(numbers) > 1 else np.arange(len(keys))


def drawn_scores(m: AnswerMatrix, dimension: str, groups: np.ndarray) -> np.ndarray:
    """Each drawn unit's score on one dimension: the mean of a cluster's (``groups``, from
    ``clusters``) finite respondent scores, in cluster order; with one respondent a cluster,
    those scores themselves. Tests across respondents take these, as the CI draws them."""
    scores = _aggregate(m.keyed[:, m.columns(dimension)], m.dimensions[dimension])
    answered = np.isfinite(scores)
    count = np.bincount(groups[answered], minlength=int(groups.max(initial=0)) + 1)
    total = np.bincount(groups[answered], scores[answered], minlength=len(count))
    return np.asarray(total[count > 0] / count[count > 0])


def _bootstrap_ci(
    sub: np.ndarray, dim: Dimension, rng: np.random.Generator, groups: np.ndarray
) -> tuple[float, float] | None:
    """Percentile CI over clusters of respondents (rows; ``clusters``) drawn whole; where one
    row answered, over items. With one row a cluster, the same draws as a bootstrap over
    rows."""
    if sub.shape[0] > 1:
        n = int(groups.max()) + 1
        answered = ~np.isnan(sub)
        sums, counts = np.zeros((n, sub.shape[1])), np.zeros((n, sub.shape[1]))
        np.add.at(sums, groups, np.where(answered, sub, 0.0))
        np.add.at(counts, groups, answered)
        picks = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
        with np.errstate(invalid="ignore", divide="ignore"):  # an item no drawn row answered
            boot = _aggregate(sums[picks].sum(axis=1) / counts[picks].sum(axis=1), dim)
    else:
        items = sub[0]
        picks = items[rng.integers(0, len(items), size=(BOOTSTRAP_RESAMPLES, len(items)))]
        boot = _aggregate(picks, dim)
    return percentile_ci(boot)


def score_instrument(
    name: str,
    instrument: Instrument,
    records: Sequence[ResponseRecord],
    *,
    numbers_are_values: bool = False,
    seed: int = 0,
    omega_resamples: int = OMEGA_BOOTSTRAP,
    markers: dict[int, dict[str, int]] | None = None,
    personas: dict[int, str] | None = None,
    convergent: list[Convergence] | None = None,
    matrix: AnswerMatrix | None = None,
) -> InstrumentScore:
    m = matrix or AnswerMatrix.build(instrument, records, numbers_are_values)
    dims = m.dimensions
    respondents, values, weight = m.respondents, m.keyed, m.weight

    rng = np.random.default_rng(seed)
    dimensions: dict[str, DimensionScore] = {}
    n_orders = m.n_orders
    acq = acquiescence(m)
    parts = decompose(m, seed)
    groups = clusters(m, personas or {})
    for dim_id, dim in dims.items():
        cols = m.columns(dim_id)
        sub = values[:, cols]
        item_means = _nanmean(sub, axis=0) if len(respondents) else np.full(len(cols), np.nan)
        score = (
            _clean(float(_aggregate(item_means, dim))) if not np.all(np.isnan(item_means)) else None
        )
        per_resp = respondent_scores(m, dim_id)
        sd = spread(per_resp)
        ci = _bootstrap_ci(sub, dim, rng, groups) if score is not None else None
        norm = None
        if dim.norm is not None and score is not None:
            d = p = None
            if sd:  # d and t need respondents that differ ("no variance" in the report)
                d = (float(np.mean(per_resp)) - dim.norm.mean) / sd
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # near-identical scores
                    drawn = drawn_scores(m, dim_id, groups)
                    p = _clean(stats.ttest_1samp(drawn, dim.norm.mean).pvalue)
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
        n = len(cols)
        lo_s, hi_s = {
            "percent": (0.0, 100.0),
            "sum": (n * dim.scale_min, n * dim.scale_max),
        }.get(dim.aggregation, (dim.scale_min, dim.scale_max))
        letter = pole_percent = None
        if dim.poles is not None and dim.cut is not None and score is not None:
            low, high = dim.poles
            # an exact tie is a real outcome (every answer in the middle), up to float rounding
            tied = abs(score - dim.cut) < 1e-9
            letter = high if score > dim.cut and not tied else low
            if tied and not dim.tie_to_low:
                letter = "X"
            high_pct = 100.0 * (score - lo_s) / (hi_s - lo_s)
            pole_percent = {high: high_pct, low: 100.0 - high_pct}
        dim_valid = float(weight[:, cols].mean()) if weight.size else 0.0
        dim_matrix = m.select(cols)
        dim_position, _ = position_bias(dim_matrix)
        items = [m.questions[j].item_id for j in cols]
        rel = reliability(sub, items, seed, omega_resamples, groups)
        keys = key_consistency(m, cols)
        moved = stability(m, cols, partial(_aggregate, dim=dim), (lo_s, hi_s), seed)
        plain = uniformity(m, cols)
        mine = f"{name}/{dim_id}"
        partner = next((c for c in convergent or () if mine in (c.a, c.b)), None)
        validity, reasons = verdict(
            Evidence(
                valid_rate=dim_valid,
                position=dim_position,
                acquiescence=acq,
                decomposition=parts,
                alpha=rel.alpha,
                n_respondents=len(per_resp),
                key=keys,
                convergent=partner.r.r if partner else None,
                convergent_ok=partner.ok if partner else None,
                n_orders=n_orders,
                stability=moved,
                ci_width=ci[1] - ci[0] if ci else None,
                uniformity=plain,
            )
        )
        if validity == "no_signal":  # withheld means null: no value a reader could take
            band = None
            if norm is not None:
                norm = norm.model_copy(
                    update={"z": None, "d": None, "p": None, "withheld": WITHHELD}
                )
        dimensions[dim_id] = DimensionScore(
            score=score,
            scale=(lo_s, hi_s),
            sd=sd,
            ci95=ci,
            n_items=len(cols),
            n_respondents=len(per_resp),
            valid_rate=dim_valid,
            norm=norm,
            band=band,
            letter=letter,
            pole_percent=pole_percent,
            alpha=rel.alpha,
            alpha_ci95=rel.alpha_ci95,
            omega=rel.omega,
            omega_ci95=rel.omega_ci95,
            position_bias=dim_position,
            order_consistency=order_consistency(m, cols),
            key_consistency=keys,
            convergent=partner,
            criterion=criterion(m, instrument, dim_id, markers) if markers else None,
            stability=moved,
            uniformity=plain,
            validity=validity,
            validity_reasons=reasons,
            items=rel.items,
        )

    overall_position, table = position_bias(m)
    shown = m.answers.by_position
    type_letters = [d.letter for d in dimensions.values() if d.letter]
    fmt = m.questions[0].format
    return InstrumentScore(
        name=name,
        full_name=instrument.full_name,
        format=fmt,
        aggregation=next(iter(dims.values())).aggregation,
        n_prompts=len(records),
        valid_rate=float(weight.mean()) if weight.size else 0.0,
        refusal_rate=m.refusals / max(m.n_answers, 1),
        dimensions=dimensions,
        type="".join(type_letters) if type_letters and len(type_letters) == len(dims) else None,
        n_orders=n_orders,
        n_respondents=len(respondents),
        position_bias=overall_position,
        position_table=table,
        primacy=float(shown[:, 0].mean()) if len(shown) else None,
        recency=float(shown[:, -1].mean()) if len(shown) else None,
        chance=1 / len(m.questions[0].options),
        uniformity=uniformity(m, list(range(len(m.questions)))),
        acquiescence=acq,
        content_sensitivity=parts.content if parts else None,
        decomposition=parts,
        kappa=fleiss_kappa(m),
    )
