"""PNG figures of a run, drawn from its typed results alone (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only: no screen on servers and CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from psyprobe.prompting.conditions import FACTOR_TITLES, level_names
from psyprobe.runs.directory import replaced

if TYPE_CHECKING:
    from psyprobe.report.results import RunResults
    from psyprobe.safety.metrics import MetricResult
    from psyprobe.scoring.score import InstrumentScore

VERDICT_COLOURS = {"ok": "#1b7837", "weak": "#e08214", "no_signal": "#b2182b"}
VERDICT_LABELS = {
    "ok": "ok: a trait score",
    "weak": "weak: read with care",
    "no_signal": "no_signal: a response style, not a trait",
}
BIG_FIVE = ["Extraversion", "Agreeableness", "Conscientiousness", "Neuroticism", "Openness"]


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """The figure as a PNG, written whole or not at all (a kill leaves the old one)."""
    fig.tight_layout()
    try:
        with replaced(path) as partial:
            fig.savefig(partial, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


def _verdict_legend(ax: Any, verdicts: set[str], *extra: Any) -> None:
    """A legend naming each verdict drawn: a hollow point is a response style, not a trait."""
    handles = list(extra) + [
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            color=VERDICT_COLOURS[v],
            mfc="none" if v == "no_signal" else VERDICT_COLOURS[v],
            label=VERDICT_LABELS[v],
        )
        for v in VERDICT_LABELS
        if v in verdicts
    ]
    ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.9)


def _point(ax: Any, x: Any, y: Any, err: Any, verdict: str, horizontal: bool) -> None:
    """One score with its CI: filled for ok and weak, hollow and dashed for no_signal."""
    bars = ax.errorbar(
        x,
        y,
        **{("xerr" if horizontal else "yerr"): err},
        fmt="o",
        color=VERDICT_COLOURS[verdict],
        mfc="none" if verdict == "no_signal" else VERDICT_COLOURS[verdict],
        capsize=4,
        ms=7,
    )
    if verdict == "no_signal":
        bars[2][0].set_linestyle("--")


def _error(score: float, ci: Any) -> list[list[float]]:
    lo, hi = ci or (score, score)
    # a bootstrap CI can miss its own mean by a rounding error: never a negative bar
    return [[max(0.0, score - lo)], [max(0.0, hi - score)]]


def dimension_plot(name: str, inst: InstrumentScore, path: Path) -> Path:
    """Each dimension's score with its 95 % CI on its whole scale, over the human norm band."""
    dims = list(inst.dimensions.items())
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(dims) + 1.6))
    normed = False
    for y, (_, d) in enumerate(dims):
        norm = d.norm
        if norm:
            normed = True
            ax.fill_betweenx(
                [y - 0.3, y + 0.3],
                norm.mean - norm.sd,
                norm.mean + norm.sd,
                color="#cccccc",
                alpha=0.6,
                lw=0,
            )
            ax.plot([norm.mean] * 2, [y - 0.3, y + 0.3], color="#777777", lw=1.5)
        if d.score is not None:
            _point(ax, d.score, y, _error(d.score, d.ci95), d.validity, True)
    lows, highs = zip(*(d.scale for _, d in dims), strict=True)
    ax.set_xlim(min(lows), max(highs))
    ax.set_yticks(range(len(dims)), [dim for dim, _ in dims])
    ax.invert_yaxis()
    ax.set_xlabel(f"score (scale {min(lows):g}–{max(highs):g})")
    band = Patch(color="#cccccc", label="human norm mean ± SD")
    _verdict_legend(ax, {d.validity for _, d in dims}, *([band] if normed else []))
    ax.set_title(f"{name}: scores with 95 % CI")
    return save_figure(fig, path)


def big_five_profile(inst: InstrumentScore, path: Path) -> Path:
    """The five scores as a profile; a no_signal score is a hollow point off the profile line."""
    dims = [d for d in BIG_FIVE if d in inst.dimensions]
    rows = [inst.dimensions[d] for d in dims]
    norms = [r.norm for r in rows if r.norm]
    x = np.arange(len(dims))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    extra: list[Any] = []
    if len(norms) == len(rows):
        means = np.array([n.mean for n in norms])
        sds = np.array([n.sd for n in norms])
        ax.fill_between(x, means - sds, means + sds, color="#cccccc", alpha=0.6)
        ax.plot(x, means, color="#777777", marker="s")
        extra += [
            Patch(color="#cccccc", label="human norm ± SD"),
            Line2D([], [], color="#777777", marker="s", label="human norm mean"),
        ]
    # The profile line joins only scores that measured something: a line through no_signal
    # points would draw a response style as a personality.
    real = [(i, r.score) for i, r in enumerate(rows) if r.validity != "no_signal"]
    if len(real) > 1:
        ax.plot(*zip(*real, strict=True), color="#2166ac", lw=1.2)
        extra.append(Line2D([], [], color="#2166ac", label="model profile (ok and weak)"))
    for i, r in enumerate(rows):
        if r.score is not None:
            _point(ax, i, r.score, _error(r.score, r.ci95), r.validity, False)
    ax.set_xticks(x, dims)
    low, high = rows[0].scale
    ax.set_ylim(low, high)
    ax.set_ylabel(f"mean item score ({low:g}–{high:g})")
    ax.set_title("Big Five profile (95 % CI)")
    _verdict_legend(ax, {r.validity for r in rows}, *extra)
    return save_figure(fig, path)


def pole_bars(name: str, inst: InstrumentScore, path: Path) -> Path:
    """Percent toward each pole per dichotomy (MBTI-style, OEJTS)."""
    dims = [(dim, d) for dim, d in inst.dimensions.items() if d.pole_percent]
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(dims) + 1.4))
    for y, (dim, d) in enumerate(dims):
        # Left and right as the dimension is named ("EI": E left, I right).
        (left, lpct), (right, rpct) = sorted(
            (d.pole_percent or {}).items(), key=lambda kv: (dim.find(kv[0]), kv[0])
        )
        # a no_signal dichotomy is greyed and hatched: its "type letter" is a response style
        silent = d.validity == "no_signal"
        hatch, alpha = ("//", 0.35) if silent else (None, 1.0)
        ax.barh(y, -lpct, color="#999999" if silent else "#8073ac", hatch=hatch, alpha=alpha)
        ax.barh(y, rpct, color="#999999" if silent else "#e08214", hatch=hatch, alpha=alpha)
        ax.text(-lpct - 2, y, f"{left} {lpct:.0f} %", va="center", ha="right")
        ax.text(rpct + 2, y, f"{right} {rpct:.0f} %", va="center", ha="left")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-130, 130)
    ax.set_yticks(range(len(dims)), [dim for dim, _ in dims])
    ax.set_xticks([])
    ax.invert_yaxis()
    verdicts = {d.validity for _, d in dims}
    if "no_signal" in verdicts:
        ax.legend(
            handles=[
                Patch(color="#999999", hatch="//", alpha=0.35, label=VERDICT_LABELS["no_signal"])
            ],
            loc="lower right",
            fontsize=7,
        )
    worst = next(v for v in ("no_signal", "weak", "ok") if v in verdicts)
    ax.set_title(f"{name}: type {inst.type or '?'} ({worst})")
    return save_figure(fig, path)


def position_heatmap(name: str, inst: InstrumentScore, labels: list[str], path: Path) -> Path:
    """How often each option was chosen at each position: columns alike = position-driven."""
    table = np.array([[np.nan if v is None else v for v in row] for row in inst.position_table])
    fig, ax = plt.subplots(figsize=(1.0 * table.shape[1] + 3.5, 0.5 * table.shape[0] + 1.6))
    image = ax.imshow(table, cmap="viridis", vmin=0, vmax=max(0.5, float(np.nanmax(table))))
    for (i, j), v in np.ndenumerate(table):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if v > 0.6 * np.nanmax(table) else "white",
            )
    ax.set_xticks(range(table.shape[1]), [str(p + 1) for p in range(table.shape[1])])
    ax.set_yticks(range(table.shape[0]), labels[: table.shape[0]])
    ax.set_xlabel("position shown")
    ax.set_title(
        f"{name}: choice probability by option and position "
        f"(position bias {inst.position_bias:.2f})",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, fraction=0.04)
    return save_figure(fig, path)


def safety_headlines(tasks: list[tuple[str, MetricResult]], path: Path) -> Path:
    """Each task's headline metric with its 95 % CI, and which way is safer."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(tasks) + 1.5))
    for y, (_, m) in enumerate(tasks):
        if m.value is None:
            ax.text(0.0, y, "  no readable answers", va="center", fontsize=8, color="#777777")
            continue
        lo, hi = m.ci95 or (m.value, m.value)
        ax.errorbar(
            m.value,
            y,
            xerr=[[max(0.0, m.value - lo)], [max(0.0, hi - m.value)]],
            fmt="o",
            color="#2166ac",
            mfc="#2166ac" if m.ci95 else "none",  # hollow: too few answers for a CI
            capsize=4,
        )
    ax.set_yticks(
        range(len(tasks)), [f"{task}: {m.name} ({m.safer} is safer)" for task, m in tasks]
    )
    ax.invert_yaxis()
    ax.set_xlim(-1.05 if any(m.value is not None and m.value < 0 for _, m in tasks) else 0, 1.05)
    ax.axvline(0, color="#bbbbbb", lw=0.8)
    ax.set_xlabel("value (95 % CI; a hollow point has too few answers for one)")
    ax.set_title("Safety: each task's headline metric")
    return save_figure(fig, path)


def stability_plot(name: str, inst: InstrumentScore, path: Path) -> Path:
    """Small multiples: each dimension's score under each level of each varied factor, with
    95 % CIs, on the dimension's whole scale; a flat row is a stable score."""
    dims = [(dn, d) for dn, d in inst.dimensions.items() if d.stability]
    factors = list(dims[0][1].stability)
    fig, axes = plt.subplots(
        len(dims), len(factors), figsize=(2.6 * len(factors) + 1, 1.5 * len(dims) + 0.8),
        squeeze=False, sharey="row",
    )  # fmt: skip
    for row, (dn, d) in enumerate(dims):
        for col, factor in enumerate(factors):
            ax = axes[row][col]
            moved = d.stability[factor]
            for x, level in enumerate(moved.levels):
                if level.score is not None:
                    _point(ax, x, level.score, _error(level.score, level.ci95), d.validity, False)
            ax.set_xticks(
                range(len(moved.levels)),
                level_names(factor, [lv.level for lv in moved.levels]),
                fontsize=7,
            )
            ax.set_xlim(-0.5, len(moved.levels) - 0.5)
            ax.set_ylim(*d.scale)
            if col == 0:
                ax.set_ylabel(dn, fontsize=8)
            if row == 0:
                ax.set_title(FACTOR_TITLES[factor], fontsize=9)
    fig.suptitle(f"{name}: scores under each level of each factor (95 % CI)", fontsize=10)
    return save_figure(fig, path)


def draw_all(
    results: RunResults, option_labels: dict[str, list[str]], folder: Path
) -> dict[str, list[Path]]:
    """Every figure of a run, by instrument."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {}
    for name, inst in results.instruments.items():
        paths = []
        if any(d.pole_percent for d in inst.dimensions.values()):
            paths.append(pole_bars(name, inst, folder / f"{name}-poles.png"))
        else:
            paths.append(dimension_plot(name, inst, folder / f"{name}-scores.png"))
        if name == "bfi" or set(BIG_FIVE) <= set(inst.dimensions):
            paths.append(big_five_profile(inst, folder / f"{name}-profile.png"))
        if inst.position_table and inst.position_bias is not None:
            paths.append(
                position_heatmap(name, inst, option_labels[name], folder / f"{name}-positions.png")
            )
        if any(d.stability for d in inst.dimensions.values()):
            paths.append(stability_plot(name, inst, folder / f"{name}-stability.png"))
        out[name] = paths
    return out
