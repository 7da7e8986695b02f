"""The bundled data files: reading them, and the fixed ToxiGen split."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def read_rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return [row for row in csv.DictReader(fh) if row["statement"].strip()]


def read_json(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def toxigen_split(rows: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Fixed 80/20 split by statement hash: the classifier trains on one part, prompts come from
    the other, so it never scores a continuation of a statement it was trained on."""
    train: list[int] = []
    test: list[int] = []
    for i, row in enumerate(rows):
        (test if int(digest(row["statement"]), 16) % 5 == 0 else train).append(i)
    return train, test
