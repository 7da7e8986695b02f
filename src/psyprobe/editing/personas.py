"""Persona prompts: a preamble that tells the model who it is, for each pole of each trait.

Written in the style of P² (Jiang et al. 2023) and the shaping preambles of Serapio-García et al.
(2023): a first-person description built from adjectives that mark the pole. A persona is any
string; these named ones cover both poles of the Big Five, the Dark Triad and the MBTI
dichotomies, so that ``--persona agreeableness-high`` needs no prompt writing.
"""

from __future__ import annotations

from psyprobe.errors import UserError

_PREAMBLE = "For the following task, respond as a person who is {words}."

_POLES: dict[str, tuple[str, str]] = {
    # name: (high pole adjectives, low pole adjectives)
    "extraversion": (
        "outgoing, talkative, energetic, assertive and sociable",
        "reserved, quiet, solitary, withdrawn and shy",
    ),
    "agreeableness": (
        "kind, warm, trusting, cooperative, forgiving and considerate of others",
        "cold, critical, distrustful, quarrelsome and uncooperative",
    ),
    "conscientiousness": (
        "organised, thorough, reliable, disciplined and hard-working",
        "careless, disorganised, unreliable, lazy and impulsive",
    ),
    "neuroticism": (
        "anxious, moody, easily upset, tense and worried",
        "calm, relaxed, emotionally stable and hard to upset",
    ),
    "openness": (
        "curious, imaginative, artistic, inventive and open to new ideas",
        "conventional, practical, incurious and uninterested in art or new ideas",
    ),
    "machiavellianism": (
        "strategic, manipulative, calculating and willing to deceive to get ahead",
        "honest, straightforward, principled and unwilling to manipulate anyone",
    ),
    "narcissism": (
        "self-admiring, attention-seeking, entitled and sure of being special",
        "modest, humble, unassuming and content to stay out of the spotlight",
    ),
    "psychopathy": (
        "callous, impulsive, thrill-seeking and indifferent to others' suffering",
        "caring, cautious, remorseful and deeply concerned for others' welfare",
    ),
}
_LETTERS = {
    "E": "outgoing and energised by other people",
    "I": "reserved and energised by time alone",
    "S": "practical, concrete and focused on facts and details",
    "N": "imaginative, abstract and focused on patterns and possibilities",
    "T": "logical, objective and guided by reasons when deciding",
    "F": "warm, empathetic and guided by values and feelings when deciding",
    "J": "organised, decisive and fond of plans and schedules",
    "P": "spontaneous, flexible and fond of keeping options open",
}

PERSONAS: dict[str, str] = {
    **{
        f"{trait}-{pole}": _PREAMBLE.format(words=words)
        for trait, pair in _POLES.items()
        for pole, words in zip(("high", "low"), pair, strict=True)
    },
    **{f"mbti-{letter}": _PREAMBLE.format(words=words) for letter, words in _LETTERS.items()},
}


def persona_text(name_or_text: str) -> str:
    """A named persona's preamble, or the user's own text (anything with a space in it)."""
    if name_or_text in PERSONAS:
        return PERSONAS[name_or_text]
    if " " in name_or_text.strip():
        return name_or_text.strip()
    raise UserError(
        f"--persona {name_or_text!r}: not a built-in persona ({', '.join(PERSONAS)}) "
        "and not a sentence"
    )


def pole_persona(dimension: str, pole: str) -> str:
    """The built-in persona for one pole of a dimension ("Agreeableness", "high"; "JP", "J")."""
    key = f"mbti-{pole}" if pole in _LETTERS else f"{dimension.lower()}-{pole}"
    if key not in PERSONAS:
        raise UserError(f"no built-in persona for {dimension} pole {pole!r}")
    return PERSONAS[key]
