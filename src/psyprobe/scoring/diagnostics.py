"""Does a score mean anything? Reliability, response-style diagnostics and a verdict.

Respondents are the option orders × samples (× prompt variants), as DeepMind's PsyBORGS treats
prompt variations: a trait that is really expressed is expressed consistently across them.

Thresholds (stated, and shown in the report):
- ``position_bias`` (0 = choices do not follow positions, 1 = always the same position): the
  total-variation distance of the chosen-position distribution from uniform, scaled to 0..1. Under
  a balanced design content preferences spread evenly over positions, so what is left is position.
  Above 0.3: ``weak``.
- ``acquiescence`` (−1..1): within each dimension that has both, mean raw agreement with its
  forward-keyed and reverse-keyed items together, relative to the scale midpoint (averaged over
  such dimensions); a consistent respondent who agrees with an item disagrees with its reversal,
  so the two cancel. Beyond ±0.4: ``weak``.
- ``content_sensitivity`` (η², 0..1, per instrument): the share of variance in raw answers
  explained by which statement was asked, against the variation across orders and samples of the
  same statement. Below 0.05 — unless α ≥ 0.7 without position bias shows the respondents moving
  the dimension's items together — the answers do not depend on the statement: ``no_signal``.
  (A respondent truly at the midpoint of every trait reads the same; it cannot be told apart.)
- valid-label mass / valid rate below 0.2: ``no_signal``; below 0.5: ``weak``.
- one option order only: ``weak`` (position and content cannot be separated, so the position
  index then measures both).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from psyprobe.scoring.matrix import AnswerMatrix

Validity = Literal["ok", "weak", "no_signal"]

POSITION_BIAS_WEAK = 0.3
ACQUIESCENCE_WEAK = 0.4
CONTENT_NO_SIGNAL = 0.05
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


def mcdonald_omega(values: np.ndarray) -> float | None:
    """ω total from a one-factor model of the standardised items: (Σλ)² / ((Σλ)² + Σψ).

    scikit-learn's maximum-likelihood FactorAnalysis fits the factor (factor_analyzer, the usual
    choice, no longer runs with current scikit-learn).
    """
    from sklearn.decomposition import FactorAnalysis

    rows = _complete(values)
    if rows.shape[0] < 4 or rows.shape[1] < 3:
        return None
    rows = rows[:, rows.std(axis=0) > 1e-9]
    if rows.shape[1] < 3:
        return None
    z = (rows - rows.mean(axis=0)) / rows.std(axis=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fa = FactorAnalysis(n_components=1, random_state=0).fit(z)
    except (ValueError, np.linalg.LinAlgError):
        return None
    loadings, uniqueness = fa.components_[0], fa.noise_variance_
    if loadings.sum() < 0:  # the factor's sign is arbitrary
        loadings = -loadings
    if loadings.min() < -LOADING_AGAINST_KEY:
        # Items load against their keyed direction: the common factor is not the keyed trait
        # (a position habit loads forward and reversed items with opposite signs), and ω of the
        # keyed sum would describe that factor instead. Withheld; the item checks say which.
        return None
    common = loadings.sum() ** 2
    omega = common / (common + uniqueness.sum())
    return float(omega) if np.isfinite(omega) else None


def reliability(
    values: np.ndarray, item_ids: Sequence[str], seed: int, omega_resamples: int = OMEGA_BOOTSTRAP
) -> Reliability:
    alpha, alpha_ci = cronbach_alpha(values)
    omega = mcdonald_omega(values)
    omega_ci = None
    rows = _complete(values)
    if omega is not None and omega_resamples:
        rng = np.random.default_rng(seed)
        draws = [
            mcdonald_omega(rows[rng.integers(0, len(rows), len(rows))])
            for _ in range(omega_resamples)
        ]
        kept = [d for d in draws if d is not None]
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


def position_bias(m: AnswerMatrix) -> tuple[float | None, list[list[float | None]]]:
    """The index, and the option × position table of mean choice probability (heat map)."""
    answered = m.weight > 0
    if not answered.any():
        return None, []
    n = m.by_position.shape[-1]
    marginal = m.by_position[answered].mean(axis=0)
    index = 0.5 * np.abs(marginal - 1.0 / n).sum() / (1.0 - 1.0 / n)
    # table[o, p]: mean probability of choosing option o when it was shown at position p
    total, count = np.zeros((n, n)), np.zeros((n, n))
    for r, j in zip(*np.nonzero(answered), strict=True):
        for pos, option in enumerate(m.orders[r, j]):
            total[option, pos] += m.by_position[r, j, pos]
            count[option, pos] += 1
    table = [
        [float(total[o, p] / count[o, p]) if count[o, p] else None for p in range(n)]
        for o in range(n)
    ]
    return float(index), table


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


def content_sensitivity(raw: np.ndarray) -> float | None:
    """η² of a one-way design: items as groups, respondents' raw answers as observations."""
    cells = [(j, x) for j in range(raw.shape[1]) for x in raw[:, j] if np.isfinite(x)]
    if len({j for j, _ in cells}) < 2 or len(cells) < 3:
        return None
    values = np.array([x for _, x in cells])
    total = ((values - values.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    between = sum(
        len(group) * (group.mean() - values.mean()) ** 2
        for group in (raw[:, j][np.isfinite(raw[:, j])] for j in range(raw.shape[1]))
        if len(group)
    )
    return float(between / total)


def fleiss_kappa(m: AnswerMatrix) -> float | None:
    """Agreement between repeats (respondents) on each item's modal choice (canonical option)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as fk

    answered = m.weight > 0
    complete = answered.all(axis=1)
    if complete.sum() < 2:
        return None
    choices = m.by_option[complete].argmax(axis=-1)  # (R, I)
    n = m.by_option.shape[-1]
    table = np.stack([(choices == k).sum(axis=0) for k in range(n)], axis=1)  # items × options
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = fk(table, method="fleiss")
    return float(kappa) if np.isfinite(kappa) else None


def verdict(
    *,
    valid_rate: float,
    position: float | None,
    acquiescence_index: float | None,
    content: float | None,
    alpha: float | None,
    n_orders: int,
) -> tuple[Validity, list[str]]:
    """`ok`, `weak` or `no_signal`, with the reasons in words for the report."""
    no_signal, weak = [], []
    if valid_rate < VALID_NO_SIGNAL:
        no_signal.append(f"only {valid_rate:.0%} of answers chose a valid option")
    elif valid_rate < VALID_WEAK:
        weak.append(f"only {valid_rate:.0%} of answers chose a valid option")
    # Identical answers to every statement carry no trait signal — unless respondents (prompt
    # variants) move the dimension's items together for a reason other than position: a
    # position-driven respondent moves every item with the order, which inflates α too.
    positional = position is not None and position > POSITION_BIAS_WEAK
    reliable = (alpha or 0.0) >= ALPHA_RELIABLE and not positional
    if content is not None and content < CONTENT_NO_SIGNAL and not reliable:
        no_signal.append(
            f"answers barely depend on the statement asked (content sensitivity {content:.2f})"
        )
    if n_orders >= 2 and position is not None and position > POSITION_BIAS_WEAK:
        weak.append(
            f"this score reflects option position, not the trait (position bias {position:.2f})"
        )
    if acquiescence_index is not None and abs(acquiescence_index) > ACQUIESCENCE_WEAK:
        side = "agrees" if acquiescence_index > 0 else "disagrees"
        weak.append(
            f"the model {side} with statements and their reversals alike "
            f"(acquiescence {acquiescence_index:+.2f})"
        )
    if n_orders < 2:
        weak.append("asked in one option order: position and content cannot be separated")
    if no_signal:
        return "no_signal", no_signal + weak
    return ("weak", weak) if weak else ("ok", [])
