"""Prompting: how an item is asked — templates and counterbalanced option orders."""

from psyprobe.prompting.orders import DESIGNS, Order, check_design, option_orders
from psyprobe.prompting.templates import (
    TEMPLATES,
    ItemPrompt,
    Prompt,
    PromptTemplate,
    build_prompts,
)

__all__ = [
    "DESIGNS",
    "TEMPLATES",
    "ItemPrompt",
    "Order",
    "Prompt",
    "PromptTemplate",
    "build_prompts",
    "check_design",
    "option_orders",
]
