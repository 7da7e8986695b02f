"""Read which option a free-text answer chose. Bounded and total: every text gets a verdict.

The rules, first match wins:
1. a leading option number ("4", "4.", "Option 4: ...", "Answer: 4") — unless the text right
   after it names a different option ("1. Slightly agree" when 1 is "Disagree"): small models
   number their own lists, so such an answer is recorded as invalid, not guessed;
2. a refusal ("As an AI, I don't have opinions", "I cannot answer") — recorded as a refusal, not
   as a guess;
3. an option's text or a common paraphrase of it ("strongly agree" -> "Agree"), earliest in the
   answer, longest at the same place ("slightly agree" over "agree");
4. a stated choice anywhere ("The answer is 3.", "I choose option 2");
5. study A's rule: an answer that restates the statement counts as agreeing with it;
6. otherwise invalid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "refusal", "invalid"]


@dataclass(frozen=True)
class ParsedAnswer:
    position: int | None  # 0-based position in the order shown
    status: Status
    rule: str


# A leading whole number: "-5" and "4.7" are not 5 and 4 (a sign is only a bullet when a space
# follows it, "- 4").
_LEADING_NUMBER = re.compile(
    r"^(?:[^\w+-]|[+-](?=\s))*(?:(?:my\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:#]?\s*)?"
    r"(\d+)(?![\d]|[.,]\d)",
    re.IGNORECASE,
)
_STATED_NUMBER = re.compile(
    r"\b(?:answer|option|choice)\s*(?:is|would be|:)?\s*(?:option\s*)?(\d+)(?!\d)|"
    r"\bi (?:choose|chose|pick|select)\s*(?:option\s*)?(\d+)(?!\d)",
    re.IGNORECASE,
)
_LEADING_KEY = re.compile(r"^\W*(?:option\s+)?([A-Z])\b(?![''])")

_REFUSALS = [
    r"\bas an? (?:[\w-]+ )?(?:ai|artificial intelligence|language model|chatbot)\b",
    r"\bi(?: am|'m) (?:just |only )?an? (?:ai|artificial intelligence|language model|assistant|"
    r"computer program|machine)\b",
    r"\bi (?:do not|don't|dont) have (?:any )?(?:personal |human )?(?:opinions?|feelings|beliefs|"
    r"preferences|experiences|emotions|a personality|a life)\b",
    r"\bi (?:cannot|can't|can not|am unable to|am not able to|won't|will not) (?:answer|provide|"
    r"express|share|choose|pick|rate|help|comply|assist|agree or disagree|take (?:this|the) test|"
    r"respond|give)\b",
    r"\bi(?:'m| am) sorry\b",
    r"\bi apologi[sz]e\b",
]
_REFUSAL = re.compile("|".join(_REFUSALS), re.IGNORECASE)

# Paraphrase -> the option text it means, applied only when that option is on offer.
_PARAPHRASES = [
    (r"\b(?:strongly|completely|totally|absolutely|fully|entirely) agree\b", "agree"),
    (r"\b(?:strongly|completely|totally|absolutely) disagree\b", "disagree"),
    (r"\b(?:somewhat|mostly|partially|partly|mildly|tend to|kind of) agree\b", "slightly agree"),
    (r"\bagree (?:somewhat|slightly|a little)\b", "slightly agree"),
    (
        r"\b(?:somewhat|mostly|partially|partly|mildly|tend to|kind of) disagree\b",
        "slightly disagree",
    ),
    (r"\bdisagree (?:somewhat|slightly|a little)\b", "slightly disagree"),
    (r"\b(?:do not|don't|dont|does not) agree\b", "disagree"),
    (r"\b(?:neutral|undecided|neither)\b", "neither agree nor disagree"),
]


def _normalize(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


# What rule 1 strips around the text after a leading number before comparing it with an option.
_TRIM = " .:)-"


def settled(text: str, shown: Sequence[str], keys: Sequence[str | None] = ()) -> bool:
    """True when no continuation of ``text`` can change what ``parse_answer`` reads from it, so
    generation may stop here (``--stop-when-read``) without changing the answer as read.

    Two reads are final that early, because every rule before them looks only at what is
    already there:
    - rule 1, a leading option number in range, once the digits are closed (the character after
      them cannot join them) and the rest of its line can no longer become the text of another
      option than the number's (the line is ended, or what follows the number is no prefix of
      such an option);
    - a refusal whose phrase is closed by the character after it: rules 1 and 2 (number, key)
      are anchored at the start and the allowed prefix of rule 1 ("My answer is") can hold no
      refusal phrase, so once a refusal is found and neither matched, no continuation makes
      them match, and the refusal rule comes next.
    Every other read (an option's text, a stated number) can still be overtaken by a refusal
    or an earlier mention, so it is read from the whole answer.
    """
    head = text.lstrip()
    number = _LEADING_NUMBER.match(head)
    if number and 1 <= int(number.group(1)) <= len(shown):
        after = head[number.end() :]
        # "4" may become "45", "4." may become "4.5": the regex's lookahead is still open.
        if not after or (after[0] in ".," and len(after) < 2):
            return False
        line, ended = after.split("\n", 1)[0], "\n" in after
        if ended:
            return True
        # Rule 1 gives "invalid" only where the line ends up naming another option than the
        # number's: settled once no option but the number's own can still be named.
        rest = line.lstrip(_TRIM).lower()
        n = int(number.group(1))
        return bool(rest) and all(
            k == n - 1
            for k, option in enumerate(shown)
            if option.lower().startswith(rest)
            or (rest.startswith(option.lower()) and not rest[len(option.lower()) :].strip(_TRIM))
        )
    # A refusal phrase ends at a word boundary: "As an AI" is one only once a non-letter follows.
    refusal = _REFUSAL.search(head)
    return (
        refusal is not None
        and refusal.end() < len(head)
        and parse_answer(text, shown, keys=keys).status == "refusal"
    )


def parse_answer(
    text: str | None,
    shown: Sequence[str],
    *,
    statement: str | None = None,
    agree_position: int | None = None,
    keys: Sequence[str | None] = (),
    numbers: Sequence[float] | None = None,
    numbered: bool = True,
) -> ParsedAnswer:
    """Parse an answer to options ``shown`` (texts in the order shown, numbered from 1).

    ``numbered``: False where the options were shown with letters or as bare text: a number in
    the answer then names no option (rules 1 and 4 are skipped).
    ``numbers``: when given, a leading number is a scale value to look up in it (replayed
    transcripts say "4" meaning the scale point), not an option number. ``keys``: the source's own
    option labels ("A", "B") in the order shown. ``agree_position``: where the fullest agreement
    option is shown, for the restatement rule.
    """
    if not text or not text.strip():
        return ParsedAnswer(None, "invalid", "empty")
    head = text.strip()
    number = _LEADING_NUMBER.match(head) if numbered or numbers is not None else None
    if number:
        n = int(number.group(1))
        if numbers is not None:
            if float(n) in numbers:
                return ParsedAnswer(list(numbers).index(float(n)), "ok", "scale value")
        elif 1 <= n <= len(shown):
            rest = head[number.end() :].split("\n", 1)[0].strip(_TRIM).lower()
            named = [pos for pos, option in enumerate(shown) if rest == option.lower()]
            if named and named[0] != n - 1:
                return ParsedAnswer(None, "invalid", "number and text disagree")
            return ParsedAnswer(n - 1, "ok", "option number")
    key = _LEADING_KEY.match(head)
    if key and key.group(1) in keys:
        return ParsedAnswer(list(keys).index(key.group(1)), "ok", "option key")
    if _REFUSAL.search(head):
        return ParsedAnswer(None, "refusal", "refusal")

    lowered = head.lower()
    offered = {option.lower(): pos for pos, option in enumerate(shown)}
    # (pattern, is_paraphrase, position): an option's own text beats a paraphrase on a tie.
    candidates = [(re.escape(option.lower()), 0, pos) for option, pos in offered.items()]
    candidates += [
        (pattern, 1, offered[target]) for pattern, target in _PARAPHRASES if target in offered
    ]
    best: tuple[int, int, int, int] | None = None  # (start, -length, is_paraphrase, position)
    for pattern, paraphrase, pos in candidates:
        found = re.search(rf"(?<![a-z]){pattern}(?![a-z])", lowered)
        if found:
            rank = (found.start(), -(found.end() - found.start()), paraphrase, pos)
            if best is None or rank < best:
                best = rank
    if best is not None:
        return ParsedAnswer(best[3], "ok", "option text")

    stated = _STATED_NUMBER.search(head) if numbered else None
    if stated and numbers is None:
        n = int(stated.group(1) or stated.group(2))
        if 1 <= n <= len(shown):
            return ParsedAnswer(n - 1, "ok", "stated number")

    if statement and agree_position is not None and _normalize(statement) in _normalize(head):
        return ParsedAnswer(agree_position, "ok", "restated statement")
    return ParsedAnswer(None, "invalid", "no option found")
