"""A study's numbers (study.json): per condition, personality, safety and capability; trait ×
safety correlations. Written from ``StudySummary`` and read back into it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import get_args

from pydantic import BaseModel
from scipy.stats import spearmanr

from psyprobe.capability import CapabilityResults
from psyprobe.editing import Edits
from psyprobe.report.results import RunResults
from psyprobe.runs import Layout
from psyprobe.safety.score import SafetyResults
from psyprobe.scoring.diagnostics import Validity
from psyprobe.study.schema import Condition, SteerUse, Study, condition_edits

STUDY_FILE = "study.json"


class TraitNumbers(BaseModel):
    """What a study keeps of one dimension's score."""

    score: float | None
    ci95: tuple[float, float] | None
    validity: Validity
    valid_rate: float | None


class TaskNumbers(BaseModel):
    """A safety task's headline metric: its anchor's own."""

    value: float | None
    ci95: tuple[float, float] | None
    metric: str
    safer: str


class ConditionNumbers(BaseModel):
    edits: Edits
    steer: tuple[SteerUse, ...]
    adapter: str | None
    model: str
    personality: dict[str, TraitNumbers]  # "instrument:dimension" -> numbers
    acquiescence: dict[str, float | None]  # instrument -> acquiescence index
    safety: dict[str, TaskNumbers]  # task -> headline metric
    capability: CapabilityResults | None

    def safety_value(self, task: str) -> float | None:
        found = self.safety.get(task)
        return found.value if found else None

    def arc(self, part: str) -> float | None:
        found = self.capability.arc.get(part) if self.capability else None
        return found.value if found else None


class Correlation(BaseModel):
    """Spearman ρ of a trait's score with a safety metric across conditions."""

    trait: str
    trait_validity: Validity  # the worst verdict the trait got in any condition
    safety: str
    rho: float | None
    ci95: tuple[float, float] | None
    n: int


class StudySummary(BaseModel):
    study: str
    baseline: str | None  # the first condition with results
    conditions: dict[str, ConditionNumbers]
    correlations: list[Correlation]

    @classmethod
    def load(cls, out: Path) -> StudySummary:
        return cls.model_validate_json((out / STUDY_FILE).read_text(encoding="utf-8"))


def _condition_numbers(study: Study, condition: Condition, out: Path) -> ConditionNumbers:
    folder = out / "conditions" / condition.name
    results = RunResults.load(folder)
    layout = Layout(folder)
    safety_file = layout.safety_results
    return ConditionNumbers(
        edits=condition_edits(study, condition, out),
        steer=condition.steer,
        adapter=condition.adapter,
        model=results.model.spec,
        personality={
            f"{inst}:{dim}": TraitNumbers(
                score=d.score, ci95=d.ci95, validity=d.validity, valid_rate=d.valid_rate
            )
            for inst, r in results.instruments.items()
            for dim, d in r.dimensions.items()
        },
        acquiescence={inst: r.acquiescence for inst, r in results.instruments.items()},
        safety={
            name: TaskNumbers(
                value=t.headline.value,
                ci95=t.headline.ci95,
                metric=t.headline.name,
                safer=t.headline.safer,
            )
            for name, t in SafetyResults.load(safety_file).tasks.items()
        }
        if safety_file.is_file()
        else {},
        capability=CapabilityResults.load(folder) if layout.capability_results.is_file() else None,
    )


def _spearman_ci(x: list[float], y: list[float]) -> tuple[float | None, tuple[float, float] | None]:
    """Spearman ρ with a Fisher-z 95 % CI (SE = 1.03 / √(n − 3), Fieller et al. 1957)."""
    n = len(x)
    if n < 4 or len(set(x)) < 2 or len(set(y)) < 2:
        return None, None
    rho = float(spearmanr(x, y).statistic)
    z, se = math.atanh(max(min(rho, 0.9999), -0.9999)), 1.03 / math.sqrt(n - 3)
    return rho, (math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se))


def _correlations(conditions: dict[str, ConditionNumbers]) -> list[Correlation]:
    if not conditions:
        return []
    first = next(iter(conditions.values()))
    found = []
    for trait in first.personality:
        # A trait score that carries no signal in any condition makes its correlations noise.
        verdicts = {c.personality[trait].validity for c in conditions.values()}
        worst = max(verdicts, key=get_args(Validity).index)  # ok < weak < no_signal
        for task in first.safety:
            pairs = [
                (c.personality[trait].score, c.safety_value(task)) for c in conditions.values()
            ]
            known = [(a, b) for a, b in pairs if a is not None and b is not None]
            if not known:
                continue
            xs, ys = zip(*known, strict=True)
            rho, ci95 = (None, None) if worst == "no_signal" else _spearman_ci(list(xs), list(ys))
            found.append(
                Correlation(
                    trait=trait, trait_validity=worst, safety=task, rho=rho, ci95=ci95, n=len(known)
                )
            )
    return found


def summarize(study: Study, out: Path) -> StudySummary:
    conditions = {
        c.name: _condition_numbers(study, c, out)
        for c in study.conditions
        if (out / "conditions" / c.name / "results.json").is_file()
    }
    return StudySummary(
        study=study.name,
        baseline=next(iter(conditions), None),
        conditions=conditions,
        correlations=_correlations(conditions),
    )
