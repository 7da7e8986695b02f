"""Importing a survey of many models: a generated collection of N models × ~600 answers each
(SD-3 by 22 simulated respondents, orders rotating; every tenth model with a first-position
habit), imported and judged, and where the time goes.

    python bench/collected.py [--models 250] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from psyprobe.collected import import_collection
from psyprobe.report.models import ModelsTable
from test_collected import collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=250)
    parser.add_argument("--keep", type=Path, help="Keep the collection and import here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="psyprobe-bench-"))
    answers = root / "collection.jsonl"
    start = time.perf_counter()
    with answers.open("w") as fh:
        for k in range(args.models):
            habit = ",position_bias=3" if k % 10 == 9 else ""
            spec = f"sim:Machiavellianism={1.5 + 2 * k / args.models},spread=0.8,seed={k}{habit}"
            for row in collection(spec, f"model-{k:03d}", respondents=22):
                fh.write(json.dumps(row) + "\n")
    made = time.perf_counter() - start
    rows = sum(1 for _ in answers.open())
    start = time.perf_counter()
    import_collection([answers], root / "imported", ["sd3"])
    took = time.perf_counter() - start
    table = ModelsTable.load(root / "imported")
    verdicts = [s.validity for s in table.scores]
    mach = next(b for b in table.between if b.dimension == "Machiavellianism")
    print(f"{args.models} models, {rows:,} answers ({rows / args.models:.0f} a model)")
    print(f"  generating the collection: {made:.1f} s (not part of the import)")
    print(
        f"  import, scoring and judging every model, the table: {took:.1f} s "
        f"({1000 * took / args.models:.0f} ms a model)"
    )
    print(
        f"  verdicts: {verdicts.count('ok')} ok, {verdicts.count('weak')} weak, "
        f"{verdicts.count('no_signal')} no_signal; Machiavellianism between models "
        f"{mach.share:.2f} (CI {mach.ci95[0]:.2f}–{mach.ci95[1]:.2f})"  # type: ignore[index]
    )


if __name__ == "__main__":
    main()
