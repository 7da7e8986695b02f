"""Compare runs: per dimension, each run against the first, with tests corrected for multiplicity.

The unit of replication is what a run's own CI draws: the respondent (persona × framing ×
sample; for a run of the model as itself, each sample), with the respondents of one persona
(past the bank's 70 personas each returns with another framing) averaged into one unit. The
test is Welch's t on those units' scores; its 95 % CI is Welch's. p-values are corrected by
Holm's method over every comparison in the table. A comparison is not tested, and says why,
where either score is ``no_signal`` (a response style is not a trait to compare) or neither
run's respondents vary.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import stats

from psyprobe.errors import UserError
from psyprobe.prompting import population
from psyprobe.report.markdown import fmt, fmt_p
from psyprobe.report.results import RunResults
from psyprobe.runs.directory import claim, write_json, write_text
from psyprobe.runs.layout import Layout
from psyprobe.runs.planning import load_run
from psyprobe.runs.store import ResponseStore
from psyprobe.scoring.diagnostics import Validity
from psyprobe.scoring.matrix import AnswerMatrix
from psyprobe.scoring.score import clusters, drawn_scores, respondent_scores, spread


class RunSummary(BaseModel):
    label: str
    run_dir: str
    model: str
    fingerprint: str


class Comparison(BaseModel):
    instrument: str
    dimension: str
    scores: list[float | None]  # one per run, in the order given
    validity: list[str | None]  # each score's verdict, in the same order
    diff: float | None  # this run − the first run
    ci95: tuple[float, float] | None
    t: float | None
    p: float | None
    p_holm: float | None
    versus: str  # the run compared with the first
    note: str | None = None  # why the row was not tested


Scored = dict[
    str, dict[str, tuple[float | None, Validity]]
]  # instrument → dimension → (score, verdict)


def _matrices(run_dir: Path) -> tuple[dict[str, AnswerMatrix], dict[int, str]]:
    """The run's answers by instrument, and each respondent's persona."""
    settings, info, instruments = load_run(run_dir)
    with ResponseStore(Layout(run_dir).store) as store:
        records = [
            r
            for r in store.records()
            if r.role == "answer" and r.model_fingerprint == info.fingerprint
        ]
    matrices = {
        name: AnswerMatrix.build(
            inst, [r for r in records if r.instrument == name], info.numbers_are_scale_values
        )
        for name, inst in instruments.items()
    }
    personas = population(settings.respondents)
    return matrices, {r.index: r.persona for r in personas if r.persona is not None}


def respondent_table(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Each respondent's score, by instrument and dimension, from the run's own answers."""
    matrices, _ = _matrices(run_dir)
    return {name: {dim: respondent_scores(m, dim) for dim in m.dimensions}
            for name, m in matrices.items()}  # fmt: skip


def _drawn_table(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Each drawn unit's score (``scoring.score.drawn_scores``), by instrument and dimension."""
    matrices, personas = _matrices(run_dir)
    groups = {name: clusters(m, personas) for name, m in matrices.items()}
    return {name: {dim: drawn_scores(m, dim, groups[name]) for dim in m.dimensions}
            for name, m in matrices.items()}  # fmt: skip


def _load(
    run_dir: Path, label: str | None = None
) -> tuple[RunSummary, dict[str, dict[str, np.ndarray]], Scored]:
    drawn = _drawn_table(run_dir)
    results = RunResults.load(run_dir)
    info = results.model
    scores = {
        name: {dim: (d.score, d.validity) for dim, d in inst.dimensions.items()}
        for name, inst in results.instruments.items()
    }
    summary = RunSummary(
        label=label or f"{info.spec} ({run_dir.name})",
        run_dir=str(run_dir),
        model=info.spec,
        fingerprint=info.fingerprint,
    )
    return summary, drawn, scores


def compare_runs(
    run_dirs: list[Path], labels: list[str] | None = None
) -> tuple[list[RunSummary], list[Comparison]]:
    """Every run against the first; ``labels`` name the runs (default: spec and folder)."""
    from statsmodels.stats.multitest import multipletests

    if labels and len(labels) != len(run_dirs):
        raise UserError(
            f"--label: {len(labels)} labels for {len(run_dirs)} runs; give one per run, in order"
        )
    loaded = [_load(d, labels[i] if labels else None) for i, d in enumerate(run_dirs)]
    runs = [summary for summary, _, _ in loaded]
    _, base_resp, base_scores = loaded[0]
    for summary, _, theirs in loaded[1:]:
        if not set(theirs) & set(base_scores):  # a table of dashes compares nothing
            raise UserError(
                f"{summary.run_dir}: no instrument in common with {runs[0].run_dir} "
                f"({', '.join(theirs) or 'none'} vs {', '.join(base_scores) or 'none'})"
            )
    rows: list[Comparison] = []
    for name, dims in base_scores.items():
        for dim in dims:
            scored = [s.get(name, {}).get(dim, (None, None)) for _, _, s in loaded]
            scores = [score for score, _ in scored]
            verdicts = [verdict for _, verdict in scored]
            baseline, base_verdict = dims[dim]
            for (summary, resp, _), (score, verdict) in zip(loaded[1:], scored[1:], strict=True):
                a = base_resp[name][dim]
                b = resp.get(name, {}).get(dim, np.array([]))
                row = Comparison(
                    instrument=name,
                    dimension=dim,
                    scores=scores,
                    validity=verdicts,
                    diff=None,
                    ci95=None,
                    t=None,
                    p=None,
                    p_holm=None,
                    versus=summary.label,
                )
                if score is not None and baseline is not None:
                    row.diff = score - baseline
                silent = [
                    label
                    for label, v in ((runs[0].label, base_verdict), (summary.label, verdict))
                    if v == "no_signal"
                ]
                if silent:
                    row.note = f"not tested: no_signal in {' and '.join(silent)}"
                elif len(a) > 1 and len(b) > 1 and not (spread(a) or spread(b)):
                    row.note = "not tested: no variance in either run"
                elif len(a) > 1 and len(b) > 1:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        test = stats.ttest_ind(b, a, equal_var=False)
                        ci = test.confidence_interval(0.95)
                    row.t, row.p = float(test.statistic), float(test.pvalue)
                    row.ci95 = (float(ci.low), float(ci.high))
                rows.append(row)
    tested = [r for r in rows if r.p is not None]
    if tested:
        adjusted = multipletests([r.p for r in tested], method="holm")[1]
        for row, p in zip(tested, adjusted, strict=True):
            row.p_holm = float(p)
    return runs, rows


def render_comparison(runs: list[RunSummary], rows: list[Comparison]) -> str:
    header = [
        "Instrument",
        "Dimension",
        *[r.label for r in runs],
        "vs",
        "Δ",
        "95% CI",
        "t",
        "p",
        "p (Holm)",
        "Note",
    ]
    lines = [
        "# psyprobe comparison",
        "",
        f"Baseline: {runs[0].label}. Δ = run − baseline; Welch's t on respondent scores "
        "(persona × framing × sample; a persona's respondents averaged); p corrected by Holm "
        "over every tested row. A score marked no_signal measured a response style, not the "
        "trait: its row is not tested.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        ci = f"[{fmt(r.ci95[0])}, {fmt(r.ci95[1])}]" if r.ci95 else "–"
        lines.append(
            "| "
            + " | ".join(
                [
                    r.instrument,
                    r.dimension,
                    *[marked(s, v) for s, v in zip(r.scores, r.validity, strict=True)],
                    r.versus,
                    fmt(r.diff),
                    ci,
                    fmt(r.t, 2),
                    fmt_p(r.p),
                    fmt_p(r.p_holm),
                    r.note or "",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def marked(score: float | None, verdict: str | None, digits: int = 3) -> str:
    """A score with its verdict where the verdict is not ok, so no reader takes it as a trait."""
    return fmt(score, digits) + ("" if verdict in (None, "ok") else f" ({verdict})")


def write_comparison(
    run_dirs: list[Path], out: Path, labels: list[str] | None = None
) -> tuple[list[RunSummary], list[Comparison]]:
    runs, rows = compare_runs(run_dirs, labels)
    claim(out)
    payload: dict[str, Any] = {
        "runs": [r.model_dump() for r in runs],
        "comparisons": [r.model_dump(mode="json") for r in rows],
    }
    write_json(out / "compare.json", payload)
    write_text(out / "compare.md", render_comparison(runs, rows))
    return runs, rows
