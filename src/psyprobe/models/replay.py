"""``replay:FILE.jsonl`` — score answers recorded elsewhere, without any model.

Each line: ``{"instrument": "sd3", "item": 12, "response": "Agree" | 4 | "free text"}``. A number
is a scale value; text is parsed like a generated answer. The k-th line for an item is its k-th
respondent; items with fewer lines lower the valid rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.inputs import json_lines
from psyprobe.instruments.schema import normalize_name
from psyprobe.models.base import (
    Failure,
    Model,
    ModelInfo,
    RecordedDesign,
    Sampling,
    Until,
    file_fingerprint,
)
from psyprobe.models.registry import BackendOptions, backend
from psyprobe.prompting import Prompt


class ReplayModel(Model):
    def __init__(self, spec: str, path: Path):
        if not path.is_file():
            raise UserError(f"{path}: no such replay file")
        self.info = ModelInfo(
            spec=spec,
            backend="replay",
            fingerprint=file_fingerprint(path),
            modes=("generate",),
            numbers_are_scale_values=True,
        )
        self.answers: dict[tuple[str, str], list[str]] = defaultdict(list)
        for n, row in json_lines(path):
            self._read_row(path, n, row)
        if not self.answers:
            raise UserError(f"{path}: the replay file has no answers")

    def _read_row(self, path: Path, n: int, row: Any) -> None:
        for field in ("instrument", "item", "response"):
            if not isinstance(row, dict) or field not in row:
                raise UserError(f"{path} line {n}: field {field!r} is missing")
        response = row["response"]
        if not isinstance(response, str | int | float) or isinstance(response, bool):
            raise UserError(f"{path} line {n}: field 'response' must be text or a number")
        text = (
            str(int(response))
            if isinstance(response, float) and response.is_integer()
            else str(response)
        )
        self.answers[(normalize_name(str(row["instrument"])), str(row["item"]))].append(text)

    def instruments(self) -> list[str]:
        return sorted({name for name, _ in self.answers})

    def samples(self) -> int:
        return max(len(v) for v in self.answers.values())

    def recorded_design(self) -> RecordedDesign:
        return RecordedDesign(tuple(self.instruments()), self.samples())

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Failure | None]:
        out: list[str | Failure | None] = []
        for prompt in prompts:
            source = prompt.source
            if source is None:
                out.append(None)
                continue
            recorded = self.answers.get((normalize_name(source.instrument), source.item), [])
            out.append(recorded[source.sample] if source.sample < len(recorded) else None)
        return out


@backend(
    "replay", usage="replay:FILE", name="replay", modes="generate",
    what="answers recorded elsewhere, one JSON object a line",
)  # fmt: skip
def open_replay(spec: str, rest: str, options: BackendOptions, connect: bool) -> ReplayModel:
    return ReplayModel(spec, Path(rest))
