"""A study's numbers: per condition, personality, safety and capability; trait × safety
correlations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, get_args

from scipy.stats import spearmanr

from psyprobe.capability import CapabilityResults
from psyprobe.engine import Capability
from psyprobe.report.results import RunResults
from psyprobe.runs import SafetyFiles
from psyprobe.safety.score import SafetyResults
from psyprobe.scoring.diagnostics import Validity
from psyprobe.study.schema import Study, condition_edits


def _condition_numbers(folder: Path) -> dict[str, Any]:
    results = RunResults.load(folder)
    personality = {
        f"{inst}:{dim}": {
            "score": d.score,
            "ci95": d.ci95,
            "validity": d.validity,
            "valid_rate": d.valid_rate,
        }
        for inst, r in results.instruments.items()
        for dim, d in r.dimensions.items()
    }
    acquiescence = {inst: r.acquiescence for inst, r in results.instruments.items()}
    safety_file, cap_file = SafetyFiles(folder).results, folder / Capability.results_file
    safety = (
        {
            # each task's headline metric: its anchor's own
            name: {
                "value": t.headline.value,
                "ci95": t.headline.ci95,
                "metric": t.headline.name,
                "safer": t.headline.safer,
            }
            for name, t in SafetyResults.load(safety_file).tasks.items()
        }
        if safety_file.is_file()
        else {}
    )
    cap = (
        CapabilityResults.model_validate_json(cap_file.read_text(encoding="utf-8"))
        if cap_file.is_file()
        else None
    )
    return {
        "model": results.model.spec,
        "personality": personality,
        "acquiescence": acquiescence,
        "safety": safety,
        "capability": cap.model_dump(mode="json") if cap else None,
    }


def _spearman_ci(x: list[float], y: list[float]) -> dict[str, Any]:
    """Spearman ρ with a Fisher-z 95 % CI (SE = 1.03 / √(n − 3), Fieller et al. 1957)."""
    n = len(x)
    if n < 4 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"rho": None, "ci95": None, "n": n}
    rho = float(spearmanr(x, y).statistic)
    z, se = math.atanh(max(min(rho, 0.9999), -0.9999)), 1.03 / math.sqrt(n - 3)
    return {"rho": rho, "ci95": [math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)], "n": n}


def _worst_validity(conditions: dict[str, dict[str, Any]], trait: str) -> str:
    """A trait score that carries no signal in any condition makes its correlations noise."""
    verdicts = {str(c["personality"][trait]["validity"]) for c in conditions.values()}
    return max(verdicts, key=get_args(Validity).index)  # ok < weak < no_signal


def summarize(study: Study, out: Path) -> dict[str, Any]:
    conditions = {}
    for c in study.conditions:
        folder = out / "conditions" / c.name
        if (folder / "results.json").is_file():
            conditions[c.name] = {
                "edits": condition_edits(study, c, out).model_dump(),
                "steer": [s.model_dump() for s in c.steer],
                "adapter": c.adapter,
                **_condition_numbers(folder),
            }
    names = list(conditions)
    correlations = []
    if names:
        first = conditions[names[0]]
        for trait in first["personality"]:
            for task in first["safety"]:
                pairs = [
                    (
                        conditions[n]["personality"][trait]["score"],
                        conditions[n]["safety"][task]["value"],
                    )
                    for n in names
                ]
                pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
                if pairs:
                    xs, ys = zip(*pairs, strict=True)
                    worst = _worst_validity(conditions, trait)
                    # A no_signal score moves with noise, so its ρ would only measure that.
                    rho = (
                        {"rho": None, "ci95": None, "n": len(pairs)}
                        if worst == "no_signal"
                        else _spearman_ci(list(xs), list(ys))
                    )
                    correlations.append(
                        {"trait": trait, "trait_validity": worst, "safety": task, **rho}
                    )
    return {
        "study": study.name,
        "baseline": names[0] if names else None,
        "conditions": conditions,
        "correlations": correlations,
    }
