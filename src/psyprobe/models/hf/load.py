"""Loading a transformers model: a saved directory, or a GGUF file dequantised once into a
cached saved model (``~/.cache/psyprobe/hf/``, or ``$PSYPROBE_CACHE``), and the fingerprints
that name the weights."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.libraries import route_library_output
from psyprobe.models.base import (
    cache_root,
    file_fingerprint,
)
from psyprobe.models.registry import local_file

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


@contextmanager
def _one_gguf_reader() -> Iterator[None]:
    """transformers opens a GGUF file three times to convert it (tokenizer, config, weights),
    and gguf-py parses its metadata anew each time, a Python object per vocabulary entry: 18 s
    a time for Gemma-3's 262,144 tokens (bench/RESULTS.md). The file is only read, so the
    three share one parsed reader, and that reader slices a plain view of the mapped file."""
    import gguf
    import numpy as np

    module: Any = gguf  # the attribute transformers looks up at each open
    original = module.GGUFReader

    class PlainViewReader(original):  # type: ignore[misc,valid-type]
        """gguf-py parses the metadata with millions of small slices of ``np.memmap``, and each
        slice of a memmap runs numpy's Python-level hooks for that subclass. The same bytes
        seen as a plain ndarray (still mapped, not read into memory) are sliced in C: Gemma-3's
        parse takes 6 s instead of 17, with every field and tensor equal (bench/RESULTS.md)."""

        @property
        def data(self) -> Any:
            return self._plain

        @data.setter
        def data(self, mapped: Any) -> None:  # set once, by gguf-py's own __init__
            self._plain = mapped.view(np.ndarray)

    opened: dict[tuple[str, str], Any] = {}

    def shared(path: Any, mode: Any = "r") -> Any:
        key = (str(path), str(mode))
        if key not in opened:
            opened[key] = PlainViewReader(path, mode)
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
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        # Two runs may start on the same file at once: the second waits for the first's
        # conversion and loads it, instead of converting into the same place (which crashed).
        with FileLock(target.with_name(target.name + ".lock")):
            if not (target / "config.json").is_file():
                _convert(path, target)
    return target, fingerprint


def _convert(path: Path, target: Path) -> None:
    """The GGUF file at ``path`` dequantised and saved where transformers loads it quickly."""
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
