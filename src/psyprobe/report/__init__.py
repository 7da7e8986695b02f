"""Reporting: results.json, responses.jsonl and report.md, rebuilt from a run's store."""

from psyprobe.report.build import rebuild

__all__ = ["rebuild"]
