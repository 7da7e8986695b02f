"""α's 95 % CI when a persona's respondents come together: coverage of the known population α.

The oracle of tests/test_rigor.py (``two_stage``): 8 parallel items, each respondent's true
score its persona's (N(0, 1)), errors of variance 2, so the population's α is 0.8. Per design
(personas × respondents a persona), over many samples: how often α's CI covers 0.8 and how wide
it is, with the bootstrap drawing personas whole (``scoring.diagnostics.reliability``'s
clusters) and counting respondents one by one (as before #35's fifth round).

    python bench/reliability_ci.py                 # 35×4, 70×2, 70×4, 140×1, 200 samples each
    python bench/reliability_ci.py --samples 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from psyprobe.scoring.diagnostics import reliability

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_rigor import two_stage

DESIGNS = ((35, 4), (70, 2), (70, 4), (140, 1))
TRUTH = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    items = [str(j) for j in range(8)]
    header = "personas × each  respondents  personas whole: coverage  width"
    print(header + "   one by one: coverage  width")
    for personas, each in DESIGNS:
        rng = np.random.default_rng(0)
        groups = np.repeat(np.arange(personas), each)
        covered = {"whole": 0, "rows": 0}
        widths: dict[str, list[float]] = {"whole": [], "rows": []}
        for sample in range(args.samples):
            answers = two_stage(personas, each, rng)
            for name, drawn in (("whole", groups), ("rows", None)):
                ci = reliability(answers, items, sample, 0, drawn).alpha_ci95
                assert ci is not None
                covered[name] += ci[0] <= TRUTH <= ci[1]
                widths[name].append(ci[1] - ci[0])
        print(
            f"{personas:8d} × {each}  {personas * each:11d}  "
            f"{covered['whole'] / args.samples:24.1%}  {np.mean(widths['whole']):5.3f}   "
            f"{covered['rows'] / args.samples:20.1%}  {np.mean(widths['rows']):5.3f}"
        )


if __name__ == "__main__":
    main()
