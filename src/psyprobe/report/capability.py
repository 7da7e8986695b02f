"""A capability check's results as people read them: the terminal's lines and its section of
report.md and report.html."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.text import Text

from psyprobe.capability import CapabilityResults
from psyprobe.report.html import render_section
from psyprobe.report.markdown import fmt
from psyprobe.report.page import Section


def capability_summary(results: CapabilityResults) -> RenderableType:
    lines = [
        f"{part}: {fmt(e.value)}" + (f" [{fmt(e.ci95[0])}, {fmt(e.ci95[1])}]" if e.ci95 else "")
        for part, e in results.arc.items()
    ]
    if results.perplexity is not None:
        lines.append(f"perplexity: {results.perplexity:.2f}")
    return Text("\n".join(lines))


def capability_section(results: CapabilityResults, out: Path) -> Section:
    """The ARC table and the perplexity (``out``: the directory, unused: nothing to inline)."""
    rows = [
        f"| {part} accuracy | {fmt(e.value)} | "
        + (f"[{fmt(e.ci95[0])}, {fmt(e.ci95[1])}]" if e.ci95 else "–")
        + f" | {e.n} |"
        for part, e in results.arc.items()
    ]
    markdown = "\n".join(
        [
            "## Capability",
            "",
            f"Model `{results.model.spec}` ({results.model.backend}); ARC: "
            f"{results.arc_limit_per_part or 'all'} questions per part, read from next-token "
            "option probabilities.",
            "",
            "| measure | value | 95% CI | n |",
            "|---|---|---|---|",
            *rows,
            f"| perplexity | {fmt(results.perplexity, 2)} | – | – |",
            "",
            f"Perplexity: {results.perplexity_text}"
            + ("; not computed (this backend cannot score text)" * (results.perplexity is None))
            + ".",
        ]
    )
    html = render_section("capability.html.j2", capability=results)
    return Section(results.model.spec, markdown + "\n", html)
