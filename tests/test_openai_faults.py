"""The OpenAI backend against a deliberately faulty local server (a fake that isolates the
retry loop): 429 with Retry-After, 500, malformed JSON, slow answers."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import error_line, psyprobe, write_json

pytestmark = pytest.mark.unit

INSTRUMENT = {
    "name": "Two",
    "scale": {"min": 1, "max": 2, "labels": ["No", "Yes"]},
    "dimensions": ["D"],
    "items": [{"id": i, "text": f"Statement {i}.", "dimension": "D"} for i in range(1, 5)],
}
OK = {
    "choices": [
        {
            "message": {"content": "1"},
            "logprobs": {
                "content": [
                    {
                        "token": "1",
                        "logprob": -0.1,
                        "top_logprobs": [
                            {"token": "1", "logprob": -0.1},
                            {"token": "2", "logprob": -2.4},
                        ],
                    }
                ]
            },
        }
    ]
}


class FaultyServer(ThreadingHTTPServer):
    """First request for statement k fails in the k-th way; later requests succeed, unless the
    statement is listed in ``always_fail``."""

    def __init__(self, always_fail: set[int], reply: dict[str, object] = OK):
        super().__init__(("127.0.0.1", 0), Handler)
        self.always_fail = always_fail
        self.reply = reply  # what a request that does not fail is answered
        self.seen: dict[int, list[float]] = defaultdict(list)


class Handler(BaseHTTPRequestHandler):
    server: FaultyServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, body: bytes) -> None:
        """``body`` a byte every 0.2 s: each read is quick, the whole is not."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": "m"}]}).encode())

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = payload["messages"][-1]["content"]
        item = next((i for i in range(1, 5) if f"Statement {i}." in user), 0)
        self.server.seen[item].append(time.monotonic())
        first = len(self.server.seen[item]) == 1
        if item in self.server.always_fail:
            self._send(500, b'{"error": "boom"}')
        elif first and item == 1:
            self._send(429, b'{"error": "slow down"}', {"Retry-After": "1"})
        elif first and item == 2:
            self._send(500, b'{"error": "internal"}')
        elif first and item == 3:
            self._send(200, b'{"choices": [{"mess')
        elif first and item == 4:
            time.sleep(1.5)  # beyond the client's timeout
            self._send(200, json.dumps(self.server.reply).encode())
        else:
            self._send(200, json.dumps(self.server.reply).encode())


def serve(always_fail: set[int], reply: dict[str, object] = OK) -> Iterator[FaultyServer]:
    server = FaultyServer(always_fail, reply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def flaky() -> Iterator[FaultyServer]:
    yield from serve(set())


@pytest.fixture
def broken() -> Iterator[FaultyServer]:
    yield from serve({2, 3})


def _run(server: FaultyServer, tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    inst = write_json(tmp_path / "two.json", INSTRUMENT)
    out = tmp_path / "run"
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    proc = psyprobe(
        "run",
        "--model",
        f"openai:m@{url}",
        "--instrument",
        str(inst),
        "--orders",
        "fixed",
        "--respondents",
        "0",
        "--timeout",
        "0.5",
        *extra,
        "--out",
        str(out),
        check=False,
    )
    return proc.returncode, proc.stderr, out


def test_retries_every_fault_and_finishes(flaky: FaultyServer, tmp_path: Path) -> None:
    code, stderr, out = _run(flaky, tmp_path, "--max-retries", "3")
    assert code == 0, stderr
    for item in (1, 2, 3, 4):
        assert len(flaky.seen[item]) == 2  # one fault, one retry
    retry_after = flaky.seen[1][1] - flaky.seen[1][0]
    assert retry_after >= 1.0  # the server's Retry-After was honoured
    results = json.loads((out / "results.json").read_text())
    assert results["store"]["n_responses"] == 4 and results["store"]["failures"] == {}
    assert results["instruments"]["two"]["dimensions"]["D"]["score"] == pytest.approx(
        (0.9048 * 1 + 0.0907 * 2) / (0.9048 + 0.0907), abs=1e-3
    )


def test_records_failures_and_exits_by_threshold(broken: FaultyServer, tmp_path: Path) -> None:
    code, stderr, out = _run(broken, tmp_path, "--max-retries", "1")
    assert code == 3
    assert "2 of 4 answers are missing" in stderr and "HTTP 500 after 2 attempts" in stderr
    assert len(broken.seen[2]) == 2  # bounded: the first try and one retry
    # the run's end counts every failed try, the last of each request's included: two tries
    # each of statements 2 and 3 (HTTP 500), statement 1's 429 and statement 4's timeout
    assert "failed 6× from" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["store"] == {
        "file": "responses.sqlite",
        "n_responses": 2,
        "failures": {"HTTP 500 after 2 attempts": 2},
    }
    assert "no answer" in (out / "report.md").read_text()
    # the same run tolerating half the answers missing succeeds, and asks only for the missing
    code, _, _ = _run(broken, tmp_path, "--max-retries", "1", "--max-missing", "0.5")
    assert code == 0
    assert len(broken.seen[1]) == 2 and len(broken.seen[2]) == 4  # item 1 was never re-asked


# --- a hostile server: every answer broken in a way that once escaped as a traceback ---------

KEY = "sk-test-0123456789abcdef"


class HostileHandler(Handler):
    """Statement 1: an error body that echoes the request headers (the API key with them);
    2: "Retry-After: 100000"; 3: a logprob of +2; 4: alternatives without a logprob. The
    connection check and every other request are answered normally."""

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = payload["messages"][-1]["content"]
        item = next((i for i in range(1, 5) if f"Statement {i}." in user), 0)
        self.server.seen[item].append(time.monotonic())
        broken = json.loads(json.dumps(OK))
        top = broken["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        if item == 1:  # padded so that the key straddles the 200 characters a failure keeps
            pad = "\x1b]0;pwned\x07\x1b[2J" + "x" * (190 - len("bad request, "))
            echo = f"bad request, {pad}{self.headers['Authorization']} {dict(self.headers)}"
            self._send(401, echo.encode())
        elif item == 2:
            self._send(429, b'{"error": "later"}', {"Retry-After": "100000"})
        elif item == 3:
            top[0]["logprob"] = 2.0
            self._send(200, json.dumps(broken).encode())
        elif item == 4:
            del top[1]["logprob"]
            self._send(200, json.dumps(broken).encode())
        else:
            self._send(200, json.dumps(OK).encode())


@pytest.fixture
def hostile() -> Iterator[FaultyServer]:
    server = FaultyServer(set())
    server.RequestHandlerClass = HostileHandler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_a_hostile_server_gets_failures_not_tracebacks_and_never_the_key(
    hostile: FaultyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    code, stderr, out = _run(hostile, tmp_path, "--max-retries", "1", "--max-missing", "1")
    assert code == 0 and "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text())
    failures = sorted(results["store"]["failures"])
    # each broken answer is a failure (asked again by the next run), none a traceback
    assert results["store"]["n_responses"] == 0 and len(failures) == 4
    assert failures[0].startswith("HTTP 401: bad request")
    # the terminal's escape sequences shown as text, never sent to it
    assert "\x1b" not in failures[0] + stderr and "\\x1b]0;pwned" in failures[0]
    assert failures[1:] == [
        "HTTP 429 after 2 attempts",
        "malformed logprobs (a logprob above 0 or not finite)",
        "malformed logprobs (each alternative needs a token and a logprob)",
    ]
    # the 100000-second Retry-After was cut to the request's budget (waiting it out would run
    # past the command's own time limit): two attempts, then a failure
    assert len(hostile.seen[2]) == 2
    # the echoed key, or any part of it left by a cut, is in no file of the run and not on the
    # terminal
    assert KEY[:8] not in stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY[:8].encode() not in path.read_bytes(), path


class TrickleHandler(Handler):
    """Statement 1's answer arrives a byte every 0.2 s: each read is quick, the whole is not."""

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        item = next((i for i in range(1, 5) if f"Statement {i}." in str(payload)), 0)
        self.server.seen[item].append(time.monotonic())
        if item != 1:
            self._send(200, json.dumps(OK).encode())
            return
        self._trickle(json.dumps(OK).encode())


def test_a_trickled_body_meets_the_request_deadline(tmp_path: Path) -> None:
    server = FaultyServer(set())
    server.RequestHandlerClass = TrickleHandler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, stderr, out = _run(server, tmp_path, "--max-retries", "1", "--max-missing", "1")
    finally:
        server.shutdown()
    assert code == 0, stderr
    results = json.loads((out / "results.json").read_text())
    # the trickled answer (about 60 s of bytes) is a timeout after two attempts; the rest stand
    assert results["store"]["failures"] == {"timeout after 2 attempts": 1}
    assert results["store"]["n_responses"] == 3


class GreedyHandler(Handler):
    """Statement 1: a body of 20 MiB and more (a flood); statement 2: "429, Retry-After: 2" the
    first time. ``/models`` trickles a byte every 0.2 s when the server is told to."""

    def do_GET(self) -> None:
        if not getattr(self.server, "trickle_models", False):
            super().do_GET()
            return
        self._trickle(json.dumps({"data": [{"id": "m"}]}).encode())

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        item = next((i for i in range(1, 5) if f"Statement {i}." in str(payload)), 0)
        self.server.seen[item].append(time.monotonic())
        if item == 1:
            self.send_response(200)
            self.send_header("Content-Length", str(40 << 20))
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b" " * (1 << 20))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading at its cap
        elif item == 2 and len(self.server.seen[2]) == 1:
            self._send(429, b'{"error": "later"}', {"Retry-After": "2"})
        else:
            self._send(200, json.dumps(OK).encode())


@pytest.fixture
def greedy() -> Iterator[FaultyServer]:
    server = FaultyServer(set())
    server.RequestHandlerClass = GreedyHandler
    server.handle_error = lambda *_: None  # type: ignore[method-assign]  # clients hang up on it
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_a_flood_is_capped_and_a_backoff_leaves_its_slot(
    greedy: FaultyServer, tmp_path: Path
) -> None:
    code, stderr, out = _run(
        greedy, tmp_path, "--concurrency", "1", "--timeout", "10", "--max-missing", "1"
    )
    assert code == 0, stderr
    failures = json.loads((out / "results.json").read_text())["store"]["failures"]
    assert failures == {"a response body over 16 MiB": 1}
    # one slot: while statement 2 waited out its Retry-After, statements 3 and 4 were asked
    retried = greedy.seen[2][1]
    assert greedy.seen[3][0] < retried and greedy.seen[4][0] < retried


def test_a_trickled_model_list_meets_the_deadline(greedy: FaultyServer, tmp_path: Path) -> None:
    greedy.trickle_models = True  # type: ignore[attr-defined]
    start = time.monotonic()
    code, stderr, _ = _run(greedy, tmp_path, "--timeout", "1")
    assert code == 2 and "took longer than --timeout 1 s" in stderr, stderr
    assert time.monotonic() - start < 5


def _url(server: FaultyServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_replicas_that_answer_the_probes_apart_are_refused(
    flaky: FaultyServer, tmp_path: Path
) -> None:
    """#37: two endpoints under one served name whose probe answers differ beyond
    PROBE_TOLERANCE (0.091 and 0.5 on the second option) are two models, refused in one
    line; a third that answers alike is taken."""
    top = [{"token": "1", "logprob": math.log(0.5)}, {"token": "2", "logprob": math.log(0.5)}]
    other = {"choices": [{"message": {"content": "1"}, "logprobs": {"content": [
        {"token": "1", "logprob": math.log(0.5), "top_logprobs": top}]}}]}  # fmt: skip
    inst = write_json(tmp_path / "two.json", INSTRUMENT)
    args = ("--instrument", str(inst), "--orders", "fixed", "--respondents", "0")
    for unlike in serve(set(), other):
        ran = psyprobe("run", "--model", f"openai:m@{_url(flaky)},{_url(unlike)}", *args,
                       "--out", str(tmp_path / "a"), check=False)  # fmt: skip
        said = error_line(ran)
        assert f"{_url(unlike)} answers the probe questions unlike {_url(flaky)}" in said
        assert "option probabilities 0.409 apart" in said and "not the same model" in said
    for alike in serve(set()):
        psyprobe("run", "--model", f"openai:m@{_url(flaky)},{_url(alike)}", *args,
                 "--max-retries", "0", "--out", str(tmp_path / "b"), check=False)  # fmt: skip
        assert len(alike.seen[0]) >= 2  # its probes (and a share of the items) were asked


def test_generated_answers_are_handed_over_as_they_arrive(flaky: FaultyServer) -> None:
    """#37: in generate mode each answer goes to the ask-loop (which stores it) the moment it
    arrives: a slow request (statement 4's first, 1.5 s) holds back none of the others."""
    from psyprobe.models.base import Sampling
    from psyprobe.models.openai_compat import OpenAIModel
    from psyprobe.prompting import Prompt

    model = OpenAIModel("m", [f"http://127.0.0.1:{flaky.server_address[1]}/v1"], None)
    prompts = [Prompt(None, "Statement 4.", ()), Prompt(None, "Statement 0.", ())]
    greedy = Sampling(temperature=0.0, max_tokens=4)
    came = [i for i, _ in model.generate_as_ready(prompts, greedy, [0, 0])]
    model.close()
    assert came == [1, 0]  # all at once, in order, would be [0, 1]
