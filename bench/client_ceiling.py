"""The OpenAI client's own ceiling: prompts/s, CPU per request and memory, against fake servers.

A fake server has no model: it answers every chat request at once with the same top logprobs
(the options "1" to "5"), so what is timed is psyprobe itself — planning, the HTTP client,
reading the logprobs, the store — as ``psyprobe run --model openai:...`` runs it. The servers
are processes of their own; the client's CPU time is its process's alone.

    python bench/client_ceiling.py [--servers 2] [--orders random:5] [--concurrency 16]
    python bench/client_ceiling.py --memory [--orders all]   # memory of a 511,200-prompt plan

A design is SD-3 + BFI-44 (71 items) for 60 respondents, every order asked of each
(``--balance within``): ``--orders random:5`` is 21,300 prompts, ``all`` (120 orders of five
options) 511,200 — PsyBORGS' size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psyprobe.engine.measure import collect
from psyprobe.engine.personality import Personality
from psyprobe.models.openai_compat import ClientSettings, OpenAIModel
from psyprobe.runs import ResponseStore, RunSettings

MODELS = json.dumps({"data": [{"id": "fake"}]}).encode()
TOP = [{"token": str(k), "logprob": -1.0 - 0.5 * k} for k in range(1, 6)]
CHAT = json.dumps(
    {
        "choices": [
            {
                "message": {"role": "assistant", "content": "1"},
                "logprobs": {"content": [{"token": "1", "logprob": -1.5, "top_logprobs": TOP}]},
            }
        ]
    }
).encode()


async def _serve(port: int) -> None:
    """HTTP/1.1 with keep-alive, as little of it as the client needs."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                body = MODELS if head.startswith(b"GET") else CHAT
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fake_servers(n: int) -> Iterator[list[str]]:
    ports = [_free_port() for _ in range(n)]
    started = [subprocess.Popen([sys.executable, __file__, "--serve", str(port)]) for port in ports]
    try:
        for port in ports:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        yield [f"http://127.0.0.1:{port}/v1" for port in ports]
    finally:
        for process in started:
            process.terminate()
            process.wait()


def _design(orders: str) -> Personality:
    settings = RunSettings(
        instruments=("sd3", "bfi"), orders=orders, respondents=60, balance="within"
    )
    return Personality(settings)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(servers: int, orders: str, concurrency: int) -> None:
    with fake_servers(servers) as urls, tempfile.TemporaryDirectory() as tmp:
        model = OpenAIModel("fake", urls, None, ClientSettings(concurrency=concurrency))
        model.connect()
        measure = _design(orders)
        with ResponseStore(Path(tmp) / "responses.sqlite") as store:
            cpu = time.process_time()
            start = time.perf_counter()
            tally = collect(measure, model, store)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
    answered = ", ".join(str(e.answered) for e in model.endpoints)
    print(
        f"{tally.asked:,} prompts, {servers} fake server(s), concurrency {concurrency} each: "
        f"{tally.asked / wall:,.0f} prompts/s, client CPU {1e3 * cpu / tally.asked:.2f} ms a "
        f"request ({cpu / wall:.2f} of a core), peak memory {_rss_mib():,.0f} MiB "
        f"(answered {answered})"
    )


def memory(orders: str) -> None:
    """What a run holds before it asks anything: the first stage walked once, each request
    checked against the store, as the ask-loop does."""
    with tempfile.TemporaryDirectory() as tmp:
        model = OpenAIModel("fake", ["http://127.0.0.1:9/v1"], None)  # never connected
        measure = _design(orders)
        before = _rss_mib()
        start = time.perf_counter()
        with ResponseStore(Path(tmp) / "responses.sqlite") as store:
            stage = next(iter(measure.stages(model, store)))
            lacking = sum(not store.has(r.key) for r in stage.requests)
        wall = time.perf_counter() - start
    print(
        f"{lacking:,} planned prompts walked in {wall:.1f} s ({lacking / wall:,.0f} a second): "
        f"peak memory {_rss_mib():,.0f} MiB ({_rss_mib() - before:,.0f} MiB above the "
        f"{before:,.0f} MiB before planning)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--orders", default=None)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
    elif args.memory:
        memory(args.orders or "all")
    else:
        rate(args.servers, args.orders or "random:5", args.concurrency)


if __name__ == "__main__":
    main()
