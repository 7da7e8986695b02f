"""Models: who answers. One protocol (option probabilities, sampled text), several backends."""

from psyprobe.models.base import Mode, Model, ModelInfo, OptionProbs, Sampling
from psyprobe.models.registry import ALIASES, backends, open_model

__all__ = [
    "ALIASES",
    "Mode",
    "Model",
    "ModelInfo",
    "OptionProbs",
    "Sampling",
    "backends",
    "open_model",
]
