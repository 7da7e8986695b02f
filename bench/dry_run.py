"""How close ``--dry-run``'s time estimate comes to the run it forecasts (embedded model).

Usage: python bench/dry_run.py [--instrument sd3 ...] [--transformers]

For each design, on one loaded model (llama.cpp; with --transformers the transformers path and
next-token designs only, as an alias's generated answers come from llama.cpp): the dry run's
forecast (its calibration included), then the same measurement asked for real into a fresh
directory, its asking timed alone (no scoring), from a cold KV cache as a fresh run has. Prints
the estimate, the real time and their ratio side by side; the estimate is meant to be within a
fifth of the real time on an idle machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from population import embedded
from psyprobe.engine import Personality, asked_settings, personality_settings
from psyprobe.engine.forecast import forecast
from psyprobe.engine.measure import collect
from psyprobe.models import Model, open_model
from psyprobe.runs import ResponseStore
from psyprobe.runs.layout import Layout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformers", action="store_true")
    args, instruments, llama = embedded(parser)
    model: Model = llama
    designs = [
        ("logprob, 20 respondents", {"respondents": 20}),
        ("logprob, model as itself, latin orders", {"respondents": 0}),
        ("generate, 5 respondents", {"respondents": 5, "mode": "generate"}),
    ]
    if args.transformers:
        model = open_model("hf:smollm2")
        print(f"path: transformers; runtime {model.info.runtime}")
        designs = designs[:2]
    for name, options in designs:
        asked = asked_settings(instruments=instruments, **options)
        settings, _ = personality_settings(model, asked)
        measure = Personality(settings)
        llama._cached.clear()  # llama.cpp's KV cache cold, as a fresh run has it
        made = forecast(measure, model)
        llama._cached.clear()
        with (
            tempfile.TemporaryDirectory() as folder,
            ResponseStore(Layout(Path(folder)).store) as store,
        ):
            start = time.perf_counter()
            tally = collect(measure, model, store)
            real = time.perf_counter() - start
        assert made.seconds is not None
        print(
            f"{name:40s} prompts {tally.planned:5d}  estimated {made.seconds:7.1f} s  "
            f"real {real:7.1f} s  estimate/real {made.seconds / real:5.2f}"
        )
    model.close()
    llama.close()


if __name__ == "__main__":
    main()
