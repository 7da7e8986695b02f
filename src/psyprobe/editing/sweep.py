"""Sweep a steering vector over layers × coefficients and pick the layer that steers best.

Every cell is an ordinary durable run directory (``SWEEP/L14_c+4/``), measured with the same
instrument, orders and scoring as any run, so a sweep resumes and every cell can be reported on
its own. The chosen layer has the strongest monotonic effect on the target dimension (Spearman ρ
of score on coefficient ≥ 0.9, then the largest score range) among layers whose answers stay
valid (label mass ≥ 0.5 at every coefficient); without a monotonic layer, the largest |ρ| × range.
Where no layer stays valid, none is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from scipy.stats import spearmanr

from psyprobe.editing.edited import EditedModel, Edits
from psyprobe.engine import Personality, run
from psyprobe.errors import UserError
from psyprobe.models import Model
from psyprobe.runs import RunSettings
from psyprobe.runs.directory import write_json
from psyprobe.scoring.diagnostics import Validity

if TYPE_CHECKING:
    from psyprobe.engine.measure import Watcher

SWEEP_FILE = "sweep.json"
MIN_VALID = 0.5
MONOTONIC = 0.9


class SweepCell(BaseModel):
    """What the sweep keeps of one cell's target dimension."""

    score: float | None
    ci95: tuple[float, float] | None
    valid_rate: float | None
    validity: Validity
    pole_percent: float | None


class LayerRow(BaseModel):
    layer: int
    rho: float  # Spearman ρ of score on coefficient
    effect: float  # score at the largest coefficient minus score at the smallest
    min_valid: float  # the lowest label mass over the coefficients


class LayerChoice(BaseModel):
    layer: int | None  # None: no layer kept its answers valid at every coefficient
    why: str
    layers: list[LayerRow]


class SweepSummary(BaseModel):
    """sweep.json: every cell's numbers and the chosen layer."""

    vector: str
    instrument: str
    dimension: str
    orders: str
    coefficients: list[float]
    cells: dict[int, dict[float, SweepCell]]  # layer -> coefficient -> cell
    choice: LayerChoice
    use: str | None  # the --steer flag that applies the choice (None: no layer chosen)


def _cell(
    model: Model, settings: RunSettings, out: Path, dimension: str, watcher: Watcher | None
) -> SweepCell:
    """Measure one cell into its own run directory; what the sweep keeps of it."""
    results = run(Personality(settings), model, out, watcher).results
    d = results.instruments[settings.instruments[0]].dimensions[dimension]
    return SweepCell.model_validate(d.model_dump(include=set(SweepCell.model_fields)))


def choose_layer(table: dict[int, dict[float, SweepCell]]) -> LayerChoice:
    """The layer to steer at, with the numbers the choice rests on."""
    rows = []
    for layer, cells in table.items():
        coefs = sorted(cells)
        scores = [cells[c].score for c in coefs]
        valid = [cells[c].valid_rate for c in coefs]
        if any(s is None for s in scores) or any(v is None for v in valid):
            continue
        known = [s for s in scores if s is not None]
        rho = float(spearmanr(coefs, known).statistic) if len(set(known)) > 1 else 0.0
        rows.append(
            LayerRow(
                layer=layer,
                rho=rho,
                effect=known[-1] - known[0],
                min_valid=min(v for v in valid if v is not None),
            )
        )
    if not rows:
        raise UserError("no layer of the sweep has a score at every coefficient")
    usable = [r for r in rows if r.min_valid >= MIN_VALID]
    if not usable:  # a score read from answers that hit no label is no effect to choose by
        why = f"no layer kept a label mass of {MIN_VALID} at every coefficient"
        unsteered = next(iter(table.values())).get(0.0)
        if unsteered and unsteered.valid_rate is not None and unsteered.valid_rate < MIN_VALID:
            why += f" (unsteered, {unsteered.valid_rate:.2f})"
        return LayerChoice(layer=None, why=f"{why}: none chosen", layers=rows)
    monotonic = [r for r in usable if abs(r.rho) >= MONOTONIC]
    if monotonic:
        best = max(monotonic, key=lambda r: abs(r.effect))
        why = "strongest monotonic effect with valid answers"
    else:
        best = max(usable, key=lambda r: abs(r.rho * r.effect))
        why = "no layer was monotonic; largest |ρ| × effect"
    return LayerChoice(layer=best.layer, why=why, layers=rows)


def sweep(
    base: Model,
    vector: Path,
    layers: list[int],
    coefficients: list[float],
    settings: RunSettings,
    dimension: str,
    out: Path,
    watcher: Watcher | None = None,
) -> SweepSummary:
    """Measure every (layer, coefficient) cell and write sweep.json; coefficient 0 is the base.
    ``watcher`` hears which cell of how many is measured, then that cell's own progress (each
    cell keeps its run.log)."""
    steered = [c for c in coefficients if c != 0]
    planned = [(layer, coef) for layer in layers for coef in steered]
    if watcher:
        watcher.phase(f"cell 1 of {len(planned) + 1}: unsteered")
    baseline = _cell(base, settings, out / "base", dimension, watcher)
    table: dict[int, dict[float, SweepCell]] = {layer: {0.0: baseline} for layer in layers}
    for n, (layer, coef) in enumerate(planned, start=2):
        if watcher:
            watcher.phase(f"cell {n} of {len(planned) + 1}: layer {layer}, coefficient {coef:+g}")
        edited = EditedModel(base, Edits(steer=(f"{vector}:{layer}@{coef:g}",)))
        folder = out / f"L{layer}_c{coef:+g}"
        table[layer][coef] = _cell(edited, settings, folder, dimension, watcher)
    choice = choose_layer(table)
    data = SweepSummary(
        vector=str(vector),
        instrument=settings.instruments[0],
        dimension=dimension,
        orders=settings.orders,
        coefficients=sorted({0.0, *coefficients}),
        cells={layer: dict(sorted(cells.items())) for layer, cells in table.items()},
        choice=choice,
        use=None if choice.layer is None else f"--steer {vector}:{choice.layer}@COEF",
    )
    write_json(out / SWEEP_FILE, data.model_dump(mode="json"))
    draw_sweep(data, out / "dose_response.png")
    return data


def draw_sweep(data: SweepSummary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from psyprobe.report.figures import save_figure

    fig, (ax, ax_valid) = plt.subplots(1, 2, figsize=(10, 4))
    for layer, cells in data.cells.items():
        xs = list(cells)  # in coefficient order
        ax.plot(xs, [c.score for c in cells.values()], marker="o", label=f"layer {layer}")
        ax_valid.plot(xs, [c.valid_rate for c in cells.values()], marker="o")
    ax.set(xlabel="coefficient", ylabel=f"{data.dimension} score", title="dose–response")
    ax_valid.axhline(MIN_VALID, color="grey", ls="--", lw=1)
    ax_valid.set(xlabel="coefficient", ylabel="label mass (valid rate)", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)
