"""psyprobe: measure and edit the personality of language models as a safety signal."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("psyprobe")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

# The Python API (psyprobe/api.py): light to import; each function loads what it runs.
from psyprobe.api import (
    import_answers,
    load,
    load_safety,
    measure,
    measure_capability,
    measure_safety,
)

__all__ = [
    "__version__",
    "import_answers",
    "load",
    "load_safety",
    "measure",
    "measure_capability",
    "measure_safety",
]
