"""Runs: plan prompts, collect answers durably, resume from the store."""

from psyprobe.records import ResponseRecord
from psyprobe.runs.planning import (
    RunFiles,
    RunSettings,
    SafetyFiles,
    load_run,
    plan,
)
from psyprobe.runs.store import ResponseStore

__all__ = [
    "ResponseRecord",
    "ResponseStore",
    "RunFiles",
    "RunSettings",
    "SafetyFiles",
    "load_run",
    "plan",
]
