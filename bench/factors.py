"""What the nuisance factors cost on the embedded model (llama.cpp, SmolLM2, logprob).

Usage: python bench/factors.py [--instrument sd3 ...] [--slice 4]

In one run, on one loaded model, each through the real engine into a fresh directory: the
default design (20 respondents, orders rotating), the same with wording and labels varied, and
with context too — that one on a slice of the respondents, projected to 20 (a prompt in context
carries its K earlier items and shares no prefix beyond the system line: its cost is linear in
the respondents). Prints prompts, prompt tokens, tokens llama.cpp actually evaluated (the rest
came from the shared prefix in its KV cache), wall time and the verdicts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from population import embedded
from psyprobe.engine import Personality, asked_settings, personality_settings, run
from psyprobe.prompting import FACTORS
from psyprobe.runs.planning import plan, resolve_instruments


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slice", type=int, default=4, help="respondents asked in context")
    args, instruments, model = embedded(parser)
    designs = [
        ("default", (), 20),
        ("--vary templates,labels", ("templates", "labels"), 20),
        (f"--vary templates,labels,context ({args.slice} → 20)", FACTORS, args.slice),
    ]
    for name, vary, respondents in designs:
        scale = 20 / respondents
        asked = asked_settings(instruments=instruments, vary=vary, respondents=respondents)
        settings, _ = personality_settings(model, asked)
        planned = plan(settings, resolve_instruments(settings.instruments), model.info)
        alone_tokens = sum(model.count_tokens(p.request.prompt) or 0 for p in planned)
        model._cached.clear()  # a cold KV cache, as a fresh run has
        before = model.tokens_evaluated
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            measured = run(Personality(settings), model, Path(folder) / "run")
        wall = time.perf_counter() - start
        evaluated = model.tokens_evaluated - before
        verdicts = Counter(
            d.validity for inst in measured.results.instruments.values()
            for d in inst.dimensions.values()
        )  # fmt: skip
        print(
            f"{name:45s} prompts {measured.planned * scale:6.0f} (asked alone: "
            f"{len(planned) * scale:.0f}, {alone_tokens * scale:.0f} tokens)  evaluated "
            f"{evaluated * scale:8.0f}  wall {wall * scale:7.1f} s  "
            f"({measured.planned / wall:5.2f} prompts/s)  verdicts {dict(verdicts)}"
        )
    model.close()


if __name__ == "__main__":
    main()
