"""Scoring: stored responses -> item values -> dimension scores, CIs and norm comparisons."""

from psyprobe.scoring.parse import ParsedAnswer, parse_answer
from psyprobe.scoring.score import DimensionScore, InstrumentScore, score_instrument

__all__ = ["DimensionScore", "InstrumentScore", "ParsedAnswer", "parse_answer", "score_instrument"]
