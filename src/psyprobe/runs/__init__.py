"""Runs: plan prompts, collect answers durably, resume from the store.

The package itself stays light (the command line reads ``RunSettings`` at its start): the
planning lives in ``runs.planning``, imported where it is used."""

from psyprobe.records import ResponseRecord
from psyprobe.runs.layout import Layout
from psyprobe.runs.settings import RunSettings
from psyprobe.runs.store import ResponseStore

__all__ = [
    "Layout",
    "ResponseRecord",
    "ResponseStore",
    "RunSettings",
]
