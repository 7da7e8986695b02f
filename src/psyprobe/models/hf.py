"""Local transformers models: batched next-token scoring, and the torch module for editing.

``hf:DIR`` loads a saved model; ``hf:FILE.gguf`` dequantises a GGUF file once into a cached
saved model (``~/.cache/psyprobe/hf/``, or ``$PSYPROBE_CACHE``) so later runs start fast. The
loaded ``torch`` module is exposed as ``.model`` so steering hooks and adapters can attach to it.

Batches are left-padded; positions are counted from each prompt's first real token, so a padded
prompt is computed exactly as it would be alone (tested to 1e-4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.models.base import (
    Failure,
    ModelInfo,
    OptionProbs,
    Sampling,
    cache_root,
    file_fingerprint,
    plain_prompt,
    reads_as,
)
from psyprobe.prompting import Prompt

DTYPES = ("float32", "bfloat16", "float16")


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


class HFModel:
    def __init__(
        self,
        spec: str,
        path: Path,
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 8,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise UserError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        folder, fingerprint = saved_model_dir(path)
        self.device = (
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Any: hooks and adapters (editing) attach to this torch module.
        loaded: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
        self.model: Any = loaded.to(self.device).eval()
        self.batch_size = batch_size
        self.info = ModelInfo(
            spec=spec,
            backend="transformers",
            fingerprint=fingerprint,
            modes=("logprob", "generate"),
        )
        self._label_ids: dict[str, list[int]] = {}
        self._vocab: list[str] = []

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

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        out: list[OptionProbs | Failure] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            logp = self.next_token_logprobs([self.render(p) for p in chunk])
            probs = logp.exp()
            for row, prompt in zip(probs, chunk, strict=True):
                out.append(
                    OptionProbs(
                        probs=[float(row[self._label_tokens(lab)].sum()) for lab in prompt.labels]
                    )
                )
        return out

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

    def close(self) -> None:
        pass
