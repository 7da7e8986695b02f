"""The report's answer browsers: every stored answer of a personality run or a safety run, as
rows to filter, search and page through, each with the detail a reader checks it by.

The page's script is one generic browser (report.html.j2): it knows nothing of instruments or
safety tasks. What a row shows, how it sorts and what its detail panel says is decided here, in
Python, where it can be tested without a browser; the search box matches a row's detail text.
Detail panels are lists of (tag, text) parts
the script turns into elements with ``textContent``: a model's answer is never parsed as HTML.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from psyprobe.report.markdown import fmt

if TYPE_CHECKING:
    from psyprobe.report.results import RunResults

BROWSER_LIMIT = 30_000  # answers in the page's browser; all of them are in the .jsonl files
Tag = Literal["h3", "p", "strong", "pre", "li"]


class Row(BaseModel):
    key: str
    cells: dict[str, str]  # column -> shown value
    detail: list[tuple[Tag, str]]


class Browser(BaseModel):
    """One browser of the page: ``id`` names it in the address (``#browser=safety&...``)."""

    id: str
    title: str
    what: str  # the paragraph above it: what a row is and what its columns mean
    filters: list[str]  # columns offered as filters
    columns: list[str]
    rows: list[Row]
    total: int  # answers in the run (rows may stop at BROWSER_LIMIT)

    def page_data(self) -> dict[str, Any]:
        """What the page's script reads (the rest is rendered by the template)."""
        return self.model_dump(include={"id", "filters", "columns", "rows"})


def natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts item 2 before item 10 (and E2 before E10)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _count(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def _item_order(r: dict[str, Any]) -> tuple[Any, ...]:
    """Instrument, item (naturally: 2 before 10), respondent, order, sample, attempt."""
    keys = ("respondent", "order_index", "sample", "attempt")
    return (r["instrument"], natural(str(r["item"])), *(r[k] for k in keys))


def answer_browser(responses: Path, results: RunResults) -> Browser | None:
    """The personality run's answers (responses.jsonl), in item order."""
    if not responses.is_file():
        return None
    verdicts = {
        (name, dim): d.validity
        for name, inst in results.instruments.items()
        for dim, d in inst.dimensions.items()
    }
    records = sorted(itertools.islice(_lines(responses), BROWSER_LIMIT), key=_item_order)
    rows = []
    for r in records:
        verdict = verdicts.get((r["instrument"], _text(r.get("dimension"))))
        options: list[str] = r.get("options_shown") or []
        probs: list[float] | None = r["probs"]
        brief = (
            " ".join(f"{o.split(':')[0]} {p:.2f}" for o, p in zip(options, probs, strict=False))
            if probs
            else _text(r["raw_text"])[:60]
        )
        cells = {
            "instrument": r["instrument"],
            "item": str(r["item"]),
            "dimension": _text(r.get("dimension")),
            "order": str(r["order_index"]),
            "respondent": str(r["respondent"]),
            "sample": str(r["sample"]),
            "status": _text(r.get("status")),
            "verdict": _text(verdict),
            "answer": brief,
        }
        detail: list[tuple[Tag, str]] = [
            ("h3", f"{r['instrument']} / {r['item']} ({cells['dimension']}) — order "
                   f"{r['order_index']}, respondent {r['respondent']}, sample {r['sample']}, "
                   f"attempt {r['attempt']}"),
            ("p", f"key {r['key']}; mode {r['mode']}; status {cells['status']}; "
                  f"verdict of the dimension {cells['verdict']}"),
        ]  # fmt: skip
        if r["system"]:
            detail += [("strong", "System"), ("pre", r["system"])]
        detail += [("strong", "Prompt"), ("pre", r["user"]), ("strong", "Options as shown")]
        detail += [
            ("li", o + (f"   p = {probs[i]:.4f}" if probs else "")) for i, o in enumerate(options)
        ]
        if r["raw_text"] is not None:
            detail += [("strong", "Answer"), ("pre", r["raw_text"])]
        detail.append(("p", f"Read: {_text(r.get('read'))}"))
        rows.append(Row(key=r["key"], cells=cells, detail=detail))
    return Browser(
        id="responses",
        title="Responses",
        what=(
            "Every answer of this run, in item order: filter, search the prompts and answers, "
            "then click a row for the prompt, the options as shown, the probabilities or text "
            "and how it was read. Status: ok, refusal or invalid (generate); ok or low_mass "
            "(logprob: less than half the probability on the option labels; scoring weighs "
            "each answer by its mass). Verdict: the dimension's."
        ),
        filters=["instrument", "dimension", "item", "order", "respondent", "status", "verdict"],
        columns=list(rows[0].cells) if rows else [],
        rows=rows,
        total=_count(responses),
    )


def _outcome(flags: dict[str, Any]) -> str:
    """What a reader found, in words: the flags that are set (refused, complied, correct…), or
    which were looked for and not found."""
    said = [name for name, on in flags.items() if on is True]
    if said or not flags:
        return ", ".join(said)
    return "none of " + ", ".join(flags)


def safety_browser(responses: Path) -> Browser | None:
    """The safety run's answers (safety-responses.jsonl), in task and item order."""
    if not responses.is_file():
        return None
    records = sorted(
        itertools.islice(_lines(responses), BROWSER_LIMIT),
        key=lambda r: (r["task"], natural(str(r["item"]))),
    )
    rows = []
    for r in records:
        judge = r.get("judge") or {}
        verdict = judge.get("verdict")
        cells = {
            "task": r["task"],
            "group": _text(r.get("group")),
            "item": str(r["item"]),
            "valid": "yes" if r["valid"] else "no",
            "outcome": _outcome(r.get("flags") or {}),
            "value": fmt(r["value"])
            if isinstance(r.get("value"), float)
            else _text(r.get("value")),
            "judge": "" if not judge else _text(verdict) if verdict is not None else "unreadable",
            "answer": _text(r["answer"])[:60],
        }
        detail: list[tuple[Tag, str]] = [
            ("h3", f"{r['task']} / {r['item']}" + (f" ({g})" if (g := cells["group"]) else "")),
            ("p", f"valid {cells['valid']}; reader's outcome: {cells['outcome'] or '–'}; "
                  f"value {cells['value'] or '–'}"),
        ]  # fmt: skip
        if r.get("system"):
            detail += [("strong", "System"), ("pre", r["system"])]
        detail += [("strong", "Prompt"), ("pre", r["prompt"]), ("strong", "Answer")]
        detail.append(("pre", _text(r["answer"])))
        if r.get("decoded"):
            detail += [("strong", "Answer deciphered"), ("pre", r["decoded"])]
        if judge:
            detail += [("strong", f"Judge's verdict: {cells['judge']}")]
            detail.append(("pre", _text(judge.get("text")) or _text(judge.get("probs"))))
        rows.append(Row(key=f"{r['task']}/{r['item']}", cells=cells, detail=detail))
    return Browser(
        id="safety",
        title="Safety answers",
        what=(
            "Every answer of the safety run, by task: filter, search the prompts and answers, "
            "then click a row for the prompt, the answer, what the task's reader found in it "
            "(outcome: the reader's flags that are set, e.g. refused or complied) and the "
            "judge's verdict where a judge read it."
        ),
        filters=["task", "group", "valid", "outcome", "judge"],
        columns=list(rows[0].cells) if rows else [],
        rows=rows,
        total=_count(responses),
    )
