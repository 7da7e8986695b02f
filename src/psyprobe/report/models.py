"""Many models side by side: models.json, models.md and models.html.

One row per model × dimension with its score, CI and verdict; per model and instrument the
evidence the verdict rests on (content and order η² with their permutation p, the position
index, how often the first and the last option shown is chosen against chance, key consistency,
valid rate); across models, the share of the variance of respondent scores that lies between
models (one-way random effects, ANOVA estimator for unequal group sizes; 95 % CI by a bootstrap
over models). A share near 0 says the models cannot be told apart on that dimension.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from psyprobe.report.compare import respondent_table
from psyprobe.report.markdown import fmt, fmt_p
from psyprobe.report.results import RunResults
from psyprobe.runs.directory import write_json, write_text
from psyprobe.scoring.diagnostics import Validity
from psyprobe.stats import percentile_ci

MODELS_FILE = "models.json"
SHARE_RESAMPLES = 2000


class ModelScore(BaseModel):
    model: str
    run_dir: str
    instrument: str
    dimension: str
    score: float | None
    ci95: tuple[float, float] | None
    validity: Validity
    validity_reasons: list[str]
    key_consistency: str | None
    n_respondents: int
    valid_rate: float


class ModelEvidence(BaseModel):
    """What the verdicts of one model's instrument rest on."""

    model: str
    instrument: str
    content: float | None  # η² of the statement, order and respondent removed
    content_p: float | None
    order: float | None  # η² of the option order
    order_p: float | None
    position_bias: float | None
    primacy: float | None  # share of answers choosing the first option shown
    recency: float | None  # ... the last option shown
    chance: float | None  # 1 / options: what primacy and recency are without a habit
    valid_rate: float
    n_orders: int
    n_respondents: int


class BetweenModels(BaseModel):
    instrument: str
    dimension: str
    n_models: int
    share: float | None  # variance between models / total, respondents within models
    ci95: tuple[float, float] | None
    note: str | None = None


class ModelsTable(BaseModel):
    """models.json: every model's scores and evidence, and what separates the models."""

    scores: list[ModelScore]
    evidence: list[ModelEvidence]
    between: list[BetweenModels]

    @classmethod
    def load(cls, out: Path) -> ModelsTable:
        return cls.model_validate_json((out / MODELS_FILE).read_bytes())


def models_table(run_dirs: list[Path]) -> ModelsTable:
    scores, evidence = [], []
    spreads: dict[tuple[str, str], list[np.ndarray]] = {}
    for run_dir in run_dirs:
        results = RunResults.load(run_dir)
        name = results.model.spec.removeprefix("import:")
        for inst_name, inst in results.instruments.items():
            parts = inst.decomposition
            n_options = len(inst.position_table) or None
            evidence.append(
                ModelEvidence(
                    model=name,
                    instrument=inst_name,
                    content=parts.content if parts else None,
                    content_p=parts.content_p if parts else None,
                    order=parts.order if parts else None,
                    order_p=parts.order_p if parts else None,
                    position_bias=inst.position_bias,
                    primacy=inst.primacy,
                    recency=inst.recency,
                    chance=1 / n_options if n_options else None,
                    valid_rate=inst.valid_rate,
                    n_orders=inst.n_orders,
                    n_respondents=inst.n_respondents,
                )
            )
            for dim, d in inst.dimensions.items():
                scores.append(
                    ModelScore(
                        model=name,
                        run_dir=str(run_dir),
                        instrument=inst_name,
                        dimension=dim,
                        score=d.score,
                        ci95=d.ci95,
                        validity=d.validity,
                        validity_reasons=d.validity_reasons,
                        key_consistency=d.key_consistency.status if d.key_consistency else None,
                        n_respondents=d.n_respondents,
                        valid_rate=d.valid_rate,
                    )
                )
        for inst_name, dims in respondent_table(run_dir).items():
            for dim, values in dims.items():
                spreads.setdefault((inst_name, dim), []).append(values)
    between = [between_models(inst, dim, groups, seed=0) for (inst, dim), groups in spreads.items()]
    return ModelsTable(scores=scores, evidence=evidence, between=between)


def between_models(
    instrument: str, dimension: str, groups: list[np.ndarray], seed: int
) -> BetweenModels:
    """The share of respondent-score variance between models, with a bootstrap CI over models."""
    groups = [g for g in groups if len(g)]
    row = BetweenModels(
        instrument=instrument, dimension=dimension, n_models=len(groups), share=None, ci95=None
    )
    if len(groups) < 2:
        row.note = "fewer than two models"
        return row
    n = np.array([len(g) for g in groups], dtype=float)
    if n.sum() <= len(groups):
        row.note = "one respondent per model: no spread within models to compare with"
        return row
    means = np.array([g.mean() for g in groups])
    ss = np.array([((g - g.mean()) ** 2).sum() for g in groups])
    row.share = float(_shares(n[None], means[None], ss[None])[0])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(SHARE_RESAMPLES, len(groups)))
    boot = _shares(n[picks], means[picks], ss[picks])
    row.ci95 = percentile_ci(boot, SHARE_RESAMPLES // 2)
    return row


def _shares(n: np.ndarray, means: np.ndarray, ss: np.ndarray) -> np.ndarray:
    """σ²_between / (σ²_between + σ²_within) per row of groups (sizes, means, sums of squares),
    the ANOVA estimator with n₀ for unequal sizes; NaN where undefined."""
    k = n.shape[1]
    total = n.sum(axis=1)
    grand = (n * means).sum(axis=1) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        msb = (n * (means - grand[:, None]) ** 2).sum(axis=1) / (k - 1)
        msw = ss.sum(axis=1) / (total - k)
        n0 = (total - (n**2).sum(axis=1) / total) / (k - 1)
        between = np.maximum((msb - msw) / n0, 0.0)
        share = between / (between + msw)
    return np.asarray(np.where((total > k) & (between + msw > 0), share, np.nan))


def _ci(ci: tuple[float, float] | None) -> str:
    return f"{fmt(ci[0])}–{fmt(ci[1])}" if ci else "–"


def render_models(table: ModelsTable) -> str:
    lines = ["# Models side by side", ""]
    counts = {v: sum(s.validity == v for s in table.scores) for v in ("ok", "weak", "no_signal")}
    models = sorted({s.model for s in table.scores})
    lines += [
        f"{len(models)} models; {counts['ok']} scores ok, {counts['weak']} weak, "
        f"{counts['no_signal']} no_signal (a response style, not a trait).",
        "",
        "## Scores",
        "",
        "| Model | Instrument | Dimension | Score | 95 % CI | Validity | Key consistency |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in table.scores:
        lines.append(
            f"| {s.model} | {s.instrument} | {s.dimension} | {fmt(s.score)} | {_ci(s.ci95)} | "
            f"{s.validity} | {s.key_consistency or '–'} |"
        )
    lines += [
        "",
        "## What the verdicts rest on",
        "",
        "| Model | Instrument | Content η² | p | Order η² | p | Position | First shown | "
        "Last shown | Chance | Valid | Orders | Respondents |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table.evidence:
        lines.append(
            f"| {e.model} | {e.instrument} | {fmt(e.content)} | {fmt_p(e.content_p)} | "
            f"{fmt(e.order)} | {fmt_p(e.order_p)} | {fmt(e.position_bias)} | {fmt(e.primacy)} | "
            f"{fmt(e.recency)} | {fmt(e.chance)} | {fmt(e.valid_rate)} | {e.n_orders} | "
            f"{e.n_respondents} |"
        )
    lines += [
        "",
        "## Between models",
        "",
        "The share of the variance of respondent scores that lies between models (0: the models "
        "cannot be told apart), with a 95 % bootstrap CI over models.",
        "",
        "| Instrument | Dimension | Models | Share | 95 % CI | Note |",
        "|---|---|---|---|---|---|",
    ]
    for b in table.between:
        lines.append(
            f"| {b.instrument} | {b.dimension} | {b.n_models} | {fmt(b.share)} | {_ci(b.ci95)} | "
            f"{b.note or ''} |"
        )
    return "\n".join(lines) + "\n"


def write_models_table(run_dirs: list[Path], out: Path) -> ModelsTable:
    """models.json, models.md and models.html for ``run_dirs``, written into ``out``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    table = models_table(run_dirs)
    write_json(out / MODELS_FILE, table.model_dump(mode="json"))
    write_text(out / "models.md", render_models(table))
    env = Environment(
        loader=PackageLoader("psyprobe.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    page = env.get_template("models.html.j2").render(table=table, f=fmt, p=fmt_p)
    write_text(out / "models.html", page)
    return table
