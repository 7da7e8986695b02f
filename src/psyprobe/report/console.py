"""What the command line prints after a measurement: each result type's compact summary.

Compact so that whole names fit 80 columns (a log file, CI); the reports hold the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from psyprobe.report.markdown import fmt, verdict_summary

if TYPE_CHECKING:
    from psyprobe.capability import CapabilityResults
    from psyprobe.report.results import RunResults
    from psyprobe.safety.score import SafetyResults


def personality_summary(results: RunResults) -> RenderableType:
    columns = ("instrument", "dimension", "score", "95% CI", "norm", "valid", "validity")
    table = Table(*columns, box=None, pad_edge=False)
    verdicts: list[str] = []
    for name, inst in results.instruments.items():
        for dim, d in inst.dimensions.items():
            verdicts.append(d.validity)
            table.add_row(
                name,
                dim,
                fmt(d.score, 2),
                f"[{fmt(d.ci95[0], 2)}, {fmt(d.ci95[1], 2)}]" if d.ci95 else "–",
                fmt(d.norm.mean, 2) if d.norm else "–",
                fmt(d.valid_rate, 2),
                d.validity,
            )
    return Group(table, Text(verdict_summary(verdicts)))


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


def capability_summary(results: CapabilityResults) -> RenderableType:
    lines = [
        f"{part}: {fmt(e.value)}" + (f" [{fmt(e.ci95[0])}, {fmt(e.ci95[1])}]" if e.ci95 else "")
        for part, e in results.arc.items()
    ]
    if results.perplexity is not None:
        lines.append(f"perplexity: {results.perplexity:.2f}")
    return Text("\n".join(lines))
