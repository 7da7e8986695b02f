"""Study A's protocol at the machine's compute limit: SD-3 + BFI × every option order, logprob.

One run measures, side by side on the same machine and moment:
  1. the machine's fp32 matrix-multiply rate (GFLOP/s) and from it the compute limit in prompt
     tokens/s for SmolLM2-135M (≈ 2 × non-embedding parameters FLOP per token);
  2. the naive loop — one full forward pass per prompt (transformers, fp32) — on a sample;
  3. llama.cpp (the embedded runtime): its raw prompt-processing rate on one long prompt, and
     its line-segment prefix reuse on the same sample;
  4. psyprobe's shared path — each shared prefix once, suffixes batched, the vocabulary
     projection only at the answer — on the full protocol (or --items per instrument);
and checks that the shared path equals the naive one (max |Δ log p| over the sample).

    python bench/study_a.py                  # full protocol: 71 items × 120 orders = 8,520
    python bench/study_a.py --items 10       # the first 10 items of each instrument
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch

from psyprobe.instruments import load_instrument
from psyprobe.models.hf import HFModel
from psyprobe.models.llamacpp import LlamaCppModel
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, build_prompts


def matmul_gflops(n: int = 1024, repeats: int = 20, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def raw_prompt_rate(model: LlamaCppModel, n_tokens: int = 512, repeats: int = 3) -> float:
    """llama.cpp prompt processing: one long decode from an empty cache, best of a few."""
    llm = model._llm
    tokens = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 64)[:n_tokens]
    best = float("inf")
    for _ in range(repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        best = min(best, time.perf_counter() - start)
    llm.reset()
    return len(tokens) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=None, help="items per instrument")
    parser.add_argument("--sample", type=int, default=48, help="prompts for the naive loops")
    args = parser.parse_args()

    prompts = []
    for name in ("sd3", "bfi"):
        questions = load_instrument(name).questions()[: args.items]
        prompts += [p.prompt for p in build_prompts(name, questions, "all", TEMPLATES["study-a"])]
    # a sample spread over the protocol (every k-th prompt), so it shares as little as the whole
    sample = prompts[:: max(1, len(prompts) // args.sample)][: args.sample]

    gflops = matmul_gflops()
    hf = HFModel.load("hf:smollm2", ALIASES["smollm2"].path())
    body = hf.model.base_model
    non_embedding = (
        sum(p.numel() for p in body.parameters()) - body.get_input_embeddings().weight.numel()
    )
    per_token = 2 * non_embedding / 1e9
    limit = gflops / per_token
    texts = [hf.render(p) for p in prompts]
    unshared = sum(len(hf.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    sample_texts = [hf.render(p) for p in sample]
    sample_tokens = sum(
        len(hf.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in sample_texts
    )

    start = time.perf_counter()
    naive = torch.cat([hf.next_token_logprobs([t]) for t in sample_texts])
    naive_wall = time.perf_counter() - start
    naive_rate = sample_tokens / naive_wall

    llama = LlamaCppModel("smollm2", ALIASES["smollm2"].path())
    raw = raw_prompt_rate(llama)
    start = time.perf_counter()
    llama.option_probs(sample)
    llama_wall = time.perf_counter() - start
    llama.close()

    shared_sample = hf.shared_prefix_logprobs(sample_texts)
    max_delta = float((shared_sample - naive).abs().max())

    hf.tokens_evaluated = 0
    start = time.perf_counter()
    hf.shared_prefix_logprobs(texts)
    wall = time.perf_counter() - start
    evaluated = hf.tokens_evaluated
    naive_full = unshared / naive_rate

    print(
        f"date: {datetime.date.today()}  machine: {platform.machine()}, {os.cpu_count()} "
        f"cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"protocol: SD-3 + BFI × all 120 orders, logprob, items={args.items or 'all'}: "
        f"{len(prompts)} prompts, {unshared} prompt tokens unshared"
    )
    print(
        f"fp32 matmul: {gflops:.0f} GFLOP/s; SmolLM2 {per_token:.3f} GFLOP per prompt token "
        f"-> compute limit {limit:.0f} tokens/s"
    )
    print(
        f"naive loop (transformers, one prompt per pass), {len(sample)}-prompt sample: "
        f"{naive_rate:.0f} tokens/s -> full protocol ≈ {naive_full / 60:.1f} min"
    )
    print(
        f"llama.cpp raw prompt processing (512 tokens, one pass): {raw:.0f} tokens/s; its "
        f"line-prefix reuse on the same sample: {len(sample) / llama_wall:.2f} prompts/s "
        f"({sample_tokens / llama_wall:.0f} effective tokens/s)"
    )
    print(
        f"shared path: wall {wall:.0f} s ({wall / 60:.1f} min), {len(prompts) / wall:.1f} "
        f"prompts/s, tokens evaluated {evaluated} (sharing ratio {unshared / evaluated:.2f}), "
        f"{evaluated / wall:.0f} evaluated tokens/s = {evaluated / wall / limit:.2f} of the "
        f"compute limit; effective {unshared / wall:.0f} tokens/s"
    )
    print(
        f"speed-up over the naive loop: {naive_full / wall:.1f}x; "
        f"max |Δ log p| shared vs naive on the sample: {max_delta:.1e}"
    )


if __name__ == "__main__":
    main()
