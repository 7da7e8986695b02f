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
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from psyprobe.scoring.matrix import AnswerMatrix, dummies
from psyprobe.scoring.validity import correlate

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
OMEGA_BOOTSTRAP = 100  # resamples for ω's CI: each refits the factor model (~15 ms)


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


def cronbach_alpha(values: np.ndarray) -> tuple[float | None, tuple[float, float] | None]:
    import pandas as pd
    import pingouin as pg

    rows = _complete(values)
    # Below this the respondents answer identically, up to float rounding: α is undefined.
    if rows.shape[0] < 3 or rows.shape[1] < 2 or rows.sum(axis=1).var() < 1e-12:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alpha, ci = pg.cronbach_alpha(data=pd.DataFrame(rows))
    if not np.isfinite(alpha):
        return None, None
    return float(alpha), (float(ci[0]), float(ci[1]))


def _standardised(rows: np.ndarray) -> np.ndarray | None:
    """Items as z-scores (population SD, as the factor model's fit uses), items that do not
    vary left out; None where fewer than 4 respondents or 3 varying items remain."""
    if rows.shape[0] < 4 or rows.shape[1] < 3:
        return None
    rows = rows[:, rows.std(axis=0) > 1e-9]
    if rows.shape[1] < 3:
        return None
    return np.asarray((rows - rows.mean(axis=0)) / rows.std(axis=0))


def one_factor_omegas(samples: np.ndarray, tol: float = 1e-2, max_iter: int = 1000) -> np.ndarray:
    """ω total of each of B samples of standardised items (B × n × p): (Σλ)² / ((Σλ)² + Σψ) of a
    one-factor maximum-likelihood fit; NaN where items load against their keyed direction (a
    position habit loads forward and reversed items with opposite signs: ω of the keyed sum
    would describe that factor) or the fit breaks down.

    The fit is scikit-learn's ``FactorAnalysis`` (Rubin & Thayer's iteration with its stopping
    rule, exact SVD), written for many samples at once: the bootstrap of ω fits 100 of them,
    which one at a time cost a second a dimension. Tested against scikit-learn."""
    b, n, p = samples.shape
    cov = np.einsum("bni,bnj->bij", samples, samples) / n  # the fit's X'X / n
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
            ll = -(n / 2.0) * (const + np.log(top) + unexplained + np.log(psi[active]).sum(1))
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


def _omega_draws(rows: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """ω of each bootstrap resample of the respondents (rows), NaN where undefined."""
    picks = rows[rng.integers(0, len(rows), size=(resamples, len(rows)))]
    sd = picks.std(axis=1)
    varying = (sd > 1e-9).all(axis=1)  # a resample where an item is constant drops that item
    out = np.full(resamples, np.nan)
    if varying.any():
        z = (picks[varying] - picks[varying].mean(axis=1, keepdims=True)) / sd[varying][:, None]
        out[varying] = one_factor_omegas(z)
    for k in np.flatnonzero(~varying):
        out[k] = mcdonald_omega(picks[k]) or np.nan
    return out


def reliability(
    values: np.ndarray, item_ids: Sequence[str], seed: int, omega_resamples: int = OMEGA_BOOTSTRAP
) -> Reliability:
    alpha, alpha_ci = cronbach_alpha(values)
    omega = mcdonald_omega(values)
    omega_ci = None
    rows = _complete(values)
    if omega is not None and omega_resamples:
        draws = _omega_draws(rows, np.random.default_rng(seed), omega_resamples)
        kept = draws[np.isfinite(draws)]
        if len(kept) >= omega_resamples // 2:
            lo, hi = np.percentile(kept, [2.5, 97.5])
            omega_ci = (float(lo), float(hi))
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


class Decomposition(BaseModel):
    """Raw answers split into statement (content), option order and respondent parts."""

    content: float  # η² of the statement after order and respondent are removed
    content_p: float  # permutation test of item labels
    order: float  # η² of the option order after statement and respondent are removed
    order_p: float
    n_answers: int


def _share(
    y: np.ndarray, factor: np.ndarray, nuisance: list[np.ndarray], rng: np.random.Generator
) -> tuple[float, float]:
    """η² of ``factor`` on y once the nuisance factors are regressed out, and its permutation
    p-value (labels of ``factor`` shuffled over the residuals)."""
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
    exceed = sum(between(rng.permutation(codes)) >= observed - 1e-12 for _ in range(PERMUTATIONS))
    return observed / total, (1 + exceed) / (PERMUTATIONS + 1)


def decompose(m: AnswerMatrix, seed: int = 0) -> Decomposition | None:
    """Statement, order and respondent parts of the raw answers (an additive two-way model per
    factor, the others regressed out); the permutation tests use ``seed``."""
    a = m.answers
    if len(np.unique(a.item)) < 2 or len(a.raw) < 3:
        return None
    rng = np.random.default_rng(seed)
    content, content_p = _share(a.raw, a.item, [a.order, a.row], rng)
    order, order_p = _share(a.raw, a.order, [a.item, a.row], rng)
    return Decomposition(
        content=content, content_p=content_p, order=order, order_p=order_p, n_answers=len(a.raw)
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
    return cronbach_alpha(table)[0]


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
    elif not reliable:
        shown = "undefined" if e.alpha is None else f"{e.alpha:.2f}"
        weak.append(
            f"respondents do not differ consistently on this dimension (α = {shown} over "
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
    if no_signal:
        return "no_signal", no_signal + weak
    return ("weak", weak) if weak else ("ok", [])
