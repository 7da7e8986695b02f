"""The transformers model: batched next-token scoring (prompts that share a prefix computed
once), perplexity, and generation through ``decode``; the loaded ``torch`` module is exposed as
``.model`` so steering hooks and adapters can attach to it.

Batches are left-padded; positions are counted from each prompt's first real token, so a padded
prompt is computed exactly as it would be alone (tested to 1e-4).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, cast

from psyprobe.errors import UserError
from psyprobe.libraries import route_library_output
from psyprobe.models.base import (
    Completion,
    Ending,
    Failure,
    Mode,
    Model,
    ModelInfo,
    OptionProbs,
    Sampling,
    Until,
    default_threads,
    plain_prompt,
    reads_as,
)
from psyprobe.models.hf.after_prefix import Held, Packed, switched_to
from psyprobe.models.hf.decode import (
    DECODE_CELLS,
    DECODE_ROWS,
    GENERATE_BATCH,
    DecodeSlots,
    Prefilled,
    Seating,
    draws,
    length_classes,
)
from psyprobe.models.hf.fused import fused_layers
from psyprobe.models.hf.load import DTYPES, module_fingerprint, saved_model_dir
from psyprobe.prompting import Prompt

# Tokens prompts must share for computing them once: a level's stems run together (``_own``),
# so a short one costs no forward pass of its own. Four keep BFI's six-token stem ("I see
# myself as someone who") shared and leave one- to three-token openings ("I", "I am") to the
# prompts: sharing those too would save 1.4 % of the main job's tokens for one more level of
# prefix gathers (bench/RESULTS.md).
SHARED_MIN = 4
# Tokens run together in one batch, padding included: matrix products of this many rows run
# near the machine's rate (bench/RESULTS.md), and the batch's KV cache stays small.
CELLS = 1024
# Prompts one scoring call takes: the ask-loop hands them over in text order, so a call holds
# whole respondents (every prompt of a persona shares its prefix only within one call).
SCORE_BATCH = 512
POOL = 256  # prompts' own parts gathered (from any stem) before batching them


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _prefix_groups(ids: list[list[int]], minimum: int) -> list[tuple[list[int], int]]:
    """Prompt indexes in token order, in runs that share at least ``minimum`` tokens, with the
    number they share; a prompt that shares less with both its neighbours comes alone, with 0.

    Every member keeps at least one token of its own (the one whose logits are wanted). A run
    is as long as its sharing allows: what its members share further is found by grouping
    their remainders again (``HFModel._own``), so cutting a run short never pays.
    """
    order = sorted(range(len(ids)), key=ids.__getitem__)
    groups: list[tuple[list[int], int]] = []
    start = 0
    while start < len(order):
        first = ids[order[start]]
        group, shared = [order[start]], len(first) - 1
        for i in order[start + 1 :]:
            common = min(shared, _common(first, ids[i]), len(ids[i]) - 1)
            if common < minimum:
                break
            group.append(i)
            shared = common
        groups.append((group, shared if len(group) > 1 else 0))
        start += len(group)
    return groups


FORCE_GQA = "TRANSFORMERS_SDPA_FORCE_GQA"


@dataclass(frozen=True)
class _Part:
    """Tokens to run after a prefix already computed (``held``, ``done`` tokens long; None and
    0 where there is none): a prompt's own part (``row``: its index) or a stem that prompts
    share (``row`` None)."""

    held: Held | None
    done: int
    tokens: list[int]
    row: int | None = None


@contextmanager
def _grouped_queries() -> Iterator[None]:
    """Attention reads each key/value head once for its group of query heads (SDPA's
    ``enable_gqa``) while this is open. Given a mask on the CPU, transformers otherwise copies
    every key and value head once per query head it serves (three times for SmolLM2), over the
    whole prefix: about 8 % of scoring's time in an A/B (bench/RESULTS.md). The switch is
    transformers' own environment variable, set only while a batch is computed; the attention
    computed is the same."""
    before = os.environ.get(FORCE_GQA)
    os.environ[FORCE_GQA] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[FORCE_GQA]
        else:
            os.environ[FORCE_GQA] = before


@contextmanager
def _last_layer_at(model: Any, tokens: Any) -> Iterator[None]:
    """The last decoder layer's attention output projection and MLP computed at ``tokens``
    alone (indexes into the batch's tokens, flattened), zero at the others: no layer comes
    after to read them, and only ``tokens``' final hidden states are read (the answer
    positions; none for a stem). Their keys and values, which later tokens attend to, are
    computed before, as ever. The two are most of a layer, so this spares about 1/layers of
    the products. Nothing is narrowed where the modules go by other names than transformers'
    decoder models give them (``layers``, ``self_attn.o_proj``, ``mlp``)."""
    layers = getattr(model.base_model, "layers", None)
    last = layers[-1] if layers else None
    narrowed: list[Any] = [
        getattr(getattr(last, "self_attn", None), "o_proj", None),
        getattr(last, "mlp", None),
    ]
    if any(module is None for module in narrowed):
        yield
        return
    shapes: dict[int, Any] = {}

    def narrow(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        shapes[id(module)] = args[0].shape
        return (args[0].reshape(-1, args[0].shape[-1])[tokens], *args[1:])

    def widen(module: Any, args: tuple[Any, ...], out: Any) -> Any:
        shape = shapes.pop(id(module))
        full = out.new_zeros((shape[:-1].numel(), out.shape[-1]))
        full[tokens] = out
        return full.view(*shape[:-1], out.shape[-1])

    handles = [h for m in narrowed for h in (m.register_forward_pre_hook(narrow),
                                               m.register_forward_hook(widen))]  # fmt: skip
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _held_row(cache: Any, row: int, start: int, end: int) -> Held:
    """One row of a batch's KV cache, its columns ``start`` to ``end``: a row's prefix is
    right-aligned, so a shorter one starts after left pads, and a shorter part is followed by
    right pads."""
    return [(kv.keys[row : row + 1, :, start:end], kv.values[row : row + 1, :, start:end])
            for kv in cache.layers]  # fmt: skip


def _by_length(sequences: list[list[int]]) -> Iterator[list[int]]:
    """Indexes of ``sequences`` in batches of similar length (a batch's longest at most 1.5
    times its shortest, plus a few tokens) and at most CELLS tokens, padding included: every
    row is run as long as the longest, so mixing lengths wastes products on padding."""
    batch: list[int] = []
    for i in sorted(range(len(sequences)), key=lambda i: len(sequences[i])):
        longest = len(sequences[i])
        if batch and (
            (len(batch) + 1) * longest > CELLS or longest > 1.5 * len(sequences[batch[0]]) + 4
        ):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _by_prefix(parts: list[_Part]) -> Iterator[list[int]]:
    """Indexes of ``parts`` in batches of at most CELLS tokens (packed: no padding), the parts
    of one prefix neighbours, in the order their prefixes first come (reproducible):
    attention then reads a prefix in one call for all its parts in a batch, not once for
    each length class they fall in (a third as many calls, about 3 % of scoring's time,
    bench/RESULTS.md)."""
    first: dict[int, int] = {}
    for k, part in enumerate(parts):
        first.setdefault(id(part.held), k)
    batch: list[int] = []
    tokens = 0
    for k in sorted(range(len(parts)), key=lambda k: first[id(parts[k].held)]):
        if batch and tokens + len(parts[k].tokens) > CELLS:
            yield batch
            batch, tokens = [], 0
        batch.append(k)
        tokens += len(parts[k].tokens)
    if batch:
        yield batch


class HFModel(Model):
    """A transformers causal LM: loaded from a saved model or GGUF file (``load``), or one the
    user already holds in memory (``in_memory``)."""

    def __init__(
        self,
        spec: str,
        module: Any,
        tokenizer: Any,
        fingerprint: str,
        device: str,
        batch_size: int = 8,
        runtime: str | None = None,
    ):
        self.device = device
        # padding is set on a copy: the caller's tokenizer stays as it was
        self.tokenizer = copy.deepcopy(tokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Any: hooks and adapters (editing) attach to this torch module.
        self.model: Any = module
        self._was_training = bool(module.training)
        module.eval()
        self.batch_size = batch_size
        self.tokens_evaluated = 0  # for benchmarks: tokens actually run through the model
        import torch

        self.threads = torch.get_num_threads()  # torch's intra-op pool on the CPU
        self.info = ModelInfo(
            spec=spec,
            backend="transformers",
            fingerprint=fingerprint,
            modes=("logprob", "generate"),
            runtime=runtime,
        )
        self._label_ids: dict[str, list[int]] = {}
        self._vocab: list[str] = []

    @classmethod
    def load(
        cls,
        spec: str,
        path: Path,
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 8,
        threads: int | None = None,
    ) -> HFModel:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise UserError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        route_library_output()
        folder, fingerprint = saved_model_dir(path)
        where = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        loaded: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if where == "cpu":  # torch's pool is the process's own: the busy cores are left alone
            torch.set_num_threads(threads or default_threads())
        # what computes the numbers (another dtype or device gives other ones), stored with runs
        runtime = f"transformers {transformers.__version__}; torch {torch.__version__}; {dtype}"
        runtime += f"; {where}"
        return cls(spec, loaded.to(where), tokenizer, fingerprint, where, batch_size, runtime)

    @classmethod
    def in_memory(cls, module: Any, tokenizer: Any, batch_size: int = 8) -> HFModel:
        """A model the caller loaded (and perhaps edited): measured as it is, hooks included,
        on the device it is on; ``close`` gives back its train/eval mode."""
        name = str(getattr(module.config, "_name_or_path", "") or type(module).__name__)
        device = str(next(module.parameters()).device)
        fingerprint = module_fingerprint(module)
        return cls(f"hf-memory:{name}", module, tokenizer, fingerprint, device, batch_size)

    def close(self) -> None:
        self.model.train(self._was_training)

    def render(self, prompt: Prompt) -> str:
        if not self.tokenizer.chat_template:  # a base model continues the plain text
            return plain_prompt(
                prompt, lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]
            )
        return str(
            self.tokenizer.apply_chat_template(
                prompt.messages(), tokenize=False, add_generation_prompt=True
            )
        )

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])

    def _label_tokens(self, label: str) -> list[int]:
        if not self._vocab:
            self._vocab = [str(self.tokenizer.decode([i])) for i in range(len(self.tokenizer))]
        if label not in self._label_ids:
            self._label_ids[label] = [i for i, t in enumerate(self._vocab) if reads_as(t, label)]
        return self._label_ids[label]

    def encode(self, texts: list[str]) -> dict[str, Any]:
        """A left-padded batch of ``texts`` as the torch module takes it (steering reads
        activations through it)."""
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        mask = batch["attention_mask"]
        # With left padding the first real token must still sit at position 0.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "input_ids": batch["input_ids"].to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": positions.to(self.device),
        }

    def next_token_logprobs(self, texts: list[str]) -> Any:
        """log p(next token) at the end of each text, float64, shape (batch, vocab)."""
        import torch

        with torch.inference_mode():
            logits = self.model(**self.encode(texts)).logits[:, -1, :]
        return torch.log_softmax(logits.double(), dim=-1).cpu()

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def shared_prefix_logprobs(self, texts: list[str]) -> Any:
        """Like next_token_logprobs, computing each prefix that prompts share only once.

        The prompts are run as a walk of their token trie (``_prefilled``); the vocabulary
        projection is applied at the answer position alone. Equal to the unshared computation
        within float32 rounding (tested to 1e-4).
        """
        import torch

        out = torch.empty((len(texts), len(self.tokenizer)), dtype=torch.float64)
        for part in self._prefilled(self._ids(texts), cached=False):
            out[part.rows] = torch.log_softmax(part.logits.double(), dim=-1).cpu()
        return out

    def _prefilled(self, ids: list[list[int]], cached: bool = True) -> Iterator[Prefilled]:
        """Every prompt run up to its next token, each prefix that prompts share run once.

        A questionnaire's prompts nest: all share the system line's opening, a respondent's
        share its persona, those of one option order share the option list, many statements
        open alike ("I see myself as someone who"), and only the rest of the statement and the
        answer line are each prompt's own. So the prompts are grouped by what they share
        (``_prefix_groups``), each group's shared part (a stem) is run once, its members'
        remainders grouped again after it, down to the parts no two prompts share (``_own``).
        Those run in batches, each after its own prefix, whichever stem it came from: packed
        with no padding where no cache is wanted (``_scored``), the parts of one prefix
        together, or right-padded in batches of similar length (``_run``). Batches of many
        parts make large matrix products. Yields the batches with their next-token logits,
        and their KV caches where ``cached``.
        """
        import torch

        pool: list[_Part] = []
        # fused layers measured on the CPU only, where their memory passes are what they save
        fused = fused_layers(self.model) if self.device == "cpu" else nullcontext()
        with torch.inference_mode(), fused:
            for own in self._own([(_Part(None, 0, []), list(enumerate(ids)))]):
                pool.append(own)
                if len(pool) == POOL:
                    yield from self._run_own(pool, cached)
                    pool = []
            yield from self._run_own(pool, cached)

    def _own(self, nodes: list[tuple[_Part, list[tuple[int, list[int]]]]]) -> Iterator[_Part]:
        """The own parts of the prompts under ``nodes`` (each a prefix already run, with the
        prompts that continue it: index, tokens after it), running the stems they share on the
        way, one level of the trie at a time: the stems of a level, whatever prefix each
        continues, run together as batches, so even a short stem (a statement's opening
        words) rides in a large matrix product instead of a forward pass of its own."""
        while nodes:
            stems: list[tuple[_Part, list[tuple[int, list[int]]]]] = []
            for after, prompts in nodes:
                for members, n in _prefix_groups([seq for _, seq in prompts], SHARED_MIN):
                    if not n:
                        yield from (_Part(after.held, after.done, prompts[i][1], prompts[i][0])
                                    for i in members)  # fmt: skip
                        continue
                    stem = _Part(after.held, after.done, prompts[members[0]][1][:n])
                    stems.append((stem, [(prompts[i][0], prompts[i][1][n:]) for i in members]))
            nodes = []
            for batch in _by_length([stem.tokens for stem, _ in stems]):
                ran = self._run([stems[k][0] for k in batch], False)
                front = max(stems[k][0].done for k in batch)  # the batch's prefix columns
                for position, k in enumerate(batch):
                    stem, remainders = stems[k]
                    start, end = front - stem.done, front + len(stem.tokens)
                    prefix = _Part(_held_row(ran.cache, position, start, end), end - start, [])
                    nodes.append((prefix, remainders))

    def _run_own(self, parts: list[_Part], cached: bool) -> Iterator[Prefilled]:
        """Prompts' own parts run to their next token: packed with no KV cache where none is
        wanted and the model allows (``_after_prefix``), in batches that keep the parts of
        one prefix together (``_by_prefix``); the others right-padded, in batches of similar
        length."""
        packs = [not cached and self._after_prefix(part) for part in parts]
        plain = [part for part, pack in zip(parts, packs, strict=True) if not pack]
        for batch in _by_length([part.tokens for part in plain]):
            yield self._run([plain[k] for k in batch], True)
        packed = [part for part, pack in zip(parts, packs, strict=True) if pack]
        for batch in _by_prefix(packed):
            yield self._scored([packed[k] for k in batch])

    def _after_prefix(self, part: _Part) -> bool:
        """Whether ``after_prefix`` computes this part as the model would: on the CPU (its
        kernel), after a prefix, and no attention window or logit cap it ignores."""
        config = self.model.config
        window = getattr(config, "sliding_window", None)
        return (
            self.device == "cpu"
            and part.held is not None
            and not (window and part.done + len(part.tokens) > window)
            and getattr(config, "attn_logit_softcapping", None) is None
        )

    def _scored(self, parts: list[_Part]) -> Prefilled:
        """``parts`` (prompts' own, those of one prefix neighbours) run to their next token,
        each after its prefix, with no KV cache, packed in one row with no padding: attention
        reads each prefix where it lies, once for the parts that continue it
        (``after_prefix``)."""
        import torch

        config = self.model.config
        heads = config.num_attention_heads  # query heads a key/value head serves:
        group = heads // getattr(config, "num_key_value_heads", heads)
        lengths = [len(part.tokens) for part in parts]
        ids = torch.tensor([[token for part in parts for token in part.tokens]])
        # each token's position: its part continues its prefix (``done`` tokens)
        positions = torch.tensor([[p.done + i for p in parts for i in range(len(p.tokens))]])
        held = [cast(Held, part.held) for part in parts]
        packed = Packed.of(held, lengths, group, self.model.dtype)
        ends = torch.tensor(list(accumulate(lengths))) - 1  # each part's last token
        with switched_to(self.model.config), _last_layer_at(self.model, ends):
            result = self.model.base_model(
                input_ids=ids, position_ids=positions, use_cache=False, packed=packed
            )
        self.tokens_evaluated += sum(lengths)
        logits = self._logits(result.last_hidden_state[0, ends])
        return Prefilled([cast(int, part.row) for part in parts], None, None, logits, None, None)

    def _run(self, parts: list[_Part], answered: bool) -> Prefilled:
        """Run ``parts`` as one batch, each after its own prefix: the prefixes right-aligned
        (left-padded), the parts right-padded after them. Left pads keep the distance between
        any two real tokens what it is in the prompt, so a sliding-window layer's mask holds.
        ``answered``: the parts are prompts' own, whose next-token logits (and rows) are
        wanted; a stem's are not (no vocabulary projection)."""
        import torch
        from transformers import DynamicCache

        front = max(part.done for part in parts)
        width = max(len(part.tokens) for part in parts)
        device = self.device
        # A plain cache keeps every column of every layer: a sliding-window layer's own would
        # drop those outside its window, where DecodeSlots places prompts by column (the
        # window is kept by the masks instead, exactly as the model defines it).
        cache = DynamicCache()
        held = [part.held for part in parts]
        if front and all(h is held[0] for h in held):  # one prefix: a view, repeated
            for layer, (keys, values) in enumerate(cast(Held, held[0])):
                expand = (len(parts), -1, -1, -1)
                cache.update(keys.expand(*expand), values.expand(*expand), layer)
        elif front:
            some = next(h for h in held if h is not None)
            for layer in range(len(some)):
                like = some[layer][0]  # the model's own dtype (bfloat16 too)
                keys = like.new_zeros((len(parts), like.shape[1], front, like.shape[3]))
                values = torch.zeros_like(keys)
                for r, part in enumerate(parts):
                    if part.held is not None:
                        keys[r, :, front - part.done :] = part.held[layer][0][0]
                        values[r, :, front - part.done :] = part.held[layer][1][0]
                cache.update(keys, values, layer)
        pad = self.tokenizer.pad_token_id
        batch = [part.tokens + [pad] * (width - len(part.tokens)) for part in parts]
        mask = torch.tensor(
            [
                [0] * (front - part.done) + [1] * (part.done + len(part.tokens))
                + [0] * (width - len(part.tokens))
                for part in parts
            ],
            device=device,
        )  # fmt: skip
        start = torch.tensor([part.done - front for part in parts], device=device)[:, None]
        positions = start + torch.arange(front + width, device=device)  # of every column
        ends = [len(part.tokens) - 1 for part in parts]
        read = [r * width + end for r, end in enumerate(ends)] if answered else []
        with (
            _grouped_queries(),
            _last_layer_at(self.model, torch.tensor(read, dtype=torch.long, device=device)),
        ):
            result = self.model.base_model(
                input_ids=torch.tensor(batch, device=device),
                attention_mask=mask,
                past_key_values=cache,
                position_ids=positions[:, front:],
                use_cache=True,
            )
        self.tokens_evaluated += sum(len(part.tokens) for part in parts)
        logits = None
        if answered:
            logits = self._logits(result.last_hidden_state[torch.arange(len(parts)), ends])
        rows = [cast(int, part.row) for part in parts] if answered else []
        lengths = torch.tensor([part.done + len(part.tokens) for part in parts], device=device)
        return Prefilled(rows, result.past_key_values, mask, logits, lengths, positions)

    def _logits(self, hidden: Any) -> Any:
        """The vocabulary projection of final hidden states (with Gemma's soft cap)."""
        import torch

        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        logprobs = self.shared_prefix_logprobs([self.render(p) for p in prompts])
        return [  # exp of the labels' tokens alone: of the whole vocabulary it cost 1 %
            OptionProbs(probs=[float(row[self._label_tokens(lab)].exp().sum()) for lab in p.labels])
            for row, p in zip(logprobs, prompts, strict=True)
        ]

    def torch_module(self) -> Any:
        return self.model

    def merge_adapter(self, folder: Path) -> None:
        from peft import PeftModel

        # Merged, so every code path (prefix sharing included) sees it.
        self.model = PeftModel.from_pretrained(self.model, str(folder)).merge_and_unload().eval()

    def perplexity(self, text: str, max_tokens: int, window: int) -> float:
        import torch

        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
        nll, count = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(ids) - 1, window):
                chunk = torch.tensor([ids[start : start + window + 1]], device=self.device)
                logits = self.model(input_ids=chunk[:, :-1]).logits.double()
                logp = torch.log_softmax(logits, dim=-1)
                target = chunk[:, 1:]
                nll -= float(logp.gather(-1, target.unsqueeze(-1)).sum())
                count += target.numel()
        return math.exp(nll / count)

    def preferred_batch(self, mode: Mode) -> int:
        return SCORE_BATCH if mode == "logprob" else GENERATE_BATCH

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Completion | Failure | None]:
        answers: list[str | Completion | Failure | None] = [None] * len(prompts)
        for i, answer in self.generate_as_ready(prompts, sampling, seeds, until):
            answers[i] = answer
        return answers

    def generate_as_ready(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Iterator[tuple[int, Completion]]:
        """Continuous batching over shared prefixes; each answer is yielded as it ends.

        Prompts are run up to their answer as for next-token scores (each shared prefix once,
        each distinct prompt once for all its samples); then up to DECODE_ROWS sequences advance
        one token per forward pass (``DecodeSlots``), and a sequence that ends (end token,
        answer read, max_tokens) gives its slot to the next request. Decoding one token costs
        reading every weight once whatever the number of rows, so many rows make it cheap
        (bench/). Prompts are decoded in classes of similar length, so that the columns a slot
        holds fit the longest prompt of its class, not of the whole call.

        Each sequence draws from its own generator seeded by its request, so its text does not
        depend on what else was in the batch, up to float32 rounding of the logits, which can
        tip a draw that falls within about 1e-6 of a boundary (tested on real answers).
        """
        import torch

        ids = self._ids([self.render(p) for p in prompts])
        same: dict[tuple[int, ...], list[int]] = {}  # one computation per distinct prompt
        for i, seq in enumerate(ids):
            same.setdefault(tuple(seq), []).append(i)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        tokens: list[list[int]] = [[] for _ in prompts]
        eos = self._end_tokens()
        for group in length_classes(list(same), sampling.max_tokens):
            columns = len(group[-1]) + sampling.max_tokens
            slots = DecodeSlots(self, max(1, min(DECODE_ROWS, DECODE_CELLS // columns)), columns)
            ready = self._prefilled_requests([list(seq) for seq in group], [same[s] for s in group])
            waiting: Seating | None = None
            while True:
                while slots.free() and (waiting := waiting or next(ready, None)):
                    waiting = slots.seat(waiting)
                seated = slots.seated()
                if not seated:
                    break
                if waiting is None:  # nothing left to seat: fewer rows make cheaper steps
                    seated = slots.shrink()
                rows = [slot for slot, _ in seated]
                # the rows of free slots are left out (a copy of the logits, so only when any is)
                logits = slots.logits if len(rows) == len(slots.owner) else slots.logits[rows]
                chosen = draws(logits, sampling.temperature, [generators[i] for _, i in seated])
                leaving = []
                for (slot, i), token in zip(seated, chosen, strict=True):
                    tokens[i].append(token)
                    check = until[i] if until else None
                    ended: Ending
                    if token in eos:
                        ended = "end"
                    elif check is not None and check(self._text(tokens[i])):
                        ended = "read"
                    elif len(tokens[i]) < sampling.max_tokens:
                        continue
                    else:
                        ended = "length"
                    leaving.append(slot)
                    yield i, Completion(self._text(tokens[i]), len(tokens[i]), ended)
                slots.leave(leaving)
                slots.step({slot: tokens[i][-1] for slot, i in slots.seated()})

    def _prefilled_requests(
        self, distinct: list[list[int]], askers: list[list[int]]
    ) -> Iterator[Seating]:
        """Prefilled batches with the requests waiting for them: every request that asks a
        distinct prompt (its samples) with the row of the batch that holds that prompt."""
        for part in self._prefilled(distinct):
            yield Seating(part, [(i, row) for row, r in enumerate(part.rows) for i in askers[r]])

    def _text(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _end_tokens(self) -> set[int]:
        """The tokens that end an answer: the tokenizer's end token and the model's own."""
        ends = self.model.generation_config.eos_token_id
        found = {self.tokenizer.eos_token_id, *(ends if isinstance(ends, list) else [ends])}
        return {t for t in found if t is not None}
