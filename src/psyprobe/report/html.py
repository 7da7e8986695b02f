"""report.html: the page, and the helpers each measure's part of it is rendered with.

The page knows no measure: it shows the sections it is given (report.page), each rendered by
its measure from a template of its own, with the figures inlined so the file travels alone.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

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
    from psyprobe.report.page import Section


@dataclass(frozen=True)
class Figure:
    name: str
    data: str  # base64 PNG, inlined so the page opens offline and travels as one file


def inline(paths: list[Path]) -> list[Figure]:
    return [Figure(p.stem, base64.b64encode(p.read_bytes()).decode()) for p in paths]


# One environment for the page and every measure's part of it, with the helpers they share.
_ENV = Environment(
    loader=PackageLoader("psyprobe.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
_ENV.globals.update(
    f=fmt,
    p=fmt_p,
    safety_note=SAFETY_NOTE,
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


def render_section(template: str, **context: object) -> Markup:
    """A measure's part of report.html, from its template under report/templates."""
    return Markup(_ENV.get_template(template).render(**context))


def render_page(subject: str, sections: Sequence[Section]) -> str:
    """report.html: the sections in order, then the answer browsers they bring."""
    browsers = [b for s in sections for b in s.browsers if b.rows]
    return _ENV.get_template("page.html.j2").render(
        subject=subject, sections=sections, browsers=browsers
    )
