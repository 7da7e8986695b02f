"""The ``psyprobe`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from psyprobe.errors import UserError
from psyprobe.instruments import builtin_paths, load_instrument, read_instrument
from psyprobe.models import ALIASES, BACKENDS, Mode, open_model
from psyprobe.models.replay import ReplayModel
from psyprobe.prompting import check_design
from psyprobe.report import rebuild
from psyprobe.runs import STUDY_A, RunFiles, RunSettings, collect
from psyprobe.runs.runner import resolve_instruments, write_run_json
from psyprobe.runs.store import ResponseStore

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure and edit the personality of language models.",
)
instruments_app = typer.Typer(no_args_is_help=True, help="List, show and validate instruments.")
app.add_typer(instruments_app, name="instruments")
console = Console()
err = Console(stderr=True)


@app.command()
def run(
    model: Annotated[str, typer.Option(help="Model spec: an alias, gguf:PATH, replay:FILE")] = (
        "smollm2"
    ),
    instrument: Annotated[
        list[str] | None,
        typer.Option(
            help="Built-in name (sd3, bfi, fs, swls, oejts) or JSON path; repeatable. "
            "Default: the four study-A instruments (replay: those in the file)."
        ),
    ] = None,
    orders: Annotated[str, typer.Option(help="all | latin | random:K | fixed")] = "latin",
    mode: Annotated[str, typer.Option(help="logprob | generate")] = "logprob",
    samples: Annotated[int, typer.Option(help="Answers sampled per prompt (generate)")] = 1,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (generate)")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Answer length limit (generate)")] = 48,
    retries: Annotated[int, typer.Option(help="Re-asks of an unreadable answer (generate)")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for orders, sampling and bootstrap")] = 0,
    out: Annotated[Path, typer.Option(help="Run directory (rerun to resume)")] = Path(
        "psyprobe-run"
    ),
) -> None:
    """Administer instruments to a model and write results.json, responses.jsonl, report.md."""
    if mode not in ("logprob", "generate"):
        raise UserError(f"--mode: {mode!r} is not one of logprob, generate")
    check_design(orders)
    the_model = open_model(model)
    try:
        names = tuple(instrument) if instrument else STUDY_A
        count = samples
        if isinstance(the_model, ReplayModel):
            # Recorded answers are what they are: one per line, asked in the order they were.
            names = tuple(instrument) if instrument else tuple(the_model.instruments())
            orders, mode, count, retries = "fixed", "generate", the_model.samples(), 0
        mode_: Mode = "generate" if mode == "generate" else "logprob"
        settings = RunSettings(
            model=model,
            instruments=names,
            orders=orders,
            mode=mode_,
            samples=count if mode_ == "generate" else 1,
            temperature=temperature,
            max_tokens=max_tokens,
            retries=retries,
            seed=seed,
        )
        instruments = resolve_instruments(settings.instruments)
        files = RunFiles(out)
        write_run_json(files, settings, the_model.info, instruments)
        with (
            ResponseStore(files.store) as store,
            Progress(
                TextColumn("[bold]asking[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar,
        ):
            task = bar.add_task("asking", total=None)
            try:
                asked = collect(
                    settings,
                    the_model,
                    instruments,
                    store,
                    settings.samples,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            except KeyboardInterrupt:
                err.print(
                    f"interrupted: {store.count()} answers are saved in {out}; "
                    "rerun the same command to resume"
                )
                raise typer.Exit(130) from None
    finally:
        the_model.close()
    results = rebuild(out)
    err.print(f"{asked} new answers, {results['store']['n_responses']} stored")
    _summary(results)
    console.print(f"wrote {files.results}, {files.responses}, {files.report}")


def _summary(results: dict[str, object]) -> None:
    instruments = results["instruments"]
    assert isinstance(instruments, dict)
    table = Table("instrument", "dimension", "score", "95% CI", "norm", "valid")
    for name, inst in instruments.items():
        for dim, d in inst["dimensions"].items():
            ci = d["ci95"]
            norm = d["norm"]
            table.add_row(
                name,
                dim,
                "–" if d["score"] is None else f"{d['score']:.2f}",
                f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "–",
                f"{norm['mean']:.2f}" if norm else "–",
                f"{d['valid_rate']:.2f}",
            )
    console.print(table)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory")]) -> None:
    """Rebuild results.json, responses.jsonl and report.md from stored responses (no model)."""
    results = rebuild(run_dir)
    _summary(results)
    console.print(f"rebuilt {RunFiles(run_dir).report}")


@app.command()
def models() -> None:
    """List model aliases and backends with what each supports."""
    table = Table("spec", "backend", "modes", "what")
    for alias in ALIASES.values():
        table.add_row(alias.name, "llama.cpp", "logprob, generate", alias.description)
    for spec, (backend, modes, what) in BACKENDS.items():
        table.add_row(spec, backend, modes, what)
    console.print(table)


@instruments_app.command("list")
def instruments_list() -> None:
    """The built-in instruments."""
    table = Table("name", "full name", "items", "dimensions", "licence")
    for short_id, path in builtin_paths().items():
        inst = read_instrument(path)
        lic = inst.license if isinstance(inst.license, str) else json.dumps(inst.license)
        table.add_row(
            short_id,
            inst.full_name or inst.name,
            str(len(inst.questions())),
            ", ".join(d.id for d in inst.dimensions()),
            (lic or "")[:60],
        )
    console.print(table)


@instruments_app.command("show")
def instruments_show(
    name: Annotated[str, typer.Argument(help="Built-in name or JSON path")],
) -> None:
    """Items, keys, norms, citation and licence of one instrument."""
    inst = load_instrument(name)
    console.print(f"[bold]{inst.name}[/bold] — {inst.full_name or ''}")
    for label, value in (
        ("citation", inst.citation),
        ("licence", inst.license),
        ("provenance", inst.provenance),
    ):
        if value:
            console.print(
                f"[bold]{label}:[/bold] {value if isinstance(value, str) else json.dumps(value)}"
            )
    dims = Table("dimension", "aggregation", "norm mean (SD, n)", "poles")
    for d in inst.dimensions():
        norm = f"{d.norm.mean} ({d.norm.sd}, {d.norm.n})" if d.norm else "–"
        dims.add_row(d.id, d.aggregation, norm, " / ".join(d.poles) if d.poles else "–")
    console.print(dims)
    items = Table("id", "dimension", "reversed", "text", "options")
    for q in inst.questions():
        items.add_row(
            q.item_id,
            q.dimension,
            "R" if q.reverse else "",
            q.text,
            " | ".join(f"{o.text}={o.value:g}" for o in q.options),
        )
    console.print(items)


@instruments_app.command("validate")
def instruments_validate(
    path: Annotated[Path, typer.Argument(help="An instrument JSON file")],
) -> None:
    """Check an instrument file; names the file and field of the first problem (exit 2)."""
    inst = read_instrument(path)
    console.print(
        f"{path}: ok — {inst.name}, {len(inst.questions())} items, "
        f"{len(inst.dimensions())} dimensions"
    )


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
