"""Instruments: what is asked. Load built-ins or user files; one schema for three formats."""

from psyprobe.instruments.load import (
    STUDY_A_INSTRUMENTS,
    InstrumentError,
    builtin_id,
    builtin_paths,
    canonical_name,
    load_instrument,
    parse_instrument,
    read_instrument,
)
from psyprobe.instruments.schema import Dimension, Instrument, Option, Question

__all__ = [
    "STUDY_A_INSTRUMENTS",
    "Dimension",
    "Instrument",
    "InstrumentError",
    "Option",
    "Question",
    "builtin_id",
    "builtin_paths",
    "canonical_name",
    "load_instrument",
    "parse_instrument",
    "read_instrument",
]
