"""Answers collected elsewhere (#32): imported in the long format and judged like any run.

The collections are simulated with a known truth (``sim:``): a model with true traits, the
same traits through a first-position habit, a habit alone, one that ignores the statement —
published as scale values, JSON objects, label texts or item texts, with respondents
(personas, orders rotating or every order each) or with repetitions (samples).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import psyprobe, records, write_jsonl
from psyprobe import import_answers
from psyprobe.collected import table as table_module
from psyprobe.instruments import builtin_paths, load_instrument
from psyprobe.models.base import Sampling
from psyprobe.models.sim import SimModel
from psyprobe.prompting import TEMPLATES, build_prompts, population
from psyprobe.report.models import ModelsTable, between_models
from psyprobe.runs.asking import derive_seed
from test_rigor import true_scores

pytestmark = pytest.mark.unit

TRAIT = "sim:Machiavellianism=2.2,Narcissism=3.8,Psychopathy=1.8,spread=1,noise=0.6"
TRUTHS = {
    "traits": TRAIT,
    "traits through a habit": f"{TRAIT},position_bias=3",
    "a habit alone": "sim:position_bias=3,noise=1",
    "ignores the statement": "sim:noise=3",
}
SD3_TEXT = {
    str(it["id"]): it["text"] for it in json.loads(builtin_paths()["sd3"].read_text())["items"]
}


def collection(
    spec: str,
    name: str,
    *,
    respondents: int = 20,
    balance: str = "rotate",
    samples: int = 1,
    orders: str = "latin",
) -> list[dict[str, Any]]:
    """SD-3 answered by the simulator as a published file would hold it: one row per answer
    with the scale value chosen, the options' order as shown, the respondent and the sample."""
    model = SimModel(spec)
    questions = load_instrument("sd3").questions()
    prompts = list(
        build_prompts(
            "sd3", questions, orders, TEMPLATES["study-a"], 0, population(respondents), balance
        )  # type: ignore[arg-type]
    )
    rows = []
    for sample in range(samples):
        asked = [ip.with_sample(sample) for ip in prompts]
        seeds = [
            derive_seed(spec, ip.question.item_id, ip.order_index, ip.respondent.index, sample)
            for ip in asked
        ]
        for ip, text in zip(
            asked, model.generate([ip.prompt for ip in asked], Sampling(), seeds), strict=True
        ):
            values = [ip.question.options[i].value for i in ip.order]
            rows.append(
                {
                    "model": name,
                    "item": ip.question.item_id,
                    "response": int(values[int(text) - 1]) if text and text.isdigit() else text,
                    "order": ",".join(str(int(v)) for v in values),
                    "respondent": f"persona {ip.respondent.index}",
                    "sample": sample,
                }
            )
    return rows


def verdicts(out: Path, folder: str) -> dict[str, str]:
    data = json.loads((out / folder / "results.json").read_text())
    return {dim: d["validity"] for dim, d in data["instruments"]["sd3"]["dimensions"].items()}


def judged(tmp_path: Path, rows: list[dict[str, Any]], *extra: str) -> Path:
    answers = write_jsonl(tmp_path / "answers.jsonl", rows)
    out = tmp_path / "imported"
    psyprobe("import", str(answers), "--instrument", "sd3", *extra, "--out", str(out))
    return out


@pytest.mark.parametrize(
    ("design", "options"),
    [
        ("respondents, orders rotating", {"respondents": 20, "balance": "rotate"}),
        ("respondents, every order each", {"respondents": 6, "balance": "within"}),
        ("repetitions", {"respondents": 0, "samples": 20, "orders": "random:2"}),
    ],
)
def test_each_truth_is_judged_as_it_is(tmp_path: Path, design: str, options: Any) -> None:
    rows = [r for name, spec in TRUTHS.items() for r in collection(spec, name, **options)]
    out = judged(tmp_path, rows)
    table = ModelsTable.load(out)
    assert {s.model for s in table.scores} == set(TRUTHS)
    assert set(verdicts(out, "traits").values()) == {"ok"}, design
    assert set(verdicts(out, "traits-through-a-habit").values()) == {"weak"}, design
    for style in ("a-habit-alone", "ignores-the-statement"):
        assert "ok" not in verdicts(out, style).values(), (design, style)
    # the habit shows where it is: the first option shown is chosen far above chance
    evidence = {e.model: e for e in table.evidence}
    assert evidence["a habit alone"].primacy > 2 * evidence["traits"].primacy
    # and the trait's scores are near the population's (a sample of 10-20 respondents;
    # the CI's calibration is test_rigor's)
    truth = true_scores(TRAIT)
    for s in table.scores:
        if s.model == "traits":
            assert s.score == pytest.approx(truth[s.dimension], abs=0.6), s


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection the forms are compared with, as scale values with item ids."""
    return judged(tmp_path_factory.mktemp("plain"), collection(TRAIT, "m"))


@pytest.mark.parametrize(
    "published",
    ["json objects", "label texts", "item texts", "csv with its own column names"],
)
def test_the_forms_published_files_take_are_read_alike(
    tmp_path: Path, published: str, plain: Path
) -> None:
    rows = collection(TRAIT, "m")
    labels = [o.text for o in load_instrument("sd3").questions()[0].options]
    extra: tuple[str, ...] = ()
    if published == "json objects":  # {"score": 4, "response": "…"}, as several studies release
        rows = [r | {"response": {"score": r["response"], "response": "I think so."}} for r in rows]
    elif published == "label texts":
        rows = [r | {"response": labels[int(r["response"]) - 1].upper()} for r in rows]
    elif published == "item texts":  # with other spacing, case and punctuation
        rows = [r | {"item": " " + SD3_TEXT[r["item"]].lower().rstrip(".") + " "} for r in rows]
    else:
        extra = ("--columns", "item=statement,response=answer,respondent=persona,sample=rep")
    if published.startswith("csv"):
        path = tmp_path / "answers.csv"
        names = {
            "item": "statement",
            "response": "answer",
            "respondent": "persona",
            "sample": "rep",
        }
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, [names.get(k, k) for k in rows[0]])
            writer.writeheader()
            writer.writerows({names.get(k, k): v for k, v in r.items()} for r in rows)
        out = tmp_path / "imported"
        psyprobe("import", str(path), "--instrument", "sd3", *extra, "--out", str(out))
    else:
        out = judged(tmp_path, rows)
    a = json.loads((plain / "m" / "results.json").read_text())["instruments"]["sd3"]
    b = json.loads((out / "m" / "results.json").read_text())["instruments"]["sd3"]
    for dim in a["dimensions"]:
        x, y = a["dimensions"][dim], b["dimensions"][dim]
        assert (x["score"], x["ci95"], x["validity"]) == (y["score"], y["ci95"], y["validity"])


def test_a_runs_own_answers_imported_reproduce_its_scores_and_verdicts(tmp_path: Path) -> None:
    """The worked example's round trip: a generate run of psyprobe itself, exported in the long
    format and imported again."""
    run, answers, out = tmp_path / "run", tmp_path / "answers.jsonl", tmp_path / "imported"
    psyprobe(
        "run", "--model", f"{TRAIT},seed=3", "--instrument", "sd3", "--mode", "generate",
        "--respondents", "10", "--retries", "0", "--out", str(run),
    )  # fmt: skip
    assert "270 answers" in psyprobe("export", str(run), "--out", str(answers)).stdout
    results = import_answers(answers, out=out, responses="positions")
    (imported,) = results.values()
    original = json.loads((run / "results.json").read_text())
    for dim, d in original["instruments"]["sd3"]["dimensions"].items():
        again = imported.instruments["sd3"].dimensions[dim]
        assert again.score == pytest.approx(d["score"], abs=1e-12)
        assert again.ci95 == pytest.approx(d["ci95"], abs=1e-12)
        assert (again.validity, again.validity_reasons) == (d["validity"], d["validity_reasons"])
        assert again.alpha == pytest.approx(d["alpha"], abs=1e-12)
    # every stored answer says where it came from
    assert {r["source"] for r in records(imported.directory)} == {  # type: ignore[arg-type]
        f"answers.jsonl:{n}" for n in range(1, 271)
    }
    assert psyprobe("report", str(imported.directory)).returncode == 0  # an ordinary run
    # any runs side by side: the run and its import are one model twice, told apart by nothing
    both = tmp_path / "both"
    psyprobe("models-table", str(run), str(imported.directory), "--out", str(both))
    table = ModelsTable.load(both)
    assert len({s.run_dir for s in table.scores}) == 2
    assert all(b.share is not None and b.share < 0.05 for b in table.between)
    # a logprob run's answers are probabilities: they do not travel in the long format
    logprob = tmp_path / "logprob"
    psyprobe("run", "--model", TRAIT, "--instrument", "sd3", "--orders", "fixed",
             "--respondents", "0", "--out", str(logprob))  # fmt: skip
    says = psyprobe("export", str(logprob), "--out", str(tmp_path / "x.jsonl"), check=False)
    assert says.returncode == 2 and "a logprob run's answers are probabilities" in says.stderr


def test_a_folder_of_ten_models_gets_its_runs_and_the_table(tmp_path: Path) -> None:
    files = []
    for k in range(10):
        spec = f"sim:Machiavellianism={1.5 + 0.3 * k},spread=0.5,noise=0.7,seed={k}"
        rows = [r | {"model": None} for r in collection(spec, "", respondents=10)]
        files.append(str(write_jsonl(tmp_path / f"model-{k}.jsonl", rows)))
    out = tmp_path / "imported"
    psyprobe("import", *files, "--instrument", "sd3", "--out", str(out))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"model-{k}" for k in range(10)]
    table = ModelsTable.load(out)
    between = {b.dimension: b for b in table.between}
    # Machiavellianism differs between the models by design, the rest does not
    mach = between["Machiavellianism"]
    assert mach.n_models == 10 and mach.share is not None and mach.ci95 is not None
    assert mach.share > 0.5 and mach.ci95[0] > between["Narcissism"].share  # type: ignore[operator]
    html = (out / "models.html").read_text()
    assert html.count('data-verdict="') == 30 and '<select id="verdict">' in html
    assert "| model-0 | sd3 | Machiavellianism |" in (out / "models.md").read_text()


def test_the_between_model_share_by_its_definition() -> None:
    """One-way random effects with unequal groups (ANOVA estimator, n₀): groups that differ only
    by noise share ~0; a known split of variance is recovered."""
    import numpy as np

    rng = np.random.default_rng(1)
    same = [rng.normal(0, 1, size=n) for n in (5, 8, 12, 20) * 5]
    assert between_models("x", "d", same, seed=0).share == pytest.approx(0.0, abs=0.08)
    centres = rng.normal(0, 1, size=200)  # σ²_between = 1, σ²_within = 1: a share of 0.5
    split = [c + rng.normal(0, 1, size=n) for c, n in zip(centres, [6, 10] * 100, strict=True)]
    row = between_models("x", "d", split, seed=0)
    assert row.share == pytest.approx(0.5, abs=0.08) and row.ci95[0] < 0.5 < row.ci95[1]  # type: ignore[index]
    alone = between_models("x", "d", [np.array([1.0]), np.array([2.0])], seed=0)
    assert alone.share is None and "one respondent per model" in (alone.note or "")


# --- bad input: one line, exit 2, nothing written ----------------------------------------------


def _refused(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "out"
    proc = psyprobe("import", *args, "--out", str(out), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists()  # nothing half-written
    return proc.stderr


def test_bad_collections_are_one_line_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = collection(TRAIT, "m", respondents=4)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("item,response\n1,d\u00e9saccord\n".encode("latin-1"))
    assert "not UTF-8 text" in _refused(tmp_path, str(latin1), "--instrument", "sd3")
    # SD-3 and BFI in one file with no instrument column: BFI's items are unknown to SD-3
    bfi = [{"item": q.item_id + "b", "response": 3} for q in load_instrument("bfi").questions()]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"item": "1", "response": 3}, *bfi])
    says = _refused(tmp_path, str(mixed), "--instrument", "sd3")
    assert "44 of 45 rows cannot be used (44 unknown item)" in says
    assert "no 'instrument' column" in _refused(tmp_path, str(mixed))
    # scale values off a 1–5 scale are not rounded: −5 and 4.7 are unusable, and counted
    off = [r | {"response": -5 if k % 2 else 4.7} for k, r in enumerate(good)]
    says = _refused(tmp_path, str(write_jsonl(tmp_path / "off.jsonl", off)), "--instrument", "sd3")
    assert f"{len(off)} value off the scale" in says
    says = _refused(
        tmp_path, str(write_jsonl(tmp_path / "g.jsonl", good)), "--instrument", "sd3",
        "--columns", "item=statement",
    )  # fmt: skip
    assert "--columns item=statement" in says and "no column 'statement'" in says
    # a file past the row limit is refused while it is read (the limit lowered: a fake that
    # isolates the check, not ten million rows)
    monkeypatch.setattr(table_module, "MAX_ROWS", 50)
    monkeypatch.setattr(table_module, "_CHUNK", 20)
    big = write_jsonl(tmp_path / "big.jsonl", good)
    assert "more than 50 rows" in _refused(tmp_path, str(big), "--instrument", "sd3")


def test_partial_success_is_counted_and_stored(tmp_path: Path) -> None:
    good = collection(TRAIT, "m", respondents=10)
    broken = [
        {"model": "m", "item": "no such item", "response": 3},
        {"model": "m", "item": "1", "response": 9},
        {"model": "m", "item": "1", "response": "", "respondent": "x"},
        {"model": "m", "item": "1", "response": 3, "order": "1,1,2,3,4"},
        good[0],  # a duplicate of the first row
        {"model": "m", "item": "2", "response": "no idea", "respondent": "persona 99"},
    ]
    answers = write_jsonl(tmp_path / "answers.jsonl", good + broken)
    out = tmp_path / "imported"
    said = psyprobe("import", str(answers), "--instrument", "sd3", "--out", str(out)).stdout
    assert f"m: {len(good) + 1} of {len(good) + 6} rows stored (5 unusable: " in said
    assert "1 unknown item" in said and ", 1 say no option;" in said
    record = json.loads((out / "m" / "run.json").read_text())["import"]
    assert record["rows"] == len(good) + 6 and record["stored"] == len(good) + 1
    assert record["unusable"] == {
        "unknown item": 1, "missing response": 1, "value off the scale": 1,
        "unreadable order": 1, "duplicate": 1,
    }  # fmt: skip
    assert record["unreadable response"] == 1
    assert set(verdicts(out, "m").values()) == {"ok"}
