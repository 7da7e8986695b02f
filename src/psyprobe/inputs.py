"""Reading the files a user gives: one line naming the file (and line) for whatever is wrong
with one — missing, a folder, too large to be what it claims, not UTF-8, not JSON.

A whole-file text (an instrument, a study) is read only below a size no real one comes near, so
a wrong file the size of a disk image is refused before it fills memory; JSON lines are read a
line at a time, any size of file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError


def text_file(path: Path, limit: int) -> str:
    """The whole text of ``path``, at most ``limit`` bytes of UTF-8."""
    if path.is_dir():
        raise UserError(f"{path}: a folder, not a file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    size = path.stat().st_size
    if size > limit:
        raise UserError(f"{path}: {size:,} bytes, too large to be one (at most {limit:,})")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None


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
