"""Would llama.cpp's multi-sequence decoding speed up sampled answers? Measured, not built.

Usage: python bench/llamacpp_batch.py [--prompts 64] [--rows 8,32,64]

On study A's prompts (SD-3 under random option orders, two samples each, temperature 0.7, 24
tokens at most), side by side in one run with the embedded SmolLM2 (Q4_1) and two threads:
  1. the backend as it is: one answer at a time (``LlamaCppModel.generate``; llama.cpp reuses
     the KV cache's common prefix between consecutive prompts);
  2. many sequences in one decode call: each group's shared prefix evaluated once and copied
     to every sequence (``llama_memory_seq_cp``), every distinct prompt once for its samples,
     then one token per live sequence per ``llama_decode``, each sequence drawing from its own
     seeded generator.
It prints prompt-processing and decoding rates separately, because they decide the answer.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import llama_cpp
import numpy as np

from psyprobe.instruments import load_instrument
from psyprobe.models.base import Sampling
from psyprobe.models.llamacpp import LlamaCppModel
from psyprobe.models.registry import ALIASES
from psyprobe.prompting import TEMPLATES, build_prompts

MAX_TOKENS = 24
TEMPERATURE = 0.7


class MultiSequence:
    """A second llama.cpp context on the same weights, with one KV cache shared by ``rows``
    sequences (the backend's own context holds one)."""

    def __init__(self, model: LlamaCppModel, rows: int, cells: int = 8192):
        self.llm = model._llm
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = cells, cells, 512
        params.n_seq_max, params.kv_unified = rows, True
        params.n_threads = params.n_threads_batch = 2
        self.ctx = llama_cpp.llama_init_from_model(self.llm._model.model, params)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(cells, 0, rows)
        self.vocab = self.llm.n_vocab()
        self.prefill_tokens, self.prefill_s, self.decoded, self.decode_s = 0, 0.0, 0, 0.0

    def _decode(self, tokens: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """(token, position, sequence, wants logits) in one call -> sequence: logits row."""
        b, rows = self.batch, {}
        b.n_tokens = len(tokens)
        for i, (token, pos, seq, logits) in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq
            if logits:
                rows[seq] = i
        if llama_cpp.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        return rows

    def _draw(self, row: int, rng: np.random.Generator) -> int:
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.ctx, row), shape=(self.vocab,)
        ).astype(np.float64)
        cdf = np.cumsum(np.exp((logits - logits.max()) / TEMPERATURE))
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1]), self.vocab - 1))

    def generate(self, group: list[list[int]], seeds: list[int]) -> list[list[int]]:
        start = time.perf_counter()
        llama_cpp.llama_memory_clear(self.memory, True)
        shared = 0
        while all(len(g) > shared + 1 and g[shared] == group[0][shared] for g in group):
            shared += 1
        if shared:
            self._decode([(t, p, 0, False) for p, t in enumerate(group[0][:shared])])
        for s in range(1, len(group)):
            llama_cpp.llama_memory_seq_cp(self.memory, 0, s, -1, -1)
        first: dict[tuple[int, ...], int] = {}
        tokens = []
        for s, g in enumerate(group):
            if first.setdefault(tuple(g), s) == s:
                tokens += [(g[p], p, s, p == len(g) - 1) for p in range(shared, len(g))]
        rows = self._decode(tokens)
        for s, g in enumerate(group):  # a sample of a prompt already evaluated: copied
            if (source := first[tuple(g)]) != s:
                llama_cpp.llama_memory_seq_rm(self.memory, s, -1, -1)
                llama_cpp.llama_memory_seq_cp(self.memory, source, s, -1, -1)
                rows[s] = rows[source]
        self.prefill_tokens += shared + len(tokens)
        self.prefill_s += time.perf_counter() - start
        start = time.perf_counter()
        draws = [np.random.default_rng(seed) for seed in seeds]
        out: list[list[int]] = [[] for _ in group]
        live = list(range(len(group)))
        while live:
            for s in live:
                out[s].append(self._draw(rows[s], draws[s]))
            eos = self.llm.token_eos()
            live = [s for s in live if out[s][-1] != eos and len(out[s]) < MAX_TOKENS]
            if live:
                rows = self._decode([(out[s][-1], len(group[s]) + len(out[s]) - 1, s, True)
                                     for s in live])  # fmt: skip
        self.decoded += sum(len(o) for o in out)
        self.decode_s += time.perf_counter() - start
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64, help="answers (two per prompt)")
    parser.add_argument("--rows", default="8,32,64", help="sequences per decode call")
    args = parser.parse_args()
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), platform.processor()
    )
    print(f"{datetime.date.today()}  {cpu}, {os.cpu_count()} cores, llama-cpp-python "
          f"{llama_cpp.__version__}, 2 threads")  # fmt: skip
    model = LlamaCppModel("smollm2", ALIASES["smollm2"].path(), threads=2)
    questions = load_instrument("sd3").questions()
    built = build_prompts("x", questions, "random:4", TEMPLATES["study-a"])
    prompts = [b.prompt for b in built][: args.prompts // 2]
    prompts = [p for p in prompts for _ in range(2)]
    seeds = list(range(len(prompts)))
    ids = [list(model._tokenize(model.render(p), first=True)) for p in prompts]

    start = time.perf_counter()
    one = model.generate(prompts, Sampling(temperature=TEMPERATURE, max_tokens=MAX_TOKENS), seeds)
    alone = (time.perf_counter() - start) / len(prompts)
    tokens = np.mean([c.tokens for c in one if not isinstance(c, str) and c is not None])
    print(f"one at a time: {alone:.3f} s an answer ({tokens:.1f} tokens each); prompts of "
          f"{np.mean([len(i) for i in ids]):.0f} tokens")  # fmt: skip
    for rows in (int(r) for r in args.rows.split(",")):
        multi = MultiSequence(model, rows)
        start = time.perf_counter()
        for at in range(0, len(ids), rows):
            multi.generate(ids[at : at + rows], seeds[at : at + rows])
        took = (time.perf_counter() - start) / len(ids)
        print(
            f"{rows:3d} sequences a call: {took:.3f} s an answer ({alone / took:.2f}x); "
            f"prompt processing {multi.prefill_tokens / multi.prefill_s:4.0f} tokens/s "
            f"({multi.prefill_s:.1f} s), decoding {multi.decoded / multi.decode_s:4.0f} tokens/s "
            f"({multi.decode_s:.1f} s, {multi.decoded / len(ids):.1f} tokens each)"
        )
        llama_cpp.llama_batch_free(multi.batch)
        llama_cpp.llama_free(multi.ctx)
    model.close()


if __name__ == "__main__":
    main()
