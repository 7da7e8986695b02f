"""Order designs and the mapping from a chosen position back to a scale value."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from psyprobe.errors import UserError
from psyprobe.instruments import load_instrument
from psyprobe.prompting import TEMPLATES, build_prompts, option_orders
from psyprobe.records import ResponseRecord
from psyprobe.scoring.score import score_instrument

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7])
def test_latin_puts_every_option_in_every_position_equally_often(n: int) -> None:
    orders = option_orders("latin", n)
    assert len(orders) == (2 if n == 2 else 2 * n)
    assert len(set(orders)) == len(orders)
    for position in range(n):
        counts = Counter(order[position] for order in orders)
        assert set(counts) == set(range(n)) and len(set(counts.values())) == 1


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_all_gives_n_factorial_distinct_orders(n: int) -> None:
    orders = option_orders("all", n)
    assert len(set(orders)) == len(orders) == math.factorial(n)


def test_random_is_seeded_and_distinct() -> None:
    assert option_orders("random:10", 5, seed=3) == option_orders("random:10", 5, seed=3)
    assert option_orders("random:10", 5, seed=3) != option_orders("random:10", 5, seed=4)
    assert len(set(option_orders("random:10", 5))) == 10
    assert option_orders("fixed", 4) == [(0, 1, 2, 3)]
    with pytest.raises(UserError, match="--orders"):
        option_orders("latin:3", 5)


def _record(item: str, order_index: int, order: tuple[int, ...], answer: str) -> ResponseRecord:
    return ResponseRecord(
        key=f"{item}-{order_index}",
        instrument="sd3",
        item=item,
        order_index=order_index,
        option_order=order,
        sample=0,
        attempt=0,
        mode="generate",
        system=None,
        user="",
        labels=tuple(str(i + 1) for i in range(len(order))),
        decoding={},
        seed=0,
        model_fingerprint="test",
        raw_text=answer,
    )


@pytest.mark.parametrize("item", ["1", "11"])  # M1 is keyed forward, N2 reversed
def test_chosen_position_maps_back_to_its_scale_value_under_every_order(item: str) -> None:
    inst = load_instrument("sd3")
    question = next(q for q in inst.questions() if q.item_id == item)
    dim = next(d for d in inst.dimensions() if d.id == question.dimension)
    for k, order in enumerate(option_orders("all", 5)):
        prompt = next(build_prompts("sd3", [question], "fixed", TEMPLATES["study-a"]))
        assert prompt.prompt.labels == ("1", "2", "3", "4", "5")
        for position in range(5):
            result = score_instrument("sd3", inst, [_record(item, k, order, str(position + 1))])
            shown = question.options[order[position]]
            expected = dim.keyed(shown.value, question.reverse)
            got = result.dimensions[question.dimension].score
            assert got == expected, (order, position)


def test_prompt_shows_options_in_the_order_recorded() -> None:
    question = load_instrument("sd3").questions()[0]
    for ip in build_prompts("sd3", [question], "latin", TEMPLATES["study-a"]):
        listed = [
            line.split(". ", 1)[1] for line in ip.prompt.user.splitlines() if line[:1].isdigit()
        ]
        assert listed == [question.options[i].text for i in ip.order]


def test_statement_first_template_moves_only_the_statement() -> None:
    question = load_instrument("sd3").questions()[0]
    a, b = (
        next(build_prompts("sd3", [question], "fixed", TEMPLATES[name])).prompt.user
        for name in ("study-a", "statement-first")
    )
    assert sorted(a.splitlines()) == sorted(b.splitlines())
    assert b.splitlines()[1] == f"Statement: {question.text}"
    assert a.splitlines()[-2] == f"Statement: {question.text}"
