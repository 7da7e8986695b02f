"""The one model interface every backend implements.

A model answers a batch of prompts in one of two ways, after lm-evaluation-harness' request
primitives: the probability of each answer label as the next token (``logprob`` mode), or sampled
text (``generate`` mode). It knows nothing about instruments, orders or scoring.
"""

from __future__ import annotations

import hashlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from psyprobe.errors import UserError
from psyprobe.prompting import Prompt

Mode = Literal["logprob", "generate"]
# How a generated answer ended: an end token, its answer read (stop-when-read), or max_tokens.
Ending = Literal["end", "read", "length"]
# Says of the text generated so far whether its answer can be read already (generation stops).
Until = Callable[[str], bool]


def leave_out_at_default(
    model: BaseModel, handler: SerializerFunctionWrapHandler, *fields: str
) -> dict[str, Any]:
    """The stored form of ``model`` without those of ``fields`` that hold their default (a
    switch that is off): files, run records and cache keys written before a field existed
    stay what they were."""
    data: dict[str, Any] = handler(model)
    for name in fields:
        if data.get(name) == type(model).model_fields[name].default:
            data.pop(name, None)
    return data


class ModelInfo(BaseModel):
    """Who answered: stored with every response and part of every cache key."""

    model_config = ConfigDict(frozen=True)

    spec: str
    backend: str
    # Hash of the weights (plus any edits later), so a cached answer is never reused for
    # different weights that happen to share a name.
    fingerprint: str
    modes: tuple[Mode, ...]
    # The runtime build that computed the answers (llama.cpp: version and kernel set), where it
    # can change the numbers; a run refuses to resume under another one.
    runtime: str | None = None
    # Replayed transcripts answer with scale values ("4" on a 1-5 scale), not option numbers.
    numbers_are_scale_values: bool = False


class Sampling(BaseModel):
    """Decoding settings of generate mode; part of the cache key."""

    model_config = ConfigDict(frozen=True)

    temperature: float = 0.7
    max_tokens: int = 48
    # End a sequence as soon as its answer can be read (questionnaires); the stored text is then
    # a prefix of the full answer that reads the same (scoring.parse.settled).
    stop_when_read: bool = False

    @model_serializer(mode="wrap")
    def _stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_at_default(self, handler, "stop_when_read")


class OptionProbs(BaseModel):
    """Next-token probability of each label, by the position the label was shown at."""

    model_config = ConfigDict(frozen=True)

    probs: list[float]

    @property
    def mass(self) -> float:
        """Probability that fell on a valid label at all."""
        return float(sum(self.probs))


@dataclass(frozen=True)
class Completion:
    """A generated answer with how many tokens it took and how it ended."""

    text: str
    tokens: int
    ended: Ending


@dataclass(frozen=True)
class Failure:
    """A request that got no answer (after the backend's own retries); not cached, re-asked."""

    error: str


@dataclass(frozen=True)
class EndpointLoad:
    """One server of a model served by several, as progress shows it while a run asks."""

    url: str
    answered: int  # requests it has answered since the model was opened
    in_service: bool  # False while it is out for a backoff after failing


class Model(ABC):
    """What every backend implements: ``generate``; the rest has defaults a backend overrides
    where it can do more (next-token probabilities, its own tokenizer, larger batches)."""

    info: ModelInfo
    # A line on what this backend could not do when it was opened (a server without logprobs).
    notice: str | None = None
    # CPU threads it computes with, where it chooses them (recorded with a run, not compared)
    threads: int | None = None

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Sequence[str | Completion | Failure | None]:
        """One sampled answer per prompt (``None`` where the backend has none to give).

        ``until``: per prompt, when its answer can be read; a backend that decodes token by
        token stops that sequence there (and returns a ``Completion`` saying so), one that
        cannot returns the whole answer, which reads the same."""

    def generate_as_ready(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Iterator[tuple[int, str | Completion | Failure | None]]:
        """``generate``'s answers, each with its prompt's index, as soon as it is ready: a
        backend that decodes many sequences together yields each as it ends, so the ask-loop
        stores it at once and an interrupt loses only the unfinished. By default all at once,
        in order."""
        yield from enumerate(self.generate(prompts, sampling, seeds, until))

    def preferred_batch(self, mode: Mode) -> int:
        """How many requests of ``mode`` one call can use at once (a backend that shares
        prefixes or decodes many sequences together wants many); the ask-loop hands over at
        least this many."""
        return 32

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        """Probability of each of ``prompt.labels`` as the first token of the answer."""
        raise UserError(f"{self.info.spec}: no next-token probabilities; use --mode generate")

    def count_tokens(self, prompt: Prompt) -> int | None:
        """Prompt tokens with the backend's own tokenizer, or None where it has none here."""
        return None

    def perplexity(self, text: str, max_tokens: int, window: int) -> float | None:
        """Perplexity of the first ``max_tokens`` tokens of ``text``, scored in windows of
        ``window`` tokens; None where the backend cannot score arbitrary text."""
        return None

    def torch_module(self) -> Any | None:
        """The torch module that computes the answers (steering hooks attach to it); None for a
        backend without one."""
        return None

    def merge_adapter(self, folder: Path) -> None:
        """Merge a trained PEFT adapter into the weights, so every code path answers with it."""
        raise UserError(f"--adapter: {self.info.spec} is not a transformers model; use hf:PATH")

    def recorded_design(self) -> RecordedDesign | None:
        """For answers recorded elsewhere: the instruments and samples they hold, which then
        define the run; None for a model that answers what it is asked."""
        return None

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the backend holds (a loaded model, a connection)."""

    def endpoint_loads(self) -> list[EndpointLoad]:
        """Each endpoint's answers so far, where several serve the model (progress shows each
        one's rate); none by default."""
        return []

    def health(self) -> list[str]:
        """What failed in the model's service during the run, said at its end (a server's
        endpoints taken out, when and why); nothing by default."""
        return []


Answer = TypeVar("Answer")


def in_order(ready: Iterable[tuple[int, Answer]], n: int) -> list[Answer]:
    """``n`` answers handed over as each was ready (``generate_as_ready``), in their prompts'
    order: ``generate`` for a backend whose answers come as they are ready."""
    done = dict(ready)
    return [done[i] for i in range(n)]


@dataclass(frozen=True)
class RecordedDesign:
    instruments: tuple[str, ...]
    samples: int


def cache_root() -> Path:
    """Where converted models and assembled weights are kept ($PSYPROBE_CACHE overrides)."""
    return Path(os.environ.get("PSYPROBE_CACHE") or Path.home() / ".cache" / "psyprobe")


def reads_as(token: str, label: str) -> bool:
    """A token counts for a label when it reads as the label once spaces are stripped.

    Every backend applies this same rule ("3" and " 3" both answer option 3), so logprob scores
    agree across llama.cpp, transformers and servers that report top_logprobs.
    """
    return token.strip() == label


def plain_prompt(prompt: Prompt, tokenize: Callable[[str], Sequence[int]]) -> str:
    """The text a base model (no chat template) continues, as study A prompted GPT-3.

    Where the tokenizer spells " 1" as a space token and then "1" (SentencePiece models such as
    Gemma), the space goes into the prompt, so that the next token is the label itself.
    """
    text = prompt.plain_text()
    return text + " " if len(tokenize(" 1")) > len(tokenize("1")) else text


def file_fingerprint(path: Path) -> str:
    """sha256 of a weights file, read in chunks (GGUF files are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _busy_ticks() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def default_threads(sample_s: float = 0.2) -> int:
    """One thread per core that is idle now (at least one); see bench/RESULTS.md.

    A CPU backend's workers (ggml's, torch's OpenMP pool) wait for each other after every
    matrix product: a worker that shares its core with another busy process stalls all the
    others. Beside one busy process on two cores, llama.cpp fell from 245 to 43 prompt
    tokens/s with two threads while one thread kept 131, and transformers from 546 to 199
    while one thread kept 308. So the cores that are busy when the model loads are left alone.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        busy0, total0 = _busy_ticks()
        time.sleep(sample_s)
        busy1, total1 = _busy_ticks()
    except (OSError, ValueError, IndexError):  # no /proc (not Linux): every core
        return cores
    machine = os.cpu_count() or cores
    busy_cores = machine * (busy1 - busy0) / max(total1 - total0, 1e-9)
    return max(1, min(cores, round(machine - busy_cores)))
