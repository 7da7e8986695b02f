"""Rebuild safety.json, safety-responses.jsonl, safety.md and report.html from stored answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psyprobe.records import ResponseRecord
from psyprobe.report.build import write_html
from psyprobe.report.figures import safety_headlines
from psyprobe.report.markdown import SAFETY_NOTE, fmt
from psyprobe.runs import ResponseStore, RunFiles, SafetyFiles
from psyprobe.runs.directory import keep_results, replacing, require_store, write_text
from psyprobe.safety.planning import (
    answer_asks,
    answer_texts,
    judge_asks,
    load_safety,
    stored,
)
from psyprobe.safety.readers import judge_verdict
from psyprobe.safety.score import SafetyResults, StoreCount, score_tasks
from psyprobe.safety.tasks import select
from psyprobe.safety.toxicity import toxicity_classifier
from psyprobe.stats import Difference, Estimate
from psyprobe.version import __version__


def rebuild_safety(out: Path) -> SafetyResults:
    files = SafetyFiles(out)
    run = load_safety(out)
    settings = run.settings
    items = select(settings.suites, settings.limit, settings.seed)
    asks = answer_asks(settings, run.model, items)
    require_store(files.store)
    with ResponseStore(files.store) as store:
        answers = answer_texts(stored(store, asks))
        judged = stored(store, judge_asks(run.judge, items, answers)) if run.judge else {}
    keep_results(files.store, files.results, len(answers))
    verdicts = {item: v for item, rec in judged.items() if (v := judge_verdict(rec)) is not None}
    scored = score_tasks(items, answers, verdicts, settings.seed)
    with replacing(files.responses) as fh:
        for task, (_, readings) in scored.items():
            for r in readings:
                row = {
                    "task": task,
                    "item": r.item.item_id,
                    "group": r.item.stratum,
                    "system": r.item.system,
                    "prompt": r.item.user,
                    "meta": r.item.meta,
                    "answer": r.answer,
                    "judge": _judge_trace(judged.get(r.item.item_id)),
                    "valid": r.valid,
                    "flags": r.flags,
                    "value": r.value,
                    **r.detail,
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    results = SafetyResults(
        psyprobe_version=__version__,
        model=run.model,
        judge=run.judge,
        settings=settings,
        store=StoreCount(file=files.store.name, answers=len(answers), verdicts=len(verdicts)),
        toxicity_classifier=toxicity_classifier().card() if "toxicity" in settings.suites else None,
        tasks={name: r for name, (r, _) in scored.items()},
    )
    figures = RunFiles(out).figures
    figures.mkdir(exist_ok=True)
    drawn = safety_headlines(
        [(name, t.headline) for name, t in results.tasks.items()], figures / "safety-headlines.png"
    )
    results.figures = [str(drawn.relative_to(out))]
    write_text(files.results, results.model_dump_json(indent=2))
    write_text(files.report, render_safety_markdown(results))
    write_html(out)
    return SafetyResults.load(files.results)  # as written, and knowing its directory


def _judge_trace(record: ResponseRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"verdict": judge_verdict(record), "text": record.raw_text, "probs": record.probs}


def _ci(e: Estimate | Difference | None) -> str:
    ci = e.ci95 if e else None
    if ci:
        return f"[{fmt(ci[0])}, {fmt(ci[1])}]"
    return e.note if isinstance(e, Estimate) and e.note else "–"


def render_safety_markdown(results: SafetyResults) -> str:
    settings, model, judge = results.settings, results.model, results.judge
    lines = [
        "## Safety",
        "",
        f"Model `{model.spec}` ({model.backend}, `{model.fingerprint[:19]}…`); suites "
        f"{', '.join(settings.suites)}; limit {settings.limit or 'none'} per suite; seed "
        f"{settings.seed}; temperature {settings.temperature}; max tokens {settings.max_tokens}"
        + (f"; judge `{judge.spec}`" if judge else "")
        + f"; psyprobe {results.psyprobe_version}.",
        "",
        SAFETY_NOTE,
        "",
        "| suite | task | metric | source | safer | value | 95% CI | n | valid / answered |"
        " judge | agreement (κ) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in results.tasks.values():
        for name, m in t.metrics.items():
            agree = m.agreement
            lines.append(
                f"| {t.suite} | {t.task} | {name} | {m.source} | {m.safer} | {fmt(m.value)} "
                f"| {_ci(m)} | {m.n} | {t.n_valid} / {t.n_answered} | "
                + (f"{fmt(m.judge.value)} {_ci(m.judge)}" if m.judge else "–")
                + " | "
                + (f"{fmt(agree.percent, 2)} ({fmt(agree.kappa, 2)})" if agree else "–")
                + " |"
            )
    lifted = {name: t.lift for name, t in results.tasks.items() if t.lift}
    if lifted:
        lines += [
            "",
            "Attack lift: attack success minus compliance with the same harmful requests asked "
            "plainly (misuse), with Newcombe's 95 % CI; above 0, the attack adds compliance.",
            "",
            "| task | attack | lift | 95% CI | n attack / baseline |",
            "|---|---|---|---|---|",
        ]
        for name, by_attack in lifted.items():
            for attack, d in by_attack.items():
                lines.append(
                    f"| {name} | {attack} | {fmt(d.value)} | {_ci(d)} | {d.n_a} / {d.n_b} |"
                )
    card = results.toxicity_classifier
    if card:
        lines += [
            "",
            f"Toxicity scorer: {card.name}, trained on {card.trained_on}; held-out accuracy "
            f"{card.held_out_accuracy:.3f}, AUC {card.held_out_auc:.3f} (n = {card.n_test}).",
        ]
    for t in results.tasks.values():
        lines += ["", f"**{t.task}** — {t.what}. Reader: {t.reader}."]
        for name, m in t.metrics.items():
            groups = "; ".join(f"{g} {fmt(e.value, 2)} (n = {e.n})" for g, e in m.groups.items())
            lines.append(
                f"- {name} ({m.source}): {m.definition}."
                + (f" By group: {groups}." if groups else "")
            )
    return "\n".join(lines) + "\n"
