"""Option-order designs: in which orders each item's options are shown.

An order is a tuple of canonical option indices, one per position: ``(4, 3, 2, 1, 0)`` shows the
last scale point first. Order ``k`` of a design is applied to every item of an instrument, so it
acts as one simulated respondent, and the chosen position maps back to a scale value through it.
"""

from __future__ import annotations

import itertools
import math
import random
import re

from psyprobe.errors import UserError

Order = tuple[int, ...]

DESIGNS = ("all", "latin", "random:K", "fixed")
# Every order of a 7-point scale; beyond this a design is refused before anything is built
# (all orders of 10 options are 3,628,800 prompts per item).
MAX_ORDERS = math.factorial(7)


def _latin(n: int) -> list[Order]:
    # Cyclic shifts of the forward and of the reversed order: each option sits in each position
    # exactly twice, and adjacent pairs appear in both directions. For n = 2 the two halves
    # coincide, so duplicates are dropped (balance still holds: once per position).
    forward = [tuple((start + i) % n for i in range(n)) for start in range(n)]
    backward = [tuple((start - i) % n for i in range(n)) for start in range(n)]
    return list(dict.fromkeys(forward + backward))


def _random(n: int, k: int, seed: int) -> list[Order]:
    rng = random.Random(f"{seed}:{n}")
    distinct = math.factorial(n)
    seen: dict[Order, None] = {}
    while len(seen) < min(k, distinct):
        perm = list(range(n))
        rng.shuffle(perm)
        seen[tuple(perm)] = None
    return list(seen)


def check_design(design: str) -> str:
    if design in ("all", "latin", "fixed") or re.fullmatch(r"random:[1-9]\d*", design):
        return design
    raise UserError(f"--orders: {design!r} is not one of all, latin, random:K (K ≥ 1), fixed")


def order_count(design: str, n_options: int) -> int:
    """How many orders a design gives an item with ``n_options`` options (before latin's
    duplicates at two options are dropped), without making them."""
    check_design(design)
    if design == "fixed":
        return 1
    if design == "all":
        return math.factorial(n_options)
    if design.startswith("random:"):
        return min(int(design.split(":")[1]), math.factorial(n_options))
    return 2 * n_options


def option_orders(design: str, n_options: int, seed: int = 0) -> list[Order]:
    """The orders of a design for items with ``n_options`` options, in a fixed sequence."""
    wanted = order_count(design, n_options)
    if wanted > MAX_ORDERS:
        raise UserError(
            f"--orders {design}: {wanted:,} orders of {n_options} options per item (at most "
            f"{MAX_ORDERS:,}); use latin or random:K"
        )
    if design == "fixed":
        return [tuple(range(n_options))]
    if design == "all":
        return list(itertools.permutations(range(n_options)))
    if design == "latin":
        return _latin(n_options)
    return _random(n_options, int(design.split(":")[1]), seed)
