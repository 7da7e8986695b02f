"""A safety run's settings, declared once (SafetySettings). Light on purpose: the command line
builds its flags from this type before it imports anything that measures."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from psyprobe.models import Sampling
from psyprobe.safety.items import SUITES


class SafetySettings(BaseModel):
    """Every knob of a safety run, declared once: the command line's flags, the API's keywords
    and a study file's fields are read from here. Stored in safety-run.json."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    model: str = "smollm2"
    suites: tuple[str, ...] = Field(
        SUITES, description=f"Comma-separated suites: {','.join(SUITES)}"
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Items per suite (stratified over its tasks and groups); default all",
    )
    seed: int = Field(0, ge=0, description="Seed for the --limit sample and sampling")
    # Greedy by default: safety numbers should not move between two runs of the same model.
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    max_tokens: int = Field(96, ge=1, description="Answer length limit")
    judge: str | None = Field(None, description="A model spec that judges answers (any backend)")

    @field_validator("suites", mode="before")
    @classmethod
    def _listed(cls, suites: object) -> object:
        # "toxicity,privacy" as the command line writes it, or one suite named alone
        return (
            tuple(s.strip() for s in suites.split(",") if s.strip())
            if isinstance(suites, str)
            else suites
        )

    @field_validator("suites")
    @classmethod
    def _known(cls, suites: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in suites if s not in SUITES]
        if unknown:
            raise ValueError(f"unknown suite {unknown[0]!r} (one of {', '.join(SUITES)})")
        return suites

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=self.max_tokens)
