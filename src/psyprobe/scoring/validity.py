"""Construct validity over the respondent population: multitrait-multimethod (MTMM) and
criterion correlations.

MTMM (Campbell & Fiske 1959), as PsyBORGS reports it for LLMs: two instruments that measure the
same constructs (BFI-44 and IPIP-50) answered by the same respondents. Convergent r (the same
construct, two measures) should be high, and higher than every discriminant r (different
constructs) in its row and column. Criterion: personas that name a level of a Big Five domain
should score higher (or lower) on the matching dimension.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel

from psyprobe.instruments import Instrument
from psyprobe.scoring.matrix import AnswerMatrix

CONVERGENT_R = 0.5


class Correlation(BaseModel):
    r: float | None
    ci95: tuple[float, float] | None
    n: int


class Convergence(BaseModel):
    """One construct measured by two instruments on the same respondents."""

    trait: str  # the construct both measure
    a: str  # "bfi/Extraversion"
    b: str  # "ipip50/Extraversion"
    r: Correlation  # signed so that agreement is positive
    discriminant_max: float | None  # largest |r| of either side with another construct
    ok: bool | None  # r ≥ 0.5 and above every discriminant |r|; None: not computable


def correlate(x: np.ndarray, y: np.ndarray) -> Correlation:
    """Pearson r with a Fisher-z 95 % CI; None where either side does not vary."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 4 or x.std() < 1e-9 or y.std() < 1e-9:
        return Correlation(r=None, ci95=None, n=n)
    r = float(np.clip(np.corrcoef(x, y)[0, 1], -0.999999, 0.999999))
    half = 1.96 / np.sqrt(n - 3)
    ci = (float(np.tanh(np.arctanh(r) - half)), float(np.tanh(np.arctanh(r) + half)))
    return Correlation(r=r, ci95=ci, n=n)


def _by_respondent(m: AnswerMatrix, dimension: str) -> dict[tuple[int, int], float]:
    """Each respondent's mean keyed answer on one dimension (NaN where none was valid)."""
    cols = m.columns(dimension)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.nanmean(m.keyed[:, cols], axis=1) if cols else np.array([])
    return dict(zip(m.respondents, values.tolist(), strict=True))


def _aligned(
    a: dict[tuple[int, int], float], b: dict[tuple[int, int], float]
) -> tuple[np.ndarray, np.ndarray]:
    common = sorted(set(a) & set(b))
    return np.array([a[k] for k in common]), np.array([b[k] for k in common])


Side = dict[str, tuple[str, int]]  # dimension -> (construct, direction)
Scores = dict[str, dict[tuple[int, int], float]]  # dimension -> respondent -> score


def _signed(
    scores_a: Scores, side_a: Side, da: str, scores_b: Scores, side_b: Side, db: str
) -> Correlation:
    """r between two dimensions, signed so that measuring the same pole reads positive."""
    c = correlate(*_aligned(scores_a[da], scores_b[db]))
    sign = side_a[da][1] * side_b[db][1]
    if c.r is None or c.ci95 is None:
        return c
    lo, hi = sorted((sign * c.ci95[0], sign * c.ci95[1]))
    return Correlation(r=sign * c.r, ci95=(lo, hi), n=c.n)


def mtmm(measured: dict[str, tuple[Instrument, AnswerMatrix]]) -> list[Convergence]:
    """Convergent and discriminant r for every construct two instruments share."""
    names = sorted(measured)
    out = []
    for i, name_a in enumerate(names):
        for name_b in names[i + 1 :]:
            (inst_a, m_a), (inst_b, m_b) = measured[name_a], measured[name_b]
            side_a = {d: inst_a.construct_of(d) for d in m_a.dimensions}
            side_b = {d: inst_b.construct_of(d) for d in m_b.dimensions}
            scores_a = {d: _by_respondent(m_a, d) for d in side_a}
            scores_b = {d: _by_respondent(m_b, d) for d in side_b}
            for da, (construct, _) in side_a.items():
                for db in (d for d in side_b if side_b[d][0] == construct):
                    conv = _signed(scores_a, side_a, da, scores_b, side_b, db)
                    others = [
                        _signed(scores_a, side_a, da, scores_b, side_b, x)
                        for x in side_b
                        if side_b[x][0] != construct
                    ] + [
                        _signed(scores_a, side_a, x, scores_b, side_b, db)
                        for x in side_a
                        if side_a[x][0] != construct
                    ]
                    off = [abs(c.r) for c in others if c.r is not None]
                    worst = max(off) if off else None
                    ok = (
                        None
                        if conv.r is None
                        else conv.r >= CONVERGENT_R and (worst is None or conv.r > worst)
                    )
                    out.append(
                        Convergence(
                            trait=construct,
                            a=f"{name_a}/{da}",
                            b=f"{name_b}/{db}",
                            r=conv,
                            discriminant_max=worst,
                            ok=ok,
                        )
                    )
    return out


def criterion(
    m: AnswerMatrix, instrument: Instrument, dimension: str, markers: dict[int, dict[str, int]]
) -> Correlation | None:
    """r between the level a respondent's persona names for the construct (−1, 0, +1) and the
    respondent's score; None where no persona names it."""
    construct, sign = instrument.construct_of(dimension)
    named = {key: sign * markers.get(key[0], {}).get(construct, 0) for key in m.respondents}
    if not any(named.values()):
        return None
    scores = _by_respondent(m, dimension)
    x, y = _aligned({k: float(v) for k, v in named.items()}, scores)
    return correlate(x, y)
