"""Where psyprobe writes: directories it may claim, the record each holds, files replaced whole.

A directory is written into only when it is new, empty or already psyprobe's; the record of what
it computes (run.json, safety-run.json, a training request) is created exactly once, so two
processes started at once cannot both pass the check; every output file is replaced atomically
(written beside, then renamed), so a kill leaves the old file or the new one, never a part.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel, ValidationError

from psyprobe.errors import UserError

Results = TypeVar("Results", bound=BaseModel)

# Files that mark a directory as psyprobe's own: the records runs, studies and sweeps write.
MARKERS = (
    "run.json",
    "safety-run.json",
    "responses.sqlite",
    "study.yaml",
    "sweep.json",
    "capability.json",
    "capability-run.json",
    "compare.json",
    "models.json",
    "psyprobe-request.json",
    "psyprobe-dpo.json",
)


def is_psyprobe_dir(folder: Path) -> bool:
    """It holds a marker, or a subdirectory that does (a sweep or study interrupted early)."""
    if any((folder / m).exists() for m in MARKERS):
        return True
    return any(
        sub.is_dir() and any((sub / m).exists() for m in MARKERS) for sub in folder.iterdir()
    )


def claim(folder: Path) -> None:
    """Make sure psyprobe may write into ``folder``: new, empty, or psyprobe's own."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder}: is a file, not a directory")
    if folder.is_dir() and any(folder.iterdir()) and not is_psyprobe_dir(folder):
        held = ", ".join(sorted(p.name for p in folder.iterdir())[:3])
        raise UserError(
            f"--out {folder}: a directory that is not psyprobe's (it holds {held}); "
            "choose a new or empty directory"
        )
    folder.mkdir(parents=True, exist_ok=True)


def claim_file(path: Path, read: Callable[[Path], object], option: str = "--out") -> None:
    """Make sure psyprobe may write ``path``: a new file, or one of the kind psyprobe writes
    there — one its reader for that kind (``read``: pairs, a vector) accepts —, which a rerun
    replaces. Anything else is the user's."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory, not a file")
    if not path.exists():
        return
    try:
        read(path)
    except UserError:
        raise UserError(
            f"{option} {path}: a file psyprobe did not write; choose a new file name"
        ) from None


def read_results(kind: type[Results], path: Path, what: str) -> Results:
    """A results file (results.json, safety.json) typed; one line where it is missing or not
    psyprobe's, with the command that rebuilds it."""
    rebuild = f"`psyprobe report {path.parent}`"
    if not path.is_file():
        raise UserError(f"{path.parent}: no {path.name} (run {rebuild})")
    try:
        return kind.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise UserError(
            f"{path}: not psyprobe {what} ({exc.errors()[0]['msg']}); rebuild them with {rebuild}"
        ) from None


def _finite(value: Any) -> Any:
    """Non-finite floats (a degenerate statistic) become None: JSON has no NaN or Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_text(data: Any) -> str:
    """Strict JSON (never NaN or Infinity), indented, UTF-8 as is."""
    return json.dumps(_finite(data), indent=2, ensure_ascii=False, allow_nan=False)


def _partial(path: Path, pid: int | None = None) -> Path:
    return path.with_name(f".{path.name}.{pid or os.getpid()}.partial")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _clear_stale(path: Path) -> None:
    """Remove what a killed writer of ``path`` left beside it (its process is gone)."""
    for left in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid = left.name[len(path.name) + 2 : -len(".partial")]
        if pid.isdigit() and left == _partial(path, int(pid)) and not _running(int(pid)):
            left.unlink(missing_ok=True)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A failed write names ``path``, the file the user knows, not the file beside it that was
    being written (or no file at all)."""
    try:
        yield
    except OSError as exc:
        if exc.filename in (None, str(_partial(path))):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """Write ``path`` whole or not at all: the caller writes the file it is given, beside
    ``path``, and it is renamed over ``path`` at the end (a figure, any binary file). What a
    writer killed before the rename left beside ``path`` is removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path)
    partial = _partial(path)
    try:
        with _naming(path):
            yield partial
        with _naming(path):
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """Write text to ``path`` whole or not at all (``replaced``)."""
    with replaced(path) as partial, _naming(path), partial.open("w", encoding="utf-8") as fh:
        yield fh


def write_text(path: Path, text: str) -> None:
    with replacing(path) as fh:
        fh.write(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json_text(data))


def require_store(store: Path) -> None:
    """A report is built from the store; without one there is nothing to build it from (and
    opening it would create an empty one)."""
    if not store.is_file():
        raise UserError(f"{store}: missing, so there is nothing to report from")


def keep_results(store: Path, results: Path, answers: int) -> None:
    """Never replace results with results from a store that holds none of the run's answers."""
    if answers == 0 and results.is_file():
        raise UserError(f"{store}: holds no answers of this run; {results.name} is kept as it is")


def read_record(path: Path, what: str) -> dict[str, Any]:
    """A directory's record, or one line on why it is not one."""
    if not path.is_file():
        raise UserError(f"{path.parent}: not a {what} directory (no {path.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a psyprobe {what} record")
    return data


def hold_record(path: Path, record: dict[str, Any], parts: Sequence[str], what: str) -> None:
    """Write the record of what a directory computes, or check the one there asks the same.

    A rerun resumes only the work it would do itself: anything else would mix answers (or
    training steps) of two different requests in one result.
    """
    claim(path.parent)
    partial = _partial(path)
    with _naming(path):
        partial.write_text(json_text(record), encoding="utf-8")
    try:
        # a hard link fails when the record exists: of two processes, exactly one creates it
        os.link(partial, path)
        return
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: exclusive creation, written in place
        try:
            with path.open("x", encoding="utf-8") as fh:
                fh.write(json_text(record))
            return
        except FileExistsError:
            pass
    finally:
        partial.unlink(missing_ok=True)
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a psyprobe record ({exc}); move it away") from None
    for part in parts:
        if held.get(part) != record[part]:
            new, old = record[part], held.get(part)
            keys = (
                f" ({', '.join(sorted(k for k in new if old.get(k) != new[k]))})"
                if isinstance(new, dict) and isinstance(old, dict)
                else ""
            )
            raise UserError(
                f"{path.parent}: holds a {what} with other {part}{keys} ({path.name}); "
                "rerun with the same options to resume, or choose another --out"
            )
