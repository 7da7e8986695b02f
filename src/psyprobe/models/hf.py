"""Local transformers models: batched next-token scoring, and the torch module for editing.

``hf:DIR`` loads a saved model; ``hf:FILE.gguf`` dequantises a GGUF file once into a cached
saved model (``~/.cache/psyprobe/hf/``, or ``$PSYPROBE_CACHE``) so later runs start fast. The
loaded ``torch`` module is exposed as ``.model`` so steering hooks and adapters can attach to it.

Batches are left-padded; positions are counted from each prompt's first real token, so a padded
prompt is computed exactly as it would be alone (tested to 1e-4).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    cache_root,
    file_fingerprint,
    plain_prompt,
    reads_as,
)
from psyprobe.models.registry import BackendOptions, backend, local_file
from psyprobe.prompting import Prompt

DTYPES = ("float32", "bfloat16", "float16")
SHARED_MIN = 16  # tokens a group of prompts must share for prefix reuse to pay
SUFFIX_BATCH = 24  # suffixes run together after a shared prefix (sorted by length)
DECODE_ROWS = 128  # sequences decoded together (bench/generate.py)
# ... and the cache cells (rows × columns) they may hold together: 2.3 GB of float32 keys and
# values for SmolLM2; rows of long prompts (safety attacks) get fewer of them
DECODE_CELLS = 128 * 384
# Requests one generate call takes: a call's last steps decode its longest answers while its
# slots empty, so a call should hold many times DECODE_ROWS; answers are stored as each ends
# (generate_as_ready), so a large call loses no finished answer to an interrupt.
GENERATE_BATCH = 4096
DRAW_BLOCK = 1024  # vocabulary tokens a draw's cumulative sum takes at once (_draws)


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _prefix_groups(ids: list[list[int]], size: int, minimum: int) -> list[tuple[list[int], int]]:
    """Groups of prompt indexes (≤ size) in token order, with the prefix length they share.

    A prompt joins the current group when the tokens it saves (the shared prefix it need not
    compute) outweigh what shortening the group's shared prefix would cost the members already
    in it. The shared length leaves every member at least one token of its own; groups sharing
    fewer than ``minimum`` tokens come back with 0 (computed without sharing).
    """
    order = sorted(range(len(ids)), key=ids.__getitem__)
    groups: list[tuple[list[int], int]] = []
    start = 0
    while start < len(order):
        first = ids[order[start]]
        group, shared = [order[start]], len(first) - 1
        for i in order[start + 1 : start + size]:
            common = min(shared, _common(first, ids[i]), len(ids[i]) - 1)
            if common < minimum or common <= len(group) * (shared - common):
                break
            group.append(i)
            shared = common
        groups.append((group, shared if shared >= minimum and len(group) > 1 else 0))
        start += len(group)
    return groups


def dir_fingerprint(folder: Path) -> str:
    """sha256 over the weight files of a saved model (names and contents)."""
    digest = hashlib.sha256()
    weights = sorted(
        p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()
    )
    if not weights:
        raise UserError(f"hf:{folder}: no weight files (.safetensors or .bin)")
    for path in weights:
        digest.update(path.name.encode())
        digest.update(file_fingerprint(path).encode())
    return f"sha256:{digest.hexdigest()}"


@contextmanager
def _one_gguf_reader() -> Iterator[None]:
    """transformers opens a GGUF file three times to convert it (tokenizer, config, weights),
    and gguf-py parses its metadata anew each time, a Python object per vocabulary entry: 18 s
    a time for Gemma-3's 262,144 tokens (bench/RESULTS.md). The file is only read, so the
    three share one parsed reader."""
    import gguf

    module: Any = gguf  # the attribute transformers looks up at each open
    original = module.GGUFReader
    opened: dict[tuple[str, str], Any] = {}

    def shared(path: Any, mode: Any = "r") -> Any:
        key = (str(path), str(mode))
        if key not in opened:
            opened[key] = original(path, mode)
        return opened[key]

    module.GGUFReader = shared
    try:
        yield
    finally:
        module.GGUFReader = original


def saved_model_dir(path: Path) -> tuple[Path, str]:
    """A directory transformers can load quickly, and the fingerprint of the original weights."""
    if path.is_dir():
        return path, dir_fingerprint(path)
    if path.suffix != ".gguf" or not path.is_file():
        raise UserError(f"hf:{path}: not a model directory or a .gguf file")
    fingerprint = file_fingerprint(path)
    target = cache_root() / "hf" / fingerprint.removeprefix("sha256:")[:32]
    if not (target / "config.json").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        route_library_output()  # the conversion's bar and warnings go to the log
        with _one_gguf_reader():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model: Any = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
        # The tensors are already dequantised to float; only the GGUF marker forbids saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = target.with_name(target.name + ".partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)  # only a complete conversion is ever found
    return target, fingerprint


def hf_model_dir(spec: str) -> Path:
    """The saved transformers model behind an ``hf:`` spec (a GGUF file is converted once)."""
    kind, _, rest = spec.partition(":")
    if kind != "hf" or not rest:
        raise UserError(f"--model {spec}: needs a transformers model (hf:PATH or hf:ALIAS)")
    return saved_model_dir(local_file(spec, rest))[0]


def module_fingerprint(module: Any) -> str:
    """sha256 over a torch module's state dict (names, dtypes, shapes, values), so that answers
    of a model fine-tuned or given adapters in memory are never mistaken for the original's.

    Forward hooks change the answers but not the state dict: a module with any hook attached
    gets a fresh random part as well, so its answers are never reused by another model or
    process (a rerun measures it afresh)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    hooked = any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
    if hooked:
        digest.update(os.urandom(16))
    return f"sha256:{digest.hexdigest()}" + (":hooked" if hooked else "")


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
        group_size: int = 128,
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
        self.group_size = group_size  # prompts that share one prefix computation
        self.tokens_evaluated = 0  # for benchmarks: tokens actually run through the model
        import torch

        self.threads = torch.get_num_threads()  # torch's intra-op pool on the CPU
        self.info = ModelInfo(
            spec=spec,
            backend="transformers",
            fingerprint=fingerprint,
            modes=("logprob", "generate"),
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
    ) -> HFModel:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise UserError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        route_library_output()
        folder, fingerprint = saved_model_dir(path)
        where = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        loaded: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return cls(spec, loaded.to(where), tokenizer, fingerprint, where, batch_size)

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

    def _shared(self, ids: list[list[int]]) -> list[tuple[list[int], list[int]]]:
        """(shared prefix, member indexes) for prompts that share at least SHARED_MIN tokens;
        the prompts that share too little with their neighbours go together with no prefix."""
        groups, alone = [], []
        for group, shared in _prefix_groups(ids, self.group_size, SHARED_MIN):
            if shared:
                groups.append((ids[group[0]][:shared], group))
            else:
                alone += group
        return groups + ([([], alone)] if alone else [])

    def shared_prefix_logprobs(self, texts: list[str]) -> Any:
        """Like next_token_logprobs, computing each prefix that prompts share only once.

        Prompts are visited in token order (a walk of their trie) and grouped while they share
        at least SHARED_MIN tokens; a group's shared prefix is run once, its KV cache copied to
        every member, and only the members' own suffixes are run, as one right-padded batch.
        The vocabulary projection is applied at the answer position alone. Equal to the
        unshared computation within float32 rounding (tested to 1e-4).
        """
        import torch

        ids = self._ids(texts)
        out = torch.empty((len(texts), len(self.tokenizer)), dtype=torch.float64)
        for prefix, members in self._shared(ids):
            for part in self._prefill(prefix, [ids[i][len(prefix) :] for i in members]):
                rows = [members[r] for r in part.rows]
                out[rows] = torch.log_softmax(part.logits.double(), dim=-1).cpu()
        return out

    def _prefill(self, prefix: list[int], suffixes: list[list[int]]) -> Iterator[Prefilled]:
        """Run ``prefix`` once, then the suffixes after it in right-padded batches of similar
        length; yields each batch with its KV cache and the logits at each member's last token."""
        import torch
        from transformers import DynamicCache

        body = self.model.base_model
        with torch.inference_mode():
            # A plain cache keeps every column of every layer: a sliding-window layer's own
            # would drop those outside its window, where DecodeSlots places prompts by column
            # (the window is kept by the masks instead, exactly as the model defines it).
            prefix_cache = (
                body(
                    input_ids=torch.tensor([prefix], device=self.device),
                    past_key_values=DynamicCache(),
                    use_cache=True,
                ).past_key_values
                if prefix
                else None
            )
            self.tokens_evaluated += len(prefix)
            # Suffixes of similar length ride together, so little is spent on padding.
            by_length = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
            for start in range(0, len(by_length), SUFFIX_BATCH):
                rows = by_length[start : start + SUFFIX_BATCH]
                part = [suffixes[i] for i in rows]
                cache = DynamicCache()
                if prefix_cache is not None:
                    cache = copy.deepcopy(prefix_cache)
                    cache.batch_repeat_interleave(len(part))
                width = max(map(len, part))
                pad = self.tokenizer.pad_token_id
                batch = torch.tensor(
                    [s + [pad] * (width - len(s)) for s in part], device=self.device
                )
                mask = torch.tensor(
                    [[1] * (len(prefix) + len(s)) + [0] * (width - len(s)) for s in part],
                    device=self.device,
                )
                # Right padding: real tokens never attend to the pads that follow them.
                positions = torch.arange(len(prefix), len(prefix) + width, device=self.device)
                result = body(
                    input_ids=batch,
                    attention_mask=mask,
                    past_key_values=cache,
                    position_ids=positions.expand(len(part), -1),
                    use_cache=True,
                )
                self.tokens_evaluated += sum(map(len, part))
                last = result.last_hidden_state[torch.arange(len(part)), [len(s) - 1 for s in part]]
                lengths = torch.tensor([len(prefix) + len(s) for s in part], device=self.device)
                yield Prefilled(rows, result.past_key_values, mask, self._logits(last), lengths)

    def _logits(self, hidden: Any) -> Any:
        """The vocabulary projection of final hidden states (with Gemma's soft cap)."""
        import torch

        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        probs = self.shared_prefix_logprobs([self.render(p) for p in prompts]).exp()
        return [
            OptionProbs(probs=[float(row[self._label_tokens(lab)].sum()) for lab in p.labels])
            for row, p in zip(probs, prompts, strict=True)
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
        # logprob: two prefix groups at a time
        return self.group_size * 2 if mode == "logprob" else GENERATE_BATCH

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
        draws = [torch.Generator().manual_seed(seed) for seed in seeds]
        tokens: list[list[int]] = [[] for _ in prompts]
        eos = self._end_tokens()
        for group in _length_classes(list(same), sampling.max_tokens):
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
                chosen = _draws(logits, sampling.temperature, [draws[i] for _, i in seated])
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
        for prefix, members in self._shared(distinct):
            for part in self._prefill(prefix, [distinct[m][len(prefix) :] for m in members]):
                yield Seating(
                    part, [(i, row) for row, r in enumerate(part.rows) for i in askers[members[r]]]
                )

    def _text(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _end_tokens(self) -> set[int]:
        """The tokens that end an answer: the tokenizer's end token and the model's own."""
        ends = self.model.generation_config.eos_token_id
        found = {self.tokenizer.eos_token_id, *(ends if isinstance(ends, list) else [ends])}
        return {t for t in found if t is not None}


@dataclass
class Prefilled:
    """Sequences run up to their next token: which ones (rows: indexes of the suffixes given
    to ``_prefill``), the KV cache, the attention mask over it, the logits for the next token,
    and each row's length so far (its position)."""

    rows: list[int]
    cache: Any
    mask: Any
    logits: Any
    lengths: Any


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
        self.position[slots[:, None], cols[None, :]] = torch.arange(width, device=device)
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


def _length_classes(prompts: list[tuple[int, ...]], max_tokens: int) -> list[list[tuple[int, ...]]]:
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


def _draws(logits: Any, temperature: float, generators: Sequence[Any]) -> list[int]:
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


@backend(
    "hf", usage="hf:PATH", name="transformers", modes="logprob, generate",
    what="a saved model directory, or a .gguf file (converted once, cached)",
)  # fmt: skip
def open_hf(spec: str, rest: str, options: BackendOptions, connect: bool) -> HFModel:
    return HFModel.load(
        spec,
        local_file(spec, rest),
        dtype=options.dtype,
        device=options.device,
        batch_size=options.batch_size,
    )
