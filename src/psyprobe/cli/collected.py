"""Answers collected elsewhere: ``psyprobe import``, ``psyprobe models-table``, ``psyprobe
export``. The measurement stack is imported inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from psyprobe.cli.terminal import console


def import_answers(
    files: Annotated[
        list[Path], typer.Argument(help="Answer files: .csv, .tsv, .jsonl or .parquet")
    ],
    instrument: Annotated[
        list[str] | None,
        typer.Option(
            help="Built-in name or JSON path; repeatable. Needed where a file has no "
            "instrument column"
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(help="Your column names: item=statement,response=answer,sample=rep"),
    ] = None,
    responses: Annotated[
        str,
        typer.Option(help="What a number in a response is: values (scale points) | positions"),
    ] = "values",
    out: Annotated[Path, typer.Option(help="Where the run directories go")] = Path(
        "psyprobe-import"
    ),
    figures: Annotated[
        bool, typer.Option(help="Draw each model's figures (psyprobe report DIR draws them later)")
    ] = False,
) -> None:
    """Import answers collected elsewhere: a scored and judged run directory per model."""
    from psyprobe.collected import IMPORT_RECORD, import_collection
    from psyprobe.collected.table import parse_columns
    from psyprobe.report.markdown import fmt
    from psyprobe.runs import Layout
    from psyprobe.runs.directory import read_record

    mapping = parse_columns(columns)
    results = import_collection(files, out, instrument or (), mapping, responses, figures)
    for name, r in results.items():
        assert r.directory is not None
        record = read_record(Layout(r.directory).run, "run")[IMPORT_RECORD]
        verdicts = [d.validity for inst in r.instruments.values() for d in inst.dimensions.values()]
        counts = {v: verdicts.count(v) for v in ("ok", "weak", "no_signal") if v in verdicts}
        unused = sum(record["unusable"].values())
        reasons = ", ".join(f"{n:,} {why}" for why, n in record["unusable"].items())
        valid = min((i.valid_rate for i in r.instruments.values()), default=None)
        console.print(
            f"{name}: {record['stored']:,} of {record['rows']:,} rows stored"
            + (f" ({unused:,} unusable: {reasons})" if unused else "")
            + (
                f", {record['unreadable response']:,} say no option"
                if record["unreadable response"]
                else ""
            )
            + "; "
            + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f"; valid {fmt(valid, 2)} → {r.directory}",
            soft_wrap=True,
        )
    console.print(f"wrote {out / 'models.md'}, {out / 'models.html'}", soft_wrap=True)


def models_table(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories, one per model")],
    out: Annotated[Path, typer.Option(help="Where models.json/md/html go")] = Path(
        "psyprobe-models"
    ),
) -> None:
    """Many runs side by side: scores, verdicts, their evidence, and what separates models."""
    from psyprobe.report.models import write_models_table
    from psyprobe.runs.directory import claim

    claim(out)
    table = write_models_table(run_dirs, out)
    console.print(f"{len(table.scores)} scores of {len(run_dirs)} runs; wrote {out / 'models.md'}")


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (generate mode)")],
    out: Annotated[Path, typer.Option(help="A new .jsonl or .csv file")] = Path("answers.jsonl"),
) -> None:
    """A run's answers in the long format `psyprobe import` reads (numbers are positions)."""
    from psyprobe.collected.export import write_long_format

    n = write_long_format(run_dir, out)
    console.print(f"wrote {n:,} answers to {out} (import with --responses positions)")
