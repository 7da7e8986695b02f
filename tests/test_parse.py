"""Generate-mode parsing, on real SmolLM2 answers labelled by hand and on paraphrases."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DATA
from psyprobe.scoring.parse import parse_answer, settled

pytestmark = pytest.mark.unit

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


# Pieces of answers the reader treats specially: numbers, option texts, refusal phrases, the
# words rule 1 allows before a number, and the characters that close or extend a number.
PIECES = [
    *LIKERT5,
    *(o.lower() for o in LIKERT5),
    "1", "3", "5", "7", "12", "0", ".", ",", ".5", " ", "\n", ":", ")", "-", "- ", "+",
    "My answer is ", "Answer: ", "Option ", "option", "I choose ", "The answer is ",
    "As an AI", "I'm sorry", "I cannot answer", "I don't have opinions", "I am an AI",
    "because", "I think", "A", "B", "agree", "Neutral", "strongly ", "*", "**",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=7).map("".join)


@settings(max_examples=3000, deadline=None, database=None)
@given(texts, texts, st.sampled_from([(), ("A", "B")]))
def test_a_settled_read_no_continuation_changes(
    text: str, more: str, keys: tuple[str, ...]
) -> None:
    """The oracle for --stop-when-read: whatever follows a settled text, the read is the same."""
    if settled(text, LIKERT5, keys):
        assert parse_answer(text + more, LIKERT5, keys=keys) == parse_answer(
            text, LIKERT5, keys=keys
        )


@pytest.mark.parametrize(
    ("answer", "stop_after"),
    [
        ("3\nBecause I am not sure.", "3\n"),
        ("3. Neither agree nor disagree because it depends.", "3. N"),
        ("4. Slightly agree, since", "4. Slightly a"),
        ("1. Slightly agree, since", "1. Slightly agree,"),
        ("2 - I do not like it", "2 - I"),
        ("As an AI, I do not have opinions.", "As an AI,"),
        ("I'm sorry, but I cannot help.", "I'm sorry,"),
    ],
)
def test_typical_answers_settle_early(answer: str, stop_after: str) -> None:
    """Not vacuous: the usual answers settle within a few characters, at the first point where
    the rules above say they can."""
    first = next(k for k in range(len(answer) + 1) if settled(answer[:k], LIKERT5))
    assert answer[:first] == stop_after


@pytest.mark.parametrize(
    "answer", ["3", "3.", "Slightly agree", "I agree with that", "1. Agree", "1. Slightly agr"]
)
def test_open_reads_do_not_settle(answer: str) -> None:
    """A number that may grow, a line that may still name another option, or an option's text
    (a refusal may follow) is not settled."""
    assert not settled(answer, LIKERT5)
