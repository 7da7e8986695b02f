from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATA = Path(__file__).parent / "data"


def psyprobe(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "psyprobe", *args], capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"psyprobe {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kill_when(ready: Callable[[], bool], *args: str, timeout: float = 600) -> None:
    """Start the command line; kill -9 it once ``ready()`` holds (or it ends, or time is up)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "psyprobe", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# 27 items × 10 orders, the model as itself: the design for tests of backends, resume and
# agreement (a population multiplies the prompts without testing anything more there)
SD3_LATIN = ["--instrument", "sd3", "--orders", "latin", "--respondents", "0"]


@pytest.fixture(scope="session")
def sd3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SD-3 under the latin design on the embedded model: the reference other runs compare to."""
    out = tmp_path_factory.mktemp("sd3") / "run"
    psyprobe("run", *SD3_LATIN, "--out", str(out))
    return out


def dimension_scores(run: Path, instrument: str = "sd3") -> dict[str, float]:
    results = json.loads((run / "results.json").read_text())
    dims = results["instruments"][instrument]["dimensions"]
    return {name: d["score"] for name, d in dims.items()}


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED
