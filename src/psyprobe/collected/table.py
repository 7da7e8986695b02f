"""Answer files in the long format, read into one table with psyprobe's column names.

One row per answer; CSV (or TSV), JSON lines or Parquet. Columns: ``item`` and ``response``
always; ``model``, ``instrument``, ``order``, ``respondent``, ``sample`` and ``prompt`` where the
file has them. ``columns`` maps the file's own names onto these (``{"item": "statement"}``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from psyprobe.errors import UserError
from psyprobe.inputs import json_lines

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("model", "instrument", "item", "response", "order", "respondent", "sample", "prompt")
REQUIRED = ("item", "response")
# Rows a collection may hold: a million answers is four PsyBORGS-size models; more is read as
# a mistake (a file of something else) before memory runs out.
MAX_ROWS = 1_000_000
_CHUNK = 100_000


def parse_columns(text: str | None) -> dict[str, str]:
    """``"item=statement,response=answer"`` as ``{"item": "statement", ...}``."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not theirs:
            raise UserError(f"--columns: {part!r} is not NAME=COLUMN")
        if ours not in COLUMNS:
            raise UserError(f"--columns: {ours!r} is not one of {', '.join(COLUMNS)}")
        mapping[ours] = theirs
    return mapping


def read_answers(path: Path, columns: Mapping[str, str]) -> pd.DataFrame:
    """The file's rows with psyprobe's column names (as objects: numbers, text or mappings),
    the row number as the file counts it in ``row``."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    chunks = list(_chunks(path))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    first_row = 2 if path.suffix.lower() in (".csv", ".tsv") else 1  # after a header line
    frame.insert(0, "row", range(first_row, first_row + len(frame)))
    held = set(frame.columns)
    for ours, theirs in columns.items():
        if theirs not in held:
            raise UserError(
                f"--columns {ours}={theirs}: {path} has no column {theirs!r} "
                f"(it has {', '.join(map(str, frame.columns[1:])) or 'none'})"
            )
    frame = frame.rename(columns={theirs: ours for ours, theirs in columns.items()})
    for name in REQUIRED:
        if name not in frame.columns:
            raise UserError(
                f"{path}: no {name!r} column (map yours with --columns {name}=YOUR_COLUMN)"
            )
    return frame[["row", *(c for c in COLUMNS if c in frame.columns)]]


def _chunks(path: Path) -> Iterator[pd.DataFrame]:
    """The file in chunks, refused once it passes MAX_ROWS (before it is all in memory)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            yield _parquet(path)
            return
        if suffix in (".csv", ".tsv"):
            reader = pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
                chunksize=_CHUNK,
            )
        elif suffix in (".jsonl", ".ndjson", ".json"):
            reader = _json_lines(path)
        else:
            raise UserError(f"{path}: not .csv, .tsv, .jsonl or .parquet")
        rows = 0
        for chunk in reader:
            rows += len(chunk)
            if rows > MAX_ROWS:
                raise UserError(f"{path}: more than {MAX_ROWS:,} rows; split the collection")
            yield chunk
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable table ({str(exc).strip()[:160]})") from None


def _json_lines(path: Path) -> Iterator[pd.DataFrame]:
    """JSON lines a chunk at a time; each line an object (a response may itself be one)."""
    import pandas as pd

    rows: list[dict[str, object]] = []
    for n, row in json_lines(path):
        if not isinstance(row, dict):
            raise UserError(f"{path} line {n}: not a JSON object")
        rows.append(row)
        if len(rows) == _CHUNK:
            yield pd.DataFrame(rows, dtype=object)
            rows = []
    if rows:
        yield pd.DataFrame(rows, dtype=object)


def _parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.ParquetFile(path)
        if table.metadata.num_rows > MAX_ROWS:
            raise UserError(f"{path}: more than {MAX_ROWS:,} rows; split the collection")
        return table.read().to_pandas().astype(object)
    except (OSError, ValueError) as exc:  # pyarrow's errors for a file that is not Parquet
        raise UserError(f"{path}: not a readable Parquet file ({str(exc)[:160]})") from None
