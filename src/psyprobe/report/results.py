"""results.json as a type: written from ``RunResults`` and read back into it.

The same object is what ``psyprobe.measure`` and ``psyprobe.load`` return; ``to_pandas`` gives
one row per dimension and ``answers`` the long table of raw answers behind them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, PrivateAttr, field_validator

from psyprobe.errors import UserError
from psyprobe.models.base import ModelInfo
from psyprobe.runs.directory import read_results
from psyprobe.runs.layout import Layout
from psyprobe.runs.settings import RunSettings
from psyprobe.scoring.score import InstrumentScore
from psyprobe.scoring.validity import Convergence

if TYPE_CHECKING:
    import pandas as pd


class StoreSummary(BaseModel):
    file: str
    n_responses: int
    failures: dict[str, int]  # requests still without an answer, by error


class RunResults(BaseModel):
    """A personality run's results: every score with its CI, norm comparison, reliability and
    verdict, and the model, settings and store they came from."""

    psyprobe_version: str
    model: ModelInfo
    settings: RunSettings
    store: StoreSummary
    instruments: dict[str, InstrumentScore]
    mtmm: list[Convergence]
    figures: dict[str, list[str]] = {}  # relative to the run directory
    _directory: Path | None = PrivateAttr(default=None)

    @field_validator("settings", mode="before")
    @classmethod
    def _stored(cls, settings: object) -> object:
        # results.json holds the settings' stored form (a switch that is off left out)
        return RunSettings.stored(settings) if isinstance(settings, dict) else settings

    @classmethod
    def load(cls, run_dir: Path) -> RunResults:
        results = read_results(cls, Layout(run_dir).results, "results")
        results._directory = Path(run_dir)
        return results

    @property
    def directory(self) -> Path | None:
        """The run directory these results were written to (None for results not from one)."""
        return self._directory

    def to_pandas(self, detail: bool = False) -> pd.DataFrame:
        """One row per instrument × dimension (the index): score, 95 % CI and verdict; with
        ``detail``, also SD, scale, norm comparison, band, pole, reliability, n and reasons."""
        import pandas as pd

        rows = []
        for name, inst in self.instruments.items():
            for dim, d in inst.dimensions.items():
                norm = d.norm
                rows.append(
                    {
                        "instrument": name,
                        "dimension": dim,
                        "score": d.score,
                        "ci_low": d.ci95[0] if d.ci95 else None,
                        "ci_high": d.ci95[1] if d.ci95 else None,
                        "validity": d.validity,
                        "sd": d.sd,
                        "scale_min": d.scale[0],
                        "scale_max": d.scale[1],
                        "norm_mean": norm.mean if norm else None,
                        "norm_sd": norm.sd if norm else None,
                        "z": norm.z if norm else None,
                        "d": norm.d if norm else None,
                        "p": norm.p if norm else None,
                        "withheld": norm.withheld if norm else None,
                        "band": d.band,
                        "letter": d.letter,
                        "alpha": d.alpha,
                        "omega": d.omega,
                        "n_items": d.n_items,
                        "n_respondents": d.n_respondents,
                        "valid_rate": d.valid_rate,
                        "validity_reasons": "; ".join(d.validity_reasons),
                    }
                )
        frame = pd.DataFrame(rows).set_index(["instrument", "dimension"])
        # printed, the summary fits 80 columns: the score, its CI and whether it measured anything
        return frame if detail else frame[["score", "ci_low", "ci_high", "validity"]]

    def answers(self) -> pd.DataFrame:
        """Every stored answer, one row per prompt × respondent × sample (responses.jsonl):
        the prompt, option order, probabilities or text, and how it was read."""
        import pandas as pd

        if self._directory is None:
            raise UserError("these results have no run directory: load them with psyprobe.load")
        path = Layout(self._directory).responses
        with path.open(encoding="utf-8") as fh:
            rows: list[dict[str, Any]] = [json.loads(line) for line in fh]
        return pd.DataFrame(rows)
