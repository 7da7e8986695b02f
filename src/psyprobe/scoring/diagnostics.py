"""Does a score mean anything? Reliability, response-style diagnostics and a verdict.

Respondents are a simulated population — persona × framing (× sample) — as in DeepMind's
PsyBORGS (Serapio-García et al. 2023); option orders are a nuisance balanced inside it. A trait
that is really expressed orders the respondents consistently across the dimension's items, in
the direction of each item's key. An order or position habit cannot do that once orders are
balanced, and a response style that differs between respondents (yea-saying) moves forward- and
reverse-keyed items the same way, which the key-consistency check sees.

Thresholds (stated, and shown in the report):
- population reliability: Cronbach's α over respondents ≥ 0.70 (Nunnally 1978; the
  "acceptable" level PsyBORGS uses). Below it, or with fewer than 3 respondents: ``weak``.
- content sensitivity (per instrument): the share of the variance of raw answers explained by
  which statement was asked, after option order and respondent are removed (η², with a
  permutation test over item labels). Evidence of content: η² ≥ 0.05 (between Cohen's small,
  0.01, and medium, 0.06) and p < 0.01.
- key consistency (per dimension with forward and reverse-keyed items): across respondents,
  mean raw agreement with forward items must correlate negatively with agreement with reversed
  items (Fisher-z 95 % CI below 0). A CI above 0: the spread between respondents is a style.
- without content evidence, a dimension is ``no_signal`` unless a keyed trait shows across
  respondents (α ≥ 0.70 and key-consistent); a dimension without reversed items cannot show
  that and is at best ``weak`` on reliability alone.
- convergent validity (when a second measure of the construct ran on the same respondents,
  e.g. BFI and IPIP-50): r ≥ 0.50 and above every discriminant r of its row and column
  (Campbell & Fiske 1959); else ``weak``.
- position: the marginal index (0 = choices ignore positions, 1 = always one position) above
  0.3: ``weak``. A habit that follows the order (favouring the first-shown option, whose value
  changes with the order) cancels in that index; it shows as the order effect of the
  decomposition: η² ≥ 0.05 with p < 0.01: ``weak``.
- acquiescence (−1..1) beyond ±0.4: ``weak``. Valid-label mass below 0.2: ``no_signal``; below
  0.5: ``weak``. One option order only: ``weak``.
- nuisance factors a run varies (``--vary``: instruction wording, label style, item context;
  ``prompting.conditions``): a factor whose η² ≥ 0.05 with p < 0.01 (the order's rule), whose
  interaction with the item does so (each item moved its own way, the means left in place),
  or that moves the dimension's score across its levels by more than the score's own 95 % CI
  width, makes the dimension ``weak``, naming the factor. The spread across levels is
  PERSIST's stability figure (Tosato et al., AAAI 2026: the SD across conditions), reported in
  scale points and as a share of the scale.
- uniformity: with options counterbalanced, a respondent that answers by position alone
  chooses each scale value of an item as often as the positions it was shown at are chosen
  (uniformly, when orders are balanced). Where every option was shown at every position about
  equally often, answers that a χ² test over the dimension's items cannot tell from that
  (p ≥ 0.01) are ``no_signal`` unless a keyed trait shows across respondents, as for content
  (Dominguez-Olmedo et al., NeurIPS 2024: randomised answer order leaves many models' answers
  near uniform).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from psyprobe.prompting.conditions import FACTOR_TITLES
from psyprobe.scoring.matrix import AnswerMatrix, dummies, nuisance_effects
from psyprobe.scoring.validity import correlate
from psyprobe.stats import BOOTSTRAP_MIN_N, percentile_ci, studentized_ci

Validity = Literal["ok", "weak", "no_signal"]
KeyConsistency = Literal["consistent", "inconsistent", "inconclusive", "untestable"]

POSITION_BIAS_WEAK = 0.3
ACQUIESCENCE_WEAK = 0.4
CONTENT_NO_SIGNAL = 0.05
CONTENT_P = 0.01
PERMUTATIONS = 199
VALID_NO_SIGNAL = 0.2
VALID_WEAK = 0.5
ALPHA_RELIABLE = 0.7
KEY_FLAG = -0.1
LOADING_AGAINST_KEY = 0.3  # corrected item-total correlation below this contradicts the item's key
OMEGA_BOOTSTRAP = 400  # resamples for ω's CI, each a factor fit (all 400: 40 ms at 20 rows)
ALPHA_BOOTSTRAP = 2000  # resamples for α's CI (each a weighted sum: cheap)


class ItemCheck(BaseModel):
    item: str
    item_total_r: float | None
    key_suspect: bool


class Reliability(BaseModel):
    alpha: float | None
    alpha_ci95: tuple[float, float] | None
    omega: float | None
    omega_ci95: tuple[float, float] | None
    items: list[ItemCheck]


def _complete(values: np.ndarray) -> np.ndarray:
    """Respondents with an answer to every item (listwise deletion)."""
    return np.asarray(values[~np.isnan(values).any(axis=1)])


def _alphas(
    rows: np.ndarray, weights: np.ndarray, clusters: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cronbach's α of each resample of the rows (B × n ``weights``: how often each row was
    drawn), and its standard error; NaN where the totals do not vary.

    α = k/(k−1) · (1 − S/V), S the sum of the item variances and V the variance of the totals,
    whose degrees of freedom cancel in the ratio, so weighted variances serve. The SE is the
    nonparametric delta method's (Davison & Hinkley 1997, §2.7.2: the variance is the sum of
    the squared empirical influence values over n²), with each cluster's rows summed before
    squaring (``clusters``: each row's persona, or its respondent), so that a persona's
    respondents count as one draw here too. A row's influence on α is
    −k/(k−1) · ((d − S)/V − S (e − V)/V²), d its squared distance from the item means and e
    its total's squared distance from the mean total; each drawn copy of a cluster is a
    cluster of the resample."""
    rows = rows - rows.mean(axis=0)  # variances as E[x²] − E[x]², with little left to cancel
    drawn = weights.sum(axis=1, keepdims=True)
    share = weights / drawn
    means = share @ rows
    items = (share @ rows**2 - means**2).sum(axis=1, keepdims=True)
    totals = rows.sum(axis=1)
    mean_total = share @ totals
    total = (share @ totals**2 - mean_total**2)[:, None]
    k = rows.shape[1]
    spread = (rows**2).sum(axis=1) - 2 * means @ rows.T + (means**2).sum(axis=1, keepdims=True)
    spread_total = (totals - mean_total[:, None]) ** 2
    order = np.argsort(clusters, kind="stable")
    starts = np.flatnonzero(np.diff(clusters[order], prepend=-1))  # each cluster's first row
    with np.errstate(invalid="ignore", divide="ignore"):
        alphas = k / (k - 1) * (1 - items / total)
        influence = (spread - items) / total - items * (spread_total - total) / total**2
        by_cluster = -k / (k - 1) * np.add.reduceat(influence[:, order], starts, axis=1)
        copies = weights[:, order[starts]]
        ses = np.sqrt((copies * by_cluster**2).sum(axis=1, keepdims=True)) / drawn
    # Below this the respondents answer identically, up to float rounding: α is undefined.
    defined = total > 1e-12
    return np.where(defined, alphas, np.nan)[:, 0], np.where(defined, ses, np.nan)[:, 0]


def cronbach_alpha(values: np.ndarray) -> float | None:
    """α over the respondents that answered every item (rows); None with fewer than 3 of them,
    fewer than 2 items, or totals that do not vary. Equal to pingouin's (tested)."""
    rows = _complete(values)
    if rows.shape[0] < 3 or rows.shape[1] < 2:
        return None
    alpha = float(_alphas(rows, np.ones((1, len(rows))), np.arange(len(rows)))[0][0])
    return alpha if np.isfinite(alpha) else None


def _alpha_ci(
    rows: np.ndarray, clusters: np.ndarray, weights: np.ndarray
) -> tuple[float, float] | None:
    """α's 95 % CI: the bootstrap-t interval (``studentized_ci``) of log(1 − α) over the
    resamples ``weights`` draws, turned back. α̂ errs by a factor on 1 − α (Feldt's 1965
    pivot, (1 − α̂)/(1 − α) ~ F), so on that log scale its skewed, low-biased distribution is
    a nearly symmetric shift. On bench/reliability_ci.py's oracles (20 to 280 respondents,
    normal and skewed 5-point answers) this interval covered the known α in 93–96.5 % of
    samples; the percentile interval it replaces in 82–95 %."""
    (alpha,), (se,) = _alphas(rows, np.ones((1, len(rows))), clusters)
    draws, ses = _alphas(rows, weights, clusters)
    return _studentized_reliability(alpha, se, alpha, draws, ses, draws, len(weights) // 2)


def _studentized_reliability(
    estimate: float,
    se: float,
    alpha: float,
    draws: np.ndarray,
    ses: np.ndarray,
    alphas: np.ndarray,
    least: int,
) -> tuple[float, float] | None:
    """A reliability's bootstrap-t interval on the log(1 − r) scale, turned back: ``estimate``
    and its resamples' ``draws``, t scaled by α's standard errors (``se`` at ``alpha``,
    ``ses`` at ``alphas``) carried to that scale (SE / (1 − α))."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = studentized_ci(
            float(np.log1p(-estimate)), se / (1 - alpha), np.log1p(-draws), ses / (1 - alphas),
            least,
        )  # fmt: skip
    if ci is None:
        return None
    return float(-np.expm1(ci[1])), float(-np.expm1(ci[0]))  # r = 1 − e^L turns the order


def _standardised(rows: np.ndarray) -> np.ndarray | None:
    """Items as z-scores (population SD, as the factor model's fit uses), items that do not
    vary left out; None where fewer than 4 respondents or 3 varying items remain."""
    if rows.shape[0] < 4 or rows.shape[1] < 3:
        return None
    rows = rows[:, rows.std(axis=0) > 1e-9]
    if rows.shape[1] < 3:
        return None
    return np.asarray((rows - rows.mean(axis=0)) / rows.std(axis=0))


def one_factor_omegas(
    samples: np.ndarray, weights: np.ndarray | None = None, tol: float = 1e-2, max_iter: int = 1000
) -> np.ndarray:
    """ω total of each of B samples of standardised items (B × n × p, each row counted as
    often as ``weights``, B × n, says; once by default): (Σλ)² / ((Σλ)² + Σψ) of a one-factor
    maximum-likelihood fit; NaN where items load against their keyed direction (a position
    habit loads forward and reversed items with opposite signs: ω of the keyed sum would
    describe that factor) or the fit breaks down.

    The fit is scikit-learn's ``FactorAnalysis`` (Rubin & Thayer's iteration with its stopping
    rule, exact SVD), written for many samples at once: the bootstrap of ω fits 100 of them,
    which one at a time cost a second a dimension. Tested against scikit-learn."""
    b, _, p = samples.shape
    if weights is None:
        weights = np.ones(samples.shape[:2])
    n = weights.sum(axis=1)
    cov = np.einsum("bn,bni,bnj->bij", weights, samples, samples) / n[:, None, None]  # X'X / n
    variance = np.einsum("bii->bi", cov)
    small = 1e-12
    const = p * np.log(2.0 * np.pi) + 1
    psi = np.ones((b, p))
    loadings, noise = np.zeros((b, p)), np.ones((b, p))
    previous = np.full(b, -np.inf)
    active = np.arange(b)
    for _ in range(max_iter):
        if not len(active):
            break
        root = np.sqrt(psi[active]) + small
        scaled = cov[active] / (root[:, :, None] * root[:, None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            values, vectors = np.linalg.eigh(scaled)
            top = values[:, -1]
            w = np.sqrt(np.maximum(top - 1.0, 0.0))[:, None] * vectors[:, :, -1] * root
            unexplained = np.trace(scaled, axis1=1, axis2=2) - top
            fit = const + np.log(top) + unexplained + np.log(psi[active]).sum(1)
            ll = -(n[active] / 2.0) * fit
        loadings[active], noise[active] = w, psi[active]
        done = ~(ll - previous[active] >= tol)  # NaN stops too
        previous[active] = ll
        going = active[~done]
        psi[going] = np.maximum(variance[going] - w[~done] ** 2, small)
        active = going
    loadings = loadings * np.where(loadings.sum(axis=1) < 0, -1.0, 1.0)[:, None]
    common = loadings.sum(axis=1) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        omega = common / (common + noise.sum(axis=1))
    against = loadings.min(axis=1) < -LOADING_AGAINST_KEY
    return np.asarray(np.where(against | ~np.isfinite(omega), np.nan, omega))


def mcdonald_omega(values: np.ndarray) -> float | None:
    """ω total from a one-factor model of the standardised items (``one_factor_omegas``)."""
    z = _standardised(_complete(values))
    if z is None:
        return None
    omega = float(one_factor_omegas(z[None])[0])
    return omega if np.isfinite(omega) else None


def _drawn_whole(groups: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """How often each row is drawn (resamples × rows) when the clusters of rows (``groups``,
    numbered from 0) are resampled whole: the first stage of a two-stage sample (Davison &
    Hinkley 1997, §3.8). With one row a cluster, a bootstrap over rows, draw for draw."""
    n = int(groups.max()) + 1
    picks = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(picks.ravel(), minlength=resamples * n).reshape(resamples, n)[:, groups]


def _omega_draws(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ω of each resample of the rows (``weights``: how often each was drawn), NaN where
    undefined."""
    share = weights / weights.sum(axis=1, keepdims=True)
    # deviations first: an item constant in a resample must come out at 0, not at rounding
    deviations = rows[None] - (share @ rows)[:, None]
    sd = np.sqrt(np.einsum("bn,bni->bi", share, deviations**2))
    varying = (sd > 1e-9).all(axis=1)  # a resample where an item is constant drops that item
    out = np.full(len(weights), np.nan)
    if varying.any():
        z = deviations[varying] / sd[varying][:, None]
        out[varying] = one_factor_omegas(z, weights[varying])
    for k in np.flatnonzero(~varying):
        out[k] = mcdonald_omega(np.repeat(rows, weights[k].astype(int), axis=0)) or np.nan
    return out


def _omega_ci(
    rows: np.ndarray, clusters: np.ndarray, omega: float, weights: np.ndarray
) -> tuple[float, float] | None:
    """ω's 95 % CI over the resamples ``weights`` draws. Where each respondent is a cluster of
    its own, the percentile interval. Where personas have several respondents who answer
    differently (more distinct answer rows than clusters: respondents that repeat their
    persona's answers leave the CI where the persona alone puts it), the
    bootstrap-t of log(1 − ω), as α's (``_alpha_ci``), each resample's t scaled by α's
    standard error there on the same log scale: a factor fit leaves none of ω's own, and the
    studentized interval needs only a scale that follows the estimate's spread from resample
    to resample (Davison & Hinkley 1997, §5.2.1), which α's, a reliability of the same items,
    does. With personas repeated ω̂ is biased low by an amount their number sets while its
    spread shrinks with the respondents', so the percentile interval, which repeats the bias,
    missed to one side (85–92 % at 20–70 personas × 4, bench/RESULTS.md); the bootstrap-t
    covered 92.5–97 %. With one respondent a persona the percentile covered 91.5–96.5 %, the
    bootstrap-t on skewed 5-point answers at 20 respondents only 87.5 %. Under 10 personas,
    the percentile interval, as before: α's SE is 0 where a resample holds two distinct rows."""
    draws = _omega_draws(rows, weights)
    personas = len(np.unique(clusters))
    if not BOOTSTRAP_MIN_N <= personas < len(np.unique(rows, axis=0)):  # (α's CI's floor)
        return percentile_ci(draws, len(weights) // 2)
    return _omega_bootstrap_t(rows, clusters, omega, weights, draws)


def _omega_bootstrap_t(
    rows: np.ndarray, clusters: np.ndarray, omega: float, weights: np.ndarray, draws: np.ndarray
) -> tuple[float, float] | None:
    """ω's bootstrap-t interval of log(1 − ω) over the resamples ``weights`` draws (ω's
    ``draws`` there), t scaled by α's standard errors (``_omega_ci`` says why)."""
    (alpha,), (se,) = _alphas(rows, np.ones((1, len(rows))), clusters)
    alphas, ses = _alphas(rows, weights, clusters)
    return _studentized_reliability(omega, se, alpha, draws, ses, alphas, len(weights) // 2)


def reliability(
    values: np.ndarray,
    item_ids: Sequence[str],
    seed: int,
    omega_resamples: int = OMEGA_BOOTSTRAP,
    groups: np.ndarray | None = None,
) -> Reliability:
    """α and ω with 95 % CIs, and each item's corrected item-total correlation, over the
    respondents (rows) that answered every item. Both CIs are bootstraps over the clusters of
    rows (``groups``: respondents of one persona, a respondent's samples;
    ``scoring.score.clusters``; one row each by default) drawn whole, as the score's CI is:
    a persona's respondents, or a respondent's samples, are not new respondents. α's is the
    bootstrap-t interval (``_alpha_ci``; none under 10 clusters), ω's the percentile one or,
    where personas repeat, a bootstrap-t (``_omega_ci``)."""
    complete = ~np.isnan(values).any(axis=1)
    rows = _complete(values)
    kept = np.arange(len(values)) if groups is None else groups
    clusters = np.unique(kept[complete], return_inverse=True)[1]
    alpha, omega = cronbach_alpha(values), mcdonald_omega(values)
    alpha_ci = omega_ci = None
    rng = np.random.default_rng(seed)
    if omega is not None and omega_resamples:
        omega_ci = _omega_ci(rows, clusters, omega, _drawn_whole(clusters, rng, omega_resamples))
    # Fewer clusters give too few distinct resamples to studentize by: two distinct rows have
    # an SE of 0 (their α does not move with their weights), and t runs off to ±10¹⁴.
    if alpha is not None and len(np.unique(clusters)) >= BOOTSTRAP_MIN_N:
        alpha_ci = _alpha_ci(rows, clusters, _drawn_whole(clusters, rng, ALPHA_BOOTSTRAP))
    checks = []
    for j, item in enumerate(item_ids):
        r = None
        if rows.shape[0] >= 3 and rows.shape[1] >= 2:
            rest = np.delete(rows, j, axis=1).sum(axis=1)
            if rows[:, j].std() > 1e-9 and rest.std() > 1e-9:
                r = float(np.corrcoef(rows[:, j], rest)[0, 1])
        checks.append(
            ItemCheck(item=item, item_total_r=r, key_suspect=r is not None and r < KEY_FLAG)
        )
    return Reliability(
        alpha=alpha, alpha_ci95=alpha_ci, omega=omega, omega_ci95=omega_ci, items=checks
    )


def _position_index(by_position: np.ndarray) -> float:
    """Total-variation distance of the mean chosen-position distribution from uniform, 0..1."""
    n = by_position.shape[-1]
    marginal = by_position.mean(axis=0)
    return float(0.5 * np.abs(marginal - 1.0 / n).sum() / (1.0 - 1.0 / n))


def position_bias(m: AnswerMatrix) -> tuple[float | None, list[list[float | None]]]:
    """The index, and the option × position table of mean choice probability (heat map)."""
    a = m.answers
    if not len(a.raw):
        return None, []
    n = a.by_position.shape[-1]
    # table[o, p]: mean probability of choosing option o when it was shown at position p
    total, count = np.zeros((n, n)), np.zeros((n, n))
    for pos in range(n):
        where = (a.shown[:, pos], np.full(len(a.shown), pos))
        np.add.at(total, where, a.by_position[:, pos])
        np.add.at(count, where, 1)
    table = [
        [float(total[o, p] / count[o, p]) if count[o, p] else None for p in range(n)]
        for o in range(n)
    ]
    return _position_index(a.by_position), table


def acquiescence(m: AnswerMatrix) -> float | None:
    """Mean over dimensions with both forward and reversed items of their raw midpoint offset."""
    offsets = []
    for dim in m.dimensions.values():
        forward = [j for j, q in enumerate(m.questions) if q.dimension == dim.id and not q.reverse]
        reverse = [j for j, q in enumerate(m.questions) if q.dimension == dim.id and q.reverse]
        if not forward or not reverse:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            level = (np.nanmean(m.raw[:, forward]) + np.nanmean(m.raw[:, reverse])) / 2
        if np.isfinite(level):
            mid, half = (dim.scale_min + dim.scale_max) / 2, (dim.scale_max - dim.scale_min) / 2
            offsets.append((level - mid) / half)
    return float(np.mean(offsets)) if offsets else None


class Effect(BaseModel):
    """The share of the variance of raw answers one factor explains once the others are
    removed, with its permutation p-value; and the share of the keyed answers its interaction
    with the item explains beyond chance, once the trait (each respondent's level on each
    dimension) and the main effects are removed: a habit that moves each item its own way, such
    as a drift toward the previous answer, can leave every mean in place."""

    eta2: float
    p: float
    by_item: float
    by_item_p: float
    levels: list[str]


class Decomposition(BaseModel):
    """Raw answers split into statement (content), option order and respondent parts."""

    content: float  # η² of the statement after order and respondent are removed
    content_p: float  # permutation test of item labels
    order: float  # η² of the option order after statement and respondent are removed
    order_p: float
    n_answers: int
    # each varied nuisance factor (--vary), after statement, respondent and the others
    factors: dict[str, Effect] = {}


def _share(
    y: np.ndarray,
    factor: np.ndarray,
    nuisance: list[np.ndarray],
    rng: np.random.Generator,
    beyond_chance: bool = False,
) -> tuple[float, float]:
    """η² of ``factor`` on y once the nuisance factors are regressed out, and its permutation
    p-value (labels of ``factor`` shuffled over the residuals). ``beyond_chance``: η² less its
    mean under the permutations — what a factor of many sparse levels explains by chance alone
    is not an effect."""
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 1e-12 or len(np.unique(factor)) < 2:
        return 0.0, 1.0
    x = np.column_stack([np.ones(len(y)), *[dummies(f) for f in nuisance]])
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    codes = np.unique(factor, return_inverse=True)[1]

    def between(labels: np.ndarray) -> float:
        sums, counts = np.bincount(labels, resid), np.bincount(labels)
        return float((sums[counts > 0] ** 2 / counts[counts > 0]).sum() - resid.sum() ** 2 / len(y))

    observed = between(codes)
    null = np.array([between(rng.permutation(codes)) for _ in range(PERMUTATIONS)])
    exceed = int((null >= observed - 1e-12).sum())
    share = (observed - float(null.mean())) if beyond_chance else observed
    return max(share, 0.0) / total, (1 + exceed) / (PERMUTATIONS + 1)


def _by_item(m: AnswerMatrix, codes: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The factor × item interaction of the keyed answers, beyond chance, once each
    respondent's level on each dimension (the trait) and every main effect are removed."""
    a = m.answers
    dims = sorted(m.dimensions)
    dim_of = np.array([dims.index(q.dimension) for q in m.questions])
    keyed = m.keyed_answers(a.raw)
    trait = a.row * len(dims) + dim_of[a.item]
    cells = a.item * (int(codes.max()) + 1) + codes
    return _share(keyed, cells, [a.item, trait, *a.nuisance().values()], rng, beyond_chance=True)


def decompose(m: AnswerMatrix, seed: int = 0) -> Decomposition | None:
    """Statement, order and respondent parts of the raw answers (an additive two-way model per
    factor, the others regressed out); the permutation tests use ``seed``."""
    a = m.answers
    if len(np.unique(a.item)) < 2 or len(a.raw) < 3:
        return None
    rng = np.random.default_rng(seed)
    nuisance = a.nuisance()
    content, content_p = _share(a.raw, a.item, [*nuisance.values(), a.row], rng)
    shares = {
        name: _share(
            a.raw, codes, [a.item, a.row, *(c for n, c in nuisance.items() if n != name)], rng
        )
        for name, codes in nuisance.items()
    }
    order, order_p = shares.pop("order")
    factors = {}
    for name, (eta2, p_value) in shares.items():
        by_item, by_item_p = _by_item(m, a.factors[name], rng)
        factors[name] = Effect(
            eta2=eta2, p=p_value, by_item=by_item, by_item_p=by_item_p, levels=a.levels[name]
        )
    return Decomposition(
        content=content,
        content_p=content_p,
        order=order,
        order_p=order_p,
        n_answers=len(a.raw),
        factors=factors,
    )


class Level(BaseModel):
    """A dimension's score from the answers asked under one level of a factor."""

    level: str
    score: float | None
    ci95: tuple[float, float] | None
    n_answers: int


class Stability(BaseModel):
    """How far a dimension's score moves across the levels of one nuisance factor."""

    levels: list[Level]
    spread: float | None  # highest level score − lowest, in scale points
    sd: float | None  # SD of the level scores (PERSIST's figure)
    share_of_scale: float | None  # spread / the scale's range


STABILITY_BOOTSTRAP = 500


def stability(
    m: AnswerMatrix, columns: list[int], aggregate: Callable[[np.ndarray], np.ndarray],
    scale: tuple[float, float], seed: int,
) -> dict[str, Stability]:  # fmt: skip
    """Per varied factor: the dimension's score under each of its levels, from the answers
    with every other nuisance effect removed (that factor's own left in, to be seen)."""
    a = m.answers
    keep = np.isin(a.item, columns)
    effects = nuisance_effects(a)
    out = {}
    for name, codes in a.factors.items():
        others = sum((e for n, e in effects.items() if n != name), np.zeros(len(a.raw)))
        value = m.keyed_answers(a.raw - others)
        rng = np.random.default_rng(seed)
        levels = []
        for code, level in enumerate(a.levels[name]):
            sel = keep & (codes == code)
            table = np.full((len(m.respondents), len(columns)), np.nan)
            sums, counts = np.zeros(table.shape), np.zeros(table.shape)
            col = {j: i for i, j in enumerate(columns)}
            at = (a.row[sel], np.array([col[j] for j in a.item[sel]], dtype=int))
            np.add.at(sums, at, value[sel])
            np.add.at(counts, at, 1)
            table = np.divide(sums, counts, out=table, where=counts > 0)
            rows = table[~np.isnan(table).all(axis=1)]
            score = ci = None
            if len(rows):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    score = float(aggregate(np.nanmean(rows, axis=0)))
                    picks = rng.integers(0, len(rows), size=(STABILITY_BOOTSTRAP, len(rows)))
                    boot = aggregate(np.nanmean(rows[picks], axis=1))
                if len(rows) > 1:
                    ci = percentile_ci(boot)
            levels.append(Level(level=level, score=score, ci95=ci, n_answers=int(sel.sum())))
        scores = [lv.score for lv in levels if lv.score is not None and np.isfinite(lv.score)]
        width = scale[1] - scale[0]
        spread_ = float(max(scores) - min(scores)) if len(scores) > 1 else None
        out[name] = Stability(
            levels=levels,
            spread=spread_,
            sd=float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
            share_of_scale=spread_ / width if spread_ is not None and width > 0 else None,
        )
    return out


class Uniformity(BaseModel):
    """Can the answers be told from a respondent that answers by position alone?"""

    chi2: float  # item by item, against the position-only model
    df: int
    chi2_keyed: float | None  # the dimension's items pooled by keyed value (a consistent trait)
    df_keyed: int | None
    # the smaller p of the two tests, doubled (Bonferroni): against every scale value equally
    # often, and against the position-only model (uniform when orders are balanced)
    p_uniform: float
    p_position: float
    # every option shown at every position about equally often (at most 2:1) for every item:
    # only then can position and value be told apart at all (two orders of five cannot)
    balanced: bool


def _chi2(observed: np.ndarray, expected: np.ndarray) -> float:
    return float(((observed - expected) ** 2 / np.maximum(expected, 1e-12)).sum())


def uniformity(m: AnswerMatrix, columns: list[int]) -> Uniformity | None:
    """χ² tests of the choices by scale value (a probability answer counts as its
    probabilities) against two nulls: uniform, and the position-only respondent that chooses
    positions as often as this one does overall. Two tests each: item by item (content that
    differs between items), and the items pooled by keyed value (a trait that moves every item
    of the dimension the same way, which item by item spreads over many degrees of freedom).
    None with one option order (position and value are then the same thing)."""
    from scipy.stats import chi2 as chi2_dist

    a = m.answers
    keep = np.isin(a.item, columns)
    if m.n_orders < 2 or not keep.any():
        return None
    marginal = a.by_position[keep].mean(axis=0)
    n = a.by_option.shape[-1]
    stat_u = stat_p = 0.0
    df = 0
    balanced = True
    # pooled by keyed value: observed, expected position-only, expected uniform
    pooled = np.zeros((3, n))
    same_scale = len({len(m.questions[j].options) for j in columns}) == 1
    for j in columns:
        sel = keep & (a.item == j)
        k = len(m.questions[j].options)
        if sel.sum() < 2:
            continue
        seen = np.zeros((k, k))  # option × position
        np.add.at(seen, (a.shown[sel][:, :k], np.arange(k)), 1)
        balanced &= bool(seen.min() > 0 and seen.max() <= 2 * seen.min())
        observed = a.by_option[sel][:, :k].sum(axis=0)
        total = observed.sum()
        if total <= 0:
            continue
        # position-only: the option at position p is chosen with the marginal rate of p
        chance = np.zeros(n)  # by option, for one answer
        expected_p = np.zeros(k)
        for shown in a.shown[sel]:
            chance[shown[:k]] = marginal[:k]
            expected_p += chance[:k] / max(marginal[:k].sum(), 1e-12)
        expected_p *= total / max(expected_p.sum(), 1e-12)
        expected_u = np.full(k, total / k)
        stat_u += _chi2(observed, expected_u)
        stat_p += _chi2(observed, expected_p)
        df += k - 1
        keyed = slice(None, None, -1) if m.questions[j].reverse else slice(None)
        for row, counts in enumerate((observed, expected_p, expected_u)):
            pooled[row, :k] += counts[keyed]
    if not df:
        return None
    chi2_keyed = df_keyed = None
    p_u, p_p = chi2_dist.sf(stat_u, df), chi2_dist.sf(stat_p, df)
    if same_scale and len(columns) > 1:
        k = len(m.questions[columns[0]].options)
        chi2_keyed, df_keyed = _chi2(pooled[0, :k], pooled[1, :k]), k - 1
        p_p = min(p_p, chi2_dist.sf(chi2_keyed, df_keyed))
        p_u = min(p_u, chi2_dist.sf(_chi2(pooled[0, :k], pooled[2, :k]), df_keyed))
    tests = 2 if chi2_keyed is not None else 1
    return Uniformity(
        chi2=stat_p,
        df=df,
        chi2_keyed=chi2_keyed,
        df_keyed=df_keyed,
        p_uniform=float(min(1.0, tests * p_u)),
        p_position=float(min(1.0, tests * p_p)),
        balanced=balanced,
    )


class KeyCheck(BaseModel):
    """Across respondents: agreement with forward- vs reverse-keyed items of one dimension."""

    r: float | None
    ci95: tuple[float, float] | None
    n: int
    status: KeyConsistency


def key_consistency(m: AnswerMatrix, columns: list[int]) -> KeyCheck:
    forward = [j for j in columns if not m.questions[j].reverse]
    reverse = [j for j in columns if m.questions[j].reverse]
    if not forward or not reverse:
        return KeyCheck(r=None, ci95=None, n=len(m.respondents), status="untestable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = np.nanmean(m.raw[:, forward], axis=1)
        b = np.nanmean(m.raw[:, reverse], axis=1)
    c = correlate(f, b)
    if c.r is None or c.ci95 is None:
        return KeyCheck(r=None, ci95=None, n=c.n, status="untestable")
    lo, hi = c.ci95
    status: KeyConsistency = (
        "consistent" if hi < 0 else "inconsistent" if lo > 0 else "inconclusive"
    )
    return KeyCheck(r=c.r, ci95=c.ci95, n=c.n, status=status)


def order_consistency(m: AnswerMatrix, columns: list[int]) -> float | None:
    """α over option orders (each order's mean keyed answer per item): how much an order moves
    the dimension's items together. A diagnostic of order habits — never evidence of a trait."""
    a = m.answers
    if m.n_orders < 3:
        return None
    keep = np.isin(a.item, columns)
    if not keep.any():
        return None
    orders = np.unique(a.order[keep])
    table = np.full((len(orders), len(columns)), np.nan)
    for oi, k in enumerate(orders):
        for ci, j in enumerate(columns):
            sel = keep & (a.order == k) & (a.item == j)
            if sel.any():
                q = m.questions[j]
                keyed = m.dimensions[q.dimension].keyed(a.raw[sel], q.reverse)
                table[oi, ci] = float(np.mean(keyed))
    return cronbach_alpha(table)


def fleiss_kappa(m: AnswerMatrix) -> float | None:
    """Agreement between repeats (respondents) on each item's modal choice (canonical option)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as fk

    a = m.answers
    n_r, n_i = len(m.respondents), len(m.questions)
    n = a.by_option.shape[-1] if len(a.raw) else 0
    if n_r < 2 or not n:
        return None
    cell = np.zeros((n_r, n_i, n))
    np.add.at(cell, (a.row, a.item), a.by_option)
    complete = (cell.sum(axis=-1) > 0).all(axis=1)
    if complete.sum() < 2:
        return None
    choices = cell[complete].argmax(axis=-1)  # (R, I)
    table = np.stack([(choices == k).sum(axis=0) for k in range(n)], axis=1)  # items × options
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = fk(table, method="fleiss")
    return float(kappa) if np.isfinite(kappa) else None


class Evidence(BaseModel):
    """What the verdict of one dimension is decided from."""

    valid_rate: float
    position: float | None
    acquiescence: float | None
    decomposition: Decomposition | None
    alpha: float | None
    n_respondents: int
    key: KeyCheck
    convergent: float | None = None  # r with the same construct's other measure, if one ran
    convergent_ok: bool | None = None
    n_orders: int
    stability: dict[str, Stability] = {}
    ci_width: float | None = None  # of the dimension's score
    uniformity: Uniformity | None = None


def verdict(e: Evidence) -> tuple[Validity, list[str]]:
    """`ok`, `weak` or `no_signal`, with the reasons in words for the report."""
    no_signal, weak = [], []
    if e.valid_rate < VALID_NO_SIGNAL:
        no_signal.append(f"only {e.valid_rate:.0%} of answers chose a valid option")
    elif e.valid_rate < VALID_WEAK:
        weak.append(f"only {e.valid_rate:.0%} of answers chose a valid option")
    d = e.decomposition
    content = d is not None and d.content >= CONTENT_NO_SIGNAL and d.content_p < CONTENT_P
    reliable = e.alpha is not None and e.alpha >= ALPHA_RELIABLE
    keyed_trait = reliable and (e.key.status == "consistent" or bool(e.convergent_ok))
    # Without content, only respondents ordered along the items' keys show a (faint) trait.
    if d is not None and not content and not keyed_trait:
        words = (
            f"answers barely depend on the statement asked (content sensitivity "
            f"{d.content:.2f} after option order, p = {d.content_p:.2f})"
        )
        if reliable and e.key.status == "untestable":
            weak.append(
                words + "; respondents agree across items, but with no reverse-keyed items "
                "a response style would read the same"
            )
        else:
            no_signal.append(words + ", and no keyed trait shows across respondents")
    if e.key.status == "inconsistent" and e.key.r is not None:
        weak.append(
            "agreement with forward- and reverse-keyed items rises together across respondents "
            f"(r = {e.key.r:+.2f}): their differences are a response style, not the trait"
        )
    if e.n_respondents < 3:
        weak.append(
            "one respondent: reliability cannot be estimated (ask a population: --respondents)"
        )
    elif e.alpha is None:
        weak.append(
            f"α cannot be computed over the {e.n_respondents} respondents: they answer this "
            "dimension alike, or too few of them answered every item"
        )
    elif not reliable:
        weak.append(
            f"respondents do not differ consistently on this dimension (α = {e.alpha:.2f} over "
            f"{e.n_respondents} respondents, below {ALPHA_RELIABLE:.2f})"
        )
    if e.convergent_ok is False and e.convergent is not None:
        weak.append(
            f"a second measure of the construct disagrees (convergent r = {e.convergent:.2f})"
        )
    if e.n_orders >= 2 and e.position is not None and e.position > POSITION_BIAS_WEAK:
        weak.append(
            f"this score reflects option position, not the trait (position bias {e.position:.2f})"
        )
    if d is not None and d.order >= CONTENT_NO_SIGNAL and d.order_p < CONTENT_P:
        weak.append(
            f"the option order moves the answers (order effect {d.order:.2f} of the variance): "
            "a position habit that follows the order"
        )
    if e.acquiescence is not None and abs(e.acquiescence) > ACQUIESCENCE_WEAK:
        side = "agrees" if e.acquiescence > 0 else "disagrees"
        weak.append(
            f"the model {side} with statements and their reversals alike "
            f"(acquiescence {e.acquiescence:+.2f})"
        )
    if e.n_orders < 2:
        weak.append("asked in one option order: position and content cannot be separated")
    for name, effect in (d.factors if d is not None else {}).items():
        if effect.eta2 >= CONTENT_NO_SIGNAL and effect.p < CONTENT_P:
            weak.append(
                f"{FACTOR_TITLES[name]} moves the answers ({name} effect {effect.eta2:.2f} of the "
                f"variance, p = {effect.p:.3f})"
            )
        elif effect.by_item >= CONTENT_NO_SIGNAL and effect.by_item_p < CONTENT_P:
            weak.append(
                f"{FACTOR_TITLES[name]} moves each item's answers its own way ({name} × item "
                f"{effect.by_item:.2f} of the variance, p = {effect.by_item_p:.3f})"
            )
    for name, moved in e.stability.items():
        if moved.spread is not None and e.ci_width is not None and moved.spread > e.ci_width:
            weak.append(
                f"the score moves by {moved.spread:.2f} across {FACTOR_TITLES[name]} ({name}), "
                f"more than its own 95 % CI is wide ({e.ci_width:.2f})"
            )
    u = e.uniformity
    # Like content: answers that look position-only carry a trait only where respondents are
    # ordered along the items' keys (a population spread evenly over the scale looks uniform).
    if u is not None and u.balanced and u.p_position >= CONTENT_P and not keyed_trait:
        words = (
            "with options counterbalanced, the answers cannot be told from a respondent that "
            f"answers by position alone (χ² tests by item and by keyed value, p = "
            f"{u.p_position:.2f})"
        )
        if reliable and e.key.status == "untestable":
            weak.append(
                words + "; no reverse-keyed items show whether respondents' agreement is a trait"
            )
        else:
            no_signal.append(words + ", and no keyed trait shows across respondents")
    if no_signal:
        return "no_signal", no_signal + weak
    return ("weak", weak) if weak else ("ok", [])
