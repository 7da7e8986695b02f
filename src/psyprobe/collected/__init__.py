"""Questionnaire answers collected elsewhere — a paper's released answer files, a survey of many
models — imported as ordinary run directories and judged like any run: the verdict needs only
the answers, the option order each was given under, and who gave it.

``import_collection`` reads every file first (nothing is written while a file may still be
refused), then writes one run directory per model under ``out`` and the many-model table
(``report.models``) beside them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from psyprobe.collected.answers import (
    UNREADABLE,
    UNUSABLE,
    ItemIndex,
    ModelAnswers,
    Responses,
    cell,
    collect,
    finish,
)
from psyprobe.collected.table import COLUMNS, read_answers
from psyprobe.errors import UserError
from psyprobe.instruments import Instrument, load_instrument
from psyprobe.instruments.schema import normalize_name
from psyprobe.models.base import ModelInfo, file_fingerprint
from psyprobe.report.results import RunResults
from psyprobe.runs import Layout, ResponseStore, RunSettings
from psyprobe.runs.directory import claim, hold_record
from psyprobe.runs.planning import resolve_instruments
from psyprobe.version import __version__

RESPONSES = ("values", "positions")
IMPORT_RECORD = "import"  # the part of run.json that says where the answers came from


def import_collection(
    files: Sequence[Path],
    out: Path,
    instruments: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    responses: str = "values",
    figures: bool = False,
) -> dict[str, RunResults]:
    """Import answer files (the long format: ``collected.table``) into ``out``: one run
    directory per model, scored, and ``models.json`` / ``models.md`` / ``models.html``.
    Returns each model's results by its name in the files. Figures are drawn where
    ``figures`` is on (else ``psyprobe report`` draws a model's)."""
    from psyprobe.engine import write_directory_reports
    from psyprobe.report.build import rebuild
    from psyprobe.report.models import write_models_table

    if responses not in RESPONSES:
        raise UserError(f"--responses: {responses!r} is not one of {', '.join(RESPONSES)}")
    if not files:
        raise UserError("import: name at least one answer file")
    given = resolve_instruments(instruments) if instruments else {}
    kind: Responses = "positions" if responses == "positions" else "values"
    reading = _Reading(given, dict(columns or {}), kind)
    for path in files:
        reading.read(path)
    claim(out)
    results: dict[str, RunResults] = {}
    models = list(reading.models.values())
    folders = [out / f for f in _folders([m.name for m in models])]
    for folder, model in zip(folders, models, strict=True):
        _write_run(folder, model, reading, responses)
        results[model.name] = rebuild(folder, figures)
        write_directory_reports(folder)
    write_models_table(folders, out)
    return results


class _Reading:
    """Every file's rows filed by model, before anything is written."""

    def __init__(self, given: dict[str, Instrument], columns: dict[str, str], responses: Responses):
        self.given, self.columns, self.responses = given, columns, responses
        self.models: dict[str, ModelAnswers] = {}
        self.indexes: dict[str, ItemIndex | None] = {k: ItemIndex.of(v) for k, v in given.items()}
        self.files: dict[str, str] = {}  # name → sha256, for the record

    def read(self, path: Path) -> None:
        frame = read_answers(path, self.columns)
        if "instrument" not in frame.columns and len(self.given) != 1:
            raise UserError(
                f"{path}: no 'instrument' column: name the instrument with --instrument "
                "(or map a column with --columns instrument=YOUR_COLUMN)"
            )
        self.files[path.name] = file_fingerprint(path)
        tally = Counter[str]()
        for row in frame.to_dict("records"):
            name = cell(row.get("model")) or path.stem
            model = self.models.setdefault(name, ModelAnswers(name))
            index = self._index(row.get("instrument"))
            why = collect(model, row, index, self.responses, f"{path.name}:{row['row']}")
            model.files.add(path.name)
            tally[why or "used"] += 1
        rows, used = sum(tally.values()), tally["used"]
        if rows == 0:
            raise UserError(f"{path}: no answers")
        if rows - used > rows / 2:  # most of the file says nothing a score can use
            counts = ", ".join(f"{n:,} {why}" for why, n in tally.most_common() if why != "used")
            raise UserError(f"{path}: {rows - used:,} of {rows:,} rows cannot be used ({counts})")

    def _index(self, name: Any) -> ItemIndex | None:
        """The instrument a row names (no column: the one --instrument names): one given with
        --instrument, else a built-in; None where it is neither."""
        if name is None:
            return self.indexes[next(iter(self.given))]
        key = normalize_name(cell(name))
        if key not in self.indexes:
            try:
                self.indexes[key] = None if self.given else ItemIndex.of(load_instrument(key))
            except UserError:
                self.indexes[key] = None
        return self.indexes[key]

    def instrument(self, name: str) -> Instrument:
        index = self.indexes[name]
        assert index is not None  # only rows of a known instrument are stored
        return index.instrument


def _folders(names: list[str]) -> list[str]:
    """A file-safe folder name per model, unique ignoring case."""
    taken: set[str] = set()
    out = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "model"
        folder, k = base, 1
        while folder.lower() in taken:
            k += 1
            folder = f"{base}-{k}"
        taken.add(folder.lower())
        out.append(folder)
    return out


def _write_run(out: Path, model: ModelAnswers, reading: _Reading, responses: str) -> None:
    """run.json and the answer store of one model: an ordinary run directory."""
    fingerprint = finish(model)
    names = sorted({r.instrument for r in model.records})
    info = ModelInfo(
        spec=f"import:{model.name}",
        backend="import",
        fingerprint=fingerprint,
        modes=("generate",),
        numbers_are_scale_values=responses == "values",
    )
    settings = RunSettings(
        model=info.spec,
        instruments=tuple(names),
        orders="recorded",
        respondents=0,
        mode="generate",
        samples=max(1, len(model.samples)),
        retries=0,
        stop_when_read=False,  # answers given elsewhere, whole
    )
    record = {
        "psyprobe_version": __version__,
        "settings": settings.model_dump(mode="json"),
        "model": info.model_dump(mode="json"),
        "instruments": {
            name: reading.instrument(name).model_dump(mode="json", by_alias=True) for name in names
        },
        IMPORT_RECORD: {
            "files": {name: reading.files[name] for name in sorted(model.files)},
            "columns": reading.columns,
            "responses": responses,
            "rows": model.rows,
            "stored": len(model.records),
            "unusable": {why: model.unusable[why] for why in UNUSABLE if model.unusable[why]},
            UNREADABLE: model.unreadable,
            "respondents": model.respondents,
            "samples": model.samples,
        },
    }
    hold_record(Layout(out).run, record, ("settings", "model", "instruments", IMPORT_RECORD), "run")
    with ResponseStore(Layout(out).store) as store, store.together():
        for r in model.records:
            store.add(r)


__all__ = ["COLUMNS", "RESPONSES", "import_collection"]
