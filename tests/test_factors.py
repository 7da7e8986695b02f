"""Nuisance factors beyond the option order (--vary): each habit an oracle respondent is given
is caught by the factor it belongs to; a true trait stays ok under all of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import psyprobe, records
from psyprobe.engine import Personality
from psyprobe.engine.measure import collect
from psyprobe.models import open_model
from psyprobe.prompting import TEMPLATES, Conditions, build_prompts, crossed
from psyprobe.runs import ResponseStore, RunSettings
from psyprobe.scoring.matrix import parse_record
from psyprobe.scoring.parse import parse_answer
from test_rigor import TRAIT, measure, true_scores, verdicts

EVERY_FACTOR = ("templates", "labels", "context")
# A true trait with spread across respondents, as the rigor suite's
TRUE = f"{TRAIT},spread=0.6,noise=0.7"
# Each habit on top of the true trait, the words the verdict must name it by, and the
# instrument. A drift toward the previous answer is tried on BFI, whose items interleave the
# dimensions: SD-3 asks each dimension's items in a block, so there the previous answer is
# mostly one to the same dimension and the drift barely moves its score (nor should it be
# said to).
HABITS = {
    "wording": ("wording_bias=0.8", "templates", "sd3"),
    "label style": ("label_bias=0.8", "labels", "sd3"),
    "context": ("context_bias=0.7", "context", "bfi"),
    "recency": ("recency_bias=3", "position", "sd3"),
}


def respondents(balance: str) -> int:
    # within crosses ten orders × six conditions × two contexts per respondent and item
    return 20 if balance == "rotate" else 4


@pytest.mark.unit
@pytest.mark.parametrize("balance", ["rotate", "within"])
@pytest.mark.parametrize("habit", list(HABITS))
def test_each_habit_is_caught_by_its_factor_and_named(
    tmp_path: Path, habit: str, balance: str
) -> None:
    style, factor, instrument = HABITS[habit]
    scores = measure(
        tmp_path, f"{TRUE},{style}", balance=balance, respondents=respondents(balance),
        vary=EVERY_FACTOR, instruments=(instrument,),
    )  # fmt: skip
    assert "ok" not in verdicts(scores).values(), verdicts(scores)
    judged = scores[instrument]
    for d in judged.dimensions.values():
        assert any(factor in reason for reason in d.validity_reasons), d.validity_reasons
    if habit == "recency":
        assert judged.recency is not None and judged.chance is not None
        assert judged.recency > judged.chance


@pytest.mark.unit
@pytest.mark.parametrize("balance", ["rotate", "within"])
def test_uniform_answers_are_no_signal_for_the_reason_of_uniformity(
    tmp_path: Path, balance: str
) -> None:
    scores = measure(
        tmp_path, "sim:uniform=0.97,position_bias=2", balance=balance,
        respondents=respondents(balance), vary=("templates",),
    )  # fmt: skip
    for d in scores["sd3"].dimensions.values():
        assert d.validity == "no_signal"
        assert d.uniformity is not None and d.uniformity.p_position >= 0.01
        assert any("position alone" in reason for reason in d.validity_reasons)


@pytest.mark.unit
@pytest.mark.parametrize("balance", ["rotate", "within"])
def test_a_true_trait_under_every_factor_stays_ok_and_inside_its_ci(
    tmp_path: Path, balance: str
) -> None:
    covered = total = 0
    for seed in range(8 if balance == "rotate" else 2):
        model_spec = f"{TRUE},seed={seed}"
        scores = measure(
            tmp_path, model_spec, balance=balance, respondents=respondents(balance) + 2,
            vary=EVERY_FACTOR,
        )  # fmt: skip
        assert set(verdicts(scores).values()) == {"ok"}, verdicts(scores)
        truth = true_scores(model_spec)
        for dim, d in scores["sd3"].dimensions.items():
            assert d.ci95 is not None and d.uniformity is not None
            assert d.uniformity.p_position < 1e-6
            assert set(d.stability) == set(EVERY_FACTOR)
            # an ok score keeps its place among people
            assert d.norm is not None and d.score is not None
            assert d.norm.z == pytest.approx((d.score - d.norm.mean) / d.norm.sd)
            covered += d.ci95[0] <= truth[dim] <= d.ci95[1]
            total += 1
        parts = scores["sd3"].decomposition
        assert parts is not None and set(parts.factors) == set(EVERY_FACTOR)
    # a calibrated 95 % interval covers the population's true score in about 95 % of draws
    assert covered >= min(0.85 * total, total - 1), (covered, total)


@pytest.mark.unit
def test_a_wording_habit_moves_the_score_by_what_it_was_given(tmp_path: Path) -> None:
    """The stability figure measures the habit: paraphrase 1 adds 0.8, paraphrase 2 takes 0.8."""
    sd3 = measure(tmp_path, f"{TRUE},wording_bias=0.8", vary=("templates",))["sd3"]
    for d in sd3.dimensions.values():
        moved = d.stability["templates"]
        levels = {lv.level: lv.score for lv in moved.levels}
        assert levels["1"] is not None and levels["2"] is not None and levels["0"] is not None
        assert levels["1"] > levels["0"] > levels["2"]
        assert moved.spread is not None and 0.8 < moved.spread < 1.6


@pytest.mark.unit
def test_in_context_the_conversation_is_the_respondents_own_answers(tmp_path: Path) -> None:
    model = open_model(f"{TRUE},noise=0.4")
    settings = RunSettings(
        model=model.info.spec, instruments=("sd3",), respondents=3, vary=("context",),
        context_items=2,
    )  # fmt: skip
    with ResponseStore(tmp_path / "s.sqlite") as store:
        collect(Personality(settings), model, store)
        stored = list(store.records())
    alone = {(r.respondent, r.item): r for r in stored if "context" not in r.conditions}
    in_context = [r for r in stored if r.conditions.get("context") == "2"]
    assert len(alone) == len(in_context) == 27 * 3
    items = [q.item_id for q in Personality(settings).instruments["sd3"].questions()]
    for rec in in_context:
        assert len(rec.history) == 2
        at = items.index(rec.item)
        for back, (asked, answered) in zip((2, 1), rec.history, strict=True):
            earlier = alone[(rec.respondent, items[at - back])]
            assert asked == earlier.user
            assert earlier.probs is not None
            assert answered == earlier.labels[int(np.argmax(earlier.probs))]
    assert len({r.key for r in stored}) == len(stored)


@pytest.mark.unit
def test_labels_are_read_in_the_style_they_were_shown() -> None:
    from psyprobe.instruments import load_instrument

    question = load_instrument("sd3").questions()[0]
    conditions = [c for c in crossed(("labels",), "generate")]
    assert [c.labels for c in conditions] == ["numbers", "letters", "text"]
    letters = next(build_prompts("sd3", [question], "fixed", TEMPLATES["study-a"],
                                 conditions=[Conditions(labels="letters")]))  # fmt: skip
    assert letters.prompt.labels == ("A", "B", "C", "D", "E")
    assert "A. " in letters.prompt.user and "Reply with the letter" in letters.prompt.user
    texts = [o.text for o in question.options]
    # a number names no option where letters were shown; a letter does
    assert parse_answer("3", texts, keys=list("ABCDE"), numbered=False).status == "invalid"
    assert parse_answer("C. because", texts, keys=list("ABCDE"), numbered=False).position == 2
    # only the logprob mode's readable labels are varied there
    assert [c.labels for c in crossed(("labels",), "logprob")] == ["numbers", "letters"]


@pytest.mark.unit
def test_generate_mode_answers_in_every_label_style_are_read(tmp_path: Path) -> None:
    out = tmp_path / "run"
    psyprobe(
        "run", "--model", f"{TRUE},noise=0.3", "--instrument", "sd3", "--respondents", "10",
        "--mode", "generate", "--vary", "labels", "--out", str(out),
    )  # fmt: skip
    rows = records(out)
    styles = {r.get("conditions", {}).get("labels", "numbers") for r in rows}
    assert styles == {"numbers", "letters", "text"}
    from psyprobe.instruments import load_instrument
    from psyprobe.records import ResponseRecord

    by_id = {q.item_id: q for q in load_instrument("sd3").questions()}
    for row in rows:
        rec = ResponseRecord.model_validate(row)
        assert parse_record(rec, by_id[rec.item], False).status == "ok", rec.raw_text


@pytest.mark.unit
def test_an_unknown_factor_is_one_line_before_anything_loads(tmp_path: Path) -> None:
    ran = psyprobe(
        "run", "--model", "hf:/nowhere", "--vary", "templates,wording", "--out",
        str(tmp_path / "r"), check=False,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "--vary: 'wording' is not one of templates, labels, context" in ran.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.unit
def test_the_api_takes_one_factor_named_alone(tmp_path: Path) -> None:
    import psyprobe as api

    results = api.measure(f"{TRUE}", ["swls"], respondents=4, vary="templates", out=tmp_path / "r")
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["settings"]["vary"] == ["templates"]
    assert set(results.instruments["swls"].dimensions["Life satisfaction"].stability) == {
        "templates"
    }


@pytest.mark.model
def test_the_embedded_model_answers_under_every_factor(tmp_path: Path) -> None:
    """The real backend: conversations with assistant turns through the chat template, letters
    as next tokens; every factor reported; SmolLM2 is judged as what it is."""
    out = tmp_path / "run"
    # two respondents, one earlier item in context: a prompt in context is long, and SWLS's
    # five items under two respondents already meet every level of every factor
    psyprobe(
        "run", "--instrument", "swls", "--respondents", "2", "--vary",
        "templates,labels,context", "--context-items", "1", "--out", str(out),
    )  # fmt: skip
    rows = records(out)
    assert {r.get("conditions", {}).get("context") for r in rows} == {None, "1"}
    assert all(len(r["history"]) == 1 for r in rows if r.get("conditions", {}).get("context"))
    assert all(sum(r["probs"]) > 0.2 for r in rows)
    letters = [r for r in rows if r.get("conditions", {}).get("labels") == "letters"]
    assert letters and all(r["labels"][0] == "A" for r in letters)
    results = json.loads((out / "results.json").read_text())
    dim = results["instruments"]["swls"]["dimensions"]["Life satisfaction"]
    assert set(dim["stability"]) == set(EVERY_FACTOR)
    assert dim["validity"] != "ok"
