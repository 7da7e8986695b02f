"""What faster matrix products could still give study A's sampled protocol on this CPU (#17).

The protocol's matrix products alone take 11-17 minutes at the square float32 matmul rate
(bench/generate.py), so its 15-minute aim needs faster products. One run measures, side by side:
  1. the products of a decode step, 128 rows at SmolLM2's shapes: float32 as transformers runs
     them (MKL, ``F.linear``), float32 through oneDNN with the weights packed once, and int8
     (torch's int8 matmul; fbgemm's dynamic-quantised linear, the one int8 CPU kernel torch
     has for this);
  2. what int8 does to the answers: the option distributions of the logprob path (SD-3 + BFI
     under 4 option orders) with int8 weights (per output channel) and the activations
     quantised per tensor (fbgemm's form, 7 bits), per row (7 and 8 bits), per block of 32
     along the input (llama.cpp's Q8 form) or not at all — emulated in float32, and fbgemm's
     own kernel — against float32, beside llama.cpp's runtime on the same GGUF as a yardstick.

    python bench/products.py
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import psyprobe
from generate import rate, records
from psyprobe.models.hf import HFModel
from psyprobe.models.llamacpp import LlamaCppModel
from psyprobe.models.registry import ALIASES

ROWS = 128  # a decode step (models/hf/decode.py: DECODE_ROWS)
LAYERS = 30
# SmolLM2-135M's products, (input, output, how many in a step): q and o, k and v, gate and
# up, down, the vocabulary projection.
SHAPES = [(576, 576, 2 * LAYERS), (576, 192, 2 * LAYERS), (576, 1536, 2 * LAYERS)]
SHAPES += [(1536, 576, LAYERS), (576, 49152, 1)]
ASKED = dict(instruments=["sd3", "bfi"], orders="random:4", respondents=0, mode="logprob")


def kernels(inputs: int, outputs: int) -> dict[str, Callable[[], Any]]:
    x, weight = torch.randn(ROWS, inputs), torch.randn(outputs, inputs) / inputs**0.5
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, ROWS)
    scale = weight.abs().amax(1) / 127
    qweight = torch.quantize_per_channel(
        weight, scale, torch.zeros_like(scale).long(), 0, torch.qint8
    )
    fbgemm = torch.ops.quantized.linear_prepack(qweight, None)
    a8 = torch.randint(-127, 127, (ROWS, inputs), dtype=torch.int8)
    w8 = torch.randint(-127, 127, (inputs, outputs), dtype=torch.int8)
    return {
        "float32 MKL": lambda: F.linear(x, weight),
        "float32 oneDNN packed": lambda: torch.ops.mkldnn._linear_pointwise(
            x, packed, None, "none", [], ""
        ),
        "int8 fbgemm dynamic": lambda: torch.ops.quantized.linear_dynamic(x, fbgemm, True),
        "int8 torch._int_mm": lambda: torch._int_mm(a8, w8),
    }


def per_channel(weight: Any) -> Any:
    scale = weight.abs().amax(1, keepdim=True) / 127
    return torch.round(weight / scale).clamp(-127, 127) * scale


def per_row(bits: int) -> Callable[[Any], Any]:
    """Asymmetric, as fbgemm quantises activations (unsigned, with a zero point)."""

    def quantise(x: Any) -> Any:
        low = x.amin(-1, keepdim=True).clamp(max=0)
        scale = (x.amax(-1, keepdim=True).clamp(min=0) - low).clamp(min=1e-12) / (2**bits - 1)
        zero = torch.round(-low / scale)
        return ((torch.round(x / scale) + zero).clamp(0, 2**bits - 1) - zero) * scale

    return quantise


def per_tensor(bits: int) -> Callable[[Any], Any]:
    row = per_row(bits)
    return lambda x: row(x.reshape(1, -1)).reshape(x.shape)


def per_block(x: Any, size: int = 32) -> Any:
    blocks = x.reshape(*x.shape[:-1], -1, size)
    scale = blocks.abs().amax(-1, keepdim=True).clamp(min=1e-12) / 127
    return (torch.round(blocks / scale).clamp(-127, 127) * scale).reshape(x.shape)


def emulated(model: HFModel, activations: Callable[[Any], Any]) -> list[torch.nn.Module]:
    """Every linear layer computes with int8-rounded weights and activations, in float32.
    The weights are rounded into a copy: SmolLM2's vocabulary projection shares its weight with
    the embedding, which must stay as it is."""
    changed = []
    for module in model.model.modules():
        if isinstance(module, torch.nn.Linear):
            weight, bias = per_channel(module.weight.detach()), module.bias

            def forward(x: Any, weight: Any = weight, bias: Any = bias) -> Any:
                return F.linear(activations(x), weight, bias)

            module.forward = forward  # type: ignore[method-assign]
            changed.append(module)
    return changed


def option_probs(model: Any) -> dict[tuple[str, str, int], np.ndarray]:
    with tempfile.TemporaryDirectory() as folder:
        psyprobe.measure(model, out=folder, **ASKED)
        found = records(Path(folder))
    return {(r.instrument, r.item, r.order_index): np.array(r.probs) for r in found}


def distance(a: dict[Any, np.ndarray], b: dict[Any, np.ndarray]) -> str:
    """Total variation between the option distributions (each renormalised over the options),
    mean and largest over the prompts, and how often the likeliest option agrees."""
    tv = [0.5 * np.abs(a[k] / a[k].sum() - b[k] / b[k].sum()).sum() for k in a]
    same = np.mean([a[k].argmax() == b[k].argmax() for k in a])
    return f"TV mean {np.mean(tv):.4f}, max {np.max(tv):.4f}; likeliest option the same {same:.3f}"


def main() -> None:
    # torch's quantised tensors and torch.ao announce their removal (torchao replaces them);
    # they are what this torch has for int8 on CPU
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*quantized tensor creation")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {ROWS} rows")
    step: dict[str, float] = {}
    for inputs, outputs, count in SHAPES:
        flops = 2 * ROWS * inputs * outputs
        rates = {name: rate(run, flops) for name, run in kernels(inputs, outputs).items()}
        for name, value in rates.items():
            step[name] = step.get(name, 0.0) + count * flops / value / 1e6  # ms
        print(
            f"  {inputs:>5} x {outputs:<5} " + "  ".join(f"{n} {v:6.1f}" for n, v in rates.items())
        )
    base = step["float32 MKL"]
    print("a decode step's products, 128 rows: " + ", ".join(
        f"{name} {ms:.0f} ms ({base / ms:.2f}x)" for name, ms in step.items()
    ))  # fmt: skip

    path = ALIASES["smollm2"].path()
    model = HFModel.load("hf:smollm2", path)
    reference = option_probs(model)
    print(f"option distributions against float32, {len(reference)} prompts (logprob path):")
    variants: list[tuple[str, Callable[[Any], Any]]] = [
        ("int8 weights, activations per tensor 7 bits", per_tensor(7)),
        ("int8 weights, activations per row 7 bits", per_row(7)),
        ("int8 weights, activations per row 8 bits", per_row(8)),
        ("int8 weights, activations per block of 32", per_block),
        ("int8 weights, float32 activations", lambda x: x),
    ]
    for name, activations in variants:
        changed = emulated(model, activations)
        print(f"  {name:<46} {distance(reference, option_probs(model))}")
        for module in changed:
            del module.forward  # the class's own forward again
    fbgemm = HFModel.load("hf:smollm2", path)
    fbgemm.model = torch.ao.quantization.quantize_dynamic(
        fbgemm.model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    )
    runtime = LlamaCppModel("smollm2", path, threads=2)
    for name, other in (("fbgemm's dynamic int8 itself", fbgemm), ("llama.cpp's runtime", runtime)):
        print(f"  {name:<46} {distance(reference, option_probs(other))}")


if __name__ == "__main__":
    main()
