"""Contrastive prompt pairs for one dimension's two poles, from the instrument's own items.

``answers``: each item under each option order of the design, followed by the label of the option
that scores highest toward one pole or the other (the same prompt, only the answer differs; read at
the answer token, as CAA does). ``personas``: each item prompt under the built-in persona of each
pole (read at the last prompt token). Both use the study-A template the measurement uses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from psyprobe.editing.personas import pole_persona
from psyprobe.errors import UserError
from psyprobe.instruments import Dimension, Instrument, load_instrument
from psyprobe.prompting import TEMPLATES, build_prompts

SOURCES = ("answers", "personas")


@dataclass(frozen=True)
class Contrast:
    positive: list[str]  # toward the first pole
    negative: list[str]  # pair by pair, toward the second

    def data_hash(self) -> str:
        digest = hashlib.sha256()
        for text in (*self.positive, "\0", *self.negative):
            digest.update(text.encode("utf-8") + b"\0")
        return f"sha256:{digest.hexdigest()}"


def _pole_sign(dim: Dimension, pole: str) -> int:
    """+1 when the pole is the high end of the dimension's score, −1 for the low end."""
    names = {"high": 1, "low": -1}
    if dim.poles:
        names |= {dim.poles[1]: 1, dim.poles[0]: -1}
    if pole not in names:
        raise UserError(f"--poles: {pole!r} is not a pole of {dim.id} ({', '.join(names)})")
    return names[pole]


def _persona(dim: Dimension, pole: str) -> str:
    if dim.poles:  # type dimensions: the persona of the pole's letter
        return pole_persona(dim.id, {"high": dim.poles[1], "low": dim.poles[0]}.get(pole, pole))
    return pole_persona(dim.id, pole)


def check_dimension(
    dimension: str, poles: tuple[str, str], source: str
) -> tuple[str, Instrument, Dimension, int]:
    """Validate a contrast before any model loads: (instrument name, instrument, dimension,
    +1 / −1 for whether the first pole is the dimension's high end)."""
    if source not in SOURCES:
        raise UserError(f"--source: {source!r} is not one of {', '.join(SOURCES)}")
    name, _, dim_id = dimension.partition(":")
    instrument = load_instrument(name)
    dims = {d.id: d for d in instrument.dimensions()}
    if dim_id not in dims:
        raise UserError(
            f"--dimension {dimension!r}: expected INSTRUMENT:DIMENSION, one of "
            + ", ".join(f"{name}:{d}" for d in dims)
        )
    dim = dims[dim_id]
    toward = _pole_sign(dim, poles[0])
    if _pole_sign(dim, poles[1]) != -toward:
        raise UserError(f"--poles {','.join(poles)}: name the two opposite poles of {dim.id}")
    return name, instrument, dim, toward


def contrast(
    hf: Any,
    dimension: str,
    poles: tuple[str, str],
    source: str = "answers",
    orders: str = "latin",
    seed: int = 0,
) -> Contrast:
    """Paired texts for ``dimension`` ("bfi:Agreeableness", "oejts:JP"), first pole positive."""
    name, instrument, dim, toward = check_dimension(dimension, poles, source)
    questions = [q for q in instrument.questions() if q.dimension == dim.id]
    positive, negative = [], []
    for ip in build_prompts(name, questions, orders, TEMPLATES["study-a"], seed):
        q = ip.question
        keyed = [dim.keyed(q.options[i].value, q.reverse) for i in ip.order]
        high = ip.prompt.labels[keyed.index(max(keyed))]
        low = ip.prompt.labels[keyed.index(min(keyed))]
        if source == "answers":
            text = hf.render(ip.prompt)
            first, second = (high, low) if toward > 0 else (low, high)
            positive.append(text + first)
            negative.append(text + second)
        else:
            for pole, out in ((poles[0], positive), (poles[1], negative)):
                persona = _persona(dim, pole)
                system = f"{persona}\n\n{ip.prompt.system}" if ip.prompt.system else persona
                out.append(hf.render(replace(ip.prompt, system=system)))
    return Contrast(positive, negative)
