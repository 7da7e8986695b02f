"""#37: one model served by three real llama.cpp servers on loopback (``llama_cpp.server``, the
test extra's). A run spread over them answers as a run on one; one server killed mid-run leaves
the run to the other two with the same answers; a server of something else is refused at start
in one line; a resume through other URLs asks nothing again.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from rich.console import Console

from conftest import error_line, psyprobe
from psyprobe.engine import Personality, personality_settings, run
from psyprobe.models import ALIASES, open_model
from psyprobe.models.llama_server import Served, llama_server
from psyprobe.models.openai_compat import OpenAIModel
from psyprobe.models.registry import BackendOptions
from psyprobe.progress import Reporter
from psyprobe.runs import Layout, ResponseStore, RunSettings

pytestmark = pytest.mark.model

# SWLS under four random orders, the model as itself: 20 prompts, enough to kill a server mid-way
DESIGN = RunSettings(instruments=("swls",), respondents=0, orders="random:4")
PROMPTS = 20
ONE = ("--n_threads", "1", "--n_threads_batch", "1")


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Served]]:
    """Three replicas of the embedded model, each under its served name."""
    with ExitStack() as stack:
        yield [
            # one thread each: three replicas share this machine's cores
            stack.enter_context(llama_server(ALIASES["smollm2"].path(), "smollm2", extra=ONE))
            for _ in range(3)
        ]


def _spec(*served: Served) -> str:
    return "openai:smollm2@" + ",".join(s.url for s in served)


def _probs(out: Path) -> dict[str, tuple[float, ...]]:
    with ResponseStore(Layout(out).store) as store:
        return {r.key: r.probs or () for r in store.records()}


def _measured(spec: str, out: Path, watcher: Reporter | None = None) -> OpenAIModel:
    model = open_model(spec, BackendOptions())
    assert isinstance(model, OpenAIModel)
    settings, _ = personality_settings(model, DESIGN)
    run(Personality(settings), model, out, watcher)
    return model


@pytest.fixture(scope="module")
def one_server_run(servers: list[Served], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    _measured(_spec(servers[0]), out)
    return out


def _same_answers(a: Path, b: Path) -> None:
    """The same keys (one identity for the model, whatever its URLs), each with the same option
    probabilities: the same runtime and weights answer alike to 1e-6 (test_backends)."""
    first, second = _probs(a), _probs(b)
    assert first.keys() == second.keys() and len(first) == PROMPTS
    for key, probs in first.items():
        assert second[key] == pytest.approx(probs, abs=1e-6)
    scores = [json.loads((d / "results.json").read_text())["instruments"] for d in (a, b)]
    for dim, d in scores[0]["swls"]["dimensions"].items():
        assert scores[1]["swls"]["dimensions"][dim]["score"] == pytest.approx(d["score"], abs=1e-6)


def test_a_run_spread_over_three_servers_equals_a_run_on_one(
    servers: list[Served], one_server_run: Path, tmp_path: Path
) -> None:
    screen = io.StringIO()
    with Reporter(Console(file=screen, width=1000)) as progress:
        model = _measured(_spec(*servers), tmp_path / "three", progress)
    answered = [e.answered for e in model.endpoints]
    assert sum(answered) >= PROMPTS and min(answered) > 0  # every replica took a share
    assert model.health() == []
    # the last progress line names each endpoint with its answers (probes included)
    last = next(line for line in reversed(screen.getvalue().splitlines()) if "/20" in line)
    for served, n in zip(servers, answered, strict=True):
        assert f"{served.url}: {n} answered" in last
    _same_answers(one_server_run, tmp_path / "three")


def test_a_resume_through_other_urls_asks_nothing_again(
    servers: list[Served], one_server_run: Path
) -> None:
    ran = psyprobe("run", "--model", _spec(servers[1], servers[2]), "--instrument", "swls",
                   "--orders", "random:4", "--respondents", "0",
                   "--out", str(one_server_run))  # fmt: skip
    assert "0 new answers" in ran.stderr


def test_a_server_of_another_model_is_refused_at_start(
    servers: list[Served], tmp_path: Path
) -> None:
    weights, out = ALIASES["smollm2"].path(), tmp_path / "run"
    args = ("--instrument", "sd3", "--out", str(out))
    with llama_server(weights, "other") as other:
        ran = psyprobe("run", "--model", _spec(servers[0], other), *args, check=False)
    assert ran.returncode == 2
    assert f"{other.url} does not serve 'smollm2' (it serves: other)" in error_line(ran)
    # the same name over another prompt format (which gives no logprobs): refused by the probes
    # (probabilities that differ are test_openai_faults', where a fake isolates them)
    with llama_server(weights, "smollm2", extra=("--chat_format", "llama-2")) as unlike:
        ran = psyprobe("run", "--model", _spec(servers[0], unlike), *args, check=False)
    said = error_line(ran)
    assert ran.returncode == 2 and f"{unlike.url} did not answer the probe questions" in said
    assert not out.exists()


def test_a_server_killed_mid_run_leaves_the_run_to_the_others(
    servers: list[Served], one_server_run: Path, tmp_path: Path
) -> None:
    """Runs last in this module: it kills the third server once it has answered twice, with
    more of its share in flight or still to come."""
    model = open_model(_spec(*servers), BackendOptions())
    assert isinstance(model, OpenAIModel)
    third = model.endpoints[2]
    probes = third.answered  # the probe questions of the start

    def kill_after_two() -> None:
        while third.answered < probes + 2 and servers[2].process.poll() is None:
            time.sleep(0.005)
        servers[2].process.kill()

    killer = threading.Thread(target=kill_after_two, daemon=True)
    killer.start()
    settings, _ = personality_settings(model, DESIGN)
    measured = run(Personality(settings), model, tmp_path / "killed")
    killer.join(timeout=10)
    assert servers[2].process.poll() is not None and measured.lacking == 0
    assert 2 <= third.answered - probes < PROMPTS / 2
    (failed,) = model.health()
    assert failed.startswith(servers[2].url) and "connection error" in failed
    _same_answers(one_server_run, tmp_path / "killed")
