"""α's and ω's 95 % CIs against the known population values: how often they cover them, and how
wide they are.

Two oracles from tests/test_rigor.py, 8 items each: ``two_stage`` (parallel items, each
respondent's true score its persona's N(0, 1), errors of variance 2: α = 0.8) and
``skewed_likert`` (the same structure cut into 5 uneven categories, 42 % of answers "1": its
α taken from 200,000 respondents). Per design (personas × respondents a persona), over many
samples, three intervals from the same resamples of personas drawn whole:
- *bootstrap-t*: psyprobe's (``scoring.diagnostics``), studentized on log(1 − α);
- *percentile*: psyprobe's before this round;
- *Feldt*: pingouin's (psyprobe's before #35's sixth round), F-based, one row a respondent.

With ``--omega``, ω's instead, on those two oracles and ``congeneric`` (unequal loadings, where
ω is above α), three intervals from the same 400 resamples:
- *psyprobe*: ``scoring.diagnostics``'s (the percentile where each respondent is its own
  persona, the bootstrap-t where personas' respondents answer differently);
- *percentile*: psyprobe's before, in every design;
- *bootstrap-t*: log(1 − ω) studentized by α's SE, in every design.

    python bench/reliability_ci.py                 # 200 samples a design
    python bench/reliability_ci.py --samples 400
    python bench/reliability_ci.py --omega
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg

from psyprobe.scoring.diagnostics import (
    ALPHA_BOOTSTRAP,
    OMEGA_BOOTSTRAP,
    _alphas,
    _drawn_whole,
    _omega_bootstrap_t,
    _omega_draws,
    mcdonald_omega,
    reliability,
)
from psyprobe.stats import percentile_ci

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_rigor import CONGENERIC_OMEGA, congeneric, skewed_likert, two_stage

DESIGNS = ((20, 1), (35, 1), (140, 1), (10, 2), (20, 4), (35, 4), (70, 4))
METHODS = ("bootstrap-t", "percentile", "Feldt")
OMEGA_METHODS = ("psyprobe", "percentile", "bootstrap-t")


def intervals(rows: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, tuple[float, float]]:
    items = [str(j) for j in range(rows.shape[1])]
    ci = reliability(rows, items, seed, 0, groups).alpha_ci95
    # the same resamples reliability drew (its generator, seeded alike, draws α's first
    # when ω has no resamples)
    weights = _drawn_whole(groups, np.random.default_rng(seed), ALPHA_BOOTSTRAP)
    before = percentile_ci(_alphas(rows, weights, groups)[0], ALPHA_BOOTSTRAP // 2)
    feldt = pg.cronbach_alpha(pd.DataFrame(rows))[1]
    assert ci is not None and before is not None
    return dict(zip(METHODS, (ci, before, (float(feldt[0]), float(feldt[1]))), strict=True))


def omega_intervals(
    rows: np.ndarray, groups: np.ndarray, seed: int
) -> dict[str, tuple[float, float] | None]:
    items = [str(j) for j in range(rows.shape[1])]
    ci = reliability(rows, items, seed, OMEGA_BOOTSTRAP, groups).omega_ci95
    omega = mcdonald_omega(rows)
    if omega is None:  # no ω, no interval: a miss for every method
        return dict.fromkeys(OMEGA_METHODS)
    # the same resamples reliability drew (its generator draws ω's first)
    weights = _drawn_whole(groups, np.random.default_rng(seed), OMEGA_BOOTSTRAP)
    draws = _omega_draws(rows, weights)
    t = _omega_bootstrap_t(rows, groups, omega, weights, draws)
    before = percentile_ci(draws, OMEGA_BOOTSTRAP // 2)
    return dict(zip(OMEGA_METHODS, (ci, before, t), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--omega", action="store_true", help="ω's CIs instead of α's")
    args = parser.parse_args()
    methods = OMEGA_METHODS if args.omega else METHODS
    print(
        f"{'oracle':14} personas × each"
        + "".join(f"{m + ' cover':>20} {'width':>6}" for m in methods)
    )
    for oracle in (
        (two_stage, congeneric, skewed_likert) if args.omega else (two_stage, skewed_likert)
    ):
        population = oracle(200_000, 1, np.random.default_rng(9))
        if oracle is two_stage:
            truth: float | None = 0.8  # parallel items: ω = α
        elif oracle is congeneric:
            truth = CONGENERIC_OMEGA
        elif args.omega:
            truth = mcdonald_omega(population)
        else:
            truth = float(pg.cronbach_alpha(pd.DataFrame(population))[0])
        assert truth is not None
        for personas, each in DESIGNS:
            rng, groups = np.random.default_rng(0), np.repeat(np.arange(personas), each)
            covered = dict.fromkeys(methods, 0)
            widths: dict[str, list[float]] = {m: [] for m in methods}
            for sample in range(args.samples):
                answers = oracle(personas, each, rng)
                found = (omega_intervals if args.omega else intervals)(answers, groups, sample)
                for method, ci in found.items():
                    if ci is not None:
                        covered[method] += ci[0] <= truth <= ci[1]
                        widths[method].append(ci[1] - ci[0])
            print(
                f"{oracle.__name__:14} {personas:8d} × {each:<4}"
                + "".join(
                    f"{covered[m] / args.samples:20.1%} {np.mean(widths[m]):6.3f}" for m in methods
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
