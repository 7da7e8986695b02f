"""The scoring arithmetic, pinned through replayed answers (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED, error_line, psyprobe, write_json, write_jsonl

pytestmark = pytest.mark.unit

FOUR_POINT = {
    "name": "Tiny-4",
    "scale": {"min": 1, "max": 4, "labels": ["No", "Rather no", "Rather yes", "Yes"]},
    "scoring": {"aggregation": "mean"},
    "dimensions": ["Warmth"],
    "items": [
        {"id": 1, "text": "I like people.", "dimension": "Warmth", "reverse": False},
        {"id": 2, "text": "I avoid people.", "dimension": "Warmth", "reverse": True},
        {"id": 3, "text": "I help people.", "dimension": "Warmth", "reverse": False},
    ],
    "human_norms": {"Warmth": {"mean": 2.5, "sd": 0.5, "n": 100}},
}


def _run(tmp_path: Path, rows: list[dict], *extra: str) -> dict:  # type: ignore[type-arg]
    replay = write_jsonl(tmp_path / "answers.jsonl", rows)
    out = tmp_path / "run"
    psyprobe("run", "--model", f"replay:{replay}", *extra, "--out", str(out))
    return json.loads((out / "results.json").read_text())


def test_four_point_reverse_keying_and_mean(tmp_path: Path) -> None:
    inst = write_json(tmp_path / "tiny.json", FOUR_POINT)
    rows = [
        {"instrument": "tiny-4", "item": 1, "response": 4},
        {"instrument": "tiny-4", "item": 1, "response": "Rather no"},  # 2: averaged with 4
        {"instrument": "tiny-4", "item": 2, "response": 1},  # reversed: 1 + 4 − 1 = 4
        {"instrument": "tiny-4", "item": 2, "response": "No"},  # reversed: 4
        {"instrument": "tiny-4", "item": 3, "response": "I would say rather yes."},  # 3
    ]
    results = _run(tmp_path, rows, "--instrument", str(inst))
    tiny = results["instruments"]["tiny4"]
    warmth = tiny["dimensions"]["Warmth"]
    # item means 3, 4, 3 -> 10/3
    assert warmth["score"] == pytest.approx(10 / 3)
    # item 3 has one answer for two respondents: 5 of 6 cells answered
    assert warmth["valid_rate"] == pytest.approx(5 / 6)
    # five answers cannot show content: no_signal, and its place among people is withheld
    assert warmth["validity"] == "no_signal" and warmth["norm"]["z"] is None


def test_seven_point_sums_with_bands(tmp_path: Path) -> None:
    rows = [{"instrument": "swls", "item": i, "response": 6} for i in range(1, 6)]
    rows += [{"instrument": "FS", "item": i, "response": "Strongly agree"} for i in range(1, 9)]
    results = _run(tmp_path, rows)
    swls = results["instruments"]["swls"]["dimensions"]["Life satisfaction"]
    fs = results["instruments"]["fs"]["dimensions"]["Flourishing"]
    # one answer an item shows no content: the bands are withheld (test_rigor reads bands)
    assert (swls["score"], swls["band"], swls["validity"]) == (30.0, None, "no_signal")
    assert (fs["score"], fs["band"], fs["validity"]) == (56.0, None, "no_signal")
    assert swls["norm"] is None


def test_missing_answers_prorate_a_sum(tmp_path: Path) -> None:
    rows = [{"instrument": "swls", "item": i, "response": 3} for i in range(1, 5)]  # item 5 missing
    swls = _run(tmp_path, rows)["instruments"]["swls"]
    assert swls["dimensions"]["Life satisfaction"]["score"] == 15.0  # mean 3 × 5 items
    assert swls["valid_rate"] == pytest.approx(4 / 5)


def test_forced_choice_percent_and_type(tmp_path: Path) -> None:
    mbti = SHARED / "instruments-restricted" / "mbti-m.json"
    if not mbti.is_file():
        pytest.skip("restricted MBTI-M copy not present")
    items = json.loads(mbti.read_text())["items"]
    # answer every item toward E, N, F and J by the option's pole
    wanted = {"E", "N", "F", "J"}
    rows = [
        {
            "instrument": "mbti-m",
            "item": it["id"],
            "response": next(o["label"] for o in it["options"] if o["pole"] in wanted),
        }
        for it in items
    ]
    results = _run(tmp_path, rows, "--instrument", str(mbti))
    inst = results["instruments"]["mbtim"]
    assert inst["type"] == "ENFJ"
    assert inst["dimensions"]["EI"]["pole_percent"]["E"] == 100.0


def test_bad_replay_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"instrument": "sd3", "item": 1}\n')
    proc = psyprobe("run", "--model", f"replay:{bad}", "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2
    assert error_line(proc) == f"error: {bad} line 1: field 'response' is missing"


def test_oejts_all_middle_answers_type_isfj_by_the_official_tie_rule(tmp_path: Path) -> None:
    """OEJTS scoring: 'IE>24 -> E else I' (and so on): a score of exactly 24 is the low pole."""
    rows = [{"instrument": "oejts", "item": i, "response": 3} for i in range(1, 33)]
    results = _run(tmp_path, rows, "--instrument", "oejts")
    oejts = results["instruments"]["oejts"]
    assert {d["score"] for d in oejts["dimensions"].values()} == {24.0}
    assert oejts["type"] == "ISFJ"


def test_a_score_that_is_not_no_signal_keeps_its_band(tmp_path: Path) -> None:
    """A population that is satisfied with life, and says so the same on every item: weak
    (a style would read the same without reversed items), and its band is shown."""
    out = tmp_path / "run"
    model = "sim:Life satisfaction=6.2,spread=0.4,noise=0.6"
    psyprobe("run", "--model", model, "--instrument", "swls", "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    swls = results["instruments"]["swls"]["dimensions"]["Life satisfaction"]
    assert swls["validity"] == "weak" and swls["band"] == "Highly satisfied"
