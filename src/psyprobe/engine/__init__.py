"""Measure a model into a directory: the one path the command line, sweeps, studies and the
Python API all take.

``run(measure, model, out)`` holds the measurement's record, asks what the store lacks through
the one ask-loop (``runs.asking``) and rebuilds its outputs; the same call on the same
directory resumes. The measures: ``Personality``, ``Safety`` (with an optional judge as a second
stage) and ``Capability``; a new one subclasses ``Measure``.
"""

from typing import Any

from psyprobe.engine.capability import Capability
from psyprobe.engine.measure import Measure, Measured, Stage, Watcher, run
from psyprobe.engine.personality import Personality, check_choices, personality_settings
from psyprobe.engine.safety import Safety

# Every measure a directory can hold, in the order ``psyprobe report`` rebuilds them.
MEASURES: tuple[type[Measure[Any]], ...] = (Personality, Safety, Capability)

__all__ = [
    "MEASURES",
    "Capability",
    "Measure",
    "Measured",
    "Personality",
    "Safety",
    "Stage",
    "Watcher",
    "check_choices",
    "personality_settings",
    "run",
]
