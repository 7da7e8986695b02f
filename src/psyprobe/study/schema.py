"""The study file: what a study declares (vectors, adapters, conditions), checked at load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from psyprobe.capability import CapabilitySettings
from psyprobe.editing import Edits
from psyprobe.engine import asked_settings
from psyprobe.errors import UserError
from psyprobe.inputs import text_file
from psyprobe.models.registry import BackendOptions
from psyprobe.runs import RunSettings
from psyprobe.safety.settings import SafetySettings
from psyprobe.untrusted import one_line

MAX_STUDY = 2**20  # bytes: a study file is a page of YAML


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Names that become file and folder names under the study's directory: never "..", never a path.
FileStem = Annotated[str, Field(pattern=r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$", max_length=100)]


class VectorSpec(_Strict):
    dimension: str
    poles: tuple[str, str] = ("high", "low")
    layers: tuple[int, ...]
    method: str = "mean-diff"
    source: str = "answers"


class AdapterSpec(_Strict):
    steps: int = Field(100, ge=1)
    learning_rate: float = 5e-5
    beta: float = 0.1
    lora_r: int = 8
    batch_size: int = 4


class SteerUse(_Strict):
    vector: FileStem  # a name under `vectors`
    layer: int
    coefficient: float


class Condition(_Strict):
    name: FileStem
    model: str | None = None  # default: the study's model
    persona: str | None = None
    steer: tuple[SteerUse, ...] = ()
    adapter: FileStem | None = None  # a name under `adapters`


class SafetyPart(_Strict):
    suites: tuple[str, ...] = ("toxicity", "privacy", "fairness")
    limit: int | None = 20
    max_tokens: int | None = None  # answer length limit: null is `psyprobe safety`'s default


class Study(_Strict):
    name: str
    model: str = "hf:smollm2"
    # backend options (dtype, device, base_url, ...), as the command line's options name them
    backend: BackendOptions = BackendOptions()
    instruments: tuple[str, ...] = ("sd3", "bfi")  # the study's own choice: two, not four
    # run settings: null (left out) is RunSettings' default, as on the command line
    orders: str | None = None
    respondents: int | None = None
    seed: int = Field(0, ge=0)  # the study's seed: its runs, samples, vectors and adapters
    safety: SafetyPart | None = SafetyPart()
    arc_limit: int | None = 20  # ARC questions per part; null skips the capability check
    perplexity_tokens: int | None = None  # WikiText-2 tokens: null is `psyprobe capability`'s
    vectors: dict[FileStem, VectorSpec] = {}
    adapters: dict[FileStem, AdapterSpec] = {}
    conditions: tuple[Condition, ...]

    def asked(self) -> RunSettings:
        """The run settings this study chose (``engine.asked_settings``); the rest default."""
        chosen = {"instruments": self.instruments, "seed": self.seed}
        return asked_settings(
            **chosen | self.model_dump(include={"orders", "respondents"}, exclude_none=True)
        )

    def safety_settings(self, model: str) -> SafetySettings | None:
        if self.safety is None:
            return None
        chosen = self.safety.model_dump(exclude_none=True) | {"limit": self.safety.limit}
        return SafetySettings.model_validate(chosen | {"model": model, "seed": self.seed})

    def capability_settings(self) -> CapabilitySettings | None:
        if self.arc_limit is None:
            return None
        chosen = self.model_dump(include={"arc_limit", "perplexity_tokens"}, exclude_none=True)
        return CapabilitySettings.model_validate(chosen | {"seed": self.seed})


def load_study(path: Path) -> Study:
    text = text_file(path, MAX_STUDY)
    try:
        raw = yaml.safe_load(text)
        study = Study.model_validate(raw)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not YAML ({one_line(str(exc))})") from None
    except RecursionError:
        raise UserError(f"{path}: YAML nested too deeply to be a study") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:
            raise UserError(
                f"{path}: not a study (a YAML mapping with name and conditions)"
            ) from None
        where = ".".join(map(str, first["loc"]))
        raise UserError(f"{path}: field {where}: {first['msg']}") from None
    try:  # checked when the file loads, not after the vectors and adapters are made
        study.asked()
        study.safety_settings(study.model)
        study.capability_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{path}: field {first['loc'][0]}: {first['msg']}") from None
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    names = [c.name for c in study.conditions]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: field conditions: names must be unique")
    for c in study.conditions:
        for s in c.steer:
            if s.vector not in study.vectors:
                raise UserError(f"{path}: conditions.{c.name}.steer: no vector {s.vector!r}")
        if c.adapter and c.adapter not in study.adapters:
            raise UserError(f"{path}: conditions.{c.name}.adapter: no adapter {c.adapter!r}")
    return study


def condition_edits(study: Study, c: Condition, out: Path) -> Edits:
    return Edits(
        persona=c.persona,
        steer=tuple(
            f"{out / 'vectors' / f'{s.vector}.safetensors'}:{s.layer}@{s.coefficient:g}"
            for s in c.steer
        ),
        adapter=str(out / "adapters" / c.adapter) if c.adapter else None,
    )
