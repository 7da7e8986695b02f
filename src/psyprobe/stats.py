"""Interval estimates shared by every measure: a proportion with Wilson's interval, a percentile
bootstrap that says when it has too few answers, a difference of proportions with Newcombe's
interval, a bootstrap's percentile and studentized intervals, and the agreement of two raters
(Cohen's κ).

Neutral ground: safety's metrics and capability's accuracies both read from here, neither from
the other. The libraries are imported where they compute: the result types are read by the
command line at its start (the settings of capability live beside them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    import numpy as np


class Estimate(BaseModel):
    value: float | None
    ci95: tuple[float, float] | None
    n: int
    note: str | None = None  # why a CI is missing, where one would be expected


def proportion(flags: Sequence[bool]) -> Estimate:
    """Share of True with a Wilson interval (sound at n of a few and at rates near 0 or 1)."""
    n, k = len(flags), int(sum(flags))
    if n == 0:
        return Estimate(value=None, ci95=None, n=0)
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return Estimate(value=k / n, ci95=(float(low), float(high)), n=n)


# Below this many items a percentile bootstrap has too few distinct resamples to give a CI
# (n = 4 gives F1's [0, 0]): the CI is withheld and the estimate says so.
BOOTSTRAP_MIN_N = 10


def bootstrapped(value: float, boot: np.ndarray, n: int) -> Estimate:
    if n < BOOTSTRAP_MIN_N:
        note = f"no CI: {n} answers, a bootstrap needs at least {BOOTSTRAP_MIN_N}"
        return Estimate(value=value, ci95=None, n=n, note=note)
    import numpy as np

    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(value=value, ci95=(float(low), float(high)), n=n)


def percentile_ci(draws: np.ndarray, least: int = 1) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of a bootstrap's finite draws; None where fewer than
    ``least`` are finite (a statistic undefined in too many resamples has no interval)."""
    import numpy as np

    kept = draws[np.isfinite(draws)]
    if len(kept) < least:
        return None
    low, high = np.percentile(kept, [2.5, 97.5])
    return float(low), float(high)


def studentized_ci(
    estimate: float, se: float, draws: np.ndarray, draw_ses: np.ndarray, least: int = 1
) -> tuple[float, float] | None:
    """The bootstrap-t 95 % interval (Davison & Hinkley 1997, §5.2.1): estimate − t·se at the
    97.5th and 2.5th percentiles of t = (draw − estimate) / draw's SE over the resamples. It
    follows a skewed, biased sampling distribution where the percentile interval only mirrors
    it. None where the estimate's SE is not positive, or fewer than ``least`` resamples give a
    finite t (a resample with an SE of 0 gives none)."""
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        t = (draws - estimate) / draw_ses
    kept = t[np.isfinite(t)]
    if not se > 0 or not np.isfinite(se) or len(kept) < least:
        return None
    t_low, t_high = np.percentile(kept, [2.5, 97.5])
    return float(estimate - t_high * se), float(estimate - t_low * se)


class Agreement(BaseModel):
    n: int
    percent: float | None
    kappa: float | None


def agreement(a: Sequence[bool], b: Sequence[bool]) -> Agreement:
    if not a:
        return Agreement(n=0, percent=None, kappa=None)
    import numpy as np

    percent = float(np.mean(np.asarray(a) == np.asarray(b)))
    # kappa is undefined when both raters give one answer throughout
    from sklearn.metrics import cohen_kappa_score

    kappa = None if len(set(a) | set(b)) < 2 else float(cohen_kappa_score(a, b))
    return Agreement(n=len(a), percent=percent, kappa=None if kappa != kappa else kappa)


class Difference(BaseModel):
    """A difference of two shares (a − b) with Newcombe's hybrid-score 95 % interval."""

    value: float | None
    ci95: tuple[float, float] | None
    n_a: int
    n_b: int


def difference(a: Sequence[bool], b: Sequence[bool]) -> Difference:
    if not a or not b:
        return Difference(value=None, ci95=None, n_a=len(a), n_b=len(b))
    ka, kb = int(sum(a)), int(sum(b))
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(ka, len(a), kb, len(b), method="newcomb")
    return Difference(
        value=ka / len(a) - kb / len(b), ci95=(float(low), float(high)), n_a=len(a), n_b=len(b)
    )
