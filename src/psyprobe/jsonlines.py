"""JSON lines, read a line at a time (any size of file): each line's value with its number, and
one line naming the file and line for text that is not UTF-8 or not JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every line that is not blank."""
    with path.open(encoding="utf-8-sig", errors="strict") as fh:
        try:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path} line {n}: not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise UserError(f"{path} line {n}: JSON nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
