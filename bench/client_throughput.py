"""Prompts/s through psyprobe's OpenAI backend at several concurrencies, against local servers.

Starts llama.cpp's OpenAI-compatible server on the embedded model, then times the same SD-3
logprob prompts (1) as plain sequential HTTP requests — the server's own single-stream rate —,
(2) through the OpenAI backend at concurrency 1, 4 and 8, and (3) spread over three replicas
(least-in-flight, concurrency 4 each), with how many each answered.

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

    weights = ALIASES["smollm2"].path()
    with llama_server(weights, "smollm2") as served:
        url = served.url
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
            model = OpenAIModel("smollm2", [url], None, ClientSettings(concurrency=concurrency))
            model.connect()
            start = time.perf_counter()
            model.option_probs(prompts)
            rate = len(prompts) / (time.perf_counter() - start)
            print(
                f"psyprobe OpenAI backend, concurrency {concurrency}: {rate:.2f} prompts/s "
                f"({rate / raw:.2f}× single-stream)"
            )
        with llama_server(weights, "smollm2") as second, llama_server(weights, "smollm2") as third:
            replicas = OpenAIModel("smollm2", [url, second.url, third.url], None)
            replicas.connect()
            start = time.perf_counter()
            replicas.option_probs(prompts)
            rate = len(prompts) / (time.perf_counter() - start)
            counts = ", ".join(str(e.answered) for e in replicas.endpoints)
            print(
                f"three replicas, concurrency 4 each: {rate:.2f} prompts/s ({rate / raw:.2f}× "
                f"single-stream; answered {counts})"
            )
    print(
        f"{len(prompts)} SD-3 logprob prompts, llama.cpp servers on this machine's CPU cores; a "
        "server decodes one request at a time, and replicas on one machine share its cores"
    )


if __name__ == "__main__":
    main()
