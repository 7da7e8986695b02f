"""Prompting: how an item is asked — templates and counterbalanced option orders."""

from psyprobe.prompting.conditions import (
    CONTEXT_ITEMS,
    FACTORS,
    Conditions,
    Factor,
    check_vary,
    crossed,
)
from psyprobe.prompting.orders import DESIGNS, Order, check_design, option_orders
from psyprobe.prompting.population import (
    BALANCES,
    RESPONDENTS,
    Balance,
    Respondent,
    check_size,
    population,
)
from psyprobe.prompting.templates import (
    TEMPLATES,
    ItemPrompt,
    Prompt,
    PromptTemplate,
    Source,
    build_prompts,
    prompt_count,
)

__all__ = [
    "BALANCES",
    "CONTEXT_ITEMS",
    "DESIGNS",
    "FACTORS",
    "RESPONDENTS",
    "TEMPLATES",
    "Balance",
    "Conditions",
    "Factor",
    "ItemPrompt",
    "Order",
    "Prompt",
    "PromptTemplate",
    "Respondent",
    "Source",
    "build_prompts",
    "check_design",
    "check_size",
    "check_vary",
    "crossed",
    "option_orders",
    "population",
    "prompt_count",
]
