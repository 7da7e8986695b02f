"""A run directory's layout: the one place each file name is spelled, with who writes it and
who reads it.

A directory holds one answer store shared by the measures it holds (personality, safety,
capability: their answers' keys differ), each measure's record (what it asked, compared on a
resume) and results, and the reports assembled from every measure's section. Everything but
the records and the store is rebuilt from those two by ``psyprobe report``.
"""

from __future__ import annotations

from pathlib import Path

from psyprobe.progress import LOG


class _File:
    """A file of the directory, by its name: ``Layout(out).store`` is ``out / STORE``."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, layout: Layout, owner: type | None = None) -> Path:
        return layout.dir / self.name


class Layout:
    """The files of the run directory ``dir``."""

    # Shared by the measures of the directory
    STORE = "responses.sqlite"  # every answer as asked (runs.store); a rerun resumes from it
    REPORT = "report.md"  # report.page, from each measure's section
    HTML = "report.html"  # report.page, the same sections with figures and answer browsers
    FIGURES = "figures"  # each measure's figures (report.figures)
    # Personality (engine.personality)
    RUN = "run.json"  # its record: settings, model, instruments as asked (planning.load_run)
    RESULTS = "results.json"  # report.build.rebuild; read as report.results.RunResults
    RESPONSES = "responses.jsonl"  # every answer with its prompt and how it was read
    # Safety (engine.safety)
    SAFETY_RUN = "safety-run.json"  # its record (safety.planning.load_safety)
    SAFETY_RESULTS = "safety.json"  # engine.safety's rebuild; read as SafetyResults
    SAFETY_RESPONSES = "safety-responses.jsonl"  # every answer with its reading and judge
    SAFETY_FIGURE = "safety-headlines.png"  # under FIGURES
    # Capability (engine.capability)
    CAPABILITY_RUN = "capability-run.json"  # its record
    CAPABILITY_RESULTS = "capability.json"  # engine.capability's rebuild; CapabilityResults
    PERPLEXITY = "perplexity.json"  # computed from the model, not from answers: kept

    def __init__(self, dir: Path):
        self.dir = Path(dir)

    store = _File(STORE)
    log = _File(LOG)  # progress.Reporter: the progress lines and the libraries' messages
    report = _File(REPORT)
    html = _File(HTML)
    figures = _File(FIGURES)
    run = _File(RUN)
    results = _File(RESULTS)
    responses = _File(RESPONSES)
    safety_run = _File(SAFETY_RUN)
    safety_results = _File(SAFETY_RESULTS)
    safety_responses = _File(SAFETY_RESPONSES)
    capability_run = _File(CAPABILITY_RUN)
    capability_results = _File(CAPABILITY_RESULTS)
    perplexity = _File(PERPLEXITY)
