"""Rebuild every output of a run directory from its stored responses; no model is called."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from psyprobe.instruments import Instrument, Question
from psyprobe.models import ModelInfo
from psyprobe.prompting import population
from psyprobe.records import ResponseRecord
from psyprobe.report.browser import answer_browser
from psyprobe.report.figures import draw_all
from psyprobe.report.html import inline, render_section
from psyprobe.report.markdown import render_markdown
from psyprobe.report.page import Section
from psyprobe.report.results import RunResults, StoreSummary
from psyprobe.runs.directory import keep_results, replacing, require_store, write_json
from psyprobe.runs.layout import Layout
from psyprobe.runs.planning import load_run
from psyprobe.runs.store import ResponseStore
from psyprobe.scoring.matrix import parse_record
from psyprobe.scoring.score import score_run
from psyprobe.version import __version__


def _trace(record: ResponseRecord, parsed: dict[str, Any]) -> dict[str, Any]:
    row = record.model_dump(mode="json")
    row.update(parsed)
    return row


def _read(rec: ResponseRecord, question: Question, info: ModelInfo) -> dict[str, Any]:
    """How an answer was read, for its trace line: the options as its prompt showed them, each
    with its label (a position where a replayed answer has no labels), and what it chose."""
    shown = [
        f"{rec.labels[k] if k < len(rec.labels) else k + 1}: {question.options[i].text}"
        for k, i in enumerate(rec.option_order)
    ]
    extra: dict[str, Any] = {"dimension": question.dimension, "options_shown": shown}
    if rec.mode == "generate":
        p = parse_record(rec, question, info.numbers_are_scale_values)
        chosen = None if p.position is None else shown[p.position]
        return extra | {
            "status": p.status,
            "parse_rule": p.rule,
            "position": p.position,
            "chosen": None
            if p.position is None
            else question.options[rec.option_order[p.position]].text,
            "read": f"{p.status} by rule {p.rule}" + (f" → {chosen}" if chosen else ""),
        }
    mass = sum(rec.probs or ())
    return extra | {
        "label_mass": mass,
        # scoring weighs each answer by its mass; below half, most probability fell on no
        # label at all
        "status": "ok" if mass >= 0.5 else "low_mass",
        "read": f"expected option over the labels, weighted by label mass {mass:.3f}",
    }


def rebuild(out: Path, figures: bool = True) -> RunResults:
    """Score the stored responses and write results.json, responses.jsonl and (unless
    ``figures`` is off: an import of many models) the figures; returns the results as
    written. The reports are the engine's (``engine.rebuild``)."""
    files = Layout(out)
    settings, info, instruments = load_run(out)
    require_store(files.store)
    questions = {
        name: {q.item_id: q for q in inst.questions(settings.language)}
        for name, inst in instruments.items()
    }
    grouped: dict[str, list[ResponseRecord]] = defaultdict(list)
    answers = 0
    # One pass over the store: each answer's trace line written as it is read, and the answer
    # kept for scoring.
    with ResponseStore(files.store) as store, replacing(files.responses) as fh:
        for rec in store.records():
            # Only this run's answers: the store may also hold a safety run's (same directory),
            # and an answer of another model (a store copied in from elsewhere) is never scored
            # as this one's. The instruments are pinned by run.json (an edited one is refused).
            if not (
                rec.role == "answer"
                and rec.instrument in instruments
                and rec.model_fingerprint == info.fingerprint
            ):
                continue
            answers += 1
            question = questions[rec.instrument][rec.item]
            fh.write(json.dumps(_trace(rec, _read(rec, question, info)), ensure_ascii=False))
            fh.write("\n")
            grouped[rec.instrument].append(rec)
        failures = store.failures()
        keep_results(files.store, files.results, answers)

    respondents = population(settings.respondents)
    scores, convergence = score_run(
        instruments,
        grouped,
        numbers_are_values=info.numbers_are_scale_values,
        seed=settings.seed,
        markers={r.index: r.markers for r in respondents},
        personas={r.index: r.persona for r in respondents if r.persona is not None},
    )
    results = RunResults(
        psyprobe_version=__version__,
        model=info,
        settings=settings,
        store=StoreSummary(file=files.store.name, n_responses=answers, failures=failures),
        instruments=scores,
        mtmm=convergence,
    )
    if figures:
        labels = {name: option_labels(inst) for name, inst in instruments.items()}
        drawn = draw_all(results, labels, files.figures)
        results.figures = {
            name: [str(p.relative_to(out)) for p in paths] for name, paths in drawn.items()
        }
    write_json(files.results, results.model_dump(mode="json"))
    return RunResults.load(out)  # as written, and knowing its directory


def personality_section(results: RunResults, out: Path) -> Section:
    """The run's part of report.md and report.html: every table, its figures and its answers."""
    figures = {name: inline([out / p for p in paths]) for name, paths in results.figures.items()}
    html = render_section("personality.html.j2", results=results, figures=figures)
    browser = answer_browser(Layout(out).responses, results)
    return Section(
        results.model.spec, render_markdown(results), html, tuple(b for b in (browser,) if b)
    )


def option_labels(instrument: Instrument) -> list[str]:
    """Names for the canonical options, for the position heat map."""
    question = instrument.questions()[0]
    if question.format == "likert":
        return [o.text for o in question.options]
    if question.format == "bipolar":
        n = len(question.options)
        return ["1 (left)", *map(str, range(2, n)), f"{n} (right)"]
    return [f"option {o.key or i + 1}" for i, o in enumerate(question.options)]
