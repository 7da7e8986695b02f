"""The transformers model: batched next-token scoring (prompts that share a prefix computed
once), perplexity, and generation through ``decode``; the loaded ``torch`` module is exposed as
``.model`` so steering hooks and adapters can attach to it.

Batches are left-padded; positions are counted from each prompt's first real token, so a padded
prompt is computed exactly as it would be alone (tested to 1e-4).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
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
    plain_prompt,
    reads_as,
)
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
from psyprobe.models.hf.load import DTYPES, module_fingerprint, saved_model_dir
from psyprobe.prompting import Prompt

SHARED_MIN = 16  # tokens a group of prompts must share for prefix reuse to pay
SUFFIX_BATCH = 24  # suffixes run together after a shared prefix (sorted by length)


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
