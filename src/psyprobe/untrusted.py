"""Text that came from outside — a server's error body, its model ids, a model's answer, a
user's file — made safe for where psyprobe puts it.

Two uses, two functions: ``one_line`` for a message (a terminal, a log, an error stored with a
failure), where a control character could retitle or clear the terminal or forge a line of
output, so every one is shown as its escape; ``storable`` for an answer kept whole (newlines
are part of it), where only what cannot be written as UTF-8 — a lone surrogate — is replaced, so
that the answer is stored instead of failing the same way on every rerun.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def one_line(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters with every non-printable character (escape
    sequences, newlines, C1 controls, lone surrogates) written as its escape."""
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[: limit * 8])
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def storable(text: str) -> str:
    """``text`` with each lone surrogate (which UTF-8 cannot encode) as U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)
