"""What scoring and conversion cost, before and after the changes of #31, side by side.

- ω's bootstrap CI (``scoring.diagnostics.reliability``): 100 resamples, each a one-factor fit;
  before, scikit-learn's ``FactorAnalysis`` one resample at a time; now all resamples in one
  batched fit. Both on the same data; the ω values of the two fits are printed too.
- GGUF → transformers conversion (``models.hf.saved_model_dir``): transformers parses the file's
  metadata for the tokenizer, the config and the weights; before, three times; now once.

    python bench/scoring.py [--skip-conversion]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from psyprobe.scoring.diagnostics import _complete, _standardised, reliability


def sklearn_omegas(rows: np.ndarray, resamples: int, seed: int) -> list[float]:
    """The bootstrap as it was: one scikit-learn fit (its default randomized SVD) a resample."""
    from sklearn.decomposition import FactorAnalysis

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        z = _standardised(rows[rng.integers(0, len(rows), len(rows))])
        if z is None:
            continue
        fa = FactorAnalysis(n_components=1, random_state=0).fit(z)
        loadings = fa.components_[0] * (-1 if fa.components_[0].sum() < 0 else 1)
        common = loadings.sum() ** 2
        out.append(float(common / (common + fa.noise_variance_.sum())))
    return out


def omega_bench() -> None:
    rng = np.random.default_rng(0)
    warm = rng.normal(size=(20, 5))
    sklearn_omegas(warm, 2, 0), reliability(warm, list("abcde"), 0)  # imports, not timed
    print("ω with its bootstrap CI (100 resamples), one dimension")
    for respondents, items in [(20, 9), (20, 10), (250, 9)]:
        factor = rng.normal(size=(respondents, 1))
        values = np.clip(np.round(3 + factor + rng.normal(size=(respondents, items))), 1, 5)
        rows = _complete(values)
        start = time.perf_counter()
        before = sklearn_omegas(rows, 100, 0)
        t_before = time.perf_counter() - start
        start = time.perf_counter()
        now = reliability(values, [str(j) for j in range(items)], 0)
        t_now = time.perf_counter() - start
        lo, hi = np.percentile(before, [2.5, 97.5])
        print(
            f"  {respondents:3d} respondents × {items} items: scikit-learn a resample "
            f"{t_before * 1000:7.1f} ms (CI {lo:.3f}–{hi:.3f}); batched {t_now * 1000:6.1f} ms "
            f"(CI {now.omega_ci95[0]:.3f}–{now.omega_ci95[1]:.3f}, with α and item checks); "
            f"{t_before / t_now:5.1f}x"
        )


def conversion_bench() -> None:
    from psyprobe.models import ALIASES
    from psyprobe.models.hf import load as hf_module

    print("GGUF → transformers conversion (a fresh cache each time)")
    for alias in ("smollm2", "gemma3-270m"):
        path = ALIASES[alias].path()
        times = {}
        for label, shared in (("three parses", False), ("one parse", True)):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["PSYPROBE_CACHE"] = cache
                keep = hf_module._one_gguf_reader
                if not shared:  # the conversion as it was: transformers parses each time
                    hf_module._one_gguf_reader = contextlib.nullcontext
                try:
                    start = time.perf_counter()
                    hf_module.saved_model_dir(path)
                    times[label] = time.perf_counter() - start
                finally:
                    hf_module._one_gguf_reader = keep
        print(
            f"  {alias:12s} three parses {times['three parses']:5.1f} s, one parse "
            f"{times['one parse']:5.1f} s ({times['three parses'] / times['one parse']:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-conversion", action="store_true")
    args = parser.parse_args()
    cpu = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in x)
    print(f"{os.cpu_count()} CPUs, {cpu.split(':')[1].strip()}")
    omega_bench()
    if not args.skip_conversion:
        conversion_bench()


if __name__ == "__main__":
    main()
