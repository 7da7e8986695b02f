"""``psyprobe study FILE.yaml``: models × edits × instruments × safety suites, durably; one report.

A study file declares steering vectors to build and DPO adapters to train (each made once, into
the study directory), then conditions: a model with its edits. Every condition is an ordinary run
directory (personality run, safety run and capability.json side by side), so the grid resumes
where it stopped and every number traces back to stored answers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from scipy.stats import spearmanr

from psyprobe.capability import capability
from psyprobe.editing import Edits, build_vector, open_edited, save_vector
from psyprobe.editing.contrast import contrast
from psyprobe.editing.dpo import dpo_pairs, train_dpo, write_pairs
from psyprobe.editing.sweep import measure
from psyprobe.errors import UserError
from psyprobe.models import open_model
from psyprobe.models.registry import hf_model_dir
from psyprobe.prompting import check_size
from psyprobe.runs import RunSettings
from psyprobe.runs.directory import claim, write_json, write_text
from psyprobe.runs.runner import RESPONDENTS
from psyprobe.safety import SafetyResults, SafetySettings, rebuild_safety, run_safety
from psyprobe.scoring.diagnostics import Validity


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Names that become file and folder names under the study's directory: never "..", never a path.
FileStem = Annotated[str, Field(pattern=r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$", max_length=100)]


class VectorSpec(_Strict):
    dimension: str
    poles: tuple[str, str] = ("high", "low")
    layers: tuple[int, ...]
    method: str = "mean-diff"
    source: str = "answers"


class AdapterSpec(_Strict):
    steps: int = Field(100, ge=1)
    learning_rate: float = 5e-5
    beta: float = 0.1
    lora_r: int = 8
    batch_size: int = 4


class SteerUse(_Strict):
    vector: FileStem  # a name under `vectors`
    layer: int
    coefficient: float


class Condition(_Strict):
    name: FileStem
    model: str | None = None  # default: the study's model
    persona: str | None = None
    steer: tuple[SteerUse, ...] = ()
    adapter: FileStem | None = None  # a name under `adapters`


class SafetyPart(_Strict):
    suites: tuple[str, ...] = ("toxicity", "privacy", "fairness")
    limit: int | None = 20


class Study(_Strict):
    name: str
    model: str = "hf:smollm2"
    instruments: tuple[str, ...] = ("sd3", "bfi")
    orders: str = "latin"
    respondents: int = Field(RESPONDENTS, ge=0)
    # checked when the file loads, not after the vectors and adapters are made
    _respondents = field_validator("respondents")(check_size)
    seed: int = Field(0, ge=0)
    safety: SafetyPart | None = SafetyPart()
    arc_limit: int | None = 20  # ARC questions per part; null skips the capability check
    vectors: dict[FileStem, VectorSpec] = {}
    adapters: dict[FileStem, AdapterSpec] = {}
    conditions: tuple[Condition, ...]


def load_study(path: Path) -> Study:
    if not path.is_file():
        raise UserError(f"{path}: no such study file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        study = Study.model_validate(raw)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise UserError(f"{path}: field {where}: {first['msg']}") from None
    names = [c.name for c in study.conditions]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: field conditions: names must be unique")
    for c in study.conditions:
        for s in c.steer:
            if s.vector not in study.vectors:
                raise UserError(f"{path}: conditions.{c.name}.steer: no vector {s.vector!r}")
        if c.adapter and c.adapter not in study.adapters:
            raise UserError(f"{path}: conditions.{c.name}.adapter: no adapter {c.adapter!r}")
    return study


def prepare(study: Study, out: Path) -> None:
    """Build the study's vectors and train its adapters, each only once."""
    for name, v in study.vectors.items():
        path = out / "vectors" / f"{name}.safetensors"
        if path.is_file():
            continue
        hf_model_dir(study.model)  # vectors need a transformers model: fail with one line
        hf: Any = open_model(study.model)
        try:
            pairs = contrast(hf, v.dimension, v.poles, v.source, study.orders, study.seed)
            vector = build_vector(
                hf,
                pairs.positive,
                pairs.negative,
                list(v.layers),
                v.method,
                {
                    "dimension": v.dimension,
                    "poles": list(v.poles),
                    "data_hash": pairs.data_hash(),
                    "model_fingerprint": hf.info.fingerprint,
                },
            )
        finally:
            hf.close()
        save_vector(vector, path)
    for name, a in study.adapters.items():
        folder = out / "adapters" / name
        if (folder / "adapter_config.json").is_file():
            continue
        pairs_file = out / "adapters" / f"{name}-pairs.jsonl"
        write_pairs(dpo_pairs(study.orders, study.seed), pairs_file)
        train_dpo(
            hf_model_dir(study.model),
            pairs_file,
            folder,
            a.steps,
            a.learning_rate,
            a.beta,
            a.lora_r,
            a.batch_size,
            study.seed,
        )


def condition_edits(study: Study, c: Condition, out: Path) -> Edits:
    return Edits(
        persona=c.persona,
        steer=tuple(
            f"{out / 'vectors' / f'{s.vector}.safetensors'}:{s.layer}@{s.coefficient:g}"
            for s in c.steer
        ),
        adapter=str(out / "adapters" / c.adapter) if c.adapter else None,
    )


def run_condition(study: Study, c: Condition, out: Path) -> None:
    folder = out / "conditions" / c.name
    model = open_edited(c.model or study.model, edits=condition_edits(study, c, out))
    try:
        settings = RunSettings(
            model=model.info.spec,
            instruments=study.instruments,
            orders=study.orders,
            respondents=study.respondents,
            seed=study.seed,
        )
        measure(model, settings, folder)
        if study.safety:
            safety = SafetySettings(
                model=model.info.spec,
                suites=study.safety.suites,
                limit=study.safety.limit,
                seed=study.seed,
            )
            run_safety(folder, safety, model)
            rebuild_safety(folder)
        cap = folder / "capability.json"
        if study.arc_limit is not None and not cap.is_file():
            write_json(cap, capability(model, study.arc_limit, study.seed))
    finally:
        model.close()


def run_study(path: Path, out: Path, only_report: bool = False) -> dict[str, Any]:
    study = load_study(path)
    claim(out)
    write_text(out / "study.yaml", path.read_text(encoding="utf-8"))
    if not only_report:
        prepare(study, out)
        for c in study.conditions:
            run_condition(study, c, out)
    data = summarize(study, out)
    write_json(out / "study.json", data)
    write_text(out / "study.md", render_study(data))
    draw_dose_response(data, out / "dose_response.png")
    return data


# --- summary --------------------------------------------------------------------------------------


def _condition_numbers(folder: Path) -> dict[str, Any]:
    results = json.loads((folder / "results.json").read_text())
    personality = {
        f"{inst}:{dim}": {
            "score": d["score"],
            "ci95": d["ci95"],
            "validity": d["validity"],
            "valid_rate": d["valid_rate"],
        }
        for inst, r in results["instruments"].items()
        for dim, d in r["dimensions"].items()
    }
    acquiescence = {inst: r.get("acquiescence") for inst, r in results["instruments"].items()}
    safety_file, cap_file = folder / "safety.json", folder / "capability.json"
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
    cap = json.loads(cap_file.read_text()) if cap_file.is_file() else None
    return {
        "model": results["model"]["spec"],
        "personality": personality,
        "acquiescence": acquiescence,
        "safety": safety,
        "capability": cap,
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


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _value(condition: dict[str, Any], task: str) -> float | None:
    value: float | None = condition["safety"].get(task, {}).get("value")
    return value


def render_study(data: dict[str, Any]) -> str:
    conds = data["conditions"]
    if not conds:
        return f"# Study {data['study']}\n\nNo condition has results yet.\n"
    base = conds[data["baseline"]]
    traits = list(base["personality"])
    lines = [f"# Study {data['study']}", "", f"Baseline: `{data['baseline']}`.", ""]
    lines += [
        "## Personality per condition",
        "",
        "| condition | " + " | ".join(traits) + " |",
        "|---|" + "---|" * len(traits),
    ]
    for name, c in conds.items():
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{_f(c['personality'][t]['score'])} ({c['personality'][t]['validity']})"
                for t in traits
            )
            + " |"
        )
    tasks = list(base["safety"])
    if tasks:
        lines += [
            "",
            "## Safety per condition",
            "",
            "| condition | "
            + " | ".join(
                f"{t} ({base['safety'][t]['metric']}, {base['safety'][t]['safer']} safer)"
                for t in tasks
            )
            + " |",
            "|---|" + "---|" * len(tasks),
        ]
        for name, c in conds.items():
            lines.append(
                f"| {name} | "
                + " | ".join(_f(c["safety"].get(t, {}).get("value")) for t in tasks)
                + " |"
            )
    lines += [
        "",
        "## Capability per condition",
        "",
        "| condition | ARC-Easy | ARC-Challenge | perplexity |",
        "|---|---|---|---|",
    ]
    for name, c in conds.items():
        cap = c["capability"] or {}
        arc = cap.get("arc", {})
        lines.append(
            f"| {name} | {_f(arc.get('ARC-Easy/test', {}).get('value'))} | "
            f"{_f(arc.get('ARC-Challenge/test', {}).get('value'))} | {_f(cap.get('perplexity'))} |"
        )
    dpo = [n for n, c in conds.items() if c["adapter"]]
    if dpo:
        # Study A's Table 5: SD-3 (and A, N) before → after DPO, with what it cost.
        cols = [
            "sd3:Machiavellianism",
            "sd3:Narcissism",
            "sd3:Psychopathy",
            "bfi:Agreeableness",
            "bfi:Neuroticism",
        ]
        cols = [c for c in cols if c in base["personality"]]
        lines += [
            "",
            "## DPO before → after (study A, Table 5)",
            "",
            "| condition | " + " | ".join(cols) + " | SD-3 acquiescence | ARC-Easy |",
            "|---|" + "---|" * (len(cols) + 2),
        ]
        for n in dpo:
            after = conds[n]
            cells = [
                f"{_f(base['personality'][k]['score'])} → {_f(after['personality'][k]['score'])}"
                for k in cols
            ]
            acq = f"{_f(base['acquiescence'].get('sd3'))} → {_f(after['acquiescence'].get('sd3'))}"
            arc = [
                (x["capability"] or {}).get("arc", {}).get("ARC-Easy/test", {}).get("value")
                for x in (base, after)
            ]
            lines.append(
                f"| {n} | " + " | ".join(cells) + f" | {acq} | {_f(arc[0])} → {_f(arc[1])} |"
            )
    steered = [n for n, c in conds.items() if c["steer"]]
    if steered and tasks:
        # Study B's Figure 7: target shift beside privacy F1, fairness F1 and toxic ratio.
        lines += [
            "",
            "## Steering (study B, Figure 7)",
            "",
            "| condition | steer | privacy F1 | fairness F1 | toxic ratio |",
            "|---|---|---|---|---|",
        ]
        for n in steered:
            c = conds[n]
            lines.append(
                f"| {n} | "
                + ", ".join(
                    f"{s['vector']} L{s['layer']} × {s['coefficient']:g}" for s in c["steer"]
                )
                + " | "
                + " | ".join(
                    f"{_f(_value(base, t))} → {_f(_value(c, t))}"
                    for t in ("privacy_violation", "stereoset", "toxigen")
                )
                + " |"
            )
    if data["correlations"]:
        lines += [
            "",
            "## Personality × safety across conditions (Spearman, Fisher-z 95 % CI)",
            "",
            "Trait validity is the worst verdict the trait got in any condition: a correlation "
            "with a `no_signal` trait would follow noise, not the trait, so it is not computed "
            "(–).",
            "",
            "| trait | trait validity | safety | ρ | 95% CI | n |",
            "|---|---|---|---|---|---|",
        ]
        for r in data["correlations"]:
            ci = r["ci95"]
            lines.append(
                f"| {r['trait']} | {r['trait_validity']} | {r['safety']} | {_f(r['rho'])} | "
                + (f"[{_f(ci[0])}, {_f(ci[1])}]" if ci else "–")
                + f" | {r['n']} |"
            )
    return "\n".join(lines) + "\n"


def draw_dose_response(data: dict[str, Any], path: Path) -> None:
    """Each steered vector's target dimension and safety metrics against its coefficient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = data["conditions"]
    if not conds:
        return
    base = conds[data["baseline"]]
    series: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for c in conds.values():
        for s in c["steer"]:
            series.setdefault(f"{s['vector']} L{s['layer']}", []).append((s["coefficient"], c))
    if not series:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax in axes:  # the safety panel has eleven tasks: more than the default ten colours
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    for label, points in series.items():
        points = sorted([(0.0, base), *points], key=lambda p: p[0])
        xs = [p[0] for p in points]
        for trait in base["personality"]:
            ys = [p[1]["personality"][trait]["score"] for p in points]
            if np.ptp([y for y in ys if y is not None] or [0]) > 0:
                axes[0].plot(xs, ys, marker="o", label=f"{trait} ({label})")
        for task in base["safety"]:
            axes[1].plot(
                xs,
                [p[1]["safety"][task]["value"] for p in points],
                marker="o",
                label=f"{task} ({label})",
            )
    axes[0].set(xlabel="coefficient", ylabel="score", title="personality")
    axes[1].set(xlabel="coefficient", ylabel="metric", title="safety")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
