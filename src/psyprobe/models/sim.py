"""``sim:`` — a simulated respondent with a known true profile: the oracle for the measurement.

    sim:Machiavellianism=2,Narcissism=3.5,noise=0.6,spread=0.5,position_bias=2,acquiescence=0.3

Trait values are on the keyed item scale (SD-3: 1–5; forced choice: 0–1 toward the first pole;
OEJTS: 1–5 toward the high pole); unnamed dimensions sit at the scale midpoint. A trait names a
*construct*: ``Extraversion=4`` sets BFI's and IPIP-50's Extraversion alike, and
``Neuroticism=2`` sets IPIP-50's Emotional Stability to 4 (its declared opposite).

Each respondent (persona × framing, and sample) expresses trait + ``spread`` × N(0, 1), one
draw per construct shared by every instrument, + ``persona`` × the level its persona names
(±1), + ``persona_spread`` × N(0, 1), one draw per persona and construct, shared by every
respondent of that persona (past the bank's 70 each persona comes again with another framing:
answers set by the persona, not by the framing). An item's answer is drawn from a discretised
normal around that level (reversed for reverse-keyed items). Response styles, each a known
falsehood a verdict must not certify:

- ``position_bias``: log-odds added to the option shown first (SmolLM2's habit);
- ``rotating_bias``: log-odds added to the position ``order index mod n`` — a habit that
  follows the order, invisible in the marginal position index;
- ``acquiescence``: shift toward agreement in half-ranges, ``acquiescence_spread`` its SD
  across respondents (yea-saying that differs between personas);
- ``extreme``: share of probability moved to the scale end on the side of the level (at the
  midpoint, to both ends alike);
- ``invalid``: probability mass (logprob) or share of answers (generate) that misses every label;
- ``recency_bias``: log-odds added to the option shown last (Rupprecht et al. 2025);
- ``uniform``: share of each answer spread evenly over the options (1: no preference at all);
- ``wording_bias``: trait level moved by the instruction's wording (+1, −1 scale points × this
  for the two paraphrases; ``--vary templates``);
- ``label_bias``: trait level moved by the label style (+1 letters, −1 text, × this;
  ``--vary labels``);
- ``context_bias``: in context (``--vary context``), the share by which an answer drifts toward
  the previous answer shown in the conversation.

It knows nothing but the prompt's typed source, and the built-in instruments by name.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np

from psyprobe.errors import UserError
from psyprobe.instruments import Dimension, Instrument, Question, builtin_paths, load_instrument
from psyprobe.models.base import Failure, Model, ModelInfo, OptionProbs, Sampling, Until
from psyprobe.models.registry import BackendOptions, backend
from psyprobe.prompting import Prompt, Source

SANE = 1000.0  # no trait level, style or seed is larger
MIN_NOISE = 0.001  # an answer this sure is a fixed choice; a smaller noise overflows the logits
STYLE = {
    "noise": 0.6,
    "spread": 0.0,
    "persona": 0.0,
    "persona_spread": 0.0,
    "position_bias": 0.0,
    "rotating_bias": 0.0,
    "acquiescence": 0.0,
    "acquiescence_spread": 0.0,
    "extreme": 0.0,
    "invalid": 0.0,
    "recency_bias": 0.0,
    "uniform": 0.0,
    "wording_bias": 0.0,
    "label_bias": 0.0,
    "context_bias": 0.0,
    "seed": 0.0,
}
WORDING_SHIFT = (0.0, 1.0, -1.0)  # by wording level: study A's, then the two paraphrases
LABEL_SHIFT = {"numbers": 0.0, "letters": 1.0, "text": -1.0}


def expected_value(values: np.ndarray, target: float, noise: float) -> np.ndarray:
    """Option probabilities of the discretised normal around ``target`` (no response style)."""
    logits = -((values - target) ** 2) / (2 * noise**2)
    weights = np.exp(logits - logits.max())
    return np.asarray(weights / weights.sum())


@cache
def _items(name: str) -> tuple[Instrument, dict[str, tuple[Question, Dimension]]]:
    """A built-in instrument with each item's question and dimension, looked up once: a
    simulated population answers tens of thousands of prompts."""
    try:
        instrument = load_instrument(name)
    except UserError:
        raise UserError(f"sim: knows only the built-in instruments, not {name!r}") from None
    dims = {d.id: d for d in instrument.dimensions()}
    return instrument, {q.item_id: (q, dims[q.dimension]) for q in instrument.questions()}


@cache
def _known_traits() -> frozenset[str]:
    """Every name a sim trait may take: the built-in instruments' dimensions and constructs."""
    names: set[str] = set()
    for short_id in builtin_paths():
        instrument = load_instrument(short_id)
        for dim in instrument.dimensions():
            names |= {dim.id.lower(), instrument.construct_of(dim.id)[0].lower()}
    return frozenset(names)


def _unknown(key: str) -> str:
    """One line on a name that is neither a trait nor a style, with the closest ones."""
    close = difflib.get_close_matches(key.lower(), [*_known_traits(), *STYLE], n=3, cutoff=0.7)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (
        f"{key!r} is neither a trait of a built-in instrument nor a style "
        f"({', '.join(STYLE)}){hint}"
    )


@lru_cache(maxsize=1 << 16)
def _normal(key: str) -> float:
    """One N(0, 1) draw seeded by ``key``."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return float(np.random.default_rng(seed).normal())


class SimModel(Model):
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
            elif key.lower() in _known_traits():
                self.traits[key.lower()] = number
            else:
                raise UserError(f"--model {spec}: {_unknown(key)}")
        # below MIN_NOISE the option logits overflow (noise² underflows): NaN probabilities
        if self.style["noise"] < MIN_NOISE or not 0 <= self.style["invalid"] < 1:
            raise UserError(f"--model {spec}: noise must be ≥ {MIN_NOISE:g} and invalid in [0, 1)")
        for name in ("extreme", "uniform", "context_bias"):
            if not 0 <= self.style[name] <= 1:
                raise UserError(f"--model {spec}: {name} must be in [0, 1]")
        for name in ("spread", "persona", "persona_spread", "acquiescence_spread", "seed"):
            if self.style[name] < 0:
                raise UserError(f"--model {spec}: {name} must be ≥ 0")
        # far beyond any scale: a typo, and large enough to overflow the option logits
        wild = [k for k, v in (self.traits | self.style).items() if abs(v) > SANE]
        if wild:
            raise UserError(f"--model {spec}: {wild[0]} is beyond ±{SANE:g}")
        digest = hashlib.sha256(spec.encode()).hexdigest()
        self.info = ModelInfo(
            spec=spec, backend="sim", fingerprint=f"sha256:{digest}", modes=("logprob", "generate")
        )

    def true_level(self, question: Question, instrument: Instrument) -> float:
        """The profile's level on the question's dimension (its construct's, mirrored)."""
        dim = next(d for d in instrument.dimensions() if d.id == question.dimension)
        return self._level(dim, instrument)

    def _level(self, dim: Dimension, instrument: Instrument) -> float:
        if dim.id.lower() in self.traits:
            return self.traits[dim.id.lower()]
        construct, sign = instrument.construct_of(dim.id)
        mid = (dim.scale_min + dim.scale_max) / 2
        level = self.traits.get(construct.lower(), mid)
        return mid + sign * (level - mid)

    def _draw(self, source: Source, what: str) -> float:
        """One N(0, 1) per respondent (and sample) and ``what``: the same in every instrument."""
        return _normal(f"{self.style['seed']}|{what}|{source.respondent.index}|{source.sample}")

    def _position_probs(self, prompt: Prompt) -> np.ndarray:
        source = prompt.source
        if source is None:
            raise UserError("sim: prompts carry no reference to their item")
        instrument, items = _items(source.instrument)
        question, dim = items[source.item]
        construct, sign = instrument.construct_of(dim.id)
        person = self.style["spread"] * self._draw(source, construct.lower())
        person += self.style["persona"] * source.respondent.markers.get(construct, 0)
        if self.style["persona_spread"]:
            drawn = f"{self.style['seed']}|persona|{construct.lower()}|{source.respondent.persona}"
            person += self.style["persona_spread"] * _normal(drawn)
        asked = source.conditions
        level = self._level(dim, instrument) + sign * person
        level += self.style["wording_bias"] * WORDING_SHIFT[asked.wording]
        level += self.style["label_bias"] * LABEL_SHIFT[asked.labels]
        half = (dim.scale_max - dim.scale_min) / 2
        target = dim.keyed(level, question.reverse)  # keying is its own inverse
        if source.previous:  # drawn toward the answer just given
            target += self.style["context_bias"] * (source.previous[-1] - target)
        yes = self.style["acquiescence"] + self.style["acquiescence_spread"] * self._draw(
            source, "acquiescence"
        )
        target += yes * half
        values = np.array([question.options[i].value for i in source.option_order])
        logits = -((values - target) ** 2) / (2 * self.style["noise"] ** 2)
        logits[0] += self.style["position_bias"]
        logits[-1] += self.style["recency_bias"]
        logits[source.order_index % len(values)] += self.style["rotating_bias"]
        weights = np.exp(logits - logits.max())
        probs = weights / weights.sum()
        if self.style["extreme"]:
            mid = (dim.scale_min + dim.scale_max) / 2
            side = np.sign(target - mid)
            ends = np.zeros_like(probs)
            if side >= 0:
                ends[values == dim.scale_max] += 1.0
            if side <= 0:
                ends[values == dim.scale_min] += 1.0
            probs = (1 - self.style["extreme"]) * probs + self.style["extreme"] * ends / ends.sum()
        probs = (1 - self.style["uniform"]) * probs + self.style["uniform"] / len(probs)
        return np.asarray(probs)

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        keep = 1.0 - self.style["invalid"]
        return [
            OptionProbs(probs=[float(p) * keep for p in self._position_probs(prompt)])
            for prompt in prompts
        ]

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Failure | None]:
        out: list[str | Failure | None] = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            rng = np.random.default_rng(seed)
            probs = self._position_probs(prompt)
            if rng.random() < self.style["invalid"]:
                out.append("I would rather not say.")
            else:
                out.append(prompt.labels[int(rng.choice(len(probs), p=probs))])
        return out


@backend(
    "sim", usage="sim:TRAIT=V,...", name="sim", modes="logprob, generate",
    what="a simulated respondent with a known profile and response style",
)  # fmt: skip
def open_sim(spec: str, rest: str, options: BackendOptions, connect: bool) -> SimModel:
    return SimModel(spec)
