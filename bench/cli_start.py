"""How long the command line takes to start: ``--help``, ``models`` and ``instruments list``.

Usage: python bench/cli_start.py [--tree NAME=SRC_DIR ...] [--repeats N]

Each tree is a ``src`` directory put first on PYTHONPATH (``git worktree add /tmp/old REV``
gives an earlier version's ``/tmp/old/src``); with none given, the installed psyprobe. Every
command is run ``--repeats`` times per tree, interleaved so that a busy moment hits all trees
alike; the median wall-clock seconds are printed side by side, with the ratio to the first tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["models"], ["instruments", "list"])


def once(src: str | None, args: list[str]) -> float:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "psyprobe", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", default=[], help="NAME=SRC_DIR")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    trees: dict[str, str | None] = dict(t.split("=", 1) for t in args.tree)
    if not trees:
        trees["installed"] = None
    for tree in trees.values():  # compile each tree's bytecode before anything is timed
        once(tree, ["--help"])
    print(f"{'command':<20}" + "".join(f"{name:>14}" for name in trees) + "   ratio")
    for command in COMMANDS:
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, src in trees.items():
                times[name].append(once(src, command))
        medians = [statistics.median(times[name]) for name in trees]
        ratio = "  ".join(f"{medians[0] / m:.1f}×" for m in medians[1:])
        print(f"{' '.join(command):<20}" + "".join(f"{m:>13.2f}s" for m in medians) + f"   {ratio}")


if __name__ == "__main__":
    main()
