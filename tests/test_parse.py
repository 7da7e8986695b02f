"""Generate-mode parsing, on real SmolLM2 answers labelled by hand and on paraphrases."""

from __future__ import annotations

import json

import pytest

from conftest import DATA
from psyprobe.scoring.parse import parse_answer

REAL = [json.loads(line) for line in (DATA / "smollm2_answers.jsonl").read_text().splitlines()]
LIKERT5 = ["Disagree", "Slightly disagree", "Neither agree nor disagree", "Slightly agree", "Agree"]


@pytest.mark.parametrize("case", REAL, ids=[c["text"][:30] for c in REAL])
def test_real_smollm2_answers(case: dict) -> None:  # type: ignore[type-arg]
    parsed = parse_answer(
        case["text"], case["shown"], statement=case["statement"], agree_position=4
    )
    assert (parsed.status, parsed.position) == (case["status"], case["position"])


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("Slightly agree. I think so.", 3),
        ("I strongly agree with this.", 4),
        ("I somewhat disagree, because...", 1),
        ("Neutral.", 2),
        ("I don't agree with that.", 0),
        ("Option 5: Agree", 4),
        ("I choose option 2", 1),
        ("Neither agree nor disagree", 2),
    ],
)
def test_paraphrases_and_forms(text: str, position: int) -> None:
    assert parse_answer(text, LIKERT5).position == position


def test_numbers_follow_the_order_shown() -> None:
    shown = list(reversed(LIKERT5))
    assert parse_answer("1", shown).position == 0  # position 0 is "Agree" in this order
    assert parse_answer("Agree", shown).position == 0
    assert parse_answer("9", shown).status == "invalid"


def test_refusals_and_empty() -> None:
    for text in (
        "As an AI language model, I do not have personal opinions.",
        "I'm sorry, but I cannot answer that.",
        "I cannot agree or disagree with this.",
    ):
        assert parse_answer(text, LIKERT5).status == "refusal"
    assert parse_answer("", LIKERT5).status == "invalid"
    assert parse_answer(None, LIKERT5).status == "invalid"


def test_scale_values_and_keys_for_replayed_answers() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert parse_answer("4", LIKERT5, numbers=values).position == 3
    assert parse_answer("0", LIKERT5, numbers=values).status == "invalid"
    assert parse_answer("B", ["plan", "wing it"], keys=["A", "B"]).position == 1
