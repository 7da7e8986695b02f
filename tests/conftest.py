"""What the whole suite shares: the command line (in this process, or as a real process where the
process is the point), the test tiers, and the expensive things computed once per session — one
model of each runtime, one conversion cache, and the runs many tests read.

Tiers (``-m unit`` while working; the README's command runs them all):
- ``unit``: no model runtime and no process of its own — scoring, parsing, validity on the
  simulator, instruments, orders, hostile input, fakes that isolate one mechanism;
- ``model``: the real embedded model through llama.cpp (in this process or its server);
- ``torch``: transformers and torch on the real weights;
- ``e2e``: a real process is the point — kill -9, output piped to a file, import cost, a
  browser, a disk that fills up under a child process.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from psyprobe.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATA = Path(__file__).parent / "data"
TIERS = ("unit", "model", "torch", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test declares exactly one tier, so ``-m unit`` stays the fast tier it claims."""
    for item in items:
        tiers = [t for t in TIERS if item.get_closest_marker(t)]
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: needs exactly one tier of {TIERS}: {tiers}")


@dataclass(frozen=True)
class Ran:
    """What a command printed and how it exited (the fields of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def psyprobe(*args: str, check: bool = True) -> Ran:
    """The command line as a user runs it — ``main()`` with its error handling and exit codes —
    in this process: no interpreter start and no import of the scientific stack per call."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    ran = Ran(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"psyprobe {' '.join(args)} failed:\n{ran.stdout}\n{ran.stderr}")
    return ran


PROGRESS_LINE = re.compile(r"\[\d\d:\d\d:\d\d\] ")


def error_line(ran: Ran | subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command says on standard error, after the progress lines
    (timestamped: "[12:00:00] loading smollm2") that may come before it."""
    said = [x for x in ran.stderr.splitlines() if x.strip() and not PROGRESS_LINE.match(x)]
    assert len(said) == 1 and said[0].startswith("error: "), ran.stderr
    return said[0]


def spawn(*args: str, check: bool = True, **popen: Any) -> subprocess.CompletedProcess[str]:
    """The command line as a real process, for tests where the process is the point."""
    proc = subprocess.run(
        [sys.executable, "-m", "psyprobe", *args],
        capture_output=True,
        text=True,
        timeout=900,
        **popen,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"psyprobe {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kill_when(
    ready: Callable[[], bool],
    *args: str,
    timeout: float = 600,
    sig: signal.Signals = signal.SIGKILL,
) -> tuple[int, str]:
    """Start the command line; send it ``sig`` (kill -9; SIGINT is Ctrl-C) once ``ready()``
    holds (or it ends, or time is up). Its exit status and what it wrote to stderr.

    The command starts with Ctrl-C's default action, whatever the tests inherited: a shell
    starts a background job (``cmd &``, as a CI script may) with SIGINT ignored, its children
    inherit that, and Python then leaves SIGINT ignored, so the Ctrl-C never arrived."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "psyprobe", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + timeout
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(sig)
        code = proc.wait()
        err.seek(0)
        return code, err.read()


def rendered_tables(markdown: str) -> tuple[int, int]:
    """(tables a Markdown renderer sees, tables the text means to hold): a delimiter row whose
    width is not its header's makes no table at all (GitHub's table rule)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    meant = sum(line.startswith("|---") for line in markdown.splitlines())
    return sum(t.type == "table_open" for t in tokens), meant


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def records(run: Path) -> list[dict[str, Any]]:
    """A run's answers as responses.jsonl holds them."""
    return [json.loads(line) for line in (run / "responses.jsonl").read_text().splitlines()]


def probs_by_prompt(run: Path) -> dict[tuple[str, tuple[int, ...]], list[float]]:
    """Each answer's option probabilities by (item, option order): the same prompt in two runs."""
    return {(r["item"], tuple(r["option_order"])): r["probs"] for r in records(run)}


# 27 items × 10 orders, the model as itself: the design for tests of backends, resume and
# agreement (a population multiplies the prompts without testing anything more there)
SD3_LATIN = ["--instrument", "sd3", "--orders", "latin", "--respondents", "0"]
# SD-3's 27 items once each, in the scale's own order: a subset of SD3_LATIN's prompts (the
# latin design's first order is the scale's), for tests that need their own run of the real
# model but whose claim holds prompt by prompt
SD3_FIXED = ["--instrument", "sd3", "--orders", "fixed", "--respondents", "0"]


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for the session (converted models, the runtime probe, the API's run folders),
    apart from the user's own: the GGUF → transformers conversion happens once, and tests that
    make the same API call share its run."""
    folder = tmp_path_factory.mktemp("psyprobe-cache")
    before = os.environ.get("PSYPROBE_CACHE")
    os.environ["PSYPROBE_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("PSYPROBE_CACHE", None)
    else:
        os.environ["PSYPROBE_CACHE"] = before


@pytest.fixture(scope="session")
def sd3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SD-3 under the latin design on the embedded model, as a run asks it by default (scored
    through transformers where the hf extra is installed): the run other runs compare to."""
    out = tmp_path_factory.mktemp("sd3") / "run"
    psyprobe("run", *SD3_LATIN, "--out", str(out))
    return out


@pytest.fixture(scope="session")
def llama_sd3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same design on the same weights through llama.cpp, the embedded runtime (its
    twin): the reference for llama.cpp's own numbers and for servers that run it."""
    out = tmp_path_factory.mktemp("llama-sd3") / "run"
    psyprobe("run", "--model", "gguf:smollm2", *SD3_LATIN, "--out", str(out))
    return out


# The safety suites on the embedded model, five items a suite (25 answers): the run the safety
# tests read; a run of one suite with the same seed reproduces its tasks from scratch.
SAFETY = ["safety", "--model", "smollm2", "--limit", "5", "--seed", "1"]


@pytest.fixture(scope="session")
def safety_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "run"
    psyprobe(*SAFETY, "--out", str(out))
    return out


@pytest.fixture(scope="session")
def hf_smollm2() -> Iterator[Any]:
    """SmolLM2 through transformers, loaded once; tests that add hooks remove them."""
    from psyprobe.models import open_model

    model = open_model("hf:smollm2")
    yield model
    model.close()


@pytest.fixture(scope="session")
def smollm2() -> Iterator[Any]:
    """The embedded SmolLM2 through llama.cpp, loaded once."""
    from psyprobe.models import open_model

    model = open_model("smollm2")
    yield model
    model.close()


def dimension_scores(run: Path, instrument: str = "sd3") -> dict[str, float]:
    results = json.loads((run / "results.json").read_text())
    dims = results["instruments"][instrument]["dimensions"]
    return {name: d["score"] for name, d in dims.items()}


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED
