"""Start llama.cpp's OpenAI-compatible server on loopback (tests, benchmarks, local scale-out).

Needs ``llama-cpp-python[server]``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    url: str  # the base URL (``.../v1``)
    process: subprocess.Popen[bytes]  # a test may kill it mid-run


@contextmanager
def llama_server(
    model: Path, alias: str, n_ctx: int = 2048, startup: float = 120.0, extra: Sequence[str] = ()
) -> Iterator[Served]:
    """Serve ``model`` under the name ``alias`` on 127.0.0.1 (``extra``: more of the server's
    own options)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start on port {port}")
            time.sleep(0.5)
        yield Served(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
