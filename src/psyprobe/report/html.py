"""report.html: the markdown reports' tables plus the figures, in one self-contained file.

A run directory may hold a personality run, a safety run and a capability check (they share
the answer store); the page shows whichever results are there.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

from psyprobe.report.markdown import (
    FACTOR_HEADER,
    METHOD_NOTE,
    SAFETY_NOTE,
    STABILITY_HEADER,
    WITHHELD,
    all_verdicts,
    alpha_note,
    factor_rows,
    fmt,
    fmt_p,
    norm_statistics,
    positions,
    verdict_summary,
)
from psyprobe.scoring.diagnostics import KEY_FLAG

if TYPE_CHECKING:
    from psyprobe.capability import CapabilityResults
    from psyprobe.report.browser import Browser
    from psyprobe.report.results import RunResults
    from psyprobe.safety.score import SafetyResults


@dataclass(frozen=True)
class Figure:
    name: str
    data: str  # base64 PNG, inlined so the page opens offline and travels as one file


def _inline(path: Path) -> Figure:
    return Figure(path.stem, base64.b64encode(path.read_bytes()).decode())


def render_html(
    results: RunResults | None,
    figures: dict[str, list[Path]],
    safety: SafetyResults | None,
    safety_figures: list[Path],
    capability: CapabilityResults | None,
    browsers: list[Browser],
) -> str:
    env = Environment(
        loader=PackageLoader("psyprobe.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    inlined = {name: [_inline(p) for p in paths] for name, paths in figures.items()}
    return env.get_template("report.html.j2").render(
        results=results,
        figures=inlined,
        safety_figures=[_inline(p) for p in safety_figures],
        browsers=browsers,
        safety=safety,
        capability=capability,
        safety_note=SAFETY_NOTE,
        f=fmt,
        p=fmt_p,
        method_note=METHOD_NOTE,
        key_flag=KEY_FLAG,
        all_verdicts=all_verdicts,
        verdict_summary=verdict_summary,
        norm_statistics=norm_statistics,
        alpha_note=alpha_note,
        withheld=WITHHELD,
        positions=positions,
        factor_rows=factor_rows,
        factor_header=FACTOR_HEADER,
        stability_header=STABILITY_HEADER,
    )
