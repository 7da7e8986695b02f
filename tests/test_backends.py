"""The same weights give the same answers through every backend.

Tolerances (SD-3 dimension scores, 1–5 scale):
- OpenAI backend against `python -m llama_cpp.server`: 1e-6 in logprob mode — the same runtime
  computes the same logits; the server is asked for 100 alternatives, so no label is cut off.
- transformers on the GGUF weights dequantised to float32: 0.1 — llama.cpp multiplies Q4_1
  weights by activations quantised to 8 bits, transformers by float weights; per-label
  probabilities differ by up to about 0.04.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from conftest import SD3_FIXED, dimension_scores, probs_by_prompt, psyprobe, records, write_json
from psyprobe.instruments import load_instrument
from psyprobe.models.llama_server import llama_server as serve
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, build_prompts

SECRET = "sk-psyprobe-test-0123456789abcdef"


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """A real llama.cpp OpenAI-compatible server on the bundled SmolLM2 weights."""
    with serve(ALIASES["smollm2"].path(), "smollm2") as served:
        yield served.url


@pytest.mark.model
def test_openai_backend_logprob_agrees_with_embedded(
    llama_server: str, llama_sd3_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompt by prompt: SD-3's 27 items in the scale's order, each also asked in the session's
    latin run of the embedded runtime."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "served"
    psyprobe(
        "run",
        "--model",
        f"openai:smollm2@{llama_server}",
        *SD3_FIXED,
        "--concurrency",
        "2",
        "--out",
        str(out),
    )
    served, embedded = probs_by_prompt(out), probs_by_prompt(llama_sd3_run)
    assert len(served) == 27
    for prompt, probs in served.items():
        assert probs == pytest.approx(embedded[prompt], abs=1e-6)
    # the key travelled in a header only: nothing written holds it
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path.name


@pytest.mark.model
def test_openai_backend_generate_agrees_with_embedded(llama_server: str, tmp_path: Path) -> None:
    greedy = [
        "--instrument",
        "sd3",
        "--orders",
        "fixed",
        "--respondents",
        "0",
        "--mode",
        "generate",
        "--temperature",
        "0",
        "--retries",
        "0",
        # the server sends whole answers; the embedded model would stop once each is read
        "--full-answers",
    ]
    psyprobe(
        "run",
        "--model",
        f"openai:smollm2@{llama_server}",
        *greedy,
        "--out",
        str(tmp_path / "served"),
    )
    psyprobe("run", *greedy, "--out", str(tmp_path / "embedded"))

    def texts(run: Path) -> dict[str, str]:
        rows = [json.loads(x) for x in (run / "responses.jsonl").read_text().splitlines()]
        return {r["item"]: r["raw_text"] for r in rows}

    served, embedded = texts(tmp_path / "served"), texts(tmp_path / "embedded")
    same = sum(served[k] == embedded[k] for k in embedded)
    assert same >= 0.9 * len(embedded)  # greedy decoding: the same text, bar rare float ties
    a, b = dimension_scores(tmp_path / "served"), dimension_scores(tmp_path / "embedded")
    for dim in a:
        assert a[dim] == pytest.approx(b[dim], abs=0.5)


@pytest.mark.model
def test_the_conversion_reads_the_gguf_file_as_gguf_py_does() -> None:
    """The GGUF → transformers conversion opens the file once for its three readers and slices
    a plain view of the mapped bytes (Gemma-3's 262,144-token vocabulary parsed in 6 s instead
    of 17; the converted models are the same to the byte, bench/RESULTS.md): every metadata
    field and tensor of the embedded model's file is what gguf-py's own reader gives."""
    import gguf
    import numpy as np

    from psyprobe.models.hf.load import _one_gguf_reader

    path = ALIASES["smollm2"].path()
    own = gguf.GGUFReader(path)
    with _one_gguf_reader():
        plain = gguf.GGUFReader(path)
        assert gguf.GGUFReader(path) is plain
    assert (
        list(plain.fields) == list(own.fields)
        and len(own.fields["tokenizer.ggml.tokens"].data) > 49_000
    )
    for name, field in own.fields.items():
        assert plain.fields[name].data == field.data, name
        assert all(
            np.array_equal(a, b) for a, b in zip(plain.fields[name].parts, field.parts, strict=True)
        ), name
    assert [t.name for t in plain.tensors] == [t.name for t in own.tensors]
    for mine, theirs in zip(plain.tensors, own.tensors, strict=True):
        assert mine.tensor_type == theirs.tensor_type and np.array_equal(mine.data, theirs.data)


@pytest.mark.torch
def test_the_default_scores_through_transformers_within_the_bound_of_llama_cpp(
    sd3_run: Path, llama_sd3_run: Path
) -> None:
    """The alias scores through transformers when it is installed, and says so in the run's
    record; its numbers agree with the embedded runtime's on the same weights within the
    stated bound (README, "An alias's two paths"), prompt by prompt and score by score: |Δp| ≤
    0.1 per option, |Δscore| ≤ 0.05. llama.cpp rounds activations to 8 bits in its products,
    transformers keeps them float32; measured 0.042 and 0.015 here, 0.079 and 0.023 on the
    main job (bench/RESULTS.md), the size of the differences between llama.cpp's own kernel
    sets (AVX-512 build: 0.055 and 0.014)."""
    model = json.loads((sd3_run / "run.json").read_text())["model"]
    assert model["spec"] == "smollm2" and model["backend"] == "transformers"
    assert model["runtime"].startswith("transformers ") and "float32" in model["runtime"]
    llama = json.loads((llama_sd3_run / "run.json").read_text())["model"]
    assert llama["backend"] == "llama.cpp" and model["fingerprint"] == llama["fingerprint"]
    hf, embedded = probs_by_prompt(sd3_run), probs_by_prompt(llama_sd3_run)
    assert hf.keys() == embedded.keys() and len(hf) == 270
    gaps = [abs(x - y) for k in hf for x, y in zip(hf[k], embedded[k], strict=True)]
    assert 0 < max(gaps) <= 0.1  # two computations, not one read twice
    scores, reference = dimension_scores(sd3_run), dimension_scores(llama_sd3_run)
    for dim, score in reference.items():
        assert scores[dim] == pytest.approx(score, abs=0.05)


@pytest.mark.torch
def test_hf_batched_equals_unbatched(hf_smollm2: Any) -> None:
    model = hf_smollm2
    questions = load_instrument("bfi").questions()[:2] + load_instrument("swls").questions()[:2]
    prompts = [p.prompt for p in build_prompts("x", questions, "fixed", TEMPLATES["study-a"])]
    texts = [model.render(p) for p in prompts]
    assert len({len(model.tokenizer(t)["input_ids"]) for t in texts}) > 1  # padding happens
    batched = model.next_token_logprobs(texts)
    for i, text in enumerate(texts):
        alone = model.next_token_logprobs([text])[0]
        assert float((batched[i].exp() - alone.exp()).abs().max()) <= 1e-4
        assert float((batched[i] - alone).abs().max()) <= 1e-3


@pytest.mark.model
def test_dry_run_counts_prompts_and_tokens_without_asking(tmp_path: Path) -> None:
    out = tmp_path / "never"
    proc = psyprobe(
        "run",
        "--dry-run",
        "--instrument",
        "sd3",
        "--orders",
        "all",
        "--respondents",
        "0",
        "--out",
        str(out),
    )
    assert not out.exists()
    row = next(line for line in proc.stdout.splitlines() if line.strip("│ ").startswith("sd3"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[1] == "3240" and int(cells[2]) > 3240 * 50  # 27 items × 120 orders, counted
    # the default population: 20 respondents, each item once, its order rotating
    proc = psyprobe("run", "--dry-run", "--instrument", "sd3", "--out", str(out))
    row = next(line for line in proc.stdout.splitlines() if line.strip("│ ").startswith("sd3"))
    assert [c.strip() for c in row.strip("│").split("│")][1] == "540"
    # the time, from a quarter of one call's prompts (transformers scores 512 a call; a smaller
    # call runs slower and made the estimate 1.5 times too long) asked on this machine, and the
    # threads it will use
    assert re.search(r"time: about (\d+ min )?\d+ s \(calibrated by asking 128 of", proc.stdout)
    assert re.search(r"threads: \d+ \(of \d+ CPUs\)", proc.stdout) and not out.exists()
    proc = psyprobe(
        "run",
        "--dry-run",
        "--model",
        "openai:gpt-x@http://127.0.0.1:9/v1",
        "--instrument",
        "sd3",
        "--price-in",
        "2",
        "--price-out",
        "8",
    )
    assert "(estimated)" in proc.stdout and "estimated cost" in proc.stdout
    assert "time: – (not estimated: a dry run asks a server nothing" in proc.stdout


@pytest.mark.unit
def test_models_lists_aliases_and_backends() -> None:
    out = psyprobe("models").stdout
    for name in ("smollm2", "gemma3-270m", "gguf:PATH", "hf:PATH", "openai:MODEL", "replay:FILE"):
        assert name in out


@pytest.mark.torch
def test_hf_shared_prefixes_equal_the_unshared_computation(hf_smollm2: Any) -> None:
    """Two items of each of two instruments under ten orders: prefixes shared within an item,
    an instrument's template and between instruments."""
    model = hf_smollm2
    questions = load_instrument("sd3").questions()[:2] + load_instrument("bfi").questions()[:2]
    prompts = [p.prompt for p in build_prompts("x", questions, "latin", TEMPLATES["study-a"])]
    texts = [model.render(p) for p in prompts]
    before = model.tokens_evaluated  # the session's model has answered other tests before
    shared = model.shared_prefix_logprobs(texts)
    assert model.tokens_evaluated - before < 0.5 * sum(
        len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts
    )  # the prefixes really were shared
    plain = model.next_token_logprobs(texts)
    assert float((shared - plain).abs().max()) <= 1e-4


def under_two_option_lists() -> list[str]:
    """Two statements that share only their six-token opening and a third, under two option
    lists of different lengths: the trie's every kind of batch (stems after prefixes of two
    lengths, own parts packed after them)."""
    lists = ["1. Disagree\n2. Agree\n", "1. Disagree\n2. Unsure\n3. Agree\n4. Strongly agree\n"]
    statements = [
        "I see myself as someone who is talkative.",
        "I see myself as someone who is reserved.",
        "Whatever it takes, you must get the important people on your side.",
    ]
    return [
        f"Options:\n{options}Reply with the number of your option first.\nStatement: {s}\nAnswer:"
        for options in lists
        for s in statements
    ]


@pytest.mark.torch
def test_hf_short_openings_under_prefixes_of_different_lengths_are_computed_once(
    hf_smollm2: Any,
) -> None:
    """Under two option lists of different lengths, two statements each share only their
    six-token opening. Both openings run once, in one batch, each after its own list (the
    shorter one left-padded), and the answers are those of every prompt run alone. The own
    parts' attention reads each of the four prefixes (a list; a list and an opening) in one
    call for all the parts that continue it."""
    from psyprobe.models.hf import after_prefix

    model = hf_smollm2
    texts = under_two_option_lists()
    ids = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    distinct = {tuple(seq[:k]) for seq in ids for k in range(1, len(seq) + 1)}
    before = model.tokens_evaluated
    with mock.patch.object(after_prefix, "_mask", wraps=after_prefix._mask) as runs:  # a spy
        shared = model.shared_prefix_logprobs(texts)
    assert model.tokens_evaluated - before == len(distinct)  # no token computed twice
    assert sorted(len(call.args[1]) for call in runs.call_args_list) == [1, 1, 2, 2]
    assert float((shared - model.next_token_logprobs(texts)).abs().max()) <= 1e-4


@pytest.mark.torch
def test_hf_statements_after_one_prefix_equal_the_unshared_computation(hf_smollm2: Any) -> None:
    """Statements that open differently after one option list: every row of the batch
    continues one prefix, which attention reads once for all of them, and the last layer's
    MLP sees one row a prompt (its answer position) and none of the shared prefix's."""
    model = hf_smollm2
    statements = ["I am talkative.", "Most people can be manipulated.", "People see me as moody."]
    texts = [f"Options:\n1. Disagree\n2. Agree\nStatement: {s}\nAnswer:" for s in statements]
    rows: list[int] = []
    mlp = model.model.base_model.layers[-1].mlp
    hook = mlp.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[-2]))
    try:
        shared = model.shared_prefix_logprobs(texts)
    finally:
        hook.remove()
    assert sum(rows) == len(texts)
    assert float((shared - model.next_token_logprobs(texts)).abs().max()) <= 1e-4


@pytest.mark.torch
def test_fused_layers_compute_what_transformers_layers_do(hf_smollm2: Any) -> None:
    """A left-padded batch through the whole model: with fused layers (``models/hf/fused``)
    the final hidden states are transformers' own up to float32 rounding (measured 6.6e-7 of
    their largest); a layer with a hook on one of its modules runs transformers' code, so the
    hook sees its call, and the 29 others the fused one; after, every layer is transformers'."""
    import torch

    from psyprobe.models.hf import fused

    module = hf_smollm2.model
    batch = hf_smollm2.encode(under_two_option_lists())
    seen: list[int] = []
    hook = module.base_model.layers[3].mlp.register_forward_hook(lambda *_: seen.append(3))
    try:
        spy = mock.patch.object(fused, "_normed", wraps=fused._normed)  # counts, computes as ever
        with torch.inference_mode(), spy as normed:
            plain = module.base_model(**batch).last_hidden_state
            with fused.fused_layers(module):
                done = module.base_model(**batch).last_hidden_state
            assert normed.call_count == 2 * 29  # two norms a fused layer
            assert seen == [3, 3]
            assert not any("forward" in vars(layer) for layer in module.base_model.layers)
    finally:
        hook.remove()
    real = batch["attention_mask"].bool()
    gap = float((done - plain)[real].abs().max())
    assert gap <= 1e-5 * float(plain[real].abs().max())


@pytest.mark.torch
def test_hf_shared_prefixes_in_bfloat16_equal_the_unshared_computation(hf_smollm2: Any) -> None:
    """``--dtype bfloat16`` through the trie (it once failed in both kinds of batch: a
    float32 cache for prefixes of two lengths, a float32 merge of the packed parts' attention).
    Its next-token probabilities equal bfloat16's plain computation and float32's within
    bfloat16's rounding, 0.05: 8 bits of mantissa in every product and in the residual stream
    move them by a few hundredths whichever order the sums are taken in (measured: the trie
    0.026 from the plain computation and 0.034 from float32, the plain one 0.021 from float32;
    the main job against float32: 0.034, bench/RESULTS.md)."""
    import torch

    from psyprobe.models.hf import HFModel

    texts = under_two_option_lists()
    module = copy.deepcopy(hf_smollm2.model).to(torch.bfloat16)
    model = HFModel.in_memory(module, hf_smollm2.tokenizer)
    shared = model.shared_prefix_logprobs(texts).exp()
    assert float((shared - model.next_token_logprobs(texts).exp()).abs().max()) <= 0.05
    assert float((shared - hf_smollm2.next_token_logprobs(texts).exp()).abs().max()) <= 0.05


STATEMENT = "I like to get revenge on authorities."
TWIN = {
    "name": "Twin A",
    "scale": {
        "min": 1,
        "max": 5,
        "labels": [
            "Disagree", "Slightly disagree", "Neither agree nor disagree", "Slightly agree",
            "Agree",
        ],
    },
    "dimensions": ["D"],
    "items": [
        {"id": 1, "text": STATEMENT, "dimension": "D"},
        {"id": 2, "text": STATEMENT, "dimension": "D", "reverse": True},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("smollm2", marks=pytest.mark.model),
        pytest.param("hf:smollm2", marks=pytest.mark.torch),
        pytest.param("server", marks=pytest.mark.model),
    ],
)
def test_questions_that_share_a_statement_are_answered_apart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One statement twice in one instrument (once reversed) and once in another: three
    questions, three answers (one key per prompt once made the last overwrite the others and
    left an instrument without scores). Asked alike, an item and its reversal average to the
    scale's midpoint exactly."""
    spec = (
        f"openai:smollm2@{request.getfixturevalue('llama_server')}"
        if backend == "server"
        else backend
    )
    a = write_json(tmp_path / "a.json", TWIN)
    b = write_json(tmp_path / "b.json", TWIN | {"name": "Twin B", "items": TWIN["items"][:1]})
    out = tmp_path / "run"
    ran = psyprobe(
        "run", "--model", spec, "--instrument", str(a), "--instrument", str(b),
        "--orders", "fixed", "--respondents", "0", "--out", str(out),
    )  # fmt: skip
    assert "3 new answers, 3 stored" in ran.stderr
    rows = records(out)
    assert sorted((r["instrument"], r["item"]) for r in rows) == [
        ("twina", "1"), ("twina", "2"), ("twinb", "1")
    ]  # fmt: skip
    for row in rows:  # the same prompt, the same answer (transformers: up to float rounding)
        assert row["probs"] == pytest.approx(rows[0]["probs"], abs=1e-5)
    twin_a, twin_b = dimension_scores(out, "twina")["D"], dimension_scores(out, "twinb")["D"]
    assert twin_a == pytest.approx(3.0, abs=1e-5) and twin_b is not None
