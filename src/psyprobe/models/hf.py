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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.models.base import (
    Failure,
    Model,
    ModelInfo,
    OptionProbs,
    Sampling,
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

    def _encode(self, texts: list[str]) -> dict[str, Any]:
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
            logits = self.model(**self._encode(texts)).logits[:, -1, :]
        return torch.log_softmax(logits.double(), dim=-1).cpu()

    def shared_prefix_logprobs(self, texts: list[str]) -> Any:
        """Like next_token_logprobs, computing each prefix that prompts share only once.

        Prompts are visited in token order (a walk of their trie) and grouped while they share
        at least SHARED_MIN tokens; a group's shared prefix is run once, its KV cache copied to
        every member, and only the members' own suffixes are run, as one right-padded batch.
        The vocabulary projection is applied at the answer position alone. Equal to the
        unshared computation within float32 rounding (tested to 1e-4).
        """
        import torch

        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        out = torch.empty((len(texts), len(self.tokenizer)), dtype=torch.float64)
        for group, shared in _prefix_groups(ids, self.group_size, SHARED_MIN):
            if shared == 0:
                out[group] = self.next_token_logprobs([texts[i] for i in group])
                self.tokens_evaluated += sum(len(ids[i]) for i in group)
                continue
            suffixes = [ids[i][shared:] for i in group]
            out[group] = self._suffix_batch(ids[group[0]][:shared], suffixes)
            self.tokens_evaluated += shared + sum(map(len, suffixes))
        return out

    def _suffix_batch(self, prefix: list[int], suffixes: list[list[int]]) -> Any:
        import copy

        import torch

        body = self.model.base_model
        out = torch.empty((len(suffixes), len(self.tokenizer)), dtype=torch.float64)
        with torch.inference_mode():
            prefix_cache = body(
                input_ids=torch.tensor([prefix], device=self.device), use_cache=True
            ).past_key_values
            # Suffixes of similar length ride together, so little is spent on padding.
            by_length = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
            for start in range(0, len(by_length), SUFFIX_BATCH):
                rows = by_length[start : start + SUFFIX_BATCH]
                part = [suffixes[i] for i in rows]
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
                hidden = body(
                    input_ids=batch,
                    attention_mask=mask,
                    past_key_values=cache,
                    position_ids=positions.expand(len(part), -1),
                    use_cache=True,
                ).last_hidden_state
                last = hidden[torch.arange(len(part)), [len(s) - 1 for s in part]]
                logits = self.model.get_output_embeddings()(last)
                cap = getattr(self.model.config, "final_logit_softcapping", None)
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                out[rows] = torch.log_softmax(logits.double(), dim=-1).cpu()
        return out

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        probs = self.shared_prefix_logprobs([self.render(p) for p in prompts]).exp()
        return [
            OptionProbs(probs=[float(row[self._label_tokens(lab)].sum()) for lab in p.labels])
            for row, p in zip(probs, prompts, strict=True)
        ]

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling, seeds: Sequence[int]
    ) -> list[str | Failure | None]:
        import torch

        out: list[str | Failure | None] = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            torch.manual_seed(seed)
            inputs = self._encode([self.render(prompt)])
            inputs.pop("position_ids")
            with torch.inference_mode():
                ids = self.model.generate(
                    **inputs,
                    max_new_tokens=sampling.max_tokens,
                    do_sample=sampling.temperature > 0,
                    temperature=sampling.temperature if sampling.temperature > 0 else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = ids[0, inputs["input_ids"].shape[1] :]
            out.append(str(self.tokenizer.decode(new, skip_special_tokens=True)))
        return out


@backend("hf")
def open_hf(spec: str, rest: str, options: BackendOptions, connect: bool) -> HFModel:
    return HFModel.load(
        spec,
        local_file(spec, rest),
        dtype=options.dtype,
        device=options.device,
        batch_size=options.batch_size,
    )
