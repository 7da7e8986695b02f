"""What the command line prints after a personality run: its compact summary.

Compact so that whole names fit 80 columns (a log file, CI); the reports hold the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from psyprobe.report.markdown import fmt, verdict_summary

if TYPE_CHECKING:
    from psyprobe.report.results import RunResults


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
