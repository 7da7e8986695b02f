"""What a population's size buys: respondents vs CI width vs the verdict's accuracy (#35).

The oracle of tests/test_rigor.py (simulated respondents whose true scores are known), through
the real runner, store and scoring, on SD-3 + BFI under the default balance (rotate):
  - a true trait with spread between respondents, over several population draws: the mean
    width of the 95 % CIs, how often they cover the population's true score, and the share of
    dimensions judged ``ok`` (all of them should be);
  - every response style with no trait behind it: the share of dimensions certified ``ok``
    (none should be).

    python bench/respondents.py                      # 5, 10, 15, 20, 30 respondents
    python bench/respondents.py --sizes 10 20 --draws 4
    python bench/respondents.py --sizes 70 140 280 --spread persona [--rows] [--no-styles]

``--spread persona``: the trait's spread between respondents is their persona's (one level a
persona, shared by the framings it returns with past the bank's 70) instead of each
respondent's own. ``--rows``: the CI bootstraps respondents one by one, as before personas
were drawn together, to show what that did.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from psyprobe.scoring import score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_rigor import STYLES, TRAIT, measure, true_scores, verdicts

INSTRUMENTS = ("sd3", "bfi")


def trait_row(size: int, draws: int, folder: Path, spread: str) -> tuple[float, float, float]:
    """(mean CI width, CI coverage, share judged ok) of a true trait over ``draws``."""
    widths, covered, ok, total = [], 0, 0, 0
    for draw in range(draws):
        spec = f"{TRAIT},{spread}=0.6,noise=0.7,seed={draw}"
        scores = measure(folder, spec, instruments=INSTRUMENTS, respondents=size)
        for name, s in scores.items():
            truth = true_scores(spec, name)
            for dim, d in s.dimensions.items():
                assert d.ci95 is not None
                widths.append(d.ci95[1] - d.ci95[0])
                covered += d.ci95[0] <= truth[dim] <= d.ci95[1]
                ok += d.validity == "ok"
                total += 1
    return float(np.mean(widths)), covered / total, ok / total


def styles_certified(size: int, folder: Path) -> tuple[int, int]:
    """(dimensions certified ok, dimensions judged) over every response style."""
    certified, total = 0, 0
    for style in STYLES.values():
        judged = verdicts(measure(folder, style, instruments=INSTRUMENTS, respondents=size))
        certified += sum(v == "ok" for v in judged.values())
        total += len(judged)
    return certified, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 15, 20, 30])
    parser.add_argument("--draws", type=int, default=6, help="population draws of the trait")
    parser.add_argument("--spread", choices=["respondent", "persona"], default="respondent")
    parser.add_argument("--rows", action="store_true", help="bootstrap respondents one by one")
    parser.add_argument("--no-styles", action="store_true", help="the trait's rows alone")
    args = parser.parse_args()
    spread = "spread" if args.spread == "respondent" else "persona_spread"
    if args.rows:
        score.clusters = lambda m, personas: np.arange(len(m.respondents))
    print(f"SD-3 + BFI, rotate; a true trait over {args.draws} population draws, its spread "
          f"the {args.spread}'s; {len(STYLES)} response styles; the CI's bootstrap draws "
          f"{'respondents' if args.rows else 'personas'}")  # fmt: skip
    print("respondents  prompts  CI width  CI coverage  trait judged ok  styles certified ok")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, coverage, ok = trait_row(size, args.draws, Path(tmp), spread)
            styles = "–"
            if not args.no_styles:
                certified, judged = styles_certified(size, Path(tmp))
                styles = f"{certified:3d} of {judged}"
            print(
                f"{size:11d}  {71 * size:7d}  {width:8.3f}  {coverage:11.1%}  {ok:15.1%}  " + styles
            )


if __name__ == "__main__":
    main()
