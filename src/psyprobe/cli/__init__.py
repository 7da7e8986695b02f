"""The ``psyprobe`` command line: ``main`` is the console script.

Commands import what they run inside their own bodies, so that ``psyprobe --help``,
``models`` and ``instruments`` start without loading the measurement stack.
"""

from psyprobe.cli.main import app, main

__all__ = ["app", "main"]
