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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.models.base import (
    Completion,
    Ending,
    Failure,
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
# ... and the cache columns they may hold together: rows of long prompts (safety attacks) would
# otherwise pad every row to the longest and copy a cache of gigabytes per token
DECODE_CELLS = 128 * 384


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
        self.preferred_batch = group_size * 2  # the runner hands over this many at a time
        self.tokens_evaluated = 0  # for benchmarks: tokens actually run through the model
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

        body = self.model.base_model
        with torch.inference_mode():
            prefix_cache = (
                body(
                    input_ids=torch.tensor([prefix], device=self.device), use_cache=True
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
                cache = copy.deepcopy(prefix_cache) if prefix_cache is not None else None
                if cache is not None:
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

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Completion | Failure | None]:
        """Continuous batching over shared prefixes.

        Prompts are run up to their answer as for next-token scores (each shared prefix once,
        each distinct prompt once for all its samples); then up to DECODE_ROWS sequences advance
        one token per forward pass, and a sequence that ends (end token, answer read,
        max_tokens) leaves its place to the next prompt's. Decoding one token costs reading
        every weight once whatever the number of rows, so many rows make it cheap (bench/).

        Each sequence draws from its own generator seeded by its request, so its text does not
        depend on what else was in the batch, up to float32 rounding of the logits, which can
        tip a draw that falls within about 1e-6 of a boundary (tested on real answers).
        """
        import torch

        ids = self._ids([self.render(p) for p in prompts])
        same: dict[tuple[int, ...], list[int]] = {}  # one computation per distinct prompt
        for i, seq in enumerate(ids):
            same.setdefault(tuple(seq), []).append(i)
        ready = self._prefilled_requests([list(seq) for seq in same], list(same.values()))
        draws = [torch.Generator().manual_seed(seed) for seed in seeds]
        tokens: list[list[int]] = [[] for _ in prompts]
        ended: list[Ending] = ["length"] * len(prompts)
        eos = self._end_tokens()
        batch: Prefilled | None = None
        waiting: Prefilled | None = None
        while True:
            while batch is None or len(batch.rows) < DECODE_ROWS:
                part = waiting or next(ready, None)
                waiting = None
                if part is None:
                    break
                if batch is None:
                    batch = part
                elif _fits(batch, part):
                    batch = _joined(batch, part)
                else:  # joins when the batch has shrunk (or starts the next one)
                    waiting = part
                    break
            if batch is None:
                break
            keep = []
            chosen = _draws(batch.logits, sampling.temperature, [draws[i] for i in batch.rows])
            for j, (i, token) in enumerate(zip(batch.rows, chosen, strict=True)):
                tokens[i].append(token)
                check = until[i] if until else None
                if token in eos:
                    ended[i] = "end"
                elif check is not None and check(self._text(tokens[i])):
                    ended[i] = "read"
                elif len(tokens[i]) < sampling.max_tokens:
                    keep.append(j)
            batch = self._advance(batch, keep, tokens) if keep else None
        return [Completion(self._text(t), len(t), e) for t, e in zip(tokens, ended, strict=True)]

    def _prefilled_requests(
        self, distinct: list[list[int]], askers: list[list[int]]
    ) -> Iterator[Prefilled]:
        """Prefilled batches whose rows are requests: a distinct prompt's row repeated once
        for every request that asks it (its samples)."""
        import torch

        for prefix, members in self._shared(distinct):
            for part in self._prefill(prefix, [distinct[m][len(prefix) :] for m in members]):
                who = [askers[members[r]] for r in part.rows]
                rows = torch.repeat_interleave(
                    torch.arange(len(who)), torch.tensor([len(w) for w in who])
                ).to(self.device)
                part.cache.batch_select_indices(rows)
                yield Prefilled(
                    [i for w in who for i in w],
                    part.cache,
                    part.mask[rows],
                    part.logits[rows],
                    part.lengths[rows],
                )

    def _advance(self, batch: Prefilled, keep: list[int], tokens: list[list[int]]) -> Prefilled:
        """The rows ``keep`` of ``batch``, one token further: each row's last drawn token run
        through the model at its own next position."""
        import torch

        if len(keep) < len(batch.rows):
            chosen = torch.tensor(keep, device=self.device)
            batch.cache.batch_select_indices(chosen)
            batch = Prefilled(
                [batch.rows[j] for j in keep],
                batch.cache,
                batch.mask[chosen],
                batch.logits[chosen],
                batch.lengths[chosen],
            )
        mask = torch.cat([batch.mask, batch.mask.new_ones((len(keep), 1))], dim=1)
        with torch.inference_mode():
            hidden = self.model.base_model(
                input_ids=torch.tensor([[tokens[i][-1]] for i in batch.rows], device=self.device),
                attention_mask=mask,
                past_key_values=batch.cache,
                position_ids=batch.lengths[:, None],
                use_cache=True,
            ).last_hidden_state[:, -1]
            logits = self._logits(hidden)
        self.tokens_evaluated += len(keep)
        return Prefilled(batch.rows, batch.cache, mask, logits, batch.lengths + 1)

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
    to ``_prefill``, or of the requests once ``generate`` expands them), the KV cache, the
    attention mask over it, the logits for the next token, and each row's length so far (its
    position)."""

    rows: list[int]
    cache: Any
    mask: Any
    logits: Any
    lengths: Any


def _fits(a: Prefilled, b: Prefilled) -> bool:
    """Whether two batches decode together cheaply: within the cell budget, and of lengths
    within a factor of two (every row attends over the longest row's columns). Only caches of
    plain growing layers are joined: a sliding-window or quantised layer keeps other state
    than its keys and values (such a model decodes each prefilled batch on its own)."""
    from transformers.cache_utils import DynamicLayer

    plain = all(type(layer) is DynamicLayer for layer in (*a.cache.layers, *b.cache.layers))
    short, wide = sorted((int(a.mask.shape[1]), int(b.mask.shape[1])))
    return plain and wide <= 2 * short and (len(a.rows) + len(b.rows)) * wide <= DECODE_CELLS


def _joined(a: Prefilled, b: Prefilled) -> Prefilled:
    """Two batches as one: the shorter cache is padded on the left with masked-out columns.
    Cached keys carry their rotary positions already and new tokens get explicit positions,
    so a column's place in the cache means nothing but its mask."""
    import torch
    import torch.nn.functional as F

    width = max(a.mask.shape[1], b.mask.shape[1])

    def left(t: Any, dim: int) -> Any:
        missing = width - t.shape[dim]
        if not missing:
            return t
        pad = [0, 0] * (t.dim() - 1 - dim) + [missing, 0]  # F.pad counts dims from the last
        return F.pad(t, pad)

    for la, lb in zip(a.cache.layers, b.cache.layers, strict=True):
        la.keys = torch.cat([left(la.keys, 2), left(lb.keys, 2)])
        la.values = torch.cat([left(la.values, 2), left(lb.values, 2)])
    return Prefilled(
        a.rows + b.rows,
        a.cache,
        torch.cat([left(a.mask, 1), left(b.mask, 1)]),
        torch.cat([a.logits, b.logits]),
        torch.cat([a.lengths, b.lengths]),
    )


def _draws(logits: Any, temperature: float, generators: Sequence[Any]) -> list[int]:
    """The next token of every row: the most likely at temperature 0, else an inverse-CDF draw
    from softmax(logits / T) in float64 with one uniform number from the row's own generator."""
    import torch

    if temperature <= 0:
        return [int(t) for t in logits.argmax(dim=-1)]
    cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(dim=-1)
    uniform = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in generators])
    picked = torch.searchsorted(cdf, (uniform.to(cdf.device) * cdf[:, -1])[:, None])
    # a draw past the last cumulative sum (rounding) takes the last token
    return [int(t) for t in picked.clamp(max=cdf.shape[-1] - 1).squeeze(-1)]


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
