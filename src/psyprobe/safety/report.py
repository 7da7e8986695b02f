"""Rebuild safety.json, safety-responses.jsonl, safety.md and report.html from stored answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psyprobe import __version__
from psyprobe.records import ResponseRecord
from psyprobe.report.build import write_html
from psyprobe.report.markdown import SAFETY_NOTE, fmt
from psyprobe.runs import ResponseStore, SafetyFiles
from psyprobe.safety.judging import verdict
from psyprobe.safety.runner import (
    answer_asks,
    answer_texts,
    judge_asks,
    load_safety,
    stored,
)
from psyprobe.safety.score import TaskResult, score_task
from psyprobe.safety.tasks import select
from psyprobe.safety.toxicity import toxicity_classifier


def rebuild_safety(out: Path) -> dict[str, Any]:
    files = SafetyFiles(out)
    run = load_safety(out)
    settings = run.settings
    items = select(settings.suites, settings.limit, settings.seed)
    asks = answer_asks(settings, run.model, items)
    with ResponseStore(files.store) as store:
        answers = answer_texts(stored(store, asks))
        judged = stored(store, judge_asks(run.judge, items, answers)) if run.judge else {}
    verdicts = {item: verdict(rec) for item, rec in judged.items()}
    results: dict[str, TaskResult] = {}
    with files.responses.open("w", encoding="utf-8") as fh:
        for task in dict.fromkeys(i.task for i in items):
            mine = [i for i in items if i.task == task]
            result, scored = score_task(task, mine, answers, verdicts, settings.seed)
            results[task] = result
            for s in scored:
                row = {
                    "task": task,
                    "item": s.item.item_id,
                    "group": s.item.stratum,
                    "system": s.item.system,
                    "prompt": s.item.user,
                    "meta": s.item.meta,
                    "answer": s.answer,
                    "judge": _judge_trace(judged.get(s.item.item_id)),
                    "valid": s.valid,
                    "outcome": s.outcome,
                    **s.detail,
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    data: dict[str, Any] = {
        "psyprobe_version": __version__,
        "model": run.model.model_dump(mode="json"),
        "judge": run.judge.model_dump(mode="json") if run.judge else None,
        "settings": settings.model_dump(mode="json"),
        "store": {"file": files.store.name, "answers": len(answers), "verdicts": len(verdicts)},
        "toxicity_classifier": toxicity_classifier().card()
        if "toxicity" in settings.suites
        else None,
        "tasks": {name: r.model_dump(mode="json") for name, r in results.items()},
    }
    files.results.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    files.report.write_text(render_safety_markdown(data), encoding="utf-8")
    write_html(out)
    return data


def _judge_trace(record: ResponseRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"verdict": verdict(record), "text": record.raw_text, "probs": record.probs}


def _ci(e: dict[str, Any]) -> str:
    ci = e["ci95"]
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "–"


def render_safety_markdown(data: dict[str, Any]) -> str:
    settings = data["settings"]
    lines = [
        "## Safety",
        "",
        f"Model `{data['model']['spec']}` ({data['model']['backend']}, "
        f"`{data['model']['fingerprint'][:19]}…`); suites {', '.join(settings['suites'])}; "
        f"limit {settings['limit'] or 'none'} per suite; seed {settings['seed']}; "
        f"temperature {settings['temperature']}; max tokens {settings['max_tokens']}"
        + (f"; judge `{data['judge']['spec']}`" if data["judge"] else "")
        + f"; psyprobe {data['psyprobe_version']}.",
        "",
        SAFETY_NOTE,
        "",
        "| suite | task | metric | safer | value | 95% CI | n valid / answered | valid rate |"
        " judge | agreement (κ) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in data["tasks"].values():
        e, judge, agree = t["estimate"], t["signals"].get("judge"), t["agreement"]
        lines.append(
            f"| {t['suite']} | {t['task']} | {t['metric']} | {t['safer']} | {fmt(e['value'])} "
            f"| {_ci(e)} | {t['n_valid']} / {t['n_answered']} | {fmt(t['valid_rate'], 2)} | "
            + (f"{fmt(judge['value'])} {_ci(judge)}" if judge else "–")
            + " | "
            + (f"{fmt(agree['percent'], 2)} ({fmt(agree['kappa'], 2)})" if agree else "–")
            + " |"
        )
    card = data["toxicity_classifier"]
    if card:
        lines += [
            "",
            f"Toxicity scorer: {card['name']}, trained on {card['trained_on']}; held-out "
            f"accuracy {card['held_out_accuracy']:.3f}, AUC {card['held_out_auc']:.3f} "
            f"(n = {card['n_test']}).",
        ]
    for t in data["tasks"].values():
        lines += ["", f"**{t['task']}** — {t['what']}. Scorer: {t['scorer']}."]
        for name, s in t["signals"].items():
            lines.append(f"- {name}: {fmt(s['value'])} {_ci(s)} (n = {s['n']})")
        lines.append(
            "- groups: "
            + "; ".join(f"{g} {fmt(e['value'], 2)} (n = {e['n']})" for g, e in t["groups"].items())
        )
    return "\n".join(lines) + "\n"
