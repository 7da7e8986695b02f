"""Local transformers models: batched next-token scoring, generation, and the torch module for
editing. ``load`` reads the weights (a saved directory, or a GGUF file converted once and
cached), ``model`` scores and orchestrates, ``decode`` generates.

``hf:DIR`` loads a saved model; ``hf:FILE.gguf`` dequantises a GGUF file once into a cached
saved model so later runs start fast.
"""

from __future__ import annotations

from psyprobe.models.hf.decode import DRAW_BLOCK, draws
from psyprobe.models.hf.load import (
    dir_fingerprint,
    hf_model_dir,
    module_fingerprint,
    saved_model_dir,
)
from psyprobe.models.hf.model import HFModel
from psyprobe.models.registry import BackendOptions, backend, local_file

__all__ = [
    "DRAW_BLOCK",
    "HFModel",
    "dir_fingerprint",
    "draws",
    "hf_model_dir",
    "module_fingerprint",
    "open_hf",
    "saved_model_dir",
]


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
        threads=options.threads,
    )
