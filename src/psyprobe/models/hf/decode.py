"""Generation with transformers: many sequences decoded together in slots of one key-value
cache, a slot refilled as soon as its answer ends, and seeded draws per sequence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psyprobe.errors import UserError

if TYPE_CHECKING:
    from psyprobe.models.hf.model import HFModel

DECODE_ROWS = 128  # sequences decoded together (bench/generate.py)
# ... and the cache cells (rows × columns) they may hold together: 2.3 GB of float32 keys and
# values for SmolLM2; rows of long prompts (safety attacks) get fewer of them
DECODE_CELLS = 128 * 384
# Requests one generate call takes: a call's last steps decode its longest answers while its
# slots empty, so a call should hold many times DECODE_ROWS; answers are stored as each ends
# (generate_as_ready), so a large call loses no finished answer to an interrupt.
GENERATE_BATCH = 4096
DRAW_BLOCK = 1024  # vocabulary tokens a draw's cumulative sum takes at once (draws)


@dataclass
class Prefilled:
    """Sequences run up to their next token: which ones (rows: indexes of the prompts given
    to ``_prefilled``), the KV cache, the attention mask over it, the logits for the next
    token, each row's length so far (its next position) and the position of every column
    (a row's prefix may start after left pads). Scores alone keep only rows and logits: the
    rest is None there (``HFModel._scored``)."""

    rows: list[int]
    cache: Any
    mask: Any
    logits: Any
    lengths: Any
    positions: Any


@dataclass
class Seating:
    """A prefilled batch and the requests still waiting for a slot: (request, row of the batch
    that holds its prompt)."""

    part: Prefilled
    waiting: list[tuple[int, int]]


class DecodeSlots:
    """Up to ``rows`` sequences decoded together over one preallocated KV cache.

    Each sequence holds a slot: one row of every layer's key and value buffers, whose
    ``columns`` are used as a ring. A step writes every slot's new token at the same column; a
    sequence that takes a slot has its prompt's keys and values written into the columns just
    before it. A column's place means nothing but its mask: cached keys carry their rotary
    positions already and each slot's position is its own. So a sequence that ends frees its
    slot without a copy, and one that joins copies only its own prompt; a growing cache
    instead copies all of itself every token, and again whenever a row leaves (bench/).

    Every layer keeps every column (the prefill caches have no sliding-window layers); a
    sliding-window layer sees only its window through its own mask, as the model's mask
    functions define it (``kv > q - window``). A sequence must fit: its prompt plus the
    tokens it may generate at most ``columns``.
    """

    def __init__(self, model: HFModel, rows: int, columns: int):
        import torch

        self.model = model
        self.columns = columns
        config = model.model.config.get_text_config()
        kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
        if not kinds <= {"full_attention", "sliding_attention"}:
            raise UserError(
                f"{model.info.spec}: generate supports full and sliding-window attention "
                f"layers, not {', '.join(sorted(kinds))}"
            )
        self.kinds = kinds
        self.window: int = getattr(config, "sliding_window", None) or 0
        self.keys: list[Any] = []  # per layer (rows, heads, columns, head size); made at first seat
        self.values: list[Any] = []
        self.owner: list[int | None] = [None] * rows  # the request in each slot
        self.valid = torch.zeros((rows, columns), dtype=torch.bool, device=model.device)
        self.position = torch.zeros((rows, columns), dtype=torch.long, device=model.device)
        self.next_position = torch.zeros(rows, dtype=torch.long, device=model.device)
        self.logits: Any = None  # (rows, vocabulary): each slot's next-token logits
        self.column = 0  # where this step's tokens are written

    def free(self) -> bool:
        return None in self.owner

    def seated(self) -> list[tuple[int, int]]:
        """(slot, request) of every sequence decoding."""
        return [(slot, i) for slot, i in enumerate(self.owner) if i is not None]

    def seat(self, seating: Seating) -> Seating | None:
        """Seat as many waiting requests as there are free slots; the rest still wait."""
        import torch

        part, free = seating.part, [s for s, i in enumerate(self.owner) if i is None]
        now, rest = seating.waiting[: len(free)], seating.waiting[len(free) :]
        device = self.valid.device
        slots = torch.tensor(free[: len(now)], device=device)
        rows = torch.tensor([row for _, row in now], device=device)
        width = part.mask.shape[1]
        cols = (self.column - width + torch.arange(width, device=device)) % self.columns
        if not self.keys:
            for layer in part.cache.layers:
                _, heads, _, size = layer.keys.shape
                shape = (len(self.owner), heads, self.columns, size)
                self.keys.append(layer.keys.new_zeros(shape))
                self.values.append(layer.values.new_zeros(shape))
            self.logits = part.logits.new_zeros((len(self.owner), part.logits.shape[1]))
        # (slots, cols) pick (len(now), width) cells of a (rows, heads, columns, size) buffer;
        # the indexed dimensions come first, so the prompt's (rows, heads, width, size) turns
        where = (slots[:, None], slice(None), cols[None, :])
        for keys, values, layer in zip(self.keys, self.values, part.cache.layers, strict=True):
            keys[where] = layer.keys[rows].transpose(1, 2)
            values[where] = layer.values[rows].transpose(1, 2)
        self.valid[slots] = False
        self.valid[slots[:, None], cols[None, :]] = part.mask[rows].bool()
        self.position[slots[:, None], cols[None, :]] = part.positions[rows]
        self.next_position[slots] = part.lengths[rows]
        self.logits[slots] = part.logits[rows]
        for slot, (i, _) in zip(free, now, strict=False):
            self.owner[slot] = i
        return Seating(part, rest) if rest else None

    def leave(self, slots: list[int]) -> None:
        for slot in slots:
            self.owner[slot] = None

    def shrink(self) -> list[tuple[int, int]]:
        """Once nothing waits: drop the free slots when they are half or more, so that the last
        sequences decode at the cost of their own rows. Returns ``seated()`` after."""
        import torch

        seated = self.seated()
        if 2 * len(seated) > len(self.owner):
            return seated
        keep = torch.tensor([slot for slot, _ in seated], device=self.valid.device)
        self.keys = [k[keep] for k in self.keys]
        self.values = [v[keep] for v in self.values]
        self.valid, self.position = self.valid[keep], self.position[keep]
        self.next_position, self.logits = self.next_position[keep], self.logits[keep]
        self.owner = [i for _, i in seated]
        return self.seated()

    def step(self, tokens: dict[int, int]) -> None:
        """Run every seated slot's last token (``tokens``: slot → token) through the model at
        its own next position; the logits for the token after it replace ``logits``. Free
        slots run a pad token that attends to itself only, and their results are ignored."""
        import torch

        if not tokens:
            return
        model, column = self.model, self.column
        pad = model.tokenizer.pad_token_id
        ids = [[tokens.get(slot, pad)] for slot in range(len(self.owner))]
        self.valid[:, column] = True
        for slot, i in enumerate(self.owner):
            if i is None:
                self.valid[slot] = False
                self.valid[slot, column] = True
        self.position[:, column] = self.next_position
        with torch.inference_mode():
            hidden = model.model.base_model(
                input_ids=torch.tensor(ids, device=self.valid.device),
                attention_mask=self._masks(),
                past_key_values=_SlotWriter(self),
                position_ids=self.next_position[:, None],
                use_cache=True,
            ).last_hidden_state[:, -1]
            self.logits = model._logits(hidden)
        model.tokens_evaluated += len(tokens)
        self.next_position += 1
        self.column = (column + 1) % self.columns

    def _masks(self) -> Any:
        """The attention mask of this step (rows, 1, 1, columns): a layer type's own where a
        model mixes sliding-window and full layers."""
        full = self.valid[:, None, None, :]
        if self.kinds == {"full_attention"}:
            return full
        near = self.position > (self.next_position[:, None] - self.window)
        return {"full_attention": full, "sliding_attention": (self.valid & near)[:, None, None, :]}


class _SlotWriter:
    """What a transformers attention layer calls as its cache: it writes the step's keys and
    values into the slots' column and attends over all the slots' columns (the mask says which
    count). Only ``update`` is called when the mask and positions are given, as here."""

    def __init__(self, slots: DecodeSlots):
        self.slots = slots

    def update(self, keys: Any, values: Any, layer: int, *args: Any, **kwargs: Any) -> Any:
        column = self.slots.column
        self.slots.keys[layer][:, :, column] = keys[:, :, 0]
        self.slots.values[layer][:, :, column] = values[:, :, 0]
        return self.slots.keys[layer], self.slots.values[layer]


def length_classes(prompts: list[tuple[int, ...]], max_tokens: int) -> list[list[tuple[int, ...]]]:
    """Prompts in classes of similar length, shortest first: each class's longest prompt and
    answer within twice its shortest, so that no slot holds columns for far more tokens than
    its own sequence uses (every row attends over every column)."""
    classes: list[list[tuple[int, ...]]] = []
    for prompt in sorted(prompts, key=len):
        if classes and len(prompt) + max_tokens <= 2 * (len(classes[-1][0]) + max_tokens):
            classes[-1].append(prompt)
        else:
            classes.append([prompt])
    return classes


def draws(logits: Any, temperature: float, generators: Sequence[Any]) -> list[int]:
    """The next token of every row: the most likely at temperature 0, else an inverse-CDF draw
    from softmax(logits / T) with one uniform number from the row's own generator.

    The softmax is float32: its rounding (~1e-7) is far below what another batch's rounding
    does to the logits themselves. The cumulative sum is float64 in two levels, over blocks of
    the vocabulary and then within the block the draw falls in. A float64 softmax and sum over
    the whole vocabulary cost ten times as much: 0.1 s a step at 128 rows, an eighth of study
    A's sampled protocol (bench/RESULTS.md).
    """
    import torch

    if temperature <= 0:
        return [int(t) for t in logits.argmax(dim=-1)]
    weights = torch.softmax(logits.float() / temperature, dim=-1)
    rows, vocabulary = weights.shape
    if vocabulary % DRAW_BLOCK:
        weights = torch.nn.functional.pad(weights, (0, -vocabulary % DRAW_BLOCK))
    blocks = weights.view(rows, -1, DRAW_BLOCK)
    reach = blocks.sum(dim=-1).double().cumsum(dim=-1)  # the weight up to each block's end
    uniform = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in generators])
    target = (uniform.to(reach.device) * reach[:, -1])[:, None]
    block = torch.searchsorted(reach, target).clamp(max=reach.shape[1] - 1)
    start = torch.where(block > 0, reach.gather(1, (block - 1).clamp(min=0)), 0.0)
    within = (
        blocks[torch.arange(rows, device=blocks.device), block[:, 0]].double().cumsum(dim=-1)
        + start
    )
    index = torch.searchsorted(within, target).clamp(max=DRAW_BLOCK - 1)
    # a draw past the last cumulative sum (rounding) takes the last token
    picked = (block * DRAW_BLOCK + index).clamp(max=vocabulary - 1)
    return [int(t) for t in picked.squeeze(-1)]
