"""``psyprobe study FILE.yaml``: models × edits × instruments × safety suites, durably; one report.

A study file declares steering vectors to build and DPO adapters to train (each made once, into
the study directory), then conditions: a model with its edits. Every condition is an ordinary run
directory (personality run, safety run and capability.json side by side), so the grid resumes
where it stopped and every number traces back to stored answers.
"""

from psyprobe.study.run import forecast_study, run_study
from psyprobe.study.schema import Study, load_study

__all__ = ["Study", "forecast_study", "load_study", "run_study"]
