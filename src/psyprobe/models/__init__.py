"""Models: who answers. One protocol (option probabilities, sampled text), several backends."""

from psyprobe.models.base import Mode, Model, ModelInfo, OptionProbs, Sampling
from psyprobe.models.registry import ALIASES, BACKENDS, open_model

__all__ = [
    "ALIASES",
    "BACKENDS",
    "Mode",
    "Model",
    "ModelInfo",
    "OptionProbs",
    "Sampling",
    "open_model",
]
