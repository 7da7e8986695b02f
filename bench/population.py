"""What a respondent population costs on the embedded model (llama.cpp, SmolLM2, logprob).

Usage: python bench/population.py [--instrument sd3 ...]

In one run: the model as itself under the latin design (study A's design, no population), the
default population (20 respondents, orders rotating), and the population with every order per
respondent (``within``) on a slice of respondents, projected to 20. Prints prompts, prompt
tokens, tokens llama.cpp actually evaluated (the rest came from the shared prefix in its KV
cache) and wall time.
"""

from __future__ import annotations

import argparse
import time

from psyprobe.models import open_model
from psyprobe.models.llamacpp import LlamaCppModel
from psyprobe.runs import RunSettings
from psyprobe.runs.planning import plan, resolve_instruments


def measure(model: LlamaCppModel, settings: RunSettings) -> tuple[int, int, int, float]:
    planned = plan(settings, resolve_instruments(settings.instruments), model.info)
    prompts = [p.request.prompt for p in planned]
    tokens = sum(model.count_tokens(p) for p in prompts)
    model._cached.clear()  # a cold KV cache, as a fresh run has
    before = model.tokens_evaluated
    start = time.perf_counter()
    model.option_probs(prompts)
    return len(prompts), tokens, model.tokens_evaluated - before, time.perf_counter() - start


def embedded(
    parser: argparse.ArgumentParser,
) -> tuple[argparse.Namespace, tuple[str, ...], LlamaCppModel]:
    """The arguments (``--instrument`` added), the instruments (SD-3 and BFI by default) and
    the embedded model through llama.cpp, its runtime printed."""
    parser.add_argument("--instrument", action="append", default=None)
    args = parser.parse_args()
    instruments = tuple(args.instrument or ("sd3", "bfi"))
    model = open_model("smollm2")
    assert isinstance(model, LlamaCppModel)
    print(f"instruments {', '.join(instruments)}; runtime {model.info.runtime}")
    return args, instruments, model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--within-slice", type=int, default=2, help="respondents measured")
    args, instruments, model = embedded(parser)
    designs = [
        ("model itself, latin", RunSettings(instruments=instruments, respondents=0), 1.0),
        ("20 respondents, rotate", RunSettings(instruments=instruments), 1.0),
        (
            f"within, {args.within_slice} respondents → 20",
            RunSettings(instruments=instruments, respondents=args.within_slice, balance="within"),
            20 / args.within_slice,
        ),
    ]
    for name, settings, scale in designs:
        prompts, tokens, evaluated, wall = measure(model, settings)
        print(
            f"{name:28s} prompts {prompts * scale:7.0f}  prompt tokens {tokens * scale:9.0f}  "
            f"evaluated {evaluated * scale:8.0f} (sharing {tokens / max(evaluated, 1):4.2f}×)  "
            f"wall {wall * scale:6.1f} s  ({prompts / wall:5.2f} prompts/s)"
        )
    model.close()


if __name__ == "__main__":
    main()
