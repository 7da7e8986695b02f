"""Attention for a batch of prompts' own parts, each after a prefix already computed, when
nothing will read the batch's KV cache again (next-token scores on the CPU).

The plain way (``HFModel._run``) pads every part to the batch's longest, gathers every row's
prefix keys and values into one cache and lets transformers concatenate the batch's new ones
onto it, in every layer: the padding costs matrix products, and each row's prefix is copied
twice into memory fresh from the system, though most rows of a batch continue a prefix another
row continues too. Here the parts are packed one after another in a single row, so the matrix
products see real tokens only, and each token attends to its prefix and to its own part in two
pieces, merged by their log-sum-exp as flash attention merges its blocks. The prefix is read
where it lies, once for all the parts that continue it, and nothing is copied or concatenated.
The numbers are those of one softmax over all the columns, up to float32 rounding (tested to
1e-4 against the unshared computation).
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
class Packed:
    """Parts packed one after another (``lengths`` tokens each), and what their tokens attend
    to before their own: ``runs`` of consecutive tokens (start, end) whose parts continue one
    prefix."""

    lengths: list[int]
    runs: list[tuple[int, int, Held]]
    grid: Any  # each token's place in a parts × longest grid, where parts attend to themselves

    @classmethod
    def of(cls, held: Sequence[Held], lengths: Sequence[int]) -> Packed:
        """Parts after the prefixes ``held``, ``lengths`` tokens long, in which the parts of
        one prefix are neighbours."""
        import torch

        runs: list[tuple[int, int, Held]] = []
        first = start = end = 0
        for part, length in enumerate(lengths):
            if held[part] is not held[first]:
                runs.append((start, end, held[first]))
                first, start = part, end
            end += length
        runs.append((start, end, held[first]))
        width = max(lengths)
        grid = torch.cat([torch.arange(n) + part * width for part, n in enumerate(lengths)])
        return cls(list(lengths), runs, grid)


def attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    packed: Packed | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function interface: ``query``/``key``/``value`` hold the
    batch's tokens packed in one row (1, heads, tokens, head size); ``packed`` comes through
    the model's keyword arguments. Returns (1, tokens, heads, head size), as transformers' own
    functions do."""
    import torch

    assert packed is not None, "the model was called without its packing"
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    _, heads, tokens, size = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    # A key/value head serves `group` query heads (transformers' repeat_kv order): their
    # queries, of every token of a run, are stacked as one list against it, so each prefix
    # column is read once a run.
    grouped = query[0].view(kv_heads, group, tokens, size)
    before = query.new_empty((kv_heads, group, tokens, size))
    before_lse = query.new_empty((kv_heads, group, tokens), dtype=torch.float32)  # as flash's
    for start, end, held in packed.runs:
        keys, values = held[module.layer_idx]
        n = end - start
        queries = grouped[:, :, start:end].reshape(1, kv_heads, group * n, size)
        out, lse = flash(queries, keys, values, 0.0, False, scale=scaling)
        before[:, :, start:end] = out.view(kv_heads, group, n, size)
        before_lse[:, :, start:end] = lse.view(kv_heads, group, n)
    # Each part attends to itself causally, in a parts × longest grid right-padded with zeros
    # (a pad follows a part's real tokens, so causal order keeps it out of every real token's
    # view): attention's products there are a small share, the padding costs little.
    rows, width = len(packed.lengths), max(packed.lengths)

    def in_grid(x: Any) -> Any:
        grid = x.new_zeros((rows * width, x.shape[1], size))
        grid[packed.grid] = x[0].transpose(0, 1)
        return grid.view(rows, width, x.shape[1], size).transpose(1, 2)

    own_keys = in_grid(key).repeat_interleave(group, dim=1)
    own_values = in_grid(value).repeat_interleave(group, dim=1)
    own, own_lse = flash(in_grid(query), own_keys, own_values, 0.0, True, scale=scaling)
    own = own.transpose(1, 2).reshape(rows * width, heads, size)[packed.grid]
    own_lse = own_lse.transpose(1, 2).reshape(rows * width, heads)[packed.grid]
    before = before.view(heads, tokens, size).transpose(0, 1)
    before_lse = before_lse.view(heads, tokens).transpose(0, 1)
    lse = torch.logaddexp(before_lse, own_lse)
    # merged in float32 (the log-sum-exps' type), returned in the model's own (bfloat16 too)
    out = before * (before_lse - lse).exp()[..., None] + own * (own_lse - lse).exp()[..., None]
    return out.to(query.dtype)[None], None


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
