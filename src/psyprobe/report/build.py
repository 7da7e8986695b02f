"""Rebuild every output of a run directory from its stored responses; no model is called."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from psyprobe import __version__
from psyprobe.instruments import Instrument
from psyprobe.prompting import population
from psyprobe.records import ResponseRecord
from psyprobe.report.figures import draw_all
from psyprobe.report.html import render_html
from psyprobe.report.markdown import render_markdown
from psyprobe.runs.directory import keep_results, replacing, require_store, write_json, write_text
from psyprobe.runs.runner import RunFiles, SafetyFiles, load_run
from psyprobe.runs.store import ResponseStore
from psyprobe.scoring.matrix import parse_record
from psyprobe.scoring.score import score_run


def _trace(record: ResponseRecord, parsed: dict[str, Any]) -> dict[str, Any]:
    row = record.model_dump(mode="json")
    row.update(parsed)
    return row


def rebuild(out: Path) -> dict[str, Any]:
    """Score the stored responses and write results.json, responses.jsonl and report.md."""
    files = RunFiles(out)
    settings, info, instruments = load_run(out)
    require_store(files.store)
    with ResponseStore(files.store) as store:
        # the store may also hold a safety run's answers (same directory): only this run's count
        records = [r for r in store.records() if r.instrument in instruments]
        failures = store.failures()
    keep_results(files.store, files.results, len(records))
    grouped: dict[str, list[ResponseRecord]] = defaultdict(list)
    for rec in records:
        grouped[rec.instrument].append(rec)

    questions = {
        name: {q.item_id: q for q in inst.questions(settings.language)}
        for name, inst in instruments.items()
    }
    with replacing(files.responses) as fh:
        for rec in records:
            question = questions[rec.instrument][rec.item]
            if rec.mode == "generate":
                p = parse_record(rec, question, info.numbers_are_scale_values)
                extra: dict[str, Any] = {
                    "status": p.status,
                    "parse_rule": p.rule,
                    "position": p.position,
                    "chosen": None
                    if p.position is None
                    else question.options[rec.option_order[p.position]].text,
                }
            else:
                extra = {"label_mass": sum(rec.probs or ())}
            fh.write(json.dumps(_trace(rec, extra), ensure_ascii=False) + "\n")

    scores, convergence = score_run(
        instruments,
        grouped,
        numbers_are_values=info.numbers_are_scale_values,
        seed=settings.seed,
        markers={r.index: r.markers for r in population(settings.respondents)},
    )
    results: dict[str, Any] = {
        "psyprobe_version": __version__,
        "model": info.model_dump(mode="json"),
        "settings": settings.model_dump(mode="json"),
        "store": {"file": files.store.name, "n_responses": len(records), "failures": failures},
        "instruments": {name: s.model_dump(mode="json") for name, s in scores.items()},
        "mtmm": [c.model_dump(mode="json") for c in convergence],
    }
    figures = draw_all(
        results, {name: option_labels(inst) for name, inst in instruments.items()}, files.figures
    )
    results["figures"] = {
        name: [str(p.relative_to(out)) for p in paths] for name, paths in figures.items()
    }
    write_json(files.results, results)
    write_text(files.report, render_markdown(results))
    write_html(out)
    return results


def write_html(out: Path) -> None:
    """report.html from what the directory holds: personality results, safety results or both."""
    files = RunFiles(out)
    results = _read_json(files.results)
    safety = _read_json(SafetyFiles(out).results)
    figures = {
        name: [out / p for p in paths] for name, paths in (results or {}).get("figures", {}).items()
    }
    write_text(files.html, render_html(results, figures, safety))


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def option_labels(instrument: Instrument) -> list[str]:
    """Names for the canonical options, for the position heat map."""
    question = instrument.questions()[0]
    if question.format == "likert":
        return [o.text for o in question.options]
    if question.format == "bipolar":
        n = len(question.options)
        return ["1 (left)", *map(str, range(2, n)), f"{n} (right)"]
    return [f"option {o.key or i + 1}" for i, o in enumerate(question.options)]
