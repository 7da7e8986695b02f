"""``sim:`` — a simulated respondent with a known true profile: the oracle for the measurement.

    sim:Machiavellianism=2,Narcissism=3.5,noise=0.6,spread=0.5,position_bias=2,acquiescence=0.3

Trait values are on the keyed item scale (SD-3: 1–5; forced choice: 0–1 toward the first pole;
OEJTS: 1–5 toward the high pole); unnamed dimensions sit at the scale midpoint. Each respondent
(option order × sample) expresses trait + ``spread`` × N(0, 1). An item's answer is drawn from a
discretised normal around the respondent's level (reversed for reverse-keyed items), shifted
toward agreement by ``acquiescence`` (in half-ranges of the scale), with ``position_bias`` added
to the log-odds of whatever option is shown first — the response style SmolLM2 shows. ``invalid``
is the probability mass (logprob) or share of answers (generate) that misses every label.

It knows nothing but the prompt's ``ref`` (instrument/item/order/sample/option order), and the
built-in instruments by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

import numpy as np

from psyprobe.errors import UserError
from psyprobe.instruments import Instrument, Question, load_instrument
from psyprobe.models.base import Failure, ModelInfo, OptionProbs, Sampling
from psyprobe.prompting import Prompt

STYLE = {
    "noise": 0.6,
    "spread": 0.0,
    "position_bias": 0.0,
    "acquiescence": 0.0,
    "invalid": 0.0,
    "seed": 0.0,
}


def expected_value(values: np.ndarray, target: float, noise: float) -> np.ndarray:
    """Option probabilities of the discretised normal around ``target`` (no response style)."""
    logits = -((values - target) ** 2) / (2 * noise**2)
    weights = np.exp(logits - logits.max())
    return np.asarray(weights / weights.sum())


@cache
def _instrument(name: str) -> Instrument:
    return load_instrument(name)


class SimModel:
    def __init__(self, spec: str):
        self.style = dict(STYLE)
        self.traits: dict[str, float] = {}
        body = spec.split(":", 1)[1]
        for part in filter(None, (p.strip() for p in body.split(","))):
            key, sep, value = part.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not sep or not np.isfinite(number):
                raise UserError(f"--model {spec}: {part!r} is not NAME=NUMBER")
            if key in STYLE:
                self.style[key] = number
            else:
                self.traits[key.lower()] = number
        if self.style["noise"] <= 0 or not 0 <= self.style["invalid"] < 1:
            raise UserError(f"--model {spec}: noise must be > 0 and invalid in [0, 1)")
        digest = hashlib.sha256(spec.encode()).hexdigest()
        self.info = ModelInfo(
            spec=spec, backend="sim", fingerprint=f"sha256:{digest}", modes=("logprob", "generate")
        )

    def true_level(self, question: Question, instrument: Instrument) -> float:
        dim = next(d for d in instrument.dimensions() if d.id == question.dimension)
        return self.traits.get(dim.id.lower(), (dim.scale_min + dim.scale_max) / 2)

    def _respondent_shift(self, instrument: str, dimension: str, order: str, sample: str) -> float:
        key = f"{self.style['seed']}|{instrument}|{dimension}|{order}|{sample}"
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        return float(np.random.default_rng(seed).normal()) * self.style["spread"]

    def _position_probs(self, prompt: Prompt) -> np.ndarray:
        if not prompt.ref:
            raise UserError("sim: prompts carry no reference to their item")
        name, item, order_index, sample, shown = prompt.ref.split("/")
        try:
            instrument = _instrument(name)
        except UserError:
            raise UserError(f"sim: knows only the built-in instruments, not {name!r}") from None
        question = next(q for q in instrument.questions() if q.item_id == item)
        dim = next(d for d in instrument.dimensions() if d.id == question.dimension)
        level = self.true_level(question, instrument) + self._respondent_shift(
            name, dim.id, order_index, sample
        )
        target = dim.keyed(level, question.reverse)  # keying is its own inverse
        target += self.style["acquiescence"] * (dim.scale_max - dim.scale_min) / 2
        order = [int(i) for i in shown.split("-")]
        values = np.array([question.options[i].value for i in order])
        logits = -((values - target) ** 2) / (2 * self.style["noise"] ** 2)
        logits[0] += self.style["position_bias"]
        weights = np.exp(logits - logits.max())
        return np.asarray(weights / weights.sum())

    def count_tokens(self, prompt: Prompt) -> int | None:
        return None

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        keep = 1.0 - self.style["invalid"]
        return [
            OptionProbs(probs=[float(p) * keep for p in self._position_probs(prompt)])
            for prompt in prompts
        ]

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling, seeds: Sequence[int]
    ) -> list[str | Failure | None]:
        out: list[str | Failure | None] = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            rng = np.random.default_rng(seed)
            probs = self._position_probs(prompt)
            if rng.random() < self.style["invalid"]:
                out.append("I would rather not say.")
            else:
                out.append(str(int(rng.choice(len(probs), p=probs)) + 1))
        return out

    def close(self) -> None:
        pass
