"""An edited model is just another model: persona, steering vectors and a LoRA adapter on top.

The edits enter the model's identity: its spec reads ``hf:smollm2 +persona=… +steer=…@4``, and its
fingerprint hashes the base fingerprint with the persona text, each vector file's hash, layer and
coefficient, and the adapter's files, so no cached answer is ever reused across edits.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from psyprobe.editing.personas import persona_text
from psyprobe.editing.steering import load_vector, steering, vector_hash
from psyprobe.errors import UserError
from psyprobe.models import Mode, Model, ModelInfo, OptionProbs, Sampling, open_model
from psyprobe.models.base import Completion, Failure, RecordedDesign, Until
from psyprobe.models.registry import BackendOptions
from psyprobe.prompting import Prompt


class Edits(BaseModel):
    model_config = ConfigDict(frozen=True)

    persona: str | None = None
    steer: tuple[str, ...] = ()  # FILE[:LAYER]@COEF
    adapter: str | None = None

    def label(self) -> str:
        parts = [f"+persona={self.persona}"] if self.persona else []
        parts += [f"+steer={s}" for s in self.steer]
        parts += [f"+adapter={self.adapter}"] if self.adapter else []
        return " ".join(parts)


@dataclass(frozen=True)
class Steer:
    path: Path
    layer: int | None
    coefficient: float


_STEER = re.compile(r"^(?P<path>.+?)(?::(?P<layer>\d+))?@(?P<coef>[-+]?\d*\.?\d+(?:e[-+]?\d+)?)$")


def parse_steer(text: str) -> Steer:
    found = _STEER.match(text)
    if not found:
        raise UserError(
            f"--steer {text!r}: expected FILE[:LAYER]@COEFFICIENT, e.g. a.safetensors@4"
        )
    layer = found["layer"]
    return Steer(Path(found["path"]), None if layer is None else int(layer), float(found["coef"]))


def adapter_hash(folder: Path) -> str:
    if not folder.is_dir():
        raise UserError(f"--adapter {folder}: no such directory")
    files = sorted(p for p in folder.iterdir() if p.name.startswith("adapter_") and p.is_file())
    if not files:
        raise UserError(f"--adapter {folder}: no adapter_config.json / adapter_model files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()}"


class EditedModel(Model):
    """Wraps any model for a persona; an ``hf:`` model also for steering and adapters."""

    def __init__(self, inner: Model, edits: Edits):
        self.inner = inner
        self.persona = persona_text(edits.persona) if edits.persona else None
        identity: dict[str, Any] = {"base": inner.info.fingerprint, "persona": self.persona}
        if edits.steer and inner.torch_module() is None:
            raise UserError(f"--steer: {inner.info.spec} is not a transformers model; use hf:PATH")
        if edits.adapter:
            folder = Path(edits.adapter)
            identity["adapter"] = adapter_hash(folder)
            inner.merge_adapter(folder)
        self.additions: list[tuple[int, Any]] = []
        steers = []
        for text in edits.steer:
            spec = parse_steer(text)
            vector = load_vector(spec.path)
            layer = vector.default_layer if spec.layer is None else spec.layer
            if layer not in vector.layers:
                raise UserError(
                    f"--steer {text}: layer {layer} not in {spec.path} "
                    f"(layers {', '.join(map(str, sorted(vector.layers)))})"
                )
            self.additions.append((layer, vector.layers[layer] * spec.coefficient))
            steers.append([vector_hash(spec.path), layer, spec.coefficient])
        identity["steer"] = steers
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        self.info = ModelInfo(
            spec=f"{inner.info.spec} {edits.label()}",
            backend=inner.info.backend,
            fingerprint=f"sha256:{digest}",
            modes=inner.info.modes,
            numbers_are_scale_values=inner.info.numbers_are_scale_values,
        )
        self.notice = inner.notice

    def torch_module(self) -> Any | None:
        return self.inner.torch_module()

    def preferred_batch(self, mode: Mode) -> int:
        return self.inner.preferred_batch(mode)

    def _with_persona(self, prompts: Sequence[Prompt]) -> list[Prompt]:
        if self.persona is None:
            return list(prompts)
        return [
            replace(p, system=f"{self.persona}\n\n{p.system}" if p.system else self.persona)
            for p in prompts
        ]

    def steered(self) -> AbstractContextManager[None]:
        # hooks live only for the duration of one call: the wrapped model stays unedited
        if not self.additions:
            return nullcontext()
        return steering(self.inner.torch_module(), self.additions)

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        with self.steered():
            return self.inner.option_probs(self._with_persona(prompts))

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Sequence[str | Completion | Failure | None]:
        with self.steered():
            return self.inner.generate(self._with_persona(prompts), sampling, seeds, until)

    def generate_as_ready(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Iterator[tuple[int, str | Completion | Failure | None]]:
        with self.steered():
            yield from self.inner.generate_as_ready(
                self._with_persona(prompts), sampling, seeds, until
            )

    def count_tokens(self, prompt: Prompt) -> int | None:
        return self.inner.count_tokens(self._with_persona([prompt])[0])

    def perplexity(self, text: str, max_tokens: int, window: int) -> float | None:
        # the persona is a prompt, not part of the text scored: only weight edits count
        with self.steered():
            return self.inner.perplexity(text, max_tokens, window)

    def recorded_design(self) -> RecordedDesign | None:
        return self.inner.recorded_design()

    def close(self) -> None:
        self.inner.close()


def open_edited(
    spec: str,
    options: BackendOptions | None = None,
    edits: Edits | None = None,
    connect: bool = True,
    mode: Mode | None = None,
) -> Model:
    """open_model (``mode``: what will be asked, which picks an alias's path), then the edits
    (if any) on top."""
    if edits is None or edits == Edits():
        return open_model(spec, options, connect=connect, mode=mode)
    # Bad edit files fail before a model loads (seconds, and a screenful of progress bars).
    for text in edits.steer:
        load_vector(parse_steer(text).path)
    if edits.adapter:
        adapter_hash(Path(edits.adapter))
    model = open_model(spec, options, connect=connect, mode=mode)
    try:
        return EditedModel(model, edits)
    except BaseException:
        model.close()
        raise
