"""End to end on the real embedded model (SmolLM2-135M-Instruct through llama.cpp), the command
run in this process; the kill -9 test alone starts a process of its own, to kill it."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from conftest import kill_when, psyprobe, records
from psyprobe.runs.asking import BATCH


@pytest.mark.model
def test_run_writes_results_responses_and_report(sd3_run: Path) -> None:
    results = json.loads((sd3_run / "results.json").read_text())
    assert results["model"]["spec"] == "smollm2"
    assert results["model"]["fingerprint"].startswith("sha256:")
    assert results["psyprobe_version"] and results["settings"]["orders"] == "latin"
    sd3 = results["instruments"]["sd3"]
    assert sd3["n_prompts"] == 270 and 0 < sd3["valid_rate"] <= 1
    for dim in ("Machiavellianism", "Narcissism", "Psychopathy"):
        d = sd3["dimensions"][dim]
        assert 1 <= d["score"] <= 5 and d["ci95"][0] <= d["score"] <= d["ci95"][1]
        assert d["n_items"] == 9 and d["norm"]["mean"] > 0
        # the model as itself is one respondent: no spread between respondents to speak of
        assert d["n_respondents"] == 1 and d["sd"] is None and d["validity"] != "ok"
    lines = (sd3_run / "responses.jsonl").read_text().splitlines()
    assert len(lines) == 270
    first = json.loads(lines[0])
    assert first["user"].startswith("Instruction:") and len(first["probs"]) == 5


@pytest.mark.model
def test_report_numbers_match_results(sd3_run: Path) -> None:
    results = json.loads((sd3_run / "results.json").read_text())
    report = (sd3_run / "report.md").read_text()
    for dim, d in results["instruments"]["sd3"]["dimensions"].items():
        row = next(line for line in report.splitlines() if line.startswith(f"| {dim} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) == round(d["score"], 3)
        lo, hi = map(float, re.findall(r"-?\d+\.\d+", cells[2]))
        assert (lo, hi) == (round(d["ci95"][0], 3), round(d["ci95"][1], 3))
        assert cells[3] == ("–" if d["sd"] is None else f"{d['sd']:.3f}")
        if d["validity"] == "no_signal":  # a response style is not compared with people
            assert cells[5:8] == ["withheld"] * 3
        else:
            assert float(cells[5]) == round(d["norm"]["z"], 3)
        assert cells[8] == ("–" if d["alpha"] is None else f"{d['alpha']:.3f}")
        assert float(cells[11]) == round(d["valid_rate"], 3)
        assert cells[12] == d["validity"]


@pytest.mark.model
def test_report_rebuilds_the_same_outputs_without_a_model(
    sd3_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from psyprobe.engine import Personality, rebuild
    from psyprobe.models import llamacpp
    from psyprobe.models.hf import HFModel

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("report opened a model")

    monkeypatch.setattr(llamacpp.LlamaCppModel, "__init__", no_model)
    monkeypatch.setattr(HFModel, "__init__", no_model)
    before = {f: (sd3_run / f).read_text() for f in ("results.json", "report.md")}
    for f in before:
        (sd3_run / f).unlink()
    rebuild(Personality, sd3_run)
    assert {f: (sd3_run / f).read_text() for f in before} == before


def _stored(store: Path) -> int:
    try:
        with sqlite3.connect(store) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.e2e
def test_kill_9_then_resume_asks_nothing_twice_and_scores_identically(tmp_path: Path) -> None:
    """BFI's 44 items in the scale's order on llama.cpp: two batches of the ask-loop (32 and
    12), killed once the first is stored. llama.cpp computes each prompt by the same calls
    whatever else is asked, so a resumed run's numbers are the uninterrupted run's bit for bit
    (transformers batches prompts together, which leaves float32 rounding, < 1e-4:
    tests/test_backends.py)."""
    bfi = ["--model", "gguf:smollm2", "--instrument", "bfi", "--orders", "fixed"]
    bfi += ["--respondents", "0"]
    out = tmp_path / "run"
    kill_when(lambda: _stored(out / "responses.sqlite") >= BATCH, "run", *bfi, "--out", str(out))
    kept = _stored(out / "responses.sqlite")
    assert BATCH <= kept < 44

    # the killed process is the point; the resume need not be a process of its own
    resumed = psyprobe("run", *bfi, "--out", str(out))
    assert f"{44 - kept} new answers, 44 stored" in resumed.stderr
    again = psyprobe("run", *bfi, "--out", str(out))
    assert "0 new answers, 44 stored" in again.stderr
    # The same answers bit for bit as the uninterrupted run: the scoring call pattern does not
    # depend on which prompts were asked before.
    psyprobe("run", *bfi, "--out", str(tmp_path / "whole"))
    a = json.loads((out / "results.json").read_text())["instruments"]
    b = json.loads((tmp_path / "whole" / "results.json").read_text())["instruments"]
    assert a == b


@pytest.mark.model
def test_resume_refuses_other_settings(sd3_run: Path) -> None:
    proc = psyprobe(
        "run", "--instrument", "sd3", "--orders", "fixed", "--out", str(sd3_run), check=False
    )
    assert proc.returncode == 2 and "orders" in proc.stderr


@pytest.mark.model
def test_generate_mode_parses_and_retries_a_bounded_number_of_times(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    psyprobe(
        "run",
        "--instrument",
        "sd3",
        "--orders",
        "fixed",
        "--respondents",
        "0",
        "--mode",
        "generate",
        "--samples",
        "2",
        "--retries",
        "1",
        "--seed",
        "7",
        "--out",
        str(out),
    )
    rows = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    slots: dict[tuple[str, int], list[dict]] = {}  # type: ignore[type-arg]
    for r in rows:
        assert r["raw_text"] is not None and r["decoding"]["temperature"] == 0.7
        slots.setdefault((r["item"], r["sample"]), []).append(r)
    assert len(slots) == 27 * 2
    for attempts in slots.values():
        assert len(attempts) <= 2  # the first try and at most one retry
        if len(attempts) == 2:  # retried only because the first answer could not be read
            assert min(attempts, key=lambda r: r["attempt"])["status"] == "invalid"
    sd3 = json.loads((out / "results.json").read_text())["instruments"]["sd3"]
    assert sd3["valid_rate"] > 0.3


@pytest.mark.model
def test_a_population_on_the_embedded_model_says_what_it_measures(tmp_path: Path) -> None:
    """SmolLM2 answers by option position: over a persona population, with orders rotating,
    the decomposition finds the order, not the statement, and the verdict says no_signal.
    Four respondents of SD-3 (108 prompts) suffice: the order effect is far past its bounds
    (η² ≈ 0.8, p at the permutation floor; content ≈ 0.005), with ten as with four."""
    out = tmp_path / "pop"
    psyprobe("run", "--instrument", "sd3", "--respondents", "4", "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["respondents"] == 4 and results["settings"]["balance"] == "rotate"
    sd3 = results["instruments"]["sd3"]
    assert sd3["n_prompts"] == 108 and sd3["n_respondents"] == 4  # one order per item
    parts = sd3["decomposition"]
    assert parts["order"] > 0.5 and parts["order_p"] < 0.01 and parts["content"] < 0.05
    for name, d in sd3["dimensions"].items():
        assert d["n_respondents"] == 4 and d["key_consistency"]["status"], name
        assert d["validity"] == "no_signal", (name, d["validity_reasons"])
    report = (out / "report.md").read_text()
    assert "4 respondent(s) behind each α" in report and "Key consistency" in report
    assert "content sensitivity" in report and "order effect" in report
    # every prompt carries its respondent's persona in the system message
    first = json.loads((out / "responses.jsonl").read_text().splitlines()[0])
    assert "Respond in a way that matches this description" in first["system"]


@pytest.mark.model
def test_instruments_that_share_an_item_text_keep_every_answer(tmp_path: Path) -> None:
    """#38: two instruments with the same statement, and one instrument holding it twice, run
    together on the embedded model: every question keeps its own answer and every dimension is
    scored (the store key once held the prompt alone: the second answer replaced the first and
    the first instrument's scores were null without a word). The key is made in the one
    ask-loop every backend goes through (tests/test_asking.py checks it on a fake)."""
    text = "I like to get revenge on authorities."

    def instrument(name: str, texts: list[str]) -> Path:
        data = {
            "name": name,
            "scale": {"min": 1, "max": 2, "labels": ["No", "Yes"]},
            "dimensions": ["D"],
            "items": [{"id": i + 1, "text": t, "dimension": "D"} for i, t in enumerate(texts)],
        }
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        return tmp_path / f"{name}.json"

    files = [
        instrument("one", [text, "I keep my promises."]),
        instrument("two", [text, "I enjoy quiet evenings."]),
        instrument("three", [text, text]),
    ]
    args = [a for f in files for a in ("--instrument", str(f))]
    out = tmp_path / "run"
    ran = psyprobe("run", *args, "--orders", "fixed", "--respondents", "0", "--out", str(out))
    assert "6 new answers, 6 stored" in ran.stderr
    answered = {(r["instrument"], r["item"]) for r in records(out)}
    assert len(answered) == 6
    results = json.loads((out / "results.json").read_text())["instruments"]
    assert all(results[name]["dimensions"]["D"]["score"] is not None for name in results)
