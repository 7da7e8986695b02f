"""Attention for a batch of prompts' own parts, each after a prefix already computed, when
nothing will read the batch's KV cache again (next-token scores on the CPU).

The plain way (``HFModel._run``) pads every part to the batch's longest, gathers every row's
prefix keys and values into one cache and lets transformers concatenate the batch's new ones
onto it, in every layer: the padding costs matrix products, and each row's prefix is copied
twice into memory fresh from the system, though most rows of a batch continue a prefix another
row continues too. Here the parts are packed one after another in a single row, so the matrix
products see real tokens only, and the parts that continue one prefix (a run) attend together,
in one call of the flash kernel: their keys are the prefix's followed by the run's own, and a
mask keeps each part to the prefix and, causally, to itself. One call a run instead of one for
the prefix and one for the parts, merged by their log-sum-exps, saved about 20 % of attention's
time (bench/RESULTS.md): the merge and the parts' padded grid cost more than copying the
prefix's keys once a run. The numbers are those of the model's own attention, up to float32
rounding (tested to 1e-4 against the unshared computation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from typing import Any

NAME = "psyprobe-after-prefix"  # the attention function's name in transformers' registry
# A prefix's keys and values in every layer, one row each (views into the batch that ran it).
Held = list[tuple[Any, Any]]


@dataclass(frozen=True)
class Run:
    """Consecutive tokens (``start`` to ``end``) of parts that continue one prefix, ``held``,
    and what each may attend to, as an additive mask over the prefix's columns and then the
    run's own: a row a token, repeated for each query head that shares a key/value head."""

    start: int
    end: int
    held: Held
    mask: Any


@dataclass(frozen=True)
class Packed:
    """Parts packed one after another, in runs of those that continue one prefix."""

    runs: list[Run]

    @classmethod
    def of(cls, held: Sequence[Held], lengths: Sequence[int], group: int, dtype: Any) -> Packed:
        """Parts after the prefixes ``held``, ``lengths`` tokens long, in which the parts of
        one prefix are neighbours; ``group`` query heads share a key/value head; the masks in
        ``dtype``, the queries' (the flash kernel takes no other)."""
        runs: list[Run] = []
        start = 0
        for _, same in groupby(zip(held, lengths, strict=True), key=lambda pair: id(pair[0])):
            parts = list(same)
            prefix, own = parts[0][0], [n for _, n in parts]
            mask = _mask(prefix[0][0].shape[2], own, group, dtype)
            runs.append(Run(start, start + sum(own), prefix, mask))
            start += sum(own)
        return cls(runs)


def _mask(prefix: int, lengths: list[int], group: int, dtype: Any) -> Any:
    """A run's mask: every token attends to the ``prefix`` columns, and to its own part's
    tokens up to itself (parts ``lengths`` long); its rows repeated for the ``group``
    query heads stacked against a key/value head."""
    import torch

    tokens = sum(lengths)
    mask = torch.full((tokens, prefix + tokens), float("-inf"), dtype=dtype)
    mask[:, :prefix] = 0
    row = 0  # a part's first token
    for n in lengths:  # its own block: zero on and below the diagonal, -inf above
        mask[row : row + n, prefix + row : prefix + row + n].triu_(1)
        row += n
    return mask.repeat(group, 1)[None, None]


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
    # queries, of every token of a run, are stacked as one list against it, so each key
    # column is read once a run and the kernel gets a longer list to work through.
    grouped = query[0].view(kv_heads, group, tokens, size)
    out = query.new_empty((kv_heads, group, tokens, size))
    for run in packed.runs:
        keys, values = run.held[module.layer_idx]
        n = run.end - run.start
        queries = grouped[:, :, run.start : run.end].reshape(1, kv_heads, group * n, size)
        keys = torch.cat([keys, key[:, :, run.start : run.end]], dim=2)
        values = torch.cat([values, value[:, :, run.start : run.end]], dim=2)
        attended, _ = flash(queries, keys, values, 0.0, False, attn_mask=run.mask, scale=scaling)
        out[:, :, run.start : run.end] = attended.view(kv_heads, group, n, size)
    return out.view(heads, tokens, size).transpose(0, 1)[None], None


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
