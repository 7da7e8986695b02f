"""A run directory's report.md and report.html, assembled from the sections of the measures it
holds; which measures those are, and what each section says, is the measures' own matter
(``engine.measure``): nothing here names one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from psyprobe.report.browser import Browser
from psyprobe.report.html import render_page
from psyprobe.runs.directory import write_text
from psyprobe.runs.layout import Layout

TITLE = "# psyprobe report\n\n"


@dataclass(frozen=True)
class Section:
    """One measure's part of the reports."""

    subject: str  # the model measured, as its spec names it
    markdown: str  # report.md's part, from a "## " heading (or a list) on
    html: Markup  # report.html's part (escaped by whoever made it)
    browsers: tuple[Browser, ...] = field(default=())  # its answers, paged and searchable


def write_reports(out: Path, sections: Sequence[Section]) -> None:
    """report.md and report.html of ``out`` from ``sections``, in order; none: none written."""
    if not sections:
        return
    layout = Layout(out)
    write_text(layout.report, TITLE + "\n".join(s.markdown for s in sections))
    write_text(layout.html, render_page(sections[0].subject, sections))
