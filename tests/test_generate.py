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
from psyprobe.prompting import TEMPLATES, ItemPrompt, Prompt, build_prompts
from psyprobe.records import request_key
from psyprobe.runs.asking import Origin, make_request
from psyprobe.scoring.parse import parse_answer, settled

SAMPLED = Sampling(temperature=0.7, max_tokens=48)


def _items() -> list[ItemPrompt]:
    questions = load_instrument("sd3").questions()[:3] + load_instrument("bfi").questions()[:3]
    prompts = list(build_prompts("x", questions, "latin", TEMPLATES["study-a"]))
    return prompts[:18]


def _shown(ip: ItemPrompt) -> list[str]:
    return [ip.question.options[i].text for i in ip.order]


def _texts(answers: list[object]) -> list[str]:
    assert all(isinstance(a, Completion) for a in answers)
    return [a.text for a in answers]  # type: ignore[attr-defined]


@pytest.mark.torch
def test_a_batched_answer_is_the_answer_asked_alone(hf_smollm2: Model) -> None:
    hf = hf_smollm2
    items = _items()[:8]  # 16 sampled answers: batches of several lengths and samples
    prompts = [ip.prompt for ip in items for _ in range(2)]  # two samples of every prompt
    seeds = [1000 + i for i in range(len(prompts))]
    sampled = SAMPLED.model_copy(update={"max_tokens": 24})  # long enough to differ
    together = _texts(list(hf.generate(prompts, sampled, seeds)))
    assert len(set(together)) > 5  # sampled, not one canned answer
    # the same requests in another batch: reversed, and every other one
    reordered = _texts(list(hf.generate(prompts[::-1], sampled, seeds[::-1])))[::-1]
    assert reordered == together
    for i in range(0, len(prompts), 5):
        assert _texts(list(hf.generate([prompts[i]], sampled, [seeds[i]]))) == [together[i]]
    # another seed, another draw: the seed is what decides
    other = _texts(list(hf.generate(prompts, sampled, [s + 1 for s in seeds])))
    assert other != together


@pytest.mark.torch
def test_greedy_batched_decoding_equals_greedy_alone(hf_smollm2: Model) -> None:
    hf = hf_smollm2
    prompts = [ip.prompt for ip in _items()[:8]]
    greedy = Sampling(temperature=0.0, max_tokens=24)
    together = _texts(list(hf.generate(prompts, greedy, [0] * len(prompts))))
    alone = [_texts(list(hf.generate([p], greedy, [0])))[0] for p in prompts]
    assert together == alone


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("hf_smollm2", marks=pytest.mark.torch),
        pytest.param("smollm2", marks=pytest.mark.model),
    ],
)
def test_stop_when_read_ends_early_and_reads_the_same(
    backend: str, request: pytest.FixtureRequest
) -> None:
    model: Model = request.getfixturevalue(backend)
    items = _items()[:10]
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


@pytest.mark.model
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


@pytest.mark.unit
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
        "b|f", prompt.system, prompt.user, prompt.labels, "generate", before, 0, 0, 1,
        identity=("sd3", "1", 0, 0, "answer"),
    )  # fmt: skip
    assert on.key != off.key


@pytest.mark.torch
def test_sliding_window_layers_decode_as_transformers_does() -> None:
    """Gemma-3 mixes full layers with sliding-window ones (a window of 512 tokens): batched
    greedy answers equal transformers' own ``generate``, one prompt at a time with the
    model's own cache, for prompts beyond the window and of different lengths together."""
    import torch

    from psyprobe.models.hf import HFModel

    gemma = HFModel.load("hf:gemma3-270m", ALIASES["gemma3-270m"].path())
    story = "The lighthouse keeper counted ships, wrote their names and watched the tide. "
    prompts = [
        Prompt(None, story * repeat + "Question: what did the keeper count? Answer:", ("1",))
        for repeat in (1, 40, 46)  # about 30, 620 and 710 tokens
    ]
    # every step past the window from the first: a few tokens show it
    greedy = Sampling(temperature=0.0, max_tokens=6)
    together = _texts(list(gemma.generate(prompts, greedy, [0, 0, 0])))
    module = gemma.torch_module()
    assert module.config.sliding_window == 512
    for prompt, text in zip(prompts, together, strict=True):
        ids = gemma.tokenizer(gemma.render(prompt), add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = module.generate(**ids, max_new_tokens=6, do_sample=False)
        assert text == gemma.tokenizer.decode(out[0, ids["input_ids"].shape[1] :],
                                              skip_special_tokens=True)  # fmt: skip


@pytest.mark.torch
def test_answers_are_stored_as_they_end(hf_smollm2: Model, tmp_path: Path) -> None:
    """One call decodes many requests, and each answer is stored the moment it ends: an
    interrupt in the middle of a call keeps the answers already finished, and the next run
    asks only the others."""
    from psyprobe.runs.asking import ask
    from psyprobe.runs.store import ResponseStore

    hf = hf_smollm2

    class Interrupted(Model):  # a stand-in for Ctrl-C: the real model, stopped after 5 answers
        info = hf.info

        def preferred_batch(self, mode: str) -> int:  # type: ignore[override]
            return hf.preferred_batch(mode)  # type: ignore[arg-type]

        def generate(self, *args: object) -> list[object]:  # type: ignore[override]
            raise AssertionError("the ask-loop takes answers as they are ready")

        def generate_as_ready(self, *args: object):  # type: ignore[no-untyped-def,override]
            for n, answer in enumerate(hf.generate_as_ready(*args), 1):  # type: ignore[arg-type]
                yield answer
                if n == 5:
                    raise KeyboardInterrupt

    items = _items()[:10]
    requests = [
        make_request(hf.info, ip.prompt, "generate", SAMPLED, 11 * n, Origin("x", str(n)))
        for n, ip in enumerate(items)
    ]
    assert hf.preferred_batch("generate") >= len(requests)  # one call holds them all
    with ResponseStore(tmp_path / "responses.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            ask(Interrupted(), requests, store)
        assert store.count() == 5
        first = {r.key: r.raw_text for r in store.records()}
        assert ask(hf, requests, store).asked == len(requests) - 5
        assert store.count() == len(requests)
        again = {r.key: r.raw_text for r in store.records()}
    assert {k: again[k] for k in first} == first
