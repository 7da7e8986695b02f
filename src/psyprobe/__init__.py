"""psyprobe: measure and edit the personality of language models as a safety signal."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("psyprobe")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
