"""The embedded runtime: a build that cannot run here is refused in one line; the portable
build gives the same numbers on every machine (pinned)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import psyprobe.models.llamacpp as llamacpp
from conftest import probs_by_prompt
from psyprobe.errors import UserError
from psyprobe.instruments import load_instrument
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, build_prompts
from psyprobe.records import ResponseRecord
from psyprobe.scoring.score import score_instrument

REFERENCE = Path(__file__).parent / "data" / "smollm2_sd3_latin_portable.json"


@pytest.mark.unit
def test_an_amx_build_is_refused_from_its_system_info(monkeypatch: pytest.MonkeyPatch) -> None:
    # the system-info line of a native build on an AMX CPU (llama.cpp issue 20824 crashes it)
    native = (
        "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | OPENMP = 1 |"
    )
    monkeypatch.setattr(llamacpp, "runtime_info", lambda: native)
    llamacpp.check_runtime.cache_clear()
    with pytest.raises(UserError) as err:
        llamacpp.check_runtime(ALIASES["smollm2"].path())
    message = str(err.value)
    assert "\n" not in message and "AMX" in message
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir --force-reinstall' in message


@pytest.mark.e2e
def test_a_build_that_crashes_on_decode_is_refused_not_a_segfault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe process dies by SIGSEGV, as the AMX build's does on a multi-token decode; the
    probe's code is swapped for one that kills itself (a fake of the crash, nothing else)."""
    monkeypatch.setenv("PSYPROBE_CACHE", str(tmp_path))
    monkeypatch.setattr(
        llamacpp, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    )
    llamacpp.check_runtime.cache_clear()
    with pytest.raises(UserError, match=r"killed by signal 11.*--no-cache-dir"):
        llamacpp.check_runtime(ALIASES["smollm2"].path())
    assert not (tmp_path / "runtime-ok").exists()  # a failed build is never remembered as good
    llamacpp.check_runtime.cache_clear()


@pytest.mark.model
def test_the_installed_build_passes_the_probe_once_and_remembers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSYPROBE_CACHE", str(tmp_path))
    llamacpp.check_runtime.cache_clear()
    info = llamacpp.check_runtime(ALIASES["smollm2"].path())
    assert "AMX_INT8 = 1" not in info and info.startswith("llama-cpp-python ")
    assert len(list((tmp_path / "runtime-ok").iterdir())) == 1
    llamacpp.check_runtime.cache_clear()


@pytest.mark.model
def test_the_run_records_the_runtime(llama_sd3_run: Path) -> None:
    runtime = json.loads((llama_sd3_run / "results.json").read_text())["model"]["runtime"]
    assert runtime == llamacpp.runtime_info()
    assert json.loads((llama_sd3_run / "run.json").read_text())["model"]["runtime"] == runtime
    assert runtime in (llama_sd3_run / "report.md").read_text()


@pytest.mark.model
def test_sd3_scores_on_the_portable_build_match_the_pinned_reference(
    llama_sd3_run: Path,
) -> None:
    """Same build, any x86-64 machine, any thread count: the same numbers. Tolerance 1e-4: a
    float-rounding change stays far below it, while another kernel set moves these scores by
    0.014 and single option probabilities by 0.055 (AVX-512 build, bench/RESULTS.md). The
    session's SD-3 run asked exactly the reference's prompts; its stored answers are compared."""
    reference = json.loads(REFERENCE.read_text())
    # Another CPU family (ARM's NEON kernels) computes other numbers by design; on x86-64 the
    # portable build must match, and a new llama-cpp-python pin must re-pin the reference.
    if "AVX2 = 1" not in llamacpp.runtime_info():
        pytest.skip(f"the reference is for {reference['runtime']}")
    inst = load_instrument("sd3")
    prompts = list(build_prompts("sd3", inst.questions(), "latin", TEMPLATES["study-a"]))
    stored = probs_by_prompt(llama_sd3_run)
    probs = [stored[(ip.question.item_id, ip.order)] for ip in prompts]
    assert len(stored) == len(prompts) == len(reference["probs"])
    assert (
        max(
            abs(x - y)
            for p, q in zip(probs, reference["probs"], strict=True)
            for x, y in zip(p, q, strict=True)
        )
        < 1e-4
    )
    records = [
        ResponseRecord(
            key=str(i),
            instrument="sd3",
            item=ip.question.item_id,
            order_index=ip.order_index,
            option_order=ip.order,
            sample=0,
            attempt=0,
            mode="logprob",
            system=ip.prompt.system,
            user=ip.prompt.user,
            labels=ip.prompt.labels,
            decoding={},
            seed=0,
            model_fingerprint="x",
            probs=tuple(p),
        )
        for i, (ip, p) in enumerate(zip(prompts, probs, strict=True))
    ]
    scores = score_instrument("sd3", inst, records, omega_resamples=0)
    for dim, expected in reference["scores"].items():
        assert scores.dimensions[dim].score == pytest.approx(expected, abs=1e-4)
