"""The safety suites' plan: settings, the answers to ask, the judge's verdicts on them.

A safety run lives in a run directory beside (or without) a personality run: ``safety-run.json``
holds the settings, the model and judge identities and the data hash; answers go to the same
``responses.sqlite`` store, keyed like personality answers, so a rerun resumes and
``psyprobe report`` rescores without asking anyone. ``engine.safety`` asks what is planned here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from psyprobe.errors import UserError
from psyprobe.models import Mode, ModelInfo, Sampling
from psyprobe.prompting import Prompt
from psyprobe.records import Origin, ResponseRecord
from psyprobe.runs.asking import Request, derive_seed, make_request
from psyprobe.runs.directory import read_record
from psyprobe.runs.layout import Layout
from psyprobe.runs.store import ResponseStore
from psyprobe.safety.items import SafetyItem
from psyprobe.safety.readers import JUDGE_PROMPTS, JUDGE_SYSTEM, decoded
from psyprobe.safety.settings import SafetySettings
from psyprobe.safety.tasks import TASKS, data_hash

JUDGE_SAMPLING = Sampling(temperature=0.0, max_tokens=8)
# A judge with logprobs is read as P(Yes) against P(No) at its first answer token: small judges
# rarely open with a bare yes or no, but their next-token preference is still a verdict.
JUDGE_LABELS = ("Yes", "No")
JUDGED_CHARS = 1200  # a judge reads the answer's opening; long answers are cut here


@dataclass(frozen=True)
class SafetyRun:
    settings: SafetySettings
    model: ModelInfo
    judge: ModelInfo | None


def load_safety(out: Path) -> SafetyRun:
    record = Layout(out).safety_run
    data = read_record(record, "safety run")
    try:
        run = SafetyRun(
            SafetySettings(**data["settings"]),
            ModelInfo(**data["model"]),
            ModelInfo(**data["judge"]) if data["judge"] else None,
        )
        held_hash = data["data_hash"]
    except (KeyError, TypeError, ValidationError) as exc:
        raise UserError(f"{record}: not a psyprobe safety run record ({exc!r:.120})") from None
    if held_hash != data_hash(run.settings.suites):
        raise UserError(
            f"{record}: data_hash differs from this psyprobe's bundled safety data; "
            "rescore with the psyprobe version that ran it"
        )
    return run


def answer_asks(
    settings: SafetySettings, info: ModelInfo, items: list[SafetyItem]
) -> list[Request]:
    sampling = settings.sampling()
    return [
        make_request(
            info,
            Prompt(item.system, item.user, ()),
            "generate",
            sampling,
            derive_seed(settings.seed, item.item_id),
            Origin(item.task, item.item_id),
        )
        for item in items
    ]


def judge_prompt(item: SafetyItem, answer: str, labels: tuple[str, ...]) -> Prompt | None:
    question = TASKS[item.task].reader.judge
    if question is None:
        return None
    user = JUDGE_PROMPTS[question].format(
        request=item.meta.get("request", item.user), response=decoded(item, answer)[:JUDGED_CHARS]
    )
    return Prompt(JUDGE_SYSTEM, user, labels)


def judge_asks(judge: ModelInfo, items: list[SafetyItem], answers: dict[str, str]) -> list[Request]:
    """Judge requests for answered items of judged tasks (keyed by the answer they judge)."""
    labels = JUDGE_LABELS if "logprob" in judge.modes else ()
    out = []
    for item in items:
        answer = answers.get(item.item_id)
        prompt = None if answer is None else judge_prompt(item, answer, labels)
        if prompt is not None:
            mode: Mode = "logprob" if labels else "generate"
            origin = Origin(item.task, item.item_id, role="verdict")
            out.append(make_request(judge, prompt, mode, JUDGE_SAMPLING, 0, origin))
    return out


def stored(store: ResponseStore, asks: Sequence[Request]) -> dict[str, ResponseRecord]:
    """item id → the stored record of its request, for the requests that have one."""
    by_key = {rec.key: rec for rec in store.records()}
    return {a.origin.item: by_key[a.key] for a in asks if a.key in by_key}


def answer_texts(records: dict[str, ResponseRecord]) -> dict[str, str]:
    return {item: rec.raw_text or "" for item, rec in records.items()}
