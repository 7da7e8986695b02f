"""SQLite store of every response, written as it arrives; also the response cache.

A response is keyed by a hash of (model fingerprint, prompt, labels, mode, decoding settings,
sample, attempt, seed, and the question: instrument, item, order, respondent, role). A rerun of
an interrupted command finds its answers under the same keys and asks only for what is missing;
scoring reads only this table, never the model.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psyprobe.errors import STORAGE_ADVICE, UserError
from psyprobe.records import ResponseRecord

_COLUMNS = list(ResponseRecord.model_fields)
# The key scheme, as SQLite's user_version: 2 = keys name the question (records.request_key).
# A store of scheme 0 was written before; its answers are adopted under the new keys.
KEYS = 2
# The longest a batch's answers wait in an open transaction (``together``).
COMMIT_EVERY = 0.5
_JSON = {"option_order", "labels", "decoding", "probs", "conditions", "history"}


class ResponseStore:
    """The answers of one directory; one process at a time holds it (a second is refused)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = _lock(path)
        try:
            self._db = _open(path)
        except sqlite3.OperationalError as exc:  # the disk, not the file: full, read-only, I/O
            os.close(self._lock)
            raise UserError(f"{path}: {exc}; {STORAGE_ADVICE}") from None
        except sqlite3.DatabaseError as exc:  # the file itself: not an SQLite database
            os.close(self._lock)
            raise UserError(
                f"{path}: not a usable answer store ({exc}); move it away to start afresh"
            ) from None
        self._since = 0.0  # when the open transaction began (``together``)
        self.legacy = int(self._db.execute("PRAGMA user_version").fetchone()[0]) < KEYS

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        os.close(self._lock)  # closing the descriptor releases the lock

    @contextmanager
    def together(self) -> Iterator[None]:
        """Writes inside are committed together — at the end, and every COMMIT_EVERY seconds in
        between —, not each alone: a commit per answer was most of what a fast server's answer
        cost the client (bench/RESULTS.md). What was written before an interrupt is committed
        all the same; a kill -9 loses at most the last COMMIT_EVERY seconds of answers, which
        the next run asks again."""
        self._db.execute("BEGIN")
        self._since = time.monotonic()
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _written(self) -> None:
        if self._db.in_transaction and time.monotonic() - self._since >= COMMIT_EVERY:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._since = time.monotonic()

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
        self._written()

    def adopt(self, old: str, new: str, identity: dict[str, object]) -> bool:
        """File the answer stored under an old-scheme key ``old`` as ``new``, if it answers the
        question ``identity`` names (an old key was shared by every question with the same
        prompt: the answer is another question's when its fields differ)."""
        # a column added after the row was written is NULL there: it holds the field's default
        match = " AND ".join(f"COALESCE({column}, ?) = ?" for column in identity)
        fields = ResponseRecord.model_fields
        values: list[object] = [new, old]
        for column, value in identity.items():
            field = fields[column]
            values += [value if field.is_required() else field.default, value]
        done = self._db.execute(f"UPDATE responses SET key = ? WHERE key = ? AND {match}", values)
        return done.rowcount == 1

    def add_failure(self, key: str, instrument: str, item: str, error: str) -> None:
        self._db.execute(
            "INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
            (key, instrument, item, error, time.time()),
        )
        self._written()

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
        return map(_record, cursor)

    def get(self, key: str) -> ResponseRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM responses WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _record(row)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def _record(row: tuple[object, ...]) -> ResponseRecord:
    data = {
        c: json.loads(str(v)) if c in _JSON and v is not None else v
        for c, v in zip(_COLUMNS, row, strict=True)
        # NULL in a column added later: the field's default
        if v is not None or ResponseRecord.model_fields[c].is_required()
    }
    return ResponseRecord.model_validate(data)


def _lock(path: Path) -> int:
    """An exclusive lock beside the store, held until it is closed."""
    try:
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # named after the store: the lock file is psyprobe's own business
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(
            f"{path.parent}: another psyprobe process is using it; wait for it to finish"
        ) from None
    return fd


def _open(path: Path) -> sqlite3.Connection:
    # autocommit: a write outside ``together`` is on disk the moment it is made; the ask-loop's
    # answers are committed by ``together``.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still survives a killed process (the WAL is written before the
    # commit returns); it only stops waiting for the disk after every answer.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"CREATE TABLE IF NOT EXISTS responses ({', '.join(_COLUMNS)}, PRIMARY KEY (key))")
    # A store written before a field existed gains its column (old rows read the default).
    held = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    for column in _COLUMNS:
        if column not in held:
            db.execute(f"ALTER TABLE responses ADD COLUMN {column}")
    # Requests that got no answer: kept for the record, never used as a cached answer.
    db.execute("CREATE TABLE IF NOT EXISTS failures (key, instrument, item, error, created)")
    if not db.execute("SELECT 1 FROM responses LIMIT 1").fetchone():
        db.execute(f"PRAGMA user_version = {KEYS}")  # a new store: every key is of this scheme
    return db
