"""The Python API (#18): the same engine as the command line, typed results, models in memory."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, probs_by_prompt, psyprobe, records
from psyprobe import load, load_safety, measure, measure_safety
from psyprobe.errors import UserError
from psyprobe.report.results import RunResults
from psyprobe.runs import RunSettings

SD3 = {"instruments": ["sd3"], "orders": "latin", "respondents": 0}
SD3_FIXED = {"instruments": ["sd3"], "orders": "fixed", "respondents": 0}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("PSYPROBE_CACHE", str(folder))
    return folder


@pytest.mark.unit
def test_the_one_liner_prints_score_ci_and_verdict_per_dimension(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import psyprobe

    r = psyprobe.measure("sim:Machiavellianism=2", instruments=["sd3"], orders="latin")
    said = capsys.readouterr()
    assert "asking sim:Machiavellianism=2" in said.err and not said.out  # its progress
    print(r.to_pandas())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["score", "ci_low", "ci_high", "validity"]
    rows = {line.split()[-5]: line.split()[-4:] for line in lines[2:]}
    assert set(rows) == {"Machiavellianism", "Narcissism", "Psychopathy"}
    assert float(rows["Machiavellianism"][0]) == pytest.approx(2.0, abs=0.05)  # the oracle
    assert all(row[3] in ("ok", "weak", "no_signal") for row in rows.values())


@pytest.mark.unit
def test_results_are_the_typed_results_json_and_resume_from_the_cache(cache: Path) -> None:
    first = measure("sim:Machiavellianism=2,spread=0.5", **SD3)
    folder = first.directory
    assert folder is not None and folder.is_relative_to(cache)
    written = RunResults.model_validate_json((folder / "results.json").read_text())
    assert written.model_dump() == first.model_dump() and written.directory is None
    assert load(folder) == first
    assert json.loads((folder / "results.json").read_text())["instruments"]["sd3"]["name"] == "sd3"
    # the same call again: the same directory, nothing asked, the same numbers
    stored = (folder / "responses.sqlite").stat().st_mtime_ns
    again = measure("sim:Machiavellianism=2,spread=0.5", **SD3)
    assert again.directory == folder and again == first
    assert (folder / "responses.sqlite").stat().st_mtime_ns == stored
    answers = first.answers()
    assert len(answers) == first.store.n_responses == 270
    assert {"item", "order_index", "option_order", "probs", "status", "read"} <= set(answers)
    detail = first.to_pandas(detail=True)
    assert {"z", "d", "p", "alpha", "norm_mean", "validity_reasons"} <= set(detail.columns)


@pytest.mark.unit
def test_an_open_model_and_bad_models_and_settings(tmp_path: Path) -> None:
    from psyprobe.models import open_model

    sim = open_model("sim:Narcissism=4")
    results = measure(sim, out=tmp_path / "run", **SD3)
    assert results.model.spec == "sim:Narcissism=4"
    narcissism = results.instruments["sd3"].dimensions["Narcissism"].score
    assert narcissism == pytest.approx(4.0, abs=0.05)
    with pytest.raises(UserError, match="model: int is neither"):
        measure(42)
    with pytest.raises(
        UserError, match=r"mode: Input should be 'logprob' or 'generate' \(got 'sampled'\)"
    ):
        measure("sim:Narcissism=4", mode="sampled", out=tmp_path / "x")
    with pytest.raises(UserError, match="tokenizer"):
        measure(sim, tokenizer=object())
    with pytest.raises(UserError, match="colour: not a setting of measure"):
        measure("sim:Narcissism=4", colour="red")


@pytest.mark.torch
def test_a_transformers_model_in_memory_scores_as_smollm2_through_the_cli(
    tmp_path: Path, sd3_run: Path
) -> None:
    """Prompt by prompt against the session's run of the alias, which scores through
    transformers: SD-3's items in the scale's order are among its prompts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from psyprobe.models import ALIASES
    from psyprobe.models.hf import saved_model_dir

    folder, _ = saved_model_dir(ALIASES["smollm2"].path())
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.train()  # the API measures in eval mode and gives the mode back
    plain = measure(model, tokenizer=tokenizer, out=tmp_path / "memory", **SD3_FIXED)
    assert model.training and tokenizer.padding_side == "right"  # the caller's objects as given
    assert plain.directory is not None
    memory, cli = probs_by_prompt(plain.directory), probs_by_prompt(sd3_run)
    assert len(memory) == 27
    for prompt, probs in memory.items():
        assert probs == pytest.approx(cli[prompt], abs=1e-4)
    assert plain.model.spec.startswith("hf-memory:")
    # a forward hook changes the answers; the fingerprint tells the models apart, so nothing
    # measured without the hook is reused with it
    layer = model.model.layers[len(model.model.layers) // 2]

    def triple(module: object, args: object, out: Any) -> Any:
        return (out[0] * 3.0, *out[1:]) if isinstance(out, tuple) else out * 3.0

    handle = layer.register_forward_hook(triple)
    hooked = measure(model, tokenizer=tokenizer, **SD3_FIXED)
    handle.remove()
    assert hooked.model.fingerprint != plain.model.fingerprint
    assert hooked.model.fingerprint.endswith(":hooked")
    assert hooked.store.n_responses == 27
    scores = {d: s.score for d, s in plain.instruments["sd3"].dimensions.items()}
    moved = {d: s.score for d, s in hooked.instruments["sd3"].dimensions.items()}
    assert moved != pytest.approx(scores, abs=1e-3)


@pytest.mark.model
def test_safety_results_as_a_frame_reproduce_the_command_line(
    tmp_path: Path, safety_run: Path
) -> None:
    """The API from scratch gives the session's command-line run's privacy tasks exactly
    (greedy answers, the same seed: item selection is per suite)."""
    results = measure_safety("smollm2", ["privacy"], limit=5, seed=1, out=tmp_path / "safety")
    frame = results.to_pandas()
    assert set(frame["task"]) == set(results.tasks)
    assert frame["headline"].sum() == len(results.tasks)
    assert load_safety(tmp_path / "safety") == results
    assert len(results.answers()) == results.store.answers
    cli = load_safety(safety_run)
    assert results.tasks and {k: cli.tasks[k] for k in results.tasks} == results.tasks


@pytest.mark.torch
def test_the_notebook_example_runs(
    tmp_path: Path, sd3_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script as a user runs it, in this process. Its embedded SD-3 run has the settings of
    the session's: copied in, it resumes with nothing to ask; the steered model is asked."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(sd3_run, out / "smollm2")
    monkeypatch.setattr(sys, "argv", ["notebook.py", str(out)])
    runpy.run_path(str(REPO / "examples" / "notebook.py"), run_name="__main__")
    assert (out / "sd3-three-ways.png").stat().st_size > 10_000
    # resumed: the same 270 answers, none asked again
    assert [r["created"] for r in records(out / "smollm2")] == [
        r["created"] for r in records(sd3_run)
    ]


def _kernel_outputs(code: str) -> list[str]:
    """What a real Jupyter kernel shows for ``code``: the text of its stream and display
    outputs, in order."""
    manager = pytest.importorskip("jupyter_client.manager")
    pytest.importorskip("ipykernel")
    km, kc = manager.start_new_kernel(kernel_name="python3")
    try:
        kc.execute(code)
        shown: list[str] = []
        while True:
            msg = kc.get_iopub_msg(timeout=120)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                shown.append(content["text"])
            elif kind in ("display_data", "error"):
                shown.append(content.get("data", {}).get("text/plain", str(content)))
            elif kind == "status" and content["execution_state"] == "idle":
                return shown
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.e2e
def test_a_notebook_kernel_shows_the_progress_unless_told_not_to(tmp_path: Path) -> None:
    """#34: in a real Jupyter kernel the API's progress appears as the cell's output (timestamped
    lines, rich's notebook rendering); ``progress=False`` shows nothing."""
    call = 'import psyprobe\npsyprobe.measure("sim:Narcissism=4", ["swls"], respondents=3'
    shown = "".join(_kernel_outputs(f"{call}, out={str(tmp_path / 'a')!r})"))
    assert "loading sim:Narcissism=4" in shown and "swls: 15/15 (100 %)" in shown
    assert "scoring" in shown
    assert _kernel_outputs(f"{call}, out={str(tmp_path / 'b')!r}, progress=False)") == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: measure("sim:Narcissism=4", "sd3", respondents=-1),
         "respondents: Input should be greater than or equal to 0 (got -1)"),
        (lambda: measure("sim:Narcissism=4", "sd3", backend={"threads": -3}),
         "threads: Input should be greater than or equal to 1 (got -3)"),
        (lambda: measure("sim:Narcissism=4", "sd3", respondent=3),
         "respondent: not a setting of measure; did you mean respondents?"),
        (lambda: load_safety("."), ": no safety.json (run `psyprobe report"),
    ],
)  # fmt: skip
def test_a_bad_argument_is_the_command_lines_one_line(call: Any, says: str, cache: Path) -> None:
    """#38: the API raises UserError with the command line's one line, naming the keyword (not
    pydantic's report with its links, nor a TypeError or FileNotFoundError)."""
    with pytest.raises(UserError) as raised:
        call()
    assert says in str(raised.value) and "\n" not in str(raised.value)


def _three_doors(tmp_path: Path) -> list[str]:
    """One intent (SWLS by any of its names, 2 respondents) said on the command line, to the
    API and in a study file: the settings each run.json records, as stored."""
    spec = "sim:Machiavellianism=4"
    psyprobe("run", "--model", spec, "--instrument", "SWLS", "--respondents", "2",
             "--out", str(tmp_path / "cli"))  # fmt: skip
    measure(spec, ["swls"], respondents=2, out=tmp_path / "api", progress=False)
    study = tmp_path / "study.yaml"
    study.write_text(
        f'name: same\nmodel: "{spec}"\ninstruments: [Swls]\nrespondents: 2\nsafety: null\n'
        "arc_limit: null\nconditions:\n  - name: base\n"
    )
    psyprobe("study", str(study), "--out", str(tmp_path / "study"))
    return [
        json.dumps(json.loads((folder / "run.json").read_text())["settings"], sort_keys=True)
        for folder in (tmp_path / "cli", tmp_path / "api", tmp_path / "study/conditions/base")
    ]


@pytest.mark.unit
def test_the_command_line_the_api_and_a_study_record_the_same_settings(tmp_path: Path) -> None:
    """#36: one intent said three ways is one recorded design, byte for byte, the default
    orders and seed included."""
    recorded = _three_doors(tmp_path)
    assert recorded[0] == recorded[1] == recorded[2]
    assert json.loads(recorded[0])["instruments"] == ["swls"]


@pytest.fixture
def changed_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """RunSettings with other defaults for the orders and the generate-mode knobs, as if the
    one declaration had been edited."""
    changed: dict[str, object] = {"orders": "random:2", "temperature": 0.3, "max_tokens": 17}
    for name, value in changed.items():
        monkeypatch.setattr(RunSettings.model_fields[name], "default", value)
    RunSettings.model_rebuild(force=True)
    yield changed
    monkeypatch.undo()
    RunSettings.model_rebuild(force=True)


@pytest.mark.unit
def test_a_default_changed_in_the_settings_type_changes_all_three_doors(
    tmp_path: Path, changed_defaults: dict[str, object]
) -> None:
    """#36: a default is declared once — in RunSettings — so an edit there reaches the command
    line, the API and a study file alike, none of which names it."""
    recorded = _three_doors(tmp_path)
    assert recorded[0] == recorded[1] == recorded[2]
    assert json.loads(recorded[0]) | changed_defaults == json.loads(recorded[0])


@pytest.mark.unit
def test_the_apis_settings_keywords_are_the_settings_types_fields() -> None:
    """The API names each run setting as RunSettings does, and the command line offers the
    same ones (as flags): none can be added to one door and forgotten at another."""
    from psyprobe.api import _SETTINGS
    from psyprobe.cli.options import PERSONALITY

    assert set(PERSONALITY) == _SETTINGS
    assert set(RunSettings.model_fields) >= _SETTINGS


@pytest.mark.unit
def test_a_stored_setting_keeps_the_meaning_it_was_written_with() -> None:
    """stop_when_read's default is the asking one (on), but a record leaves the switch out when
    it is off — every logprob run, and generate runs from before it existed — and reads back as
    off, so the records of earlier versions resume and rebuild as they were."""
    assert RunSettings(mode="generate").stop_when_read
    assert RunSettings(mode="generate").model_dump()["stop_when_read"] is True
    assert not RunSettings.stored({"mode": "generate"}).stop_when_read
    assert "stop_when_read" not in RunSettings().model_dump()  # logprob: nothing generated
    assert RunSettings().sampling() == RunSettings(stop_when_read=False).sampling()
