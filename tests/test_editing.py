"""Editing: personas, steering hooks and vectors, DPO, capability check and the study runner."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import error_line, kill_when, psyprobe, rendered_tables
from psyprobe.capability import CapabilitySettings, perplexity
from psyprobe.editing import (
    Edits,
    SteeringVector,
    load_vector,
    open_edited,
    save_vector,
    steering,
)
from psyprobe.editing.dpo import dpo_pairs, write_pairs
from psyprobe.editing.edited import parse_steer
from psyprobe.editing.steering import AGGREGATORS, decoder_layers
from psyprobe.editing.sweep import SweepCell, SweepSummary, choose_layer
from psyprobe.engine import Capability, run
from psyprobe.errors import UserError
from psyprobe.models import open_model
from psyprobe.prompting import Prompt
from psyprobe.report.results import RunResults
from psyprobe.runs import ResponseStore
from psyprobe.study.summary import StudySummary

if TYPE_CHECKING:
    import torch

PROMPT = Prompt(
    None, "Reply with the number of your option first.\n1. Yes\n2. No\nAnswer:", ("1", "2")
)


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vec") / "agree.safetensors"
    psyprobe(
        "steer", "build", "--model", "hf:smollm2", "--dimension", "bfi:Agreeableness",
        "--layers", "9,13", "--orders", "fixed", "--out", str(out),
    )  # fmt: skip
    return out


def _logits(hf: Any) -> torch.Tensor:
    return hf.next_token_logprobs([hf.render(PROMPT)])


@pytest.mark.torch
def test_hooks_change_outputs_and_removal_restores_them_exactly(hf_smollm2: Any) -> None:
    import torch

    hf = hf_smollm2
    before = _logits(hf)
    push = torch.randn(hf.model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with steering(hf.model, [(13, 4 * push)]):
        during = _logits(hf)
    after = _logits(hf)
    assert not torch.allclose(before, during, atol=1e-3)
    assert torch.equal(before, after)
    # an exception inside the block removes the hooks too
    with pytest.raises(RuntimeError), steering(hf.model, [(13, push)]):
        raise RuntimeError("boom")
    assert torch.equal(before, _logits(hf))


@pytest.mark.torch
def test_vector_save_load_round_trip(tmp_path: Path) -> None:
    import torch

    vector = SteeringVector(
        {3: torch.arange(8, dtype=torch.float32), 5: -torch.ones(8)},
        {"method": "mean-diff", "layers": [3, 5], "norms": {"3": 11.8}, "default_layer": 5},
    )
    save_vector(vector, tmp_path / "v.safetensors")
    loaded = load_vector(tmp_path / "v.safetensors")
    assert loaded.metadata == vector.metadata and loaded.default_layer == 5
    assert all(torch.equal(loaded.layers[k], v) for k, v in vector.layers.items())


@pytest.mark.torch
def test_control_vector_export_reads_back_in_llama_cpp_layout(
    vector_file: Path, tmp_path: Path
) -> None:
    import gguf
    import torch

    out = tmp_path / "control.gguf"
    psyprobe("steer", "export", str(vector_file), "--out", str(out))
    reader = gguf.GGUFReader(str(out))
    tensors = {t.name: t.data for t in reader.tensors}
    vector = load_vector(vector_file)
    # llama.cpp counts the first block's output as layer 1
    assert set(tensors) == {"direction.10", "direction.14"}
    assert torch.equal(torch.from_numpy(tensors["direction.14"].copy()), vector.layers[13])


@pytest.mark.torch
def test_built_vector_carries_its_provenance(vector_file: Path) -> None:
    vector = load_vector(vector_file)
    meta = vector.metadata
    assert sorted(vector.layers) == [9, 13] and meta["layers"] == [9, 13]
    assert meta["model_fingerprint"].startswith("sha256:") and meta["data_hash"].startswith(
        "sha256:"
    )
    assert meta["modules"] == {"9": "model.layers.9", "13": "model.layers.13"}
    assert meta["method"] == "mean-diff" and meta["token_position"] == "last"
    assert meta["n_pairs"] == 9  # 9 Agreeableness items under the fixed order
    assert all(v > 0 for v in meta["norms"].values())


@pytest.mark.torch
def test_sweep_measures_every_cell_and_writes_a_typed_summary(
    vector_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    # the model as itself, the scale's order: 44 prompts a cell show cells that differ and
    # a resume that asks nothing (a population would multiply them and test nothing more)
    args = [
        "steer", "sweep", "--model", "hf:smollm2", "--vector", str(vector_file),
        "--layers", "13", "--coefficients=-8,8", "--orders", "fixed", "--respondents", "0",
        "--out", str(out),
    ]  # fmt: skip
    # a dry run: one cell's prompts, timed on this machine, for each of the 3 cells
    planned = psyprobe(*args, "--dry-run").stdout
    assert "each of 3 cells" in planned and re.search(r"all 3 cells: about \S+", planned)
    assert not out.exists()
    ran = psyprobe(*args)
    printed = ran.stdout
    # progress names each cell, then that cell's own asking (on standard error)
    assert "cell 3 of 3: layer 13, coefficient +8" in ran.stderr
    assert "asking" in (out / "L13_c+8" / "run.log").read_text()
    data = SweepSummary.model_validate_json((out / "sweep.json").read_text())
    assert data.dimension == "Agreeableness" and data.coefficients == [-8.0, 0.0, 8.0]
    cells = data.cells[13]
    assert list(cells) == [-8.0, 0.0, 8.0]
    # each cell is its own run directory, and the steered cells answer differently
    base = RunResults.load(out / "base").instruments["bfi"].dimensions["Agreeableness"]
    assert cells[0.0].score == base.score
    assert cells[-8.0].score != cells[8.0].score
    # SmolLM2 puts under half its probability on BFI's labels even unsteered: a score read
    # from such answers is no effect to choose a layer by, and the sweep says so
    assert cells[0.0].valid_rate is not None and cells[0.0].valid_rate < 0.5
    assert data.choice.layer is None and data.use is None
    assert "none chosen" in printed and "(unsteered, " in printed
    # a rerun resumes: every cell is read back from its store, nothing is asked again
    stores = sorted(out.glob("*/responses.sqlite"))
    assert len(stores) == 3

    def counts() -> list[int]:
        found = []
        for store in stores:
            with ResponseStore(store) as held:
                found.append(held.count())
        return found

    before = counts()
    again = psyprobe(*args).stdout
    assert counts() == before
    assert SweepSummary.model_validate_json((out / "sweep.json").read_text()) == data
    assert "none chosen" in again


@pytest.mark.torch
def test_edits_enter_the_identity_and_steer_the_model(vector_file: Path) -> None:
    base = open_model("hf:smollm2")
    plain = base.option_probs([PROMPT])[0]
    infos = []
    for coef in (8.0, -8.0):
        edited = open_edited("hf:smollm2", edits=Edits(steer=(f"{vector_file}:13@{coef:g}",)))
        infos.append(edited.info)
        steered = edited.option_probs([PROMPT])[0]
        assert steered.probs != pytest.approx(plain.probs, abs=1e-4)
        edited.close()
    assert infos[0].fingerprint != infos[1].fingerprint != base.info.fingerprint
    assert "+steer=" in infos[0].spec
    # after the edited models are gone the base model answers as before
    assert base.option_probs([PROMPT])[0].probs == plain.probs
    persona = open_edited("smollm2", edits=Edits(persona="agreeableness-high"))
    assert persona.info.fingerprint != open_model("smollm2").info.fingerprint
    with pytest.raises(UserError, match="not a transformers model"):
        open_edited("smollm2", edits=Edits(steer=(f"{vector_file}@1",)))
    with pytest.raises(UserError, match="FILE"):
        parse_steer("no-coefficient.safetensors")
    base.close()


@pytest.mark.torch
def test_aggregators_recover_a_known_direction() -> None:
    """Paired differences = a known direction × per-pair strength + noise: mean-diff is their
    mean, pca the direction itself, signed and scaled to the mean's length along it."""
    import torch

    gen = torch.Generator().manual_seed(0)
    direction = torch.nn.functional.normalize(
        torch.randn(16, generator=gen, dtype=torch.float64), dim=0
    )
    strength = 2.0 + torch.rand(64, 1, generator=gen, dtype=torch.float64)
    diffs = strength * direction + 0.01 * torch.randn(64, 16, generator=gen, dtype=torch.float64)
    mean = AGGREGATORS["mean-diff"](diffs)
    assert torch.allclose(mean, diffs.mean(0))
    pca = AGGREGATORS["pca"](diffs)
    assert float(torch.nn.functional.cosine_similarity(pca, direction, dim=0)) > 0.999
    assert float(pca @ direction) == pytest.approx(float(mean @ direction), rel=1e-3)
    assert float(AGGREGATORS["pca"](-diffs) @ direction) < 0  # the sign follows the mean


@pytest.mark.torch
def test_decoder_blocks_are_found_by_name_in_each_architecture() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    small = {"vocab_size": 32}
    llama = LlamaForCausalLM(
        LlamaConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=3,
                    num_attention_heads=2, num_key_value_heads=2, **small)
    )  # fmt: skip
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=2, n_head=2, **small))
    assert decoder_layers(llama) == [llama.model.layers[i] for i in range(3)]
    assert decoder_layers(gpt2) == [gpt2.transformer.h[i] for i in range(2)]
    llama.config.num_hidden_layers = 5  # a stack that is not the whole model's: refused
    with pytest.raises(UserError, match="found no 5 decoder blocks"):
        decoder_layers(llama)


@pytest.mark.unit
def test_layer_choice_prefers_monotonic_valid_layers() -> None:
    """A fake table isolates the selection rule."""

    def cell(score: float, valid: float = 0.9) -> SweepCell:
        return SweepCell(score=score, ci95=None, valid_rate=valid, validity="ok", pole_percent=None)

    table = {
        4: {-1.0: cell(2.0), 0.0: cell(3.0), 1.0: cell(4.5, 0.3)},  # big, but answers break
        8: {-1.0: cell(2.8), 0.0: cell(3.0), 1.0: cell(3.4)},  # monotonic and valid
        12: {-1.0: cell(3.5), 0.0: cell(3.0), 1.0: cell(3.9)},  # not monotonic
    }
    choice = choose_layer(table)
    assert choice.layer == 8 and "monotonic" in choice.why
    # where no layer keeps its answers valid, none is chosen (the largest effect of answers
    # that miss the labels is no effect)
    broken = {
        layer: {c: cell(v.score or 0, 0.3) for c, v in cells.items()}
        for layer, cells in table.items()
    }
    none = choose_layer(broken)
    assert none.layer is None and none.why.endswith("(unsteered, 0.30): none chosen")


@pytest.mark.unit
def test_dpo_pairs_follow_study_a_and_hold_out_sd3() -> None:
    pairs = dpo_pairs()
    assert len(pairs) == 170  # (9 A + 8 N items) × 10 latin orders
    assert not any(p["item"].startswith("sd3/") for p in pairs)
    a_pair = next(p for p in pairs if p["dimension"] == "Agreeableness")
    n_pair = next(p for p in pairs if p["dimension"] == "Neuroticism")
    assert "kindness" in a_pair["chosen"][0]["content"]
    assert "calm" in n_pair["chosen"][0]["content"]
    assert a_pair["chosen"] != a_pair["rejected"] and a_pair["prompt"][1]["role"] == "user"


@pytest.mark.e2e
def test_dpo_smoke_run_resumes_and_gives_an_adapter_that_changes_logprobs(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(dpo_pairs()[:8], pairs)
    adapter = tmp_path / "adapter"
    args = [
        "dpo", "train", "--model", "hf:smollm2", "--pairs", str(pairs), "--out", str(adapter),
        "--steps", "2", "--batch-size", "2", "--learning-rate", "1e-3",
    ]  # fmt: skip
    # killed once step 1's checkpoint is complete, the rerun (in this process: the kill is
    # the point, not the rerun) trains step 2 only
    state = adapter / "trainer" / "checkpoint-1" / "trainer_state.json"
    kill_when(state.is_file, *args)
    assert state.is_file() and not (adapter / "adapter_config.json").is_file()
    resumed = psyprobe(*args)
    assert "resumed from step 1" in resumed.stdout
    # the trainer's own bars and loss dicts stay off the screen; its steps are progress
    assert "{'loss'" not in resumed.stdout + resumed.stderr and "it/s" not in resumed.stderr
    assert "training, loss" in (adapter / "run.log").read_text()
    record = json.loads((adapter / "psyprobe-dpo.json").read_text())
    assert record["n_pairs"] == 8 and len(record["losses"]) == 2
    assert record["resumed_from_step"] == 1
    # a different request does not resume someone else's checkpoint
    other = psyprobe(*args[:-1], "1e-4", check=False)
    assert other.returncode == 2 and "other learning_rate" in other.stderr
    base = open_model("hf:smollm2")
    tuned = open_edited("hf:smollm2", edits=Edits(adapter=str(adapter)))
    assert tuned.info.fingerprint != base.info.fingerprint
    before = base.option_probs([PROMPT])[0].probs
    after = tuned.option_probs([PROMPT])[0].probs
    assert after != pytest.approx(before, abs=1e-5)
    assert perplexity(tuned, max_tokens=256) != pytest.approx(perplexity(base, max_tokens=256))
    base.close()
    tuned.close()


@pytest.mark.torch
def test_capability_check_on_real_models(tmp_path: Path) -> None:
    model = open_model("smollm2")
    measure = Capability(CapabilitySettings(arc_limit=6))
    measured = run(measure, model, tmp_path)
    arc = measured.results.arc
    assert set(arc) == {"ARC-Easy/test", "ARC-Challenge/test"}
    assert all(e.n == 6 and e.value is not None and 0 <= e.value <= 1 for e in arc.values())
    assert measured.results.perplexity is None  # llama.cpp: no torch module here
    # every accuracy traces to stored option probabilities: a rerun asks nothing, and the
    # report rebuilds the same numbers without the model
    with ResponseStore(tmp_path / "responses.sqlite") as store:
        records = list(store.records())
    assert len(records) == 12 and all(r.probs and len(r.probs) == len(r.labels) for r in records)
    assert run(measure, model, tmp_path).asked == 0
    model.close()
    assert Capability.rebuild(tmp_path) == measured.results
    # report.html shows the capability section with the same numbers
    page = (tmp_path / "report.html").read_text()
    easy = arc["ARC-Easy/test"]
    assert "<h2>Capability</h2>" in page
    assert f"<td>ARC-Easy/test accuracy</td><td>{easy.value:.3f}</td>" in page
    hf = open_model("hf:smollm2")
    ppl = perplexity(hf, max_tokens=512)
    assert ppl is not None and 1 < ppl < 200
    hf.close()


STUDY = Path(__file__).resolve().parents[1] / "studies" / "closed-loop-reduced.yaml"


@pytest.mark.torch
def test_study_runs_the_grid_and_resumes_after_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted (Ctrl-C) as the second condition starts, in this process: what a study
    resumes is its finished conditions, vectors and adapters (that answers stored before a
    kill -9 survive it is the run's kill test)."""
    from psyprobe.study import run as study_run

    out = tmp_path / "study"
    whole = study_run.run_condition

    def interrupted(study: Any, c: Any, folder: Path, watcher: Any = None) -> None:
        if c.name == "satisfied-plus":
            raise KeyboardInterrupt
        whole(study, c, folder, watcher)

    monkeypatch.setattr(study_run, "run_condition", interrupted)
    interrupted_run = psyprobe("study", str(STUDY), "--out", str(out), check=False)
    assert interrupted_run.returncode != 0
    # building the vector and training the adapter: psyprobe's own lines, no library's bars,
    # warnings or loss dicts on the screen (#34); the adapter's steps are in its run.log
    said = interrupted_run.stdout + interrupted_run.stderr
    assert "%|" not in said and "{'loss'" not in said and "Warning" not in said
    assert "building the steering vector satisfied" in said and "DPO training" in said
    assert "training, loss" in (out / "adapters" / "bfi-dpo" / "run.log").read_text()
    first = out / "conditions" / "base" / "capability.json"
    assert first.is_file() and not (out / "conditions" / "satisfied-plus").exists()
    kept, store = first.read_text(), first.with_name("responses.sqlite")
    with ResponseStore(store) as held:
        answers = held.count()
    monkeypatch.setattr(study_run, "run_condition", whole)
    psyprobe("study", str(STUDY), "--out", str(out))
    # the finished condition was not asked again, and rebuilt the same from its store
    assert first.read_text() == kept
    with ResponseStore(store) as held:
        assert held.count() == answers
    data = StudySummary.load(out)  # study.json read back into its type
    assert list(data.conditions) == ["base", "satisfied-plus", "persona", "dpo"]
    steered = data.conditions["satisfied-plus"]
    assert steered.steer[0].coefficient == 8
    assert "swls:Life satisfaction" in steered.personality
    assert steered.safety["xstest"].metric == "rta"
    report = (out / "study.md").read_text()
    assert "## Steering (study B, Figure 7)" in report and "| satisfied-plus |" in report
    assert "## DPO before → after (study A, Table 5)" in report
    seen, meant = rendered_tables(report)
    assert seen == meant > 4, "every table of study.md renders as one"
    # each correlation carries its trait's worst validity verdict over the conditions
    r = data.correlations[0]
    verdicts = [c.personality[r.trait].validity for c in data.conditions.values()]
    assert r.trait_validity == max(verdicts, key=["ok", "weak", "no_signal"].index)
    assert f"| {r.trait} | {r.trait_validity} | {r.safety} |" in report
    assert (out / "dose_response.png").stat().st_size > 0
    # each condition's report.html shows its personality and its safety results together
    # each condition keeps its own progress log
    for condition in data.conditions:
        assert "asking" in (out / "conditions" / condition / "run.log").read_text(), condition
    page = (out / "conditions" / "satisfied-plus" / "report.html").read_text()
    assert "Life satisfaction" in page and "<h2>Safety</h2>" in page and "+steer=" in page


@pytest.mark.unit
def test_bad_editing_input_is_a_one_line_error(tmp_path: Path) -> None:
    write_pairs(dpo_pairs()[:2], tmp_path / "p.jsonl")
    for args, needle in (
        (["steer", "build", "--model", "smollm2"], "hf:"),
        (["steer", "build", "--dimension", "bfi:Nope", "--out", str(tmp_path / "v")], "bfi:"),
        (["dpo", "train", "--model", "smollm2", "--pairs", str(tmp_path / "p.jsonl")], "hf:"),
        (["run", "--model", "hf:smollm2", "--steer", "missing.safetensors@2"], "missing"),
    ):
        proc = psyprobe(*args, check=False)
        assert proc.returncode == 2 and needle in error_line(proc), proc.stderr


@pytest.mark.unit
def test_bad_study_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nconditions:\n  - name: a\n    adapter: missing\n")
    proc = psyprobe("study", str(bad), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2 and "adapter" in error_line(proc)
