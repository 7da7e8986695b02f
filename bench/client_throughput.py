"""Prompts/s through psyprobe's OpenAI backend at several concurrencies, against a local server.

Starts llama.cpp's OpenAI-compatible server on the embedded model, then times the same SD-3
logprob prompts (1) as plain sequential HTTP requests — the server's own single-stream rate — and
(2) through the OpenAI backend at concurrency 1, 4 and 8.

    python bench/client_throughput.py [--prompts 64]
"""

from __future__ import annotations

import argparse
import time

import httpx

from psyprobe.instruments import load_instrument
from psyprobe.models.llama_server import llama_server
from psyprobe.models.openai_compat import ClientSettings, OpenAIModel
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, build_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    args = parser.parse_args()
    questions = load_instrument("sd3").questions()
    prompts = [p.prompt for p in build_prompts("sd3", questions, "latin", TEMPLATES["study-a"])]
    prompts = prompts[: args.prompts]

    with llama_server(ALIASES["smollm2"].path(), "smollm2") as url:
        start = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            for p in prompts:
                client.post(
                    f"{url}/chat/completions",
                    json={
                        "model": "smollm2",
                        "messages": p.messages(),
                        "max_tokens": 1,
                        "temperature": 0,
                        "logprobs": True,
                        "top_logprobs": 20,
                    },
                ).raise_for_status()
        raw = len(prompts) / (time.perf_counter() - start)
        print(f"server single-stream (plain sequential HTTP): {raw:.2f} prompts/s")
        for concurrency in (1, 4, 8):
            model = OpenAIModel(
                "openai:smollm2", "smollm2", url, None, ClientSettings(concurrency=concurrency)
            )
            model.connect()
            start = time.perf_counter()
            model.option_probs(prompts)
            rate = len(prompts) / (time.perf_counter() - start)
            print(
                f"psyprobe OpenAI backend, concurrency {concurrency}: {rate:.2f} prompts/s "
                f"({rate / raw:.2f}× single-stream)"
            )
    print(
        f"{len(prompts)} SD-3 logprob prompts, llama.cpp server on 2 CPU cores; the server "
        "decodes one request at a time, so concurrency cannot beat its single-stream rate here"
    )


if __name__ == "__main__":
    main()
