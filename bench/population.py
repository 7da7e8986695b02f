"""What a respondent population costs per scoring path, at the machine's compute limit (#35).

Usage:
    python bench/population.py                       # the README's main job, every path
    python bench/population.py --design protocol     # BFI + IPIP-50, 250 respondents
    python bench/population.py --design protocol --respondents 50 --paths trie
    python bench/population.py --paths trie --busy   # beside one CPU-bound process
    python bench/population.py --paths trie bf16     # float32 and bfloat16 side by side

One run measures, side by side on the same machine and moment:
  - the machine's float32 matrix-product rate (square 1024, and SmolLM2's own shapes at 1,024
    rows) and from the square rate the compute limit in evaluated tokens/s (2 × non-embedding
    parameters FLOP a token, as bench/study_a.py counts it); the square rate is the best of
    five readings, taken before the paths run and again after, and the shares are counted
    against the higher of the two (one reading of a tenth of a second fell to 316 GFLOP/s
    where the same machine gives 400 and more, which flattered the share);
  - per path, on the design's prompts handed over as the ask-loop hands them (text order, the
    backend's preferred batch): prompt tokens, tokens actually evaluated (the rest came from
    shared prefixes), wall time, evaluated tokens/s and their share of the compute limit:
      llama  — llama.cpp on the embedded Q4_1 GGUF (line-prefix reuse between neighbours);
      f32    — llama.cpp on the same weights dequantised to an F32 GGUF (llamafile's float
               kernels instead of the Q4_1 × Q8_1 dot products);
      trie   — transformers, float32, the prompts' token trie (models/hf/model.py);
      bf16   — the same trie in bfloat16 (`--dtype bfloat16`: AMX or AVX-512 BF16 products
               where the CPU has them), its rate counted against the bfloat16 product's limit;
  - for the trie, where its time goes: shared stems, prompts' own parts, and the rest
    (grouping, padding, softmax, Python), with the padding share of the batches; and its
    share with attention's products counted too (QKᵀ and AV over the columns each token
    attends to: PaLM's model FLOPs, Chowdhery et al. 2022, appendix B), which the
    2 × parameters count leaves out (shown beside it, not instead);
  - max |Δp| per option between the paths, over every prompt.
"""

from __future__ import annotations

import argparse
import atexit
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from psyprobe.models import open_model
from psyprobe.models.base import Model, OptionProbs
from psyprobe.models.hf import HFModel
from psyprobe.models.hf import model as hf_model
from psyprobe.models.llamacpp import LlamaCppModel
from psyprobe.models.registry import ALIASES, BackendOptions
from psyprobe.prompting import Prompt
from psyprobe.runs import RunSettings
from psyprobe.runs.planning import plan, resolve_instruments
from study_a import matmul_gflops

DESIGNS = {
    "main": (("sd3", "bfi", "fs", "swls"), 20),  # the README's main job
    "protocol": (("bfi", "ipip50"), 250),  # the population protocol of #35
}


def peak(dtype: torch.dtype = torch.float32) -> float:
    """The square product's rate, the best of five readings."""
    return max(matmul_gflops(dtype=dtype) for _ in range(5))


def shape_gflops(rows: int = 1024, dtype: torch.dtype = torch.float32) -> float:
    """Products at SmolLM2's layer shapes, ``rows`` tokens at a time."""
    shapes = [(576, 576, 2), (576, 192, 2), (576, 1536, 2), (1536, 576, 1)]
    seconds, flop = 0.0, 0
    for inputs, outputs, count in shapes:
        x, w = torch.randn(rows, inputs, dtype=dtype), torch.randn(outputs, inputs, dtype=dtype)
        F.linear(x, w)
        start = time.perf_counter()
        for _ in range(10):
            F.linear(x, w)
        seconds += (time.perf_counter() - start) / 10 * count
        flop += 2 * rows * inputs * outputs * count
    return flop / seconds / 1e9


def f32_gguf(source: Path, target: Path) -> Path:
    """``source`` with every tensor dequantised to float32 (the same weights, exactly)."""
    import gguf

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        sub = {"sub_type": field.types[-1]} if kind == gguf.GGUFValueType.ARRAY else {}
        writer.add_key_value(name, field.contents(), kind, **sub)
    for tensor in reader.tensors:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


class Timed:
    """The trie's batches timed by kind (a bench's instrument, not the package's)."""

    def __init__(self) -> None:
        self.seconds = {"stems": 0.0, "own parts": 0.0}
        self.tokens = {"stems": 0, "own parts": 0}
        self.cells = 0
        # the columns each evaluated token attends to (its prefix and itself, padding not
        # counted): attention's products, which 2 × parameters a token leaves out
        self.attended = 0
        run, scored = hf_model.HFModel._run, hf_model.HFModel._scored

        def timed(
            parts: list[Any], answered: bool, padded: bool, compute: Callable[[], Any]
        ) -> Any:
            kind = "own parts" if answered else "stems"
            start = time.perf_counter()
            ran = compute()
            self.seconds[kind] += time.perf_counter() - start
            self.tokens[kind] += sum(len(p.tokens) for p in parts)
            longest = max(len(p.tokens) for p in parts) if padded else 0  # _scored packs them
            self.cells += sum(max(len(p.tokens), longest) for p in parts)
            self.attended += sum(
                len(p.tokens) * (2 * p.done + len(p.tokens) + 1) // 2 for p in parts
            )
            return ran

        hf_model.HFModel._run = lambda model, parts, answered: timed(
            parts, answered, True, lambda: run(model, parts, answered)
        )
        hf_model.HFModel._scored = lambda model, parts: timed(
            parts, True, False, lambda: scored(model, parts)
        )


def embedded(
    parser: argparse.ArgumentParser,
) -> tuple[argparse.Namespace, tuple[str, ...], LlamaCppModel]:
    """The arguments (``--instrument`` added), the instruments (SD-3 and BFI by default) and
    the embedded model through llama.cpp, its runtime printed (bench/dry_run.py, factors.py)."""
    parser.add_argument("--instrument", action="append", default=None)
    args = parser.parse_args()
    instruments = tuple(args.instrument or ("sd3", "bfi"))
    model = open_model("smollm2")
    assert isinstance(model, LlamaCppModel)
    print(f"instruments {', '.join(instruments)}; runtime {model.info.runtime}")
    return args, instruments, model


def ask(model: Model, prompts: Sequence[Prompt], texts: Callable[[Prompt], str]) -> list[Any]:
    """The prompts in text order, in the backend's preferred batches (as the ask-loop does)."""
    order = sorted(range(len(prompts)), key=lambda i: texts(prompts[i]))
    size = model.preferred_batch("logprob")
    out: list[Any] = [None] * len(prompts)
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        for i, answer in zip(chunk, model.option_probs([prompts[i] for i in chunk]), strict=True):
            out[i] = answer
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--design", choices=list(DESIGNS), default="main")
    parser.add_argument("--respondents", type=int, default=None)
    parser.add_argument("--paths", nargs="+", default=["llama", "f32", "trie"])
    parser.add_argument(
        "--busy", action="store_true", help="beside one CPU-bound process (started first)"
    )
    args = parser.parse_args()
    if args.busy:  # before any model loads: the thread policy sees the busy core
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        atexit.register(busy.kill)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # atexit runs on a kill too
        time.sleep(1)
    instruments, respondents = DESIGNS[args.design]
    respondents = args.respondents or respondents

    gflops, shapes = peak(), shape_gflops()
    hf = open_model("hf:smollm2")
    assert isinstance(hf, HFModel)
    body = hf.model.base_model
    per_token = 2 * (
        sum(p.numel() for p in body.parameters()) - body.get_input_embeddings().weight.numel()
    )
    limits = {"float32": gflops * 1e9 / per_token}
    settings = RunSettings(instruments=instruments, respondents=respondents)
    prompts = [p.request.prompt for p in plan(settings, resolve_instruments(instruments), hf.info)]
    tokens = sum(hf.count_tokens(p) for p in prompts)
    threads = torch.get_num_threads()
    print(f"design: {', '.join(instruments)}, {respondents} respondents, rotate, logprob: "
          f"{len(prompts)} prompts, {tokens} prompt tokens; threads {threads}")  # fmt: skip
    print(f"fp32 matmul {gflops:.0f} GFLOP/s (SmolLM2's shapes at 1,024 rows: {shapes:.0f}); "
          f"{per_token / 1e9:.3f} GFLOP a token -> compute limit {limits['float32']:.0f} "
          "tokens/s")  # fmt: skip
    if "bf16" in args.paths:
        bf16 = peak(torch.bfloat16)
        limits["bfloat16"] = bf16 * 1e9 / per_token
        print(f"bf16 matmul {bf16:.0f} GFLOP/s (SmolLM2's shapes at 1,024 rows: "
              f"{shape_gflops(dtype=torch.bfloat16):.0f}) -> compute limit "
              f"{limits['bfloat16']:.0f} tokens/s")  # fmt: skip

    answers: dict[str, list[OptionProbs]] = {}
    rates: dict[str, float] = {}
    # attention's FLOP a column attended: QKᵀ and AV, 2 FLOP a multiply-add, every layer
    config = hf.model.config
    per_column = 4 * config.num_hidden_layers * config.num_attention_heads * config.head_dim
    attention: dict[str, float] = {}  # per path: attention's FLOP over the layers' 2N
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.paths:
            timed = Timed() if path in ("trie", "bf16") else None
            if path == "trie":
                model: Any = hf
            elif path == "bf16":
                model = open_model("hf:smollm2", BackendOptions(dtype="bfloat16"))
            else:
                source = ALIASES["smollm2"].path()
                weights = f32_gguf(source, Path(tmp) / "f32.gguf") if path == "f32" else source
                model = LlamaCppModel(path, weights)
            before = model.tokens_evaluated
            start = time.perf_counter()
            answers[path] = ask(model, prompts, model.render)
            wall = time.perf_counter() - start
            evaluated = model.tokens_evaluated - before
            each = evaluated / len(prompts)
            print(
                f"{path:5s} wall {wall:7.1f} s  {len(prompts) / wall:5.1f} prompts/s  evaluated "
                f"{evaluated:7d} (sharing {tokens / evaluated:4.2f}×, {each:4.1f} a prompt)  "
                f"{evaluated / wall:4.0f} tokens/s"
            )
            rates[path] = evaluated / wall
            if timed:
                attention[path] = per_column * timed.attended / (per_token * evaluated)
            if args.design == "protocol":
                print(f"      {wall / 60:.1f} min")
            if timed:
                rest = wall - sum(timed.seconds.values())
                real = sum(timed.tokens.values())
                print(
                      "      where the time goes: "
                    + ", ".join(f"{k} {s:.1f} s ({timed.tokens[k]} tokens, "
                                f"{timed.tokens[k] / max(s, 1e-9):.0f}/s)"
                                for k, s in timed.seconds.items())
                    + f", the rest {rest:.1f} s; padding {1 - real / timed.cells:.1%} of the "
                    "batches' tokens"
                )  # fmt: skip
            if path != "trie":
                model.close()
    for dtype, name in ((torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
        if name in limits:
            after = peak(dtype)
            print(f"{name} matmul after the paths {after:.0f} GFLOP/s")
            limits[name] = max(limits[name], after * 1e9 / per_token)
    for path, rate in rates.items():
        limit = limits["bfloat16" if path == "bf16" else "float32"]
        print(f"{path:5s} {rate:4.0f} tokens/s = {rate / limit:.2f} of the compute limit "
              f"({limit:.0f} tokens/s, the higher reading)")  # fmt: skip
        if path in attention:  # PaLM's model FLOPs (Chowdhery et al. 2022, appendix B)
            print(f"      {rate * (1 + attention[path]) / limit:.2f} with attention's products "
                  f"counted too (+{attention[path]:.1%} over 2 × parameters)")  # fmt: skip
    names = list(answers)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            gap = max(
                abs(x - y)
                for p, q in zip(answers[a], answers[b], strict=True)
                for x, y in zip(p.probs, q.probs, strict=True)
            )
            print(f"max |Δp| per option, {a} vs {b}: {gap:.4f}")


if __name__ == "__main__":
    main()
