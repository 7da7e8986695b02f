"""Measure a model into a directory: the one path the command line, sweeps, studies and the
Python API all take.

``run(measure, model, out)`` holds the measurement's record, asks what the store lacks through
the one ask-loop (``runs.asking``) and rebuilds its outputs; the same call on the same
directory resumes. The measures: ``Personality``, ``Safety`` (with an optional judge as a second
stage) and ``Capability``; a new one subclasses ``Measure`` and is declared with ``@register``.
"""

from psyprobe.engine.measure import (
    MEASURES,
    Measure,
    Measured,
    Stage,
    Watcher,
    rebuild,
    register,
    run,
    write_directory_reports,
)

# The measures register themselves as they are imported, and are reported in that order.
# isort: off
from psyprobe.engine.personality import Personality, asked_settings, personality_settings
from psyprobe.engine.safety import Safety
from psyprobe.engine.capability import Capability
# isort: on

__all__ = [
    "MEASURES",
    "Capability",
    "Measure",
    "Measured",
    "Personality",
    "Safety",
    "Stage",
    "Watcher",
    "asked_settings",
    "personality_settings",
    "rebuild",
    "register",
    "run",
    "write_directory_reports",
]
