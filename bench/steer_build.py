"""How long a steering vector takes to build on SmolLM2 (transformers, CPU), by stage.

Usage: python bench/steer_build.py [--layers 7,9,...] — prints load, prompt and build times.
The issue's target: a vector builds in ≤ 60 s on this machine.
"""

from __future__ import annotations

import argparse
import time

from psyprobe.editing import build_vector
from psyprobe.editing.contrast import contrast
from psyprobe.models import open_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dimension", default="bfi:Agreeableness")
    parser.add_argument("--layers", default="7,9,11,13,15,17,19,21")
    args = parser.parse_args()
    layers = [int(x) for x in args.layers.split(",")]
    t0 = time.perf_counter()
    hf = open_model("hf:smollm2")
    t1 = time.perf_counter()
    pairs = contrast(hf, args.dimension, ("high", "low"))
    t2 = time.perf_counter()
    for method in ("mean-diff", "pca"):
        start = time.perf_counter()
        build_vector(hf, pairs.positive, pairs.negative, layers, method)
        print(
            f"{method:9s}: {time.perf_counter() - start:6.1f} s for {len(pairs.positive)} pairs "
            f"× {len(layers)} layers"
        )
    print(f"model load {t1 - t0:.1f} s, contrast prompts {t2 - t1:.2f} s")


if __name__ == "__main__":
    main()
