"""A run's answers in the long format ``psyprobe import`` reads: to share them, or to judge
them again elsewhere. Importing them back reproduces the run's scores and verdicts.

One row per question: the answer scoring used (the first attempt that could be read, else the
last), its option order as the shown options' scale values, the respondent, the sample and the
prompt. A number in an answer is an option's position (``--responses positions``), as the
model was asked.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from psyprobe.errors import UserError
from psyprobe.runs import ResponseStore
from psyprobe.runs.directory import replacing
from psyprobe.runs.layout import Layout
from psyprobe.runs.planning import load_run
from psyprobe.scoring.matrix import final_attempts


def long_format(run_dir: Path) -> list[dict[str, Any]]:
    settings, info, instruments = load_run(run_dir)
    if settings.mode != "generate":
        raise UserError(
            f"{run_dir}: a logprob run's answers are probabilities, not responses: export a "
            "--mode generate run"
        )
    with ResponseStore(Layout(run_dir).store) as store:
        records = [
            r
            for r in store.records()
            if r.role == "answer" and r.model_fingerprint == info.fingerprint
        ]
    rows = []
    for name, instrument in instruments.items():
        questions = {q.item_id: q for q in instrument.questions(settings.language)}
        mine = [r for r in records if r.instrument == name]
        for rec, _ in final_attempts(mine, info.numbers_are_scale_values, questions).values():
            question = questions[rec.item]
            rows.append(
                {
                    "model": info.spec,
                    "instrument": name,
                    "item": rec.item,
                    "response": rec.raw_text or "",
                    "order": ",".join(_number(question.options[i].value) for i in rec.option_order),
                    "respondent": rec.respondent,
                    "sample": rec.sample,
                    "prompt": "\n\n".join(filter(None, (rec.system, rec.user))),
                }
            )
    return rows


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def write_long_format(run_dir: Path, out: Path) -> int:
    """The run's answers into ``out`` (.jsonl or .csv); returns how many."""
    if out.suffix.lower() not in (".jsonl", ".csv"):
        raise UserError(f"--out {out}: write .jsonl or .csv")
    if out.exists():
        raise UserError(f"--out {out}: exists; choose a new file")
    rows = long_format(run_dir)
    with replacing(out) as fh:
        if out.suffix.lower() == ".jsonl":
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        else:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["item"])
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)
