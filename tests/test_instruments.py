"""Instrument files: the bundled and shared files load unchanged; bad files fail clearly."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import psyprobe, write_json
from psyprobe.instruments import builtin_paths, load_instrument
from psyprobe.instruments.schema import Formula

pytestmark = pytest.mark.unit


def test_builtins_match_the_shared_copies(shared_data: Path) -> None:
    shipped_here = {"ipip50"}  # written for psyprobe from the public-domain IPIP; no shared copy
    for short_id, path in builtin_paths().items():
        if short_id in shipped_here:
            continue
        shared = shared_data / "instruments" / f"{short_id}.json"
        assert json.loads(path.read_text()) == json.loads(shared.read_text()), short_id


@pytest.mark.parametrize(
    ("name", "items", "dims", "reversed_ids"),
    [
        ("sd3", 27, 3, {"11", "15", "17", "20", "25"}),
        # IPIP-50 keys as published: E 5−, A 4−, C 4−, ES 8−, Intellect 3−
        (
            "ipip50",
            50,
            5,
            {
                "2",
                "4",
                "6",
                "8",
                "10",
                "12",
                "14",
                "16",
                "18",
                "20",
                "22",
                "24",
                "26",
                "28",
                "29",
                "30",
                "32",
                "34",
                "36",
                "38",
                "39",
                "44",
                "46",
                "49",
            },
        ),
        (
            "BFI",
            44,
            5,
            {
                "2",
                "6",
                "8",
                "9",
                "12",
                "18",
                "21",
                "23",
                "24",
                "27",
                "31",
                "34",
                "35",
                "37",
                "41",
                "43",
            },
        ),
        ("f-s", 8, 1, set()),
        ("SWLS", 5, 1, set()),
    ],
)
def test_likert_builtins_by_id_or_name(
    name: str, items: int, dims: int, reversed_ids: set[str]
) -> None:
    inst = load_instrument(name)
    questions = inst.questions()
    assert len(questions) == items
    assert len(inst.dimensions()) == dims
    assert {q.item_id for q in questions if q.reverse} == reversed_ids


def test_restricted_mbti_loads_from_path(shared_data: Path) -> None:
    inst = load_instrument(str(shared_data / "instruments-restricted" / "mbti-m.json"))
    counts = {d.id: sum(q.dimension == d.id for q in inst.questions()) for d in inst.dimensions()}
    assert counts == {"EI": 21, "SN": 26, "TF": 24, "JP": 22}
    # each item has one option per pole: value 1 toward the first pole, 0 toward the second
    assert all(sorted(o.value for o in q.options) == [0.0, 1.0] for q in inst.questions())


def test_oejts_keyed_sum_equals_the_official_formulas() -> None:
    inst = load_instrument("oejts")
    raw = json.loads(builtin_paths()["oejts"].read_text())
    questions = inst.questions()
    dims = {d.id: d for d in inst.dimensions()}
    for pattern in ([1] * 32, [5] * 32, [(i * 7) % 5 + 1 for i in range(32)]):
        answer = {q.item_id: float(v) for q, v in zip(questions, pattern, strict=True)}
        for key, text in raw["scoring"]["formulas"].items():
            dim = next(d for d in dims.values() if sorted(d.id) == sorted(key))
            formula = Formula.parse(text)
            official = formula.constant + sum(
                c * answer[i] for i, c in formula.coefficients.items()
            )
            keyed = sum(
                dim.keyed(answer[q.item_id], q.reverse) for q in questions if q.dimension == dim.id
            )
            assert keyed == official
    # the high pole is read off the anchors: a high IE score means E (OEJTS type rule)
    assert dims["EI"].poles == ("I", "E") and dims["JP"].poles == ("J", "P")


def _sd3() -> dict:
    return json.loads(builtin_paths()["sd3"].read_text())


def _broken(mutate) -> dict:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(_sd3())
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["items"][3].update(id=1), "items[3].id", "duplicate"),
        (lambda d: d["items"][5].update(dimension="Sadism"), "items[5].dimension", "Sadism"),
        (lambda d: d["scale"].update(min=5, max=1), "scale", "below"),
        (lambda d: d["scale"]["labels"].pop(), "scale", "4 labels"),
        (lambda d: d["items"][2].pop("text"), "items[2].text", "required"),
        (lambda d: d["items"][2].update(text=""), "items[2].text", "at least 1"),
    ],
)
def test_validation_errors_name_file_and_field(
    tmp_path: Path, mutate, field: str, words: str
) -> None:  # type: ignore[no-untyped-def]
    path = write_json(tmp_path / "bad.json", _broken(mutate))
    proc = psyprobe("instruments", "validate", str(path), check=False)
    assert proc.returncode == 2
    message = proc.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert str(path) in message and f"field {field}" in message and words in message


def test_validate_accepts_a_good_file_and_run_rejects_a_bad_one(tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.json", _sd3())
    assert "ok" in psyprobe("instruments", "validate", str(good)).stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = psyprobe("run", "--instrument", str(bad), "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "bad.json" in proc.stderr and "Traceback" not in proc.stderr
