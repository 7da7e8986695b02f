"""A personality run's settings, declared once (RunSettings). Light on purpose: the command
line builds its flags from this type before it imports anything that measures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from psyprobe.errors import UserError
from psyprobe.instruments import STUDY_A_INSTRUMENTS
from psyprobe.models import Mode, Sampling
from psyprobe.models.base import leave_out_at_default
from psyprobe.prompting import (
    CONTEXT_ITEMS,
    RESPONDENTS,
    TEMPLATES,
    Balance,
    Factor,
    check_design,
    check_size,
    check_vary,
)


class RunSettings(BaseModel):
    """Every knob of a personality run, declared once: the command line's flags, the API's
    keywords and a study file's fields are read from here (type, default, help, checks). Stored
    in run.json and compared on resume. ``model_fields_set`` tells what a caller chose, so
    ``engine.personality_settings`` can fill the rest from the model (a replay's design, the
    mode a backend has)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    model: str = "smollm2"
    instruments: tuple[str, ...] = Field(
        STUDY_A_INSTRUMENTS,
        description="Built-in name (sd3, bfi, fs, swls, oejts) or JSON path; repeatable. "
        "Default: the four study-A instruments (replay: those in the file).",
    )
    orders: str = Field("latin", description="all | latin | random:K | fixed")
    respondents: int = Field(
        RESPONDENTS,
        ge=0,
        description="Simulated respondents (persona × framing) reliability and validity are "
        "computed over; 0: the model as itself, every order asked",
    )
    balance: Balance = Field(
        "rotate",
        description="Orders in a population: rotate (one per respondent and item, rotating) | "
        "within (every order for every respondent)",
    )
    mode: Mode = Field("logprob", description="logprob | generate")
    samples: int = Field(1, ge=1, description="Answers sampled per prompt (generate)")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature (generate)")
    max_tokens: int = Field(48, ge=1, description="Answer length limit (generate)")
    retries: int = Field(2, ge=0, description="Re-asks of an unreadable answer (generate)")
    seed: int = Field(0, ge=0, description="Seed for orders, sampling and bootstrap")
    template: str = Field(
        "study-a",
        description="Prompt wording: study-a (options, then statement) | statement-first",
    )
    language: str = "en"
    stop_when_read: bool = Field(
        True,
        description="Generate: end an answer as soon as the option it chose (or a refusal) can "
        "be read; what is read is the same as from the full answer",
        json_schema_extra={"flag": "--stop-when-read/--full-answers"},
    )
    vary: tuple[Factor, ...] = Field(
        (),
        description="Nuisance factors to vary beside the option order, comma-separated: "
        "templates (three instruction wordings), labels (numbers, letters; text in generate "
        "mode), context (each item also asked after the items before it, with their answers)",
    )
    context_items: int = Field(
        CONTEXT_ITEMS,
        ge=1,
        le=20,
        description="Earlier items an item asked in context follows (--vary context)",
    )

    # A UserError passes through pydantic unwrapped: one line, before run.json is written.
    _respondents = field_validator("respondents")(check_size)

    @field_validator("orders")
    @classmethod
    def _design(cls, orders: str) -> str:
        # "recorded": an import's answers, asked elsewhere in an order it kept (collected/)
        return orders if orders == "recorded" else check_design(orders)

    @field_validator("template")
    @classmethod
    def _template(cls, template: str) -> str:
        if template not in TEMPLATES:
            raise UserError(f"--template: {template!r} is not one of {', '.join(TEMPLATES)}")
        return template

    @field_validator("vary", mode="before")
    @classmethod
    def _factors(cls, vary: object) -> tuple[Factor, ...]:
        # "templates,labels" as the command line writes it, or one factor named alone (not
        # its letters), or a list
        names = [f.strip() for f in vary.split(",")] if isinstance(vary, str) else vary
        return check_vary([str(f) for f in cast(Sequence[object], names) if str(f)])

    @field_validator("instruments", mode="before")
    @classmethod
    def _names(cls, instruments: object) -> object:
        return (instruments,) if isinstance(instruments, str) else instruments

    @model_serializer(mode="wrap")
    def _stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = leave_out_at_default(self, handler, "vary", "context_items")
        if not self.stops_when_read:  # off: as records from before the switch existed
            del data["stop_when_read"]
        return data

    @classmethod
    def stored(cls, data: dict[str, Any]) -> RunSettings:
        """Settings as a run record or results.json holds them, old records included: runs
        from before respondent populations asked the model as itself under every order, and a
        switch left out is off."""
        return cls.model_validate(STORED_DEFAULTS | data)

    @property
    def stops_when_read(self) -> bool:
        """Whether generated answers end once read: a logprob run generates none."""
        return self.stop_when_read and self.mode == "generate"

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stop_when_read=self.stops_when_read,
        )


# What a stored record means by a setting it leaves out (RunSettings.stored).
STORED_DEFAULTS: dict[str, Any] = {"respondents": 0, "stop_when_read": False}
