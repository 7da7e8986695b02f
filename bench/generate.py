"""Sampled answers at the machine's limit: study A's generate protocol and the safety suite.

One run measures, side by side on the same machine and moment:
  1. the fp32 matrix-multiply rate and from it the decode compute limit for SmolLM2-135M
     (0.27 GFLOP per generated token, the vocabulary projection included);
  2. study A's generate protocol — SD-3 + BFI, every item under 120 option orders, 3 samples at
     temperature 0.7, 25,560 answers — on a 10 % slice with the same sharing structure (the
     same 12 random orders for every item: ``--orders random:12``, 2,556 answers), through the
     transformers backend, projected ×10:
       a. one at a time — the code before batching (``--before SRC``), on a sub-sample;
       b. batched, full-length answers (``--full-answers``);
       c. batched + stop-when-read (the default);
       d. c in an earlier batched tree (``--previous SRC``), to measure a change to batching;
     with the scores and CIs of b and c, how many answers batch rounding drew apart, and how
     many of the rest read differently (must be 0);
  3. the safety suite at ``--safety-limit`` items per suite (greedy, 96 tokens), before and
     after, through the command line, with how many answers are identical (0: skipped).

For b and c it prints a floor: how long the matrix products of the tokens the model ran (each
shared prompt prefix once, every decoded token) take at the square-matmul rate — no float32
path that runs those tokens can be faster on this machine.

    git worktree add /tmp/before REV    # the code before batching (41ee291)
    git worktree add /tmp/previous REV  # an earlier batched version
    python bench/generate.py --before /tmp/before/src --previous /tmp/previous/src
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import psyprobe
from psyprobe.models.hf import HFModel
from psyprobe.models.registry import ALIASES
from psyprobe.records import ResponseRecord
from psyprobe.runs.store import ResponseStore

SLICE = dict(
    instruments=["sd3", "bfi"],
    orders="random:12",
    respondents=0,
    mode="generate",
    samples=3,
    temperature=0.7,
    max_tokens=48,
    retries=0,
)
FULL_ANSWERS = 71 * 120 * 3
GFLOP_PER_TOKEN = 0.27  # SmolLM2-135M: 2 × (non-embedding + vocabulary projection) parameters
GFLOP_PER_PROMPT_TOKEN = 0.212  # ... without the vocabulary projection (run at the last token only)

# Today's one-at-a-time path, run in the tree given by --before: HFModel.generate per prompt.
ONE_AT_A_TIME = """
import json, sys, time
from psyprobe.models.hf import HFModel
from psyprobe.models.registry import ALIASES
from psyprobe.models.base import Sampling
from psyprobe.prompting import Prompt
asked = json.loads(sys.stdin.read())
model = HFModel.load("hf:smollm2", ALIASES["smollm2"].path())
start = time.perf_counter()
for a in asked:
    model.generate([Prompt(a["system"], a["user"], tuple(a["labels"]))], Sampling(), [a["seed"]])
print(time.perf_counter() - start)
"""


def rate(product: Callable[[], object], flops: float, rounds: int = 5) -> float:
    """GFLOP/s (or GOP/s) of ``product``, the best of several rounds of about 0.2 s: one round
    alone read 89 GFLOP/s where another run on the same machine, minutes before, read 136
    (bench/RESULTS.md)."""
    start = time.perf_counter()
    product()
    repeats = max(1, round(0.2 / (time.perf_counter() - start)))
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            product()
        best = max(best, flops * repeats / (time.perf_counter() - start) / 1e9)
    return best


def matmul_gflops(n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return rate(lambda: a @ b, 2 * n**3)


def records(folder: Path) -> list[ResponseRecord]:
    with ResponseStore(folder / "responses.sqlite") as store:
        return list(store.records())


# The slice with stop-when-read in another tree (--previous), timed the same way.
PREVIOUS = """
import json, sys, time
import psyprobe
slice = json.loads(sys.argv[1])
start = time.perf_counter()
psyprobe.measure("hf:smollm2", out=sys.argv[2], stop_when_read=True, **slice)
print(time.perf_counter() - start)
"""


def measure_slice(folder: Path, stop_when_read: bool) -> Slice:
    start = time.perf_counter()
    model = HFModel.load("hf:smollm2", ALIASES["smollm2"].path())
    loaded = time.perf_counter() - start
    results = psyprobe.measure(model, out=folder, stop_when_read=stop_when_read, **SLICE)
    took = time.perf_counter() - start
    return Slice(took, loaded, results, records(folder), model.tokens_evaluated)


@dataclass
class Slice:
    """One timed run of the slice: seconds in all, of them loading the model (once per run,
    so the projection counts it once), the results and records, and the tokens the model ran
    (each shared prompt prefix once, and every decoded token)."""

    seconds: float
    load: float
    results: psyprobe.RunResults
    records: list[ResponseRecord]
    ran: int

    def projected_min(self) -> float:
        per_answer = (self.seconds - self.load) / len(self.records)
        return (self.load + per_answer * FULL_ANSWERS) / 60


def cli(src: str | None, *args: str) -> float:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "psyprobe", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def safety_texts(folder: Path) -> dict[str, str | None]:
    rows = [json.loads(line) for line in (folder / "safety-responses.jsonl").open()]
    return {f"{r['task']}|{r['item']}": r["answer"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="src directory of the code before (git worktree)")
    parser.add_argument("--previous", help="src directory of an earlier batched version")
    parser.add_argument("--one-at-a-time", type=int, default=48, help="answers, before")
    parser.add_argument("--safety-limit", type=int, default=50, help="0: no safety suite")
    args = parser.parse_args()
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), platform.processor()
    )
    print(f"{datetime.date.today()}  {cpu}, {os.cpu_count()} cores, torch {torch.__version__}")
    gflops = matmul_gflops()
    limit = gflops / GFLOP_PER_TOKEN
    print(f"fp32 matmul {gflops:.0f} GFLOP/s -> decode compute limit {limit:.0f} tokens/s")
    work = Path(tempfile.mkdtemp(prefix="psyprobe-bench-"))

    print("\nstudy A generate protocol, 10 % slice (SD-3 + BFI x 12 orders x 3 samples):")
    full = measure_slice(work / "full", stop_when_read=False)
    short = measure_slice(work / "short", stop_when_read=True)
    for name, run in (("batched", full), ("+ stop-when-read", short)):
        answers = len(run.records)
        generated = sum(r.tokens or 0 for r in run.records)
        # The matrix products of these tokens alone, at the square-matmul rate (the floor).
        floor = (
            run.ran * GFLOP_PER_PROMPT_TOKEN
            + generated * (GFLOP_PER_TOKEN - GFLOP_PER_PROMPT_TOKEN)
        ) / gflops
        print(
            f"  {name:<18} {answers} answers in {run.seconds:6.1f} s "
            f"({answers / run.seconds:5.1f}/s), {generated / answers:4.1f} tokens each, "
            f"{generated / run.seconds:5.0f} generated tokens/s = "
            f"{generated / run.seconds / limit:.2f} of the limit; full protocol ≈ "
            f"{run.projected_min():5.1f} min (the model load, {run.load:.1f} s, once)\n"
            f"  {'':<18} {run.ran} tokens run: matrix products alone {floor:5.1f} s at the "
            f"matmul rate ({floor / run.seconds:.2f} of the time); full protocol ≥ "
            f"{floor * FULL_ANSWERS / answers / 60:4.1f} min"
        )
    if args.previous:
        proc = subprocess.run(
            [sys.executable, "-c", PREVIOUS, json.dumps(SLICE), str(work / "previous")],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": args.previous},
        )  # fmt: skip
        took = float(proc.stdout.strip().splitlines()[-1])
        answers = len(short.records)
        print(
            f"  {'previous batched':<18} {answers} answers in {took:6.1f} s "
            f"({answers / took:5.1f}/s), the model load included; "
            f"now {took / short.seconds:.2f}x faster"
        )
    slots = ["instrument", "item", "order_index", "sample"]
    reads = (
        full.results.answers()
        .merge(short.results.answers(), on=slots, suffixes=("_full", "_short"))
        .fillna({"chosen_full": "", "chosen_short": ""})
    )
    # The two runs batch their sequences differently (answers end at other steps), and float32
    # rounding under another batch can tip a sampled draw: only where every draw agrees (the
    # stopped answer begins the full one) does a different read mean stop-when-read changed it.
    same_draws = reads.apply(lambda r: r.raw_text_full.startswith(r.raw_text_short), axis=1)
    read_apart = (reads.status_full != reads.status_short) | (
        reads.chosen_full != reads.chosen_short
    )
    print(
        f"  answers drawn apart by batch rounding: {int((~same_draws).sum())} of {len(reads)} "
        f"({int((read_apart & ~same_draws).sum())} of them read differently)\n"
        f"  answers read differently by stop-when-read: {int((read_apart & same_draws).sum())} "
        f"of {int(same_draws.sum())} (must be 0)"
    )
    print("  scores (batched | + stop-when-read), 95 % CI:")
    a, b = full.results.to_pandas(), short.results.to_pandas()
    for (inst, dim), row in a.iterrows():
        other = b.loc[(inst, dim)]
        print(
            f"    {inst}:{dim:<16} {row.score:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}] | "
            f"{other.score:.3f} [{other.ci_low:.3f}, {other.ci_high:.3f}]"
        )

    if args.before:
        sample = sorted(full.records, key=lambda r: r.key)[: args.one_at_a_time]
        asked = [
            {"system": r.system, "user": r.user, "labels": r.labels, "seed": r.seed} for r in sample
        ]
        proc = subprocess.run(
            [sys.executable, "-c", ONE_AT_A_TIME], input=json.dumps(asked), text=True,
            capture_output=True, check=True, env={**os.environ, "PYTHONPATH": args.before},
        )  # fmt: skip
        alone_s = float(proc.stdout.strip().splitlines()[-1])
        per = alone_s / len(sample)
        print(
            f"  one at a time (before): {len(sample)} answers in {alone_s:.1f} s "
            f"({per:.2f} s each); full protocol ≈ {per * FULL_ANSWERS / 60:.0f} min; "
            f"batched + stop-when-read is {per * len(short.records) / short.seconds:.1f}x faster"
        )

    if not args.safety_limit:
        return
    print(f"\nsafety suite, --limit {args.safety_limit}, hf:smollm2, greedy:")
    trees = {"after": None, **({"before": args.before} if args.before else {})}
    seconds: dict[str, float] = {}
    texts: dict[str, dict[str, str | None]] = {}
    for name, src in trees.items():
        out = work / f"safety-{name}"
        seconds[name] = cli(src, "safety", "--model", "hf:smollm2", "--limit",
                            str(args.safety_limit), "--out", str(out))  # fmt: skip
        texts[name] = safety_texts(out)
        print(f"  {name:<7} {len(texts[name])} answers in {seconds[name]:6.1f} s")
    if args.before:
        same = sum(texts["after"][k] == v for k, v in texts["before"].items())
        print(
            f"  speed-up {seconds['before'] / seconds['after']:.1f}x; identical answers "
            f"{same} of {len(texts['before'])}"
        )


if __name__ == "__main__":
    main()
