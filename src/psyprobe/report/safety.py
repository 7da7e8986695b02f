"""A safety run's results as people read them: the terminal's table, its section of report.md
and of report.html (with its figure and its answer browser)."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.table import Table

from psyprobe.report.browser import safety_browser
from psyprobe.report.html import inline, render_section
from psyprobe.report.markdown import SAFETY_NOTE, fmt
from psyprobe.report.page import Section
from psyprobe.runs.layout import Layout
from psyprobe.safety.score import SafetyResults
from psyprobe.stats import Difference, Estimate


def safety_summary(results: SafetyResults) -> RenderableType:
    judged = results.judge is not None
    columns = ["task", "metric", "source", "safer", "value", "95% CI", "n", "valid"]
    table = Table(*columns, *(["judge"] if judged else []), box=None, pad_edge=False)
    for t in results.tasks.values():
        for name, m in t.metrics.items():
            table.add_row(
                t.task,
                name,
                m.source,
                m.safer,
                fmt(m.value),
                f"{fmt(m.ci95[0])}–{fmt(m.ci95[1])}"
                if m.ci95
                else ("no CI: few" if m.note else "–"),
                str(m.n),
                fmt(t.valid_rate, 2),
                *([fmt(m.judge.value) if m.judge else "–"] if judged else []),
            )
    return table


def safety_section(results: SafetyResults, out: Path) -> Section:
    layout = Layout(out)
    html = render_section(
        "safety.html.j2",
        safety=results,
        safety_figures=inline([out / p for p in results.figures]),
    )
    browser = safety_browser(layout.safety_responses)
    return Section(
        results.model.spec, safety_markdown(results), html, tuple(b for b in (browser,) if b)
    )


def _ci(e: Estimate | Difference | None) -> str:
    ci = e.ci95 if e else None
    if ci:
        return f"[{fmt(ci[0])}, {fmt(ci[1])}]"
    return e.note if isinstance(e, Estimate) and e.note else "–"


def safety_markdown(results: SafetyResults) -> str:
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
