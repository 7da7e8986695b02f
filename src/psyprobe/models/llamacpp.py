"""The embedded runtime: llama.cpp on GGUF weights, offline, on CPU.

Logprob scoring reuses the KV cache across prompts. Prompts are split into line segments and
evaluated one segment per decode call; a prompt whose first segments equal those already in the
cache only evaluates the rest. Because the split depends only on the prompt itself, every prompt
is computed by the same sequence of calls whatever came before it, so scores are identical bit for
bit whether a run is fresh, resumed, or ordered differently.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from psyprobe.errors import UserError
from psyprobe.models.base import (
    Completion,
    Ending,
    Failure,
    Model,
    ModelInfo,
    OptionProbs,
    Sampling,
    Until,
    cache_root,
    default_threads,
    file_fingerprint,
    in_order,
    plain_prompt,
    reads_as,
)
from psyprobe.models.registry import BackendOptions, backend, local_file
from psyprobe.prompting import Prompt

Tokens = tuple[int, ...]

# The install that works on every CPU: no -march=native, so no AMX kernels (they crash, below),
# and pip's cache bypassed because it keys built wheels by source archive, not by CMAKE_ARGS.
REINSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir --force-reinstall --no-deps '
    '"llama-cpp-python=={version}"'
)
# One decode call of several tokens: the call that segfaults in ggml's AMX matmul (llama.cpp
# issue 20824) while one-token decodes work. Run in a child so a crash cannot take psyprobe down.
_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(sys.argv[1], n_ctx=64, n_threads=1, verbose=False)
llm.eval(llm.tokenize(b"The quick brown fox jumps over the lazy dog."))
"""


def runtime_info() -> str:
    """llama.cpp's version and system-info line: which kernels this build computes with.

    Stored with every run, because a different kernel set gives (slightly) different
    log-probabilities for the same weights.
    """
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    return f"llama-cpp-python {llama_cpp.__version__}; {' '.join(info.split())}"


def _refuse(cause: str) -> UserError:
    import llama_cpp

    return UserError(
        f"llama.cpp runtime: {cause}; reinstall a portable build: "
        + REINSTALL.format(version=llama_cpp.__version__)
    )


def _library_id() -> str:
    """Names, sizes and times of the installed llama.cpp libraries: changes with every build."""
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    parts = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(lib.glob("*"))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@cache
def check_runtime(model_path: Path) -> str:
    """Refuse, in one line and before anything is asked, a build that cannot decode here.

    An AMX build is refused from its system-info line at once. Any other build is proven once by
    a multi-token decode in a child process (about a second), remembered per library build.
    """
    info = runtime_info()
    if "AMX_INT8 = 1" in info:
        raise _refuse("this build has the AMX kernels, which crash on multi-token decodes")
    stamp = cache_root() / "runtime-ok" / _library_id()
    if stamp.is_file():
        return info
    try:
        child = subprocess.run(
            [sys.executable, "-c", _PROBE, str(model_path)], capture_output=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        raise _refuse("a multi-token decode hung for 300 s in a test process") from None
    if child.returncode != 0:
        how = (
            f"killed by signal {-child.returncode}"
            if child.returncode < 0
            else f"exit status {child.returncode}"
        )
        raise _refuse(f"a multi-token decode failed in a test process ({how})")
    try:  # remembering only saves the next start a second; a read-only cache is no error
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(info + "\n")
    except OSError:
        pass
    return info


class LlamaCppModel(Model):
    def __init__(self, spec: str, path: Path, n_ctx: int = 2048, threads: int | None = None):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        # before the runtime check, which would blame the build for a file that is not a model
        magic = b""
        if path.is_file():
            with path.open("rb") as fh:
                magic = fh.read(4)
        if magic != b"GGUF":
            raise UserError(f"{spec}: {path} is not a GGUF file")
        self.info = ModelInfo(
            spec=spec,
            backend="llama.cpp",
            fingerprint=file_fingerprint(path),
            modes=("logprob", "generate"),
            runtime=check_runtime(path),
        )
        n_threads = threads or default_threads()
        self.threads = n_threads
        self._llm = Llama(
            str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
            seed=0,
        )
        template = self._llm.metadata.get("tokenizer.chat_template")
        # A base model has no chat template: it continues the plain prompt text.
        self._format = template and Jinja2ChatFormatter(
            template,
            eos_token=self._text([self._llm.token_eos()]),
            bos_token=self._text([self._llm.token_bos()]),
            add_generation_prompt=True,
        )
        self._cached: list[Tokens] = []  # segments currently in the KV cache, in order
        self._label_ids: dict[str, list[int]] = {}
        self.tokens_evaluated = 0  # for benchmarks: prompt tokens actually decoded

    def _text(self, tokens: list[int]) -> str:
        return self._llm.detokenize(tokens).decode("utf-8", errors="replace")

    def render(self, prompt: Prompt) -> str:
        if not self._format:
            return plain_prompt(prompt, lambda text: self._tokenize(text, first=False))
        return str(self._format(messages=prompt.messages()).prompt)  # type: ignore[arg-type]

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self._tokenize(self.render(prompt), first=True))

    def _tokenize(self, text: str, first: bool) -> Tokens:
        return tuple(self._llm.tokenize(text.encode("utf-8"), add_bos=first, special=True))

    def _segments(self, text: str) -> list[Tokens]:
        lines = text.splitlines(keepends=True)
        segments = [self._tokenize(line, first=i == 0) for i, line in enumerate(lines)]
        whole = self._tokenize(text, first=True)
        if tuple(t for seg in segments for t in seg) != whole:
            # A merge across a line break: evaluate the prompt as one piece rather than change
            # its tokenization.
            return [whole]
        return [seg for seg in segments if seg]

    def _label_tokens(self, label: str) -> list[int]:
        """Every vocabulary entry that reads as the label ("3", " 3"): all count for it."""
        if label not in self._label_ids:
            if not self._label_ids:
                self._vocab = [self._text([i]) for i in range(self._llm.n_vocab())]
            self._label_ids[label] = [i for i, t in enumerate(self._vocab) if reads_as(t, label)]
        return self._label_ids[label]

    def _evaluate(self, segments: list[Tokens]) -> np.ndarray:
        keep = 0
        while (
            keep < min(len(self._cached), len(segments) - 1)
            and self._cached[keep] == segments[keep]
        ):
            keep += 1
        self._llm.n_tokens = sum(len(s) for s in segments[:keep])
        del self._cached[keep:]
        for segment in segments[keep:]:
            self._llm.eval(list(segment))
            self._cached.append(segment)
            self.tokens_evaluated += len(segment)
        n_vocab = self._llm.n_vocab()
        # Only the last token of a decode call has logits (logits_all=False): the answer slot.
        row = self._llm._ctx.get_logits()  # type: ignore[no-untyped-call]
        logits = np.ctypeslib.as_array(row, shape=(n_vocab,))
        return logits.astype(np.float64)

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        rendered = [self.render(p) for p in prompts]
        out: list[OptionProbs | Failure | None] = [None] * len(prompts)
        # Visit prompts in text order so that neighbours share the longest prefixes (a
        # depth-first walk of the prompt trie); answers go back in the caller's order.
        for i in sorted(range(len(prompts)), key=rendered.__getitem__):
            logits = self._evaluate(self._segments(rendered[i]))
            logp = logits - logits.max()
            probs = np.exp(logp) / np.exp(logp).sum()
            labels = prompts[i].labels
            out[i] = OptionProbs(
                probs=[float(probs[self._label_tokens(lab)].sum()) for lab in labels]
            )
        return [o for o in out if o is not None]

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Completion | Failure | None]:
        return in_order(self.generate_as_ready(prompts, sampling, seeds, until), len(prompts))

    def generate_as_ready(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Iterator[tuple[int, str | Completion | Failure | None]]:
        """One answer at a time, each handed over as it ends: the ask-loop stores it at once,
        so an interrupt loses only the answer being written."""
        for i, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
            self._cached.clear()  # generation rewrites the KV cache
            yield i, self._complete(prompt, sampling, seed, until[i] if until else None)

    def _complete(
        self, prompt: Prompt, sampling: Sampling, seed: int, check: Until | None
    ) -> Completion:
        """One answer, streamed token by token so that it can stop once ``check`` reads it."""
        decoding: dict[str, Any] = {
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            "stream": True,
        }
        # stream=True: both calls return an iterator of chunks
        stream = cast(
            Iterator[Any],
            self._llm.create_chat_completion(messages=prompt.messages(), **decoding)  # type: ignore[arg-type]
            if self._format
            else self._llm.create_completion(self.render(prompt), **decoding),
        )
        text: str = ""
        ended: Ending = "length"
        for chunk in stream:
            choice = chunk["choices"][0]
            text += (choice["delta"].get("content") if self._format else choice["text"]) or ""
            if choice.get("finish_reason") == "stop":
                ended = "end"
            elif check is not None and check(text):
                ended = "read"
                break
        # the stream does not count tokens: the text's own, and the end token where one came
        tokens = len(self._tokenize(text, first=False)) + (ended == "end")
        return Completion(text, tokens, ended)

    def close(self) -> None:
        self._llm.close()


@backend(
    "gguf", usage="gguf:PATH", name="llama.cpp", modes="logprob, generate",
    what="any local GGUF file",
)  # fmt: skip
def open_gguf(spec: str, rest: str, options: BackendOptions, connect: bool) -> LlamaCppModel:
    return LlamaCppModel(spec, local_file(spec, rest), threads=options.threads)
