"""Sweep a steering vector over layers × coefficients and pick the layer that steers best.

Every cell is an ordinary durable run directory (``SWEEP/L14_c+4/``), measured with the same
instrument, orders and scoring as any run, so a sweep resumes and every cell can be reported on
its own. The chosen layer has the strongest monotonic effect on the target dimension (Spearman ρ
of score on coefficient ≥ 0.9, then the largest score range) among layers whose answers stay
valid (label mass ≥ 0.5 at every coefficient); without a monotonic layer, the largest |ρ| × range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from psyprobe.editing.edited import EditedModel, Edits
from psyprobe.engine import Personality, run
from psyprobe.models import Model
from psyprobe.runs import RunSettings
from psyprobe.runs.directory import write_json

MIN_VALID = 0.5
MONOTONIC = 0.9


def _cell(model: Model, settings: RunSettings, out: Path, dimension: str) -> dict[str, Any]:
    """Measure one cell into its own run directory; what the sweep keeps of it."""
    results = run(Personality(settings), model, out).results
    d = results.instruments[settings.instruments[0]].dimensions[dimension]
    return {
        "score": d.score,
        "ci95": d.ci95,
        "valid_rate": d.valid_rate,
        "validity": d.validity,
        "pole_percent": d.pole_percent,
    }


def choose_layer(table: dict[int, dict[float, dict[str, Any]]]) -> dict[str, Any]:
    """The layer to steer at, with the numbers the choice rests on."""
    rows = []
    for layer, cells in table.items():
        coefs = sorted(cells)
        scores = [cells[c]["score"] for c in coefs]
        if any(s is None for s in scores):
            continue
        rho = float(spearmanr(coefs, scores).statistic) if len(set(scores)) > 1 else 0.0
        effect = scores[-1] - scores[0]
        valid = min(cells[c]["valid_rate"] for c in coefs)
        rows.append({"layer": layer, "rho": rho, "effect": effect, "min_valid": valid})
    usable = [r for r in rows if r["min_valid"] >= MIN_VALID] or rows
    monotonic = [r for r in usable if abs(r["rho"]) >= MONOTONIC]
    if monotonic:
        best = max(monotonic, key=lambda r: abs(r["effect"]))
        why = "strongest monotonic effect with valid answers"
    else:
        best = max(usable, key=lambda r: abs(r["rho"] * r["effect"]))
        why = "no layer was monotonic; largest |ρ| × effect"
    return {"layer": best["layer"], "why": why, "layers": rows}


def sweep(
    base: Model,
    vector: Path,
    layers: list[int],
    coefficients: list[float],
    settings: RunSettings,
    dimension: str,
    out: Path,
) -> dict[str, Any]:
    """Measure every (layer, coefficient) cell and write sweep.json; coefficient 0 is the base."""
    instrument = settings.instruments[0]
    baseline = _cell(base, settings, out / "base", dimension)
    table: dict[int, dict[float, dict[str, Any]]] = {}
    for layer in layers:
        table[layer] = {0.0: baseline}
        for coef in coefficients:
            if coef == 0:
                continue
            edited = EditedModel(base, Edits(steer=(f"{vector}:{layer}@{coef:g}",)))
            table[layer][coef] = _cell(edited, settings, out / f"L{layer}_c{coef:+g}", dimension)
    choice = choose_layer(table)
    data = {
        "vector": str(vector),
        "instrument": instrument,
        "dimension": dimension,
        "orders": settings.orders,
        "coefficients": sorted({0.0, *coefficients}),
        "cells": {
            str(layer): {f"{c:g}": v for c, v in cells.items()} for layer, cells in table.items()
        },
        "choice": choice,
        "use": f"--steer {vector}:{choice['layer']}@COEF",
    }
    write_json(out / "sweep.json", data)
    draw_sweep(data, out / "dose_response.png")
    return data


def draw_sweep(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_valid) = plt.subplots(1, 2, figsize=(10, 4))
    for layer, cells in data["cells"].items():
        coefs = sorted(cells, key=float)
        xs = [float(c) for c in coefs]
        ax.plot(xs, [cells[c]["score"] for c in coefs], marker="o", label=f"layer {layer}")
        ax_valid.plot(xs, [cells[c]["valid_rate"] for c in coefs], marker="o")
    ax.set(xlabel="coefficient", ylabel=f"{data['dimension']} score", title="dose–response")
    ax_valid.axhline(MIN_VALID, color="grey", ls="--", lw=1)
    ax_valid.set(xlabel="coefficient", ylabel="label mass (valid rate)", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
