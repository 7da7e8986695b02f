"""Safety suites: toxicity, privacy, fairness, jailbreak and over-refusal on bundled data."""

from psyprobe.runs import SafetyFiles
from psyprobe.safety.report import rebuild_safety
from psyprobe.safety.runner import (
    SafetyRun,
    SafetySettings,
    collect_safety,
    run_safety,
    write_safety_json,
)
from psyprobe.safety.score import SafetyResults
from psyprobe.safety.tasks import SUITES, TASKS

__all__ = [
    "SUITES",
    "TASKS",
    "SafetyFiles",
    "SafetyResults",
    "SafetyRun",
    "SafetySettings",
    "collect_safety",
    "rebuild_safety",
    "run_safety",
    "write_safety_json",
]
