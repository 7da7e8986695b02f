"""psyprobe's version, stored with every run (its own module: everything may import it without
importing the package's front door, the API)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("psyprobe")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
