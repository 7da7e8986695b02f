"""PNG figures of a run, drawn from results.json alone (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no screen on servers and CI
import matplotlib.pyplot as plt
import numpy as np

VERDICT_COLOURS = {"ok": "#1b7837", "weak": "#e08214", "no_signal": "#b2182b"}
BIG_FIVE = ["Extraversion", "Agreeableness", "Conscientiousness", "Neuroticism", "Openness"]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dimension_plot(name: str, inst: dict[str, Any], path: Path) -> Path:
    """Each dimension's score with its 95 % CI, over the human norm band (mean ± SD)."""
    dims = list(inst["dimensions"].items())
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(dims) + 1.4))
    for y, (_, d) in enumerate(dims):
        norm = d["norm"]
        if norm:
            ax.fill_betweenx(
                [y - 0.3, y + 0.3],
                norm["mean"] - norm["sd"],
                norm["mean"] + norm["sd"],
                color="#cccccc",
                alpha=0.6,
                lw=0,
            )
            ax.plot([norm["mean"]] * 2, [y - 0.3, y + 0.3], color="#777777", lw=1.5)
        if d["score"] is not None:
            lo, hi = d["ci95"] or (d["score"], d["score"])
            ax.errorbar(
                d["score"],
                y,
                # a bootstrap CI can miss its own mean by a rounding error: never a negative bar
                xerr=[[max(0.0, d["score"] - lo)], [max(0.0, hi - d["score"])]],
                fmt="o",
                color=VERDICT_COLOURS[d["validity"]],
                capsize=4,
                ms=7,
            )
    ax.set_yticks(range(len(dims)), [dim for dim, _ in dims])
    ax.invert_yaxis()
    ax.set_xlabel("score (grey: human norm mean ± SD; dot colour: validity ok/weak/no signal)")
    ax.set_title(f"{name}: scores with 95 % CI")
    return _save(fig, path)


def big_five_profile(inst: dict[str, Any], path: Path) -> Path:
    dims = [d for d in BIG_FIVE if d in inst["dimensions"]]
    scores = [inst["dimensions"][d]["score"] for d in dims]
    cis = [inst["dimensions"][d]["ci95"] or (s, s) for d, s in zip(dims, scores, strict=True)]
    norms = [inst["dimensions"][d]["norm"] for d in dims]
    x = np.arange(len(dims))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if all(norms):
        means = np.array([n["mean"] for n in norms])
        sds = np.array([n["sd"] for n in norms])
        ax.fill_between(
            x, means - sds, means + sds, color="#cccccc", alpha=0.6, label="human norm ± SD"
        )
        ax.plot(x, means, color="#777777", marker="s", label="human norm mean")
    ax.errorbar(
        x,
        scores,
        yerr=[
            [max(0.0, s - c[0]) for s, c in zip(scores, cis, strict=True)],
            [max(0.0, c[1] - s) for s, c in zip(scores, cis, strict=True)],
        ],
        color="#2166ac",
        marker="o",
        capsize=4,
        label="model (95 % CI)",
    )
    ax.set_xticks(x, dims)
    ax.set_ylim(1, 5)
    ax.set_ylabel("mean item score (1–5)")
    ax.set_title("Big Five profile")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pole_bars(name: str, inst: dict[str, Any], path: Path) -> Path:
    """Percent toward each pole per dichotomy (MBTI-style, OEJTS)."""
    dims = [(dim, d) for dim, d in inst["dimensions"].items() if d["pole_percent"]]
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(dims) + 1.4))
    for y, (dim, d) in enumerate(dims):
        # Left and right as the dimension is named ("EI": E left, I right).
        (left, lpct), (right, rpct) = sorted(
            d["pole_percent"].items(), key=lambda kv: (dim.find(kv[0]), kv[0])
        )
        ax.barh(y, -lpct, color="#8073ac")
        ax.barh(y, rpct, color="#e08214")
        ax.text(-lpct - 2, y, f"{left} {lpct:.0f} %", va="center", ha="right")
        ax.text(rpct + 2, y, f"{right} {rpct:.0f} %", va="center", ha="left")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-130, 130)
    ax.set_yticks(range(len(dims)), [dim for dim, _ in dims])
    ax.set_xticks([])
    ax.invert_yaxis()
    ax.set_title(f"{name}: type {inst['type'] or '?'}")
    return _save(fig, path)


def position_heatmap(name: str, inst: dict[str, Any], labels: list[str], path: Path) -> Path:
    """How often each option was chosen at each position: columns alike = position-driven."""
    table = np.array([[np.nan if v is None else v for v in row] for row in inst["position_table"]])
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
        f"(position bias {inst['position_bias']:.2f})",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, path)


def draw_all(
    results: dict[str, Any], option_labels: dict[str, list[str]], folder: Path
) -> dict[str, list[Path]]:
    """Every figure of a run, by instrument."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {}
    for name, inst in results["instruments"].items():
        paths = []
        if any(d["pole_percent"] for d in inst["dimensions"].values()):
            paths.append(pole_bars(name, inst, folder / f"{name}-poles.png"))
        else:
            paths.append(dimension_plot(name, inst, folder / f"{name}-scores.png"))
        if name == "bfi" or set(BIG_FIVE) <= set(inst["dimensions"]):
            paths.append(big_five_profile(inst, folder / f"{name}-profile.png"))
        if inst["position_table"] and inst["position_bias"] is not None:
            paths.append(
                position_heatmap(name, inst, option_labels[name], folder / f"{name}-positions.png")
            )
        out[name] = paths
    return out
