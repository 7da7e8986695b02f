"""The sampled next token of the transformers backend (``_draws``) against its definition: an
inverse-CDF draw from softmax(logits / T), one uniform number per row from the row's own
generator. Checked against that definition computed in float64 over the whole vocabulary, with
no model (the draw is plain arithmetic on logits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from psyprobe.models.hf import DRAW_BLOCK
from psyprobe.models.hf import draws as _draws

if TYPE_CHECKING:
    import torch

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, scope="module")
def _torch() -> None:
    """torch is imported when these tests run, not whenever tests are collected (-m unit)."""
    global torch
    torch = pytest.importorskip("torch")  # type: ignore[no-redef]


def _defined(logits: torch.Tensor, temperature: float, seeds: list[int]) -> tuple[list[int], ...]:
    """The draw by definition, float64 throughout; with each row's point on the cumulative
    scale and the distance from it to the nearest boundary between two tokens."""
    cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(dim=-1)
    uniform = torch.tensor(
        [float(torch.rand((), generator=_gen(s), dtype=torch.float64)) for s in seeds]
    )
    point = uniform * cdf[:, -1]
    tokens = torch.searchsorted(cdf, point[:, None]).squeeze(-1)
    margin = (cdf - point[:, None]).abs().min(dim=-1).values
    return tokens.tolist(), margin.tolist()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _language_like(rows: int, vocabulary: int, seed: int) -> torch.Tensor:
    """Logits shaped like a model's: a few likely tokens far above a long tail."""
    g = _gen(seed)
    logits = torch.randn((rows, vocabulary), generator=g) * 2
    likely = torch.randint(0, vocabulary, (rows, 4), generator=g)
    logits.scatter_(1, likely, 12 + 3 * torch.randn((rows, 4), generator=g))
    return logits


@pytest.mark.parametrize("vocabulary", [49152, 5000])  # a whole number of blocks, and not
def test_a_draw_is_the_float64_definition_but_within_rounding_of_a_boundary(
    vocabulary: int,
) -> None:
    differ = 0
    for trial in range(8):
        logits = _language_like(128, vocabulary, trial)
        seeds = [trial * 1000 + row for row in range(128)]
        drawn = _draws(logits, 0.7, [_gen(s) for s in seeds])
        defined, margin = _defined(logits, 0.7, seeds)
        for got, want, near in zip(drawn, defined, margin, strict=True):
            if got != want:
                differ += 1
                # float32 softmax rounding moves a boundary by ~1e-7 of the total at most
                assert near < 1e-6, (got, want, near)
    assert differ <= 2  # of 1,024 draws


def test_draws_follow_softmax_at_the_temperature() -> None:
    # tokens at both edges of a block and the vocabulary's last (past the last whole block)
    vocabulary, tokens = DRAW_BLOCK + 300, [DRAW_BLOCK - 1, DRAW_BLOCK, DRAW_BLOCK + 299]
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    logits = torch.full((6000, vocabulary), -1e4)
    logits[:, tokens] = probs.log().float()
    drawn = torch.tensor(_draws(logits, 0.7, [_gen(s) for s in range(len(logits))]))
    expected = probs ** (1 / 0.7) / (probs ** (1 / 0.7)).sum()
    seen = torch.tensor([(drawn == t).double().mean() for t in tokens])
    assert float(seen.sum()) == 1.0  # nothing outside the three
    se = (expected * (1 - expected) / len(logits)).sqrt()
    assert ((seen - expected).abs() < 4 * se).all(), (seen, expected)


def test_a_row_draws_from_its_own_generator_whatever_its_neighbours() -> None:
    logits = _language_like(64, 3000, 7)
    seeds = list(range(100, 164))
    together = _draws(logits, 1.0, [_gen(s) for s in seeds])
    alone = [_draws(logits[i : i + 1], 1.0, [_gen(s)])[0] for i, s in enumerate(seeds)]
    assert together == alone
    assert len(set(together)) > 1


def test_temperature_zero_takes_the_most_likely_token() -> None:
    logits = _language_like(16, 3000, 3)
    assert _draws(logits, 0.0, [_gen(0)] * 16) == logits.argmax(dim=-1).tolist()
