"""study.md and the dose-response figure, from the study's numbers alone."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from psyprobe.report.markdown import fmt, markdown_table
from psyprobe.study.summary import ConditionNumbers, StudySummary

_f = partial(fmt, digits=2)  # two decimals throughout study.md

# Study A's Table 5: SD-3 (and A, N) before → after DPO.
_TABLE_5 = (
    "sd3:Machiavellianism",
    "sd3:Narcissism",
    "sd3:Psychopathy",
    "bfi:Agreeableness",
    "bfi:Neuroticism",
)
# Study B's Figure 7: the target shift beside privacy F1, fairness F1 and toxic ratio.
_FIGURE_7 = ("privacy_violation", "stereoset", "toxigen")


def _score(c: ConditionNumbers, trait: str) -> float | None:
    return c.personality[trait].score


def render_study(data: StudySummary) -> str:
    conds = data.conditions
    if data.baseline is None:
        return f"# Study {data.study}\n\nNo condition has results yet.\n"
    base = conds[data.baseline]
    traits = list(base.personality)
    lines = [f"# Study {data.study}", "", f"Baseline: `{data.baseline}`.", ""]
    lines += ["## Personality per condition", ""]
    lines += markdown_table(
        ["condition", *traits],
        [
            [name, *(f"{_f(_score(c, t))} ({c.personality[t].validity})" for t in traits)]
            for name, c in conds.items()
        ],
    )
    tasks = list(base.safety)
    if tasks:
        lines += ["", "## Safety per condition", ""]
        lines += markdown_table(
            [
                "condition",
                *(f"{t} ({base.safety[t].metric}, {base.safety[t].safer} safer)" for t in tasks),
            ],
            [[name, *(_f(c.safety_value(t)) for t in tasks)] for name, c in conds.items()],
        )
    lines += ["", "## Capability per condition", ""]
    lines += markdown_table(
        ["condition", "ARC-Easy", "ARC-Challenge", "perplexity"],
        [
            [
                name,
                _f(c.arc("ARC-Easy/test")),
                _f(c.arc("ARC-Challenge/test")),
                _f(c.capability.perplexity if c.capability else None),
            ]
            for name, c in conds.items()
        ],
    )
    dpo = [n for n, c in conds.items() if c.adapter]
    if dpo:
        cols = [c for c in _TABLE_5 if c in base.personality]

        def moved(before: float | None, after: float | None) -> str:
            return f"{_f(before)} → {_f(after)}"

        lines += ["", "## DPO before → after (study A, Table 5)", ""]
        lines += markdown_table(
            ["condition", *cols, "SD-3 acquiescence", "ARC-Easy"],
            [
                [
                    n,
                    *(moved(_score(base, k), _score(conds[n], k)) for k in cols),
                    moved(base.acquiescence.get("sd3"), conds[n].acquiescence.get("sd3")),
                    moved(base.arc("ARC-Easy/test"), conds[n].arc("ARC-Easy/test")),
                ]
                for n in dpo
            ],
        )
    steered = [n for n, c in conds.items() if c.steer]
    if steered and tasks:
        lines += ["", "## Steering (study B, Figure 7)", ""]
        lines += markdown_table(
            ["condition", "steer", "privacy F1", "fairness F1", "toxic ratio"],
            [
                [
                    n,
                    ", ".join(f"{s.vector} L{s.layer} × {s.coefficient:g}" for s in conds[n].steer),
                    *(
                        f"{_f(base.safety_value(t))} → {_f(conds[n].safety_value(t))}"
                        for t in _FIGURE_7
                    ),
                ]
                for n in steered
            ],
        )
    if data.correlations:
        lines += [
            "",
            "## Personality × safety across conditions (Spearman, Fisher-z 95 % CI)",
            "",
            "Trait validity is the worst verdict the trait got in any condition: a correlation "
            "with a `no_signal` trait would follow noise, not the trait, so it is not computed "
            "(–).",
            "",
        ]
        lines += markdown_table(
            ["trait", "trait validity", "safety", "ρ", "95% CI", "n"],
            [
                [
                    r.trait,
                    r.trait_validity,
                    r.safety,
                    _f(r.rho),
                    f"[{_f(r.ci95[0])}, {_f(r.ci95[1])}]" if r.ci95 else "–",
                    str(r.n),
                ]
                for r in data.correlations
            ],
        )
    return "\n".join(lines) + "\n"


def draw_dose_response(data: StudySummary, path: Path) -> None:
    """Each steered vector's target dimension and safety metrics against its coefficient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from psyprobe.report.figures import save_figure

    if data.baseline is None:
        return
    base = data.conditions[data.baseline]
    series: dict[str, list[tuple[float, ConditionNumbers]]] = {}
    for c in data.conditions.values():
        for s in c.steer:
            series.setdefault(f"{s.vector} L{s.layer}", []).append((s.coefficient, c))
    if not series:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax in axes:  # the safety panel has eleven tasks: more than the default ten colours
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    for label, points in series.items():
        points = sorted([(0.0, base), *points], key=lambda p: p[0])
        xs = [p[0] for p in points]
        for trait in base.personality:
            ys = [_score(p[1], trait) for p in points]
            if np.ptp([y for y in ys if y is not None] or [0]) > 0:
                axes[0].plot(xs, ys, marker="o", label=f"{trait} ({label})")
        for task in base.safety:
            axes[1].plot(
                xs, [p[1].safety_value(task) for p in points], marker="o", label=f"{task} ({label})"
            )
    axes[0].set(xlabel="coefficient", ylabel="score", title="personality")
    axes[1].set(xlabel="coefficient", ylabel="metric", title="safety")
    for ax in axes:
        ax.legend(fontsize=6)
    save_figure(fig, path, dpi=120)
