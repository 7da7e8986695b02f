"""Time study A's protocol (SD-3 + BFI, every option order, logprob) on the embedded model.

Prints prompts/s of psyprobe's scoring path next to llama.cpp's raw prompt-processing rate
measured in the same run, so the two can be compared on the same machine and moment.

    python bench/study_a.py                 # the full protocol: 71 items × 120 orders
    python bench/study_a.py --orders latin  # a quicker look
    python bench/study_a.py --items 10      # the first 10 items of each instrument
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from psyprobe.instruments import load_instrument
from psyprobe.models.llamacpp import LlamaCppModel
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, build_prompts


def raw_prompt_rate(model: LlamaCppModel, n_tokens: int = 512, repeats: int = 3) -> float:
    """llama.cpp prompt processing: one long decode from an empty cache, best of a few."""
    llm = model._llm
    tokens = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 64)[:n_tokens]
    best = float("inf")
    for _ in range(repeats):
        llm.reset()
        model._cached.clear()
        start = time.perf_counter()
        llm.eval(tokens)
        best = min(best, time.perf_counter() - start)
    llm.reset()
    model._cached.clear()
    return len(tokens) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", default="all")
    parser.add_argument("--items", type=int, default=None, help="items per instrument")
    args = parser.parse_args()

    model = LlamaCppModel("smollm2", ALIASES["smollm2"].path())
    prompts = []
    for name in ("sd3", "bfi"):
        questions = load_instrument(name).questions()[: args.items]
        prompts += [
            p.prompt for p in build_prompts(name, questions, args.orders, TEMPLATES["study-a"])
        ]
    unshared = sum(model.count_tokens(p) for p in prompts)

    raw = raw_prompt_rate(model)
    start = time.perf_counter()
    model.option_probs(prompts)
    wall = time.perf_counter() - start

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; llama.cpp via llama-cpp-python")
    print(f"protocol: SD-3 + BFI, orders={args.orders}, items={args.items or 'all'}, logprob")
    print(
        f"prompts: {len(prompts)}  prompt tokens (unshared): {unshared}  "
        f"tokens evaluated: {model.tokens_evaluated}  "
        f"sharing ratio: {unshared / max(model.tokens_evaluated, 1):.2f}"
    )
    print(
        f"wall: {wall:.1f} s  prompts/s: {len(prompts) / wall:.2f}  "
        f"evaluated tokens/s: {model.tokens_evaluated / wall:.0f}  "
        f"effective (unshared) tokens/s: {unshared / wall:.0f}"
    )
    print(
        f"llama.cpp raw prompt processing: {raw:.0f} tokens/s  "
        f"(evaluated/raw = {model.tokens_evaluated / wall / raw:.2f})"
    )
    model.close()


if __name__ == "__main__":
    main()
