"""SQLite store of every response, written as it arrives; also the response cache.

A response is keyed by a hash of (model fingerprint, prompt, labels, mode, decoding settings,
sample, attempt, seed). A rerun of an interrupted command finds its answers under the same keys and
asks only for what is missing; scoring reads only this table, never the model.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from psyprobe.records import ResponseRecord

_COLUMNS = list(ResponseRecord.model_fields)
_JSON = {"option_order", "labels", "decoding", "probs"}


class ResponseStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # autocommit: each response is on disk the moment it is added, so kill -9 loses nothing
        # that was answered.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL still survives a killed process (the WAL is written before the
        # commit returns); it only stops waiting for the disk after every answer.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS responses ({', '.join(_COLUMNS)}, PRIMARY KEY (key))"
        )
        # A store written before a field existed gains its column (old rows read the default).
        held = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        for column in _COLUMNS:
            if column not in held:
                self._db.execute(f"ALTER TABLE responses ADD COLUMN {column}")
        # Requests that got no answer: kept for the record, never used as a cached answer.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS failures (key, instrument, item, error, created)"
        )

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def has(self, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone()
        return row is not None

    def add(self, record: ResponseRecord) -> None:
        record = record.model_copy(update={"created": time.time()})
        row = record.model_dump()
        values = [json.dumps(row[c]) if c in _JSON else row[c] for c in _COLUMNS]
        self._db.execute(
            f"INSERT OR REPLACE INTO responses VALUES ({', '.join('?' * len(_COLUMNS))})", values
        )

    def add_failure(self, key: str, instrument: str, item: str, error: str) -> None:
        self._db.execute(
            "INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
            (key, instrument, item, error, time.time()),
        )

    def failures(self) -> dict[str, int]:
        """Failed requests still without an answer, counted by error."""
        rows = self._db.execute(
            "SELECT error, COUNT(DISTINCT key) FROM failures WHERE key NOT IN "
            "(SELECT key FROM responses) GROUP BY error ORDER BY error"
        )
        return {str(error): int(n) for error, n in rows}

    def records(self) -> Iterator[ResponseRecord]:
        cursor = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM responses ORDER BY instrument, item, order_index, "
            "sample, attempt"
        )
        for row in cursor:
            data = {
                c: json.loads(v) if c in _JSON and v is not None else v
                for c, v in zip(_COLUMNS, row, strict=True)
                # NULL in a column added later: the field's default
                if v is not None or ResponseRecord.model_fields[c].is_required()
            }
            yield ResponseRecord.model_validate(data)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
