"""Attention for a batch of prompts' own parts, each after a prefix already computed, when
nothing will read the batch's KV cache again (next-token scores on the CPU).

The plain way (``HFModel._run``) gathers every row's prefix keys and values into one cache and
lets transformers concatenate the batch's new ones onto it, in every layer: each row's prefix
is copied twice, into memory fresh from the system, though most rows of a batch continue a
prefix another row continues too. Here the new tokens attend to their prefix and to themselves
in two parts, merged by their log-sum-exp as flash attention merges its blocks. The prefix is
read where it lies, once for all the rows that continue it, and nothing is copied or
concatenated. The numbers are those of one softmax over all the columns, up to float32
rounding (tested to 1e-4 against the unshared computation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

NAME = "psyprobe-after-prefix"  # the attention function's name in transformers' registry
# A prefix's keys and values in every layer, one row each (views into the batch that ran it).
Held = list[tuple[Any, Any]]


@dataclass(frozen=True)
class Prefix:
    """The prefixes a batch's rows attend to before their own tokens: runs of consecutive
    rows (first, end) that continue one prefix."""

    runs: list[tuple[int, int, Held]]

    @classmethod
    def of(cls, held: Sequence[Held]) -> Prefix:
        """The runs of ``held``, each row's prefix, in which rows of one prefix are neighbours."""
        runs: list[tuple[int, int, Held]] = []
        first = 0
        for row in range(1, len(held) + 1):
            if row == len(held) or held[row] is not held[first]:
                runs.append((first, row, held[first]))
                first = row
        return cls(runs)


def attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    prefix: Prefix | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function interface: ``query``/``key``/``value`` are the
    batch's own tokens (right-padded: a pad only follows a row's real tokens, so causal order
    alone keeps them out of every real token's view); ``prefix`` comes through the model's
    keyword arguments. Returns (rows, tokens, heads, head size), as transformers' own do."""
    import torch

    assert prefix is not None, "the model was called without its prefix"
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    rows, heads, width, size = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    # A key/value head serves `group` query heads (transformers' repeat_kv order): their
    # queries, of every row of a run, are stacked as one list against it, so each prefix
    # column is read once a run.
    stacked = query.reshape(rows, kv_heads, group * width, size)
    before = query.new_empty((rows, kv_heads, group * width, size))
    before_lse = query.new_empty((rows, kv_heads, group * width))
    for first, end, held in prefix.runs:
        keys, values = held[module.layer_idx]
        n = end - first
        queries = stacked[first:end].transpose(0, 1).reshape(1, kv_heads, n * group * width, size)
        out, lse = flash(queries, keys, values, 0.0, False, scale=scaling)
        before[first:end] = out[0].reshape(kv_heads, n, group * width, size).transpose(0, 1)
        before_lse[first:end] = lse[0].reshape(kv_heads, n, group * width).transpose(0, 1)
    before = before.view(rows, heads, width, size)
    before_lse = before_lse.view(rows, heads, width)
    own_keys = key.repeat_interleave(group, dim=1)
    own_values = value.repeat_interleave(group, dim=1)
    own, own_lse = flash(query, own_keys, own_values, 0.0, True, scale=scaling)
    lse = torch.logaddexp(before_lse, own_lse)
    out = before * (before_lse - lse).exp()[..., None] + own * (own_lse - lse).exp()[..., None]
    return out.transpose(1, 2).contiguous(), None


@contextmanager
def switched_to(config: Any) -> Iterator[None]:
    """``config``'s model computes attention with ``attention`` while this is open (registered
    under NAME), and with its own again after."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, attention)
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
