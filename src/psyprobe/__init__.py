"""psyprobe: measure and edit the personality of language models as a safety signal."""

# The Python API (psyprobe/api.py): light to import; each function loads what it runs.
from psyprobe.api import (
    import_answers,
    load,
    load_safety,
    measure,
    measure_capability,
    measure_safety,
)
from psyprobe.version import __version__

__all__ = [
    "__version__",
    "import_answers",
    "load",
    "load_safety",
    "measure",
    "measure_capability",
    "measure_safety",
]
