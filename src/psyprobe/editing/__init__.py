"""Editing: persona prompts, steering vectors, LoRA adapters (DPO) — each an edited model spec."""

from psyprobe.editing.edited import EditedModel, Edits, open_edited
from psyprobe.editing.personas import PERSONAS, persona_text
from psyprobe.editing.steering import (
    SteeringVector,
    build_vector,
    load_vector,
    save_vector,
    steering,
)

__all__ = [
    "PERSONAS",
    "EditedModel",
    "Edits",
    "SteeringVector",
    "build_vector",
    "load_vector",
    "open_edited",
    "persona_text",
    "save_vector",
    "steering",
]
