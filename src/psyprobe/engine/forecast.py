"""What a measurement would ask and how long it would take, before anything is stored
(``--dry-run`` of run, safety, study and steer sweep).

The counts come from the measurement's own plan. The time comes from a short calibration on
this machine: the first prompts of the plan, in the order the run would ask them (so with the
prefixes they share), are asked into a throw-away store and timed, and that time is scaled by
prompt tokens to the whole plan. A server is never asked by a dry run — its speed depends on
what else it serves — so there the time is not estimated.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from pydantic import BaseModel

from psyprobe.engine.measure import Measure
from psyprobe.models import Mode, Model
from psyprobe.runs.asking import Request, ask, batches
from psyprobe.runs.layout import Layout
from psyprobe.runs.store import ResponseStore
from psyprobe.runs.workload import Workload, prompt_tokens

# Prompts a calibration asks at least: one batch of next-token probabilities (a few seconds on
# the embedded model), a handful of generated answers (each up to --max-tokens tokens).
CALIBRATION = {"logprob": 32, "generate": 4}
SERVERS = ("openai",)  # backends a dry run does not ask


class Forecast(BaseModel):
    rows: list[Workload]
    seconds: float | None  # None: not estimated (see ``how``)
    how: str  # how the time was estimated, or why it was not
    threads: int | None  # the CPU threads the model computes with, where it chooses them

    @property
    def prompts(self) -> int:
        return sum(r.prompts for r in self.rows)


def calibration_size(model: Model, mode: Mode) -> int:
    """Prompts a calibration asks. A backend that scores many prompts in one call (transformers:
    512, run as a trie in large batches) runs a small call at a lower rate — 32 prompts at
    about two thirds of a whole call's, which made the main job's estimate 1.5 times too long —
    so next-token probabilities are calibrated on a quarter of its call, whose batches are
    as large as the run's (bench/RESULTS.md)."""
    if mode == "logprob":
        return max(CALIBRATION[mode], model.preferred_batch(mode) // 4)
    return CALIBRATION[mode]


def calibrate(model: Model, requests: Iterable[Request], tokens: int) -> tuple[float | None, str]:
    """Seconds to ask prompts of ``tokens`` prompt tokens in all, from the first of
    ``requests`` asked on this machine; with how it was measured, in words."""
    if model.info.backend in SERVERS:
        return None, "not estimated: a dry run asks a server nothing, and its speed is its own"
    first = next(batches(requests, lambda mode: calibration_size(model, mode)), None)
    if first is None:
        return 0.0, "nothing to ask"
    with (
        TemporaryDirectory(prefix="psyprobe-calibration-") as folder,
        ResponseStore(Layout(Path(folder)).store) as store,
    ):
        started = time.perf_counter()
        ask(model, first, store)
        seconds = time.perf_counter() - started
    measured = sum(prompt_tokens(model, r.prompt)[0] for r in first)
    threads = f" on {model.threads} threads" if model.threads else ""
    return seconds * tokens / max(measured, 1), (
        f"calibrated by asking {len(first)} of the planned prompts on this machine{threads} "
        f"({seconds:.1f} s), scaled by prompt tokens to the whole plan"
    )


def forecast(measure: Measure[Any], model: Model) -> Forecast:
    """The measurement's workload and a time estimate; nothing is stored."""
    with (
        TemporaryDirectory(prefix="psyprobe-plan-") as folder,
        ResponseStore(Layout(Path(folder)).store) as store,
    ):
        first = next(iter(measure.stages(model, store)))
    rows = measure.workload(model, first.requests)
    seconds, how = calibrate(model, first.requests, sum(r.prompt_tokens for r in rows))
    return Forecast(rows=rows, seconds=seconds, how=how, threads=model.threads)
