"""α's 95 % CI against a known population α: how often it covers it, and how wide it is.

Two oracles from tests/test_rigor.py, 8 items each: ``two_stage`` (parallel items, each
respondent's true score its persona's N(0, 1), errors of variance 2: α = 0.8) and
``skewed_likert`` (the same structure cut into 5 uneven categories, 42 % of answers "1": its
α taken from 200,000 respondents). Per design (personas × respondents a persona), over many
samples, three intervals from the same resamples of personas drawn whole:
- *bootstrap-t*: psyprobe's (``scoring.diagnostics``), studentized on log(1 − α);
- *percentile*: psyprobe's before this round;
- *Feldt*: pingouin's (psyprobe's before #35's sixth round), F-based, one row a respondent.

    python bench/reliability_ci.py                 # 200 samples a design
    python bench/reliability_ci.py --samples 400
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg

from psyprobe.scoring.diagnostics import ALPHA_BOOTSTRAP, _alphas, _drawn_whole, reliability
from psyprobe.stats import percentile_ci

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_rigor import skewed_likert, two_stage

DESIGNS = ((20, 1), (35, 1), (140, 1), (10, 2), (20, 4), (35, 4), (70, 4))
METHODS = ("bootstrap-t", "percentile", "Feldt")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    print(
        f"{'oracle':14} personas × each"
        + "".join(f"{m + ' cover':>20} {'width':>6}" for m in METHODS)
    )
    for oracle in (two_stage, skewed_likert):
        truth = (
            0.8
            if oracle is two_stage
            else float(
                pg.cronbach_alpha(pd.DataFrame(oracle(200_000, 1, np.random.default_rng(9))))[0]
            )
        )
        for personas, each in DESIGNS:
            rng, groups = np.random.default_rng(0), np.repeat(np.arange(personas), each)
            covered = dict.fromkeys(METHODS, 0)
            widths: dict[str, list[float]] = {m: [] for m in METHODS}
            for sample in range(args.samples):
                for method, (low, high) in intervals(
                    oracle(personas, each, rng), groups, sample
                ).items():
                    covered[method] += low <= truth <= high
                    widths[method].append(high - low)
            print(
                f"{oracle.__name__:14} {personas:8d} × {each:<4}"
                + "".join(
                    f"{covered[m] / args.samples:20.1%} {np.mean(widths[m]):6.3f}" for m in METHODS
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
