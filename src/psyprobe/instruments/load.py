"""Find, read and validate instrument files, built-in or the user's."""

from __future__ import annotations

import difflib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from psyprobe.errors import UserError
from psyprobe.inputs import text_file
from psyprobe.instruments.schema import FORMATS, Instrument, normalize_name

_DATA = files("psyprobe.instruments") / "data"


# Study A's four questionnaires (Li et al. 2024): the default of a run
STUDY_A_INSTRUMENTS = ("sd3", "bfi", "fs", "swls")


MAX_FILE = 8 * 2**20  # bytes; the largest built-in instrument is under 50 kB


class InstrumentError(UserError):
    """An instrument file that cannot be used; the message names the file and the field."""


def builtin_paths() -> dict[str, Path]:
    """Short id (``sd3``) -> bundled file, in a stable order."""
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in sorted(_DATA.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out.replace("dimensions_", "dimensions")


def parse_instrument(raw: Any, source: str) -> Instrument:
    """Validate a decoded JSON document; ``source`` names it in errors."""
    if not isinstance(raw, dict):
        raise InstrumentError(f"{source}: the file must hold a JSON object")
    spec = raw.get("format")
    fmt = spec.get("type", "likert") if isinstance(spec, dict) else "likert"
    cls = FORMATS.get(fmt)
    if cls is None:
        raise InstrumentError(
            f"{source}: field format.type: {fmt!r} is not one of {sorted(FORMATS)}"
        )
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _field(tuple(err["loc"]))
        message = str(err["msg"]).removeprefix("Value error, ")
        # Errors raised by our own validators already start with the field they concern.
        if not where:
            where, _, message = message.partition(": ") if ": " in message else ("", "", message)
        raise InstrumentError(f"{source}: field {where or '(file)'}: {message}") from None


def read_instrument(path: Path) -> Instrument:
    try:
        raw = json.loads(text_file(path, MAX_FILE))
    except UserError as exc:
        raise InstrumentError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise InstrumentError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise InstrumentError(f"{path}: JSON nested too deeply to be an instrument") from None
    return parse_instrument(raw, str(path))


def load_instrument(name_or_path: str) -> Instrument:
    """A built-in instrument by short id or name (``sd3``, ``SD-3``), or a JSON file by path.

    A bare name that is a built-in's is the built-in, whatever the working directory holds (a
    file or folder named ``sd3`` there would otherwise shadow it, and a rerun elsewhere would
    ask another instrument); a path says it is one with a ``.json`` suffix or a folder part."""
    path = Path(name_or_path)
    is_path = _is_path(name_or_path)
    wanted = normalize_name(name_or_path)
    if not is_path:
        for short_id, builtin in builtin_paths().items():
            instrument = read_instrument(builtin)
            if wanted in (short_id, instrument.id):
                return instrument
    if is_path or path.exists():
        return read_instrument(path)
    close = difflib.get_close_matches(wanted, list(builtin_paths()), n=2, cutoff=0.6)
    raise InstrumentError(
        f"instrument {name_or_path!r}: not a built-in ({', '.join(builtin_paths())}) "
        "and no such file" + (f"; did you mean {' or '.join(close)}?" if close else "")
    )


def canonical_name(name: str) -> str:
    """One name per instrument: a built-in by any of its names is its short id (``SD-3`` →
    ``sd3``), so settings, cache keys and the store see one name; a path is left as given."""
    instrument = load_instrument(name)
    short_id = builtin_id(instrument)
    return short_id if short_id in builtin_paths() and not _is_path(name) else name


def _is_path(name: str) -> bool:
    path = Path(name)
    return path.suffix == ".json" or len(path.parts) > 1


def builtin_id(instrument: Instrument) -> str:
    """The short id users type for a built-in (``sd3``), else the normalized file name."""
    for short_id, path in builtin_paths().items():
        if read_instrument(path).id == instrument.id:
            return short_id
    return instrument.id
