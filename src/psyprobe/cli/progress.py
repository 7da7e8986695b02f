"""The command line's side of progress: an interrupted run said in one line, and a dry run's
table. The progress itself (bars, lines, run.log) is ``psyprobe/progress.py``, shared with the API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from psyprobe.cli.terminal import console
from psyprobe.progress import Reporter, duration

if TYPE_CHECKING:
    from psyprobe.engine.forecast import Forecast
    from psyprobe.engine.measure import Measure, Measured, Result
    from psyprobe.models import Model


def measured_or_exit(
    measure: Measure[Result], model: Model, out: Path, progress: Reporter
) -> Measured[Result]:
    """``engine.run`` followed by ``progress``; an interrupt says where the answers so far are
    kept and exits with status 130."""
    from psyprobe.engine import run
    from psyprobe.runs import ResponseStore
    from psyprobe.runs.layout import Layout

    try:
        return run(measure, model, out, progress)
    except KeyboardInterrupt:
        saved = 0
        if (Layout(out).store).is_file():
            with ResponseStore(Layout(out).store) as store:
                saved = store.count()
        progress.err.print(
            f"interrupted: {saved} answers are saved in {out}; rerun the same command to resume"
        )
        raise typer.Exit(130) from None
    finally:
        for failed in model.health():
            progress.err.print(
                f"note: endpoint {failed} (each failed request was retried, on another endpoint "
                "where there was one; one that failed every try is asked again by the next run)",
                soft_wrap=True,
            )


def print_forecast(
    made: Forecast, part: str, price_in: float | None = None, price_out: float | None = None
) -> None:
    """A dry run's table (prompts and tokens per ``part``), its time and threads, its cost."""
    rows = made.rows
    table = Table(part, "prompts", "prompt tokens", "output tokens (at most)")
    for row in rows:
        table.add_row(
            row.part,
            str(row.prompts),
            f"{row.prompt_tokens}" + ("" if row.tokens_counted else " (estimated)"),
            str(row.output_tokens),
        )
    total_in = sum(r.prompt_tokens for r in rows)
    total_out = sum(r.output_tokens for r in rows)
    table.add_row("total", str(made.prompts), str(total_in), str(total_out))
    console.print(table)
    shown = "–" if made.seconds is None else f"about {duration(made.seconds)}"
    console.print(f"time: {shown} ({made.how})", soft_wrap=True)
    if made.threads:
        console.print(f"threads: {made.threads} (of {os.cpu_count()} CPUs)")
    if price_in is not None or price_out is not None:
        cost = total_in / 1e6 * (price_in or 0.0) + total_out / 1e6 * (price_out or 0.0)
        console.print(
            f"estimated cost: {cost:.4f} (at {price_in or 0} / {price_out or 0} "
            "per million prompt / output tokens; output at its maximum length)"
        )
