"""Sampled answers on the real SmolLM2: batched decoding answers as one prompt alone would, and
stop-when-read ends answers early without changing what is read from them.

What is reproducible: the same prompt with the same seed gives the same text whatever else was
in its batch, on one machine and backend. Each sequence draws from its own generator; batching
changes its logits only by float32 rounding (about 1e-6), which could tip a draw only when it
falls that close to a boundary between two tokens — not seen in these tests.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from conftest import psyprobe
from psyprobe.instruments import load_instrument
from psyprobe.models import ModelInfo
from psyprobe.models.base import Completion, Model, Sampling
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, ItemPrompt, build_prompts
from psyprobe.records import request_key
from psyprobe.runs.asking import Origin, make_request
from psyprobe.scoring.parse import parse_answer, settled

pytestmark = pytest.mark.slow
SAMPLED = Sampling(temperature=0.7, max_tokens=48)


def _items() -> list[ItemPrompt]:
    questions = load_instrument("sd3").questions()[:3] + load_instrument("bfi").questions()[:3]
    prompts: list[ItemPrompt] = build_prompts("x", questions, "latin", TEMPLATES["study-a"])
    return prompts[:18]


def _shown(ip: ItemPrompt) -> list[str]:
    return [ip.question.options[i].text for i in ip.order]


def _texts(answers: list[object]) -> list[str]:
    assert all(isinstance(a, Completion) for a in answers)
    return [a.text for a in answers]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def hf() -> Model:
    from psyprobe.models.hf import HFModel

    return HFModel.load("hf:smollm2", ALIASES["smollm2"].path())


@pytest.fixture(scope="module")
def embedded() -> Model:
    from psyprobe.models.llamacpp import LlamaCppModel

    return LlamaCppModel("smollm2", ALIASES["smollm2"].path())


def test_a_batched_answer_is_the_answer_asked_alone(hf: Model) -> None:
    items = _items()
    prompts = [ip.prompt for ip in items for _ in range(2)]  # two samples of every prompt
    seeds = [1000 + i for i in range(len(prompts))]
    together = _texts(list(hf.generate(prompts, SAMPLED, seeds)))
    assert len(set(together)) > 5  # sampled, not one canned answer
    # the same requests in another batch: reversed, and every other one
    reordered = _texts(list(hf.generate(prompts[::-1], SAMPLED, seeds[::-1])))[::-1]
    assert reordered == together
    for i in range(0, len(prompts), 5):
        assert _texts(list(hf.generate([prompts[i]], SAMPLED, [seeds[i]]))) == [together[i]]
    # another seed, another draw: the seed is what decides
    other = _texts(list(hf.generate(prompts, SAMPLED, [s + 1 for s in seeds])))
    assert other != together


def test_greedy_batched_decoding_equals_greedy_alone(hf: Model) -> None:
    prompts = [ip.prompt for ip in _items()]
    greedy = Sampling(temperature=0.0, max_tokens=24)
    together = _texts(list(hf.generate(prompts, greedy, [0] * len(prompts))))
    alone = [_texts(list(hf.generate([p], greedy, [0])))[0] for p in prompts]
    assert together == alone


@pytest.mark.parametrize("backend", ["hf", "embedded"])
def test_stop_when_read_ends_early_and_reads_the_same(
    backend: str, request: pytest.FixtureRequest
) -> None:
    model: Model = request.getfixturevalue(backend)
    items = _items()
    prompts = [ip.prompt for ip in items]
    seeds = [7 * i + 3 for i in range(len(prompts))]
    until = [partial(settled, shown=_shown(ip)) for ip in items]
    full = list(model.generate(prompts, SAMPLED, seeds))
    short = list(model.generate(prompts, SAMPLED, seeds, until))
    shortened = 0
    for ip, f, s in zip(items, full, short, strict=True):
        assert isinstance(f, Completion) and isinstance(s, Completion)
        assert f.text.startswith(s.text) and s.tokens <= f.tokens
        assert parse_answer(s.text, _shown(ip)) == parse_answer(f.text, _shown(ip))
        if s.ended == "read":
            assert settled(s.text, _shown(ip))
        shortened += s.ended == "read" and s.tokens < f.tokens
    assert shortened > 0


def test_a_generate_run_stores_tokens_and_how_each_answer_ended(tmp_path: Path) -> None:
    design = ["--instrument", "sd3", "--orders", "fixed", "--respondents", "0"]
    short, full = tmp_path / "short", tmp_path / "full"
    psyprobe("run", *design, "--mode", "generate", "--retries", "0", "--out", str(short))
    psyprobe(
        "run", *design, "--mode", "generate", "--retries", "0", "--full-answers",
        "--out", str(full),
    )  # fmt: skip

    def rows(run: Path) -> dict[str, dict]:  # type: ignore[type-arg]
        lines = (run / "responses.jsonl").read_text().splitlines()
        return {r["item"]: r for r in map(json.loads, lines)}

    a, b = rows(short), rows(full)
    assert all(r["tokens"] >= 1 and r["ended"] in ("end", "read", "length") for r in a.values())
    assert any(r["ended"] == "read" for r in a.values())
    assert not any(r["ended"] == "read" for r in b.values())
    for item, r in a.items():
        assert b[item]["raw_text"].startswith(r["raw_text"])
        assert (r["status"], r["chosen"]) == (b[item]["status"], b[item]["chosen"])
    settings = json.loads((short / "run.json").read_text())["settings"]
    assert settings["stop_when_read"] is True
    assert "stop_when_read" not in json.loads((full / "run.json").read_text())["settings"]


def test_answers_stored_before_the_switch_keep_their_keys() -> None:
    """Stores and run records written before stop-when-read existed stay valid: with the
    switch off, a request's key is computed from the same decoding settings as before."""
    info = ModelInfo(spec="m", backend="b", fingerprint="f", modes=("generate",))
    prompt, origin = _items()[0].prompt, Origin("sd3", "1")
    off = make_request(info, prompt, "generate", Sampling(), 1, origin)
    on = make_request(info, prompt, "generate", Sampling(stop_when_read=True), 1, origin)
    before = {"temperature": 0.7, "max_tokens": 48}
    assert off.decoding == before and on.decoding == {**before, "stop_when_read": True}
    assert off.key == request_key(
        "b|f", prompt.system, prompt.user, prompt.labels, "generate", before, 0, 0, 1
    )
    assert on.key != off.key
