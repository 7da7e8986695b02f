"""Steering vectors: contrastive activation addition on the residual stream of a transformers model.

A vector is the difference between the mean residual-stream activations of two contrastive prompt
sets (mean-diff), or the first principal component of the paired differences (pca), one per layer
(after Turner et al.'s ActAdd and Rimsky et al.'s CAA, as the steering-vectors and repeng
libraries build them; written here from those descriptions). A method is an aggregator in
``AGGREGATORS``; decoder blocks are found by module name, as steering-vectors' layer matching
does. Adding ``coefficient × vector`` to a
layer's output at every position moves the model toward the first pole.

Everything is a pure function of (model, prompts) except :func:`steering`, a context manager that
registers the hooks and always removes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.runs.directory import replaced

# An aggregator turns one layer's paired differences (pairs × hidden, float64) into a direction.
Aggregator = Callable[[Any], Any]


def mean_difference(diffs: Any) -> Any:
    """The mean of the paired differences (ActAdd / CAA)."""
    return diffs.mean(0)


def first_component(diffs: Any) -> Any:
    """The first principal component of the paired differences, signed and scaled so that it
    agrees with the mean difference in direction and length along itself."""
    import torch

    mean = diffs.mean(0)
    centered = diffs - mean if len(diffs) > 1 else diffs
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    return v[0] * float(mean @ v[0])


AGGREGATORS: dict[str, Aggregator] = {"mean-diff": mean_difference, "pca": first_component}
METHODS = tuple(AGGREGATORS)
# Where transformers architectures keep their decoder blocks: "model.layers.3" (Llama, Gemma,
# Qwen, Mistral), "transformer.h.3" (GPT-2), "gpt_neox.layers.3", "model.decoder.layers.3" (OPT).
BLOCK_NAME = re.compile(r"^(?:.+\.)?(?:layers|h|blocks)\.(\d+)$")


@dataclass(frozen=True)
class SteeringVector:
    """Per-layer directions (torch tensors) and what they were built from."""

    layers: dict[int, Any]  # layer index → 1-D tensor of hidden size
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def default_layer(self) -> int:
        return int(self.metadata.get("default_layer", sorted(self.layers)[len(self.layers) // 2]))


def decoder_layers(model: Any) -> list[Any]:
    """The model's decoder blocks in order, matched by module name (the residual stream runs
    through their outputs); the language model's own stack where a vision tower has another."""
    count = model.config.num_hidden_layers
    stacks: dict[str, dict[int, Any]] = {}
    for name, module in model.named_modules():
        if match := BLOCK_NAME.match(name):
            stacks.setdefault(name[: match.start(1)], {})[int(match.group(1))] = module
    for blocks in stacks.values():
        if sorted(blocks) == list(range(count)):
            return [blocks[i] for i in range(count)]
    raise UserError(f"{type(model).__name__}: found no {count} decoder blocks by name to steer")


def _output_tensor(output: Any) -> Any:
    # Decoder layers return the hidden states alone or first in a tuple, by architecture.
    return output[0] if isinstance(output, tuple) else output


def last_token_activations(hf: Any, texts: Sequence[str], layers: Sequence[int]) -> Any:
    """Residual-stream activation at the last token of each text, shape (layers, texts, hidden)."""
    import torch

    blocks = decoder_layers(hf.model)
    captured: dict[int, list[Any]] = {i: [] for i in layers}
    handles = [
        blocks[i].register_forward_hook(
            lambda _m, _in, out, i=i: captured[i].append(_output_tensor(out)[:, -1, :].float())
        )
        for i in layers
    ]
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), hf.batch_size):
                # left padding: the last position is every text's own last token
                hf.model(**hf.encode(list(texts[start : start + hf.batch_size])))
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([torch.cat(captured[i]) for i in layers]).cpu()


def build_vector(
    hf: Any,
    positive: Sequence[str],
    negative: Sequence[str],
    layers: Sequence[int],
    method: str = "mean-diff",
    metadata: dict[str, Any] | None = None,
) -> SteeringVector:
    """A vector per layer pointing from the negative texts' activations to the positive ones'.

    ``positive[i]`` and ``negative[i]`` are a pair (the same item answered toward each pole).
    """
    if method not in METHODS:
        raise UserError(f"--method: {method!r} is not one of {', '.join(METHODS)}")
    if len(positive) != len(negative) or not positive:
        raise UserError("steering needs the same, non-zero number of prompts for each pole")
    pos = last_token_activations(hf, positive, layers)
    neg = last_token_activations(hf, negative, layers)
    diffs = (pos - neg).double()  # (layers, pairs, hidden)
    aggregate = AGGREGATORS[method]
    vectors = {layer: aggregate(diffs[k]).float() for k, layer in enumerate(layers)}
    meta = dict(metadata or {})
    meta.update(
        method=method,
        layers=list(layers),
        norms={str(layer): float(vec.norm()) for layer, vec in vectors.items()},
        n_pairs=len(positive),
        token_position="last",
    )
    meta.setdefault("default_layer", list(layers)[len(layers) // 2])
    return SteeringVector(vectors, meta)


def save_vector(vector: SteeringVector, path: Path) -> None:
    """safetensors with one tensor per layer and the metadata as JSON strings."""
    from safetensors.torch import save_file

    tensors = {f"layer.{i}": v.contiguous() for i, v in vector.layers.items()}
    metadata = {k: json.dumps(v) for k, v in vector.metadata.items()}
    with replaced(path) as partial:
        save_file(tensors, str(partial), metadata=metadata)


def load_vector(path: Path) -> SteeringVector:
    from safetensors import safe_open

    if not path.is_file():
        raise UserError(f"--steer: no such file {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            layers = {int(name.split(".")[1]): fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
            raw = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise UserError(f"{path}: not a steering vector file ({exc})") from None
    return SteeringVector(layers, {k: json.loads(v) for k, v in raw.items()})


def vector_hash(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def steering(model: Any, additions: Sequence[tuple[int, Any]]) -> Iterator[None]:
    """Add each (layer, vector) to that layer's output at every position, inside the block only.

    The hooks are removed however the block exits, so the model afterwards computes exactly what
    it computed before (tested bit for bit).
    """
    blocks = decoder_layers(model)

    def hook(vector: Any) -> Any:
        def add(_module: Any, _inputs: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                return (output[0] + vector.to(output[0].dtype), *output[1:])
            return output + vector.to(output.dtype)

        return add

    device = next(model.parameters()).device
    handles = [blocks[layer].register_forward_hook(hook(v.to(device))) for layer, v in additions]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def export_control_vector(vector: SteeringVector, path: Path, architecture: str) -> None:
    """llama.cpp's control-vector GGUF (``--control-vector``): one ``direction.N`` tensor per
    layer, where llama.cpp counts layers from 1 for the output of the first block."""
    import gguf
    import numpy as np

    with replaced(path) as partial:
        writer = gguf.GGUFWriter(str(partial), "controlvector")
        writer.add_string("controlvector.model_hint", architecture)
        writer.add_uint32("controlvector.layer_count", len(vector.layers))
        for layer, v in sorted(vector.layers.items()):
            writer.add_tensor(f"direction.{layer + 1}", v.numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


def read_control_vector(path: Path) -> None:
    """Accepts a llama.cpp control-vector GGUF (``steer export`` replaces one), refuses the rest."""
    import gguf

    try:
        field = gguf.GGUFReader(str(path)).get_field("general.architecture")
    except Exception:  # any file that is not a GGUF: gguf raises what its parser meets
        field = None
    if field is None or field.contents() != "controlvector":
        raise UserError(f"{path}: not a control vector")
