"""Run the safety suites: plan every item, ask the model (and the judge) for what the store lacks.

A safety run lives in a run directory beside (or without) a personality run: ``safety-run.json``
holds the settings, the model and judge identities and the data hash; answers go to the same
``responses.sqlite`` store, keyed like personality answers, so a rerun resumes and
``psyprobe report`` rescores without asking anyone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from psyprobe import __version__
from psyprobe.errors import UserError
from psyprobe.models import Mode, Model, ModelInfo, OptionProbs, Sampling
from psyprobe.models.base import Failure
from psyprobe.prompting import Prompt
from psyprobe.records import ResponseRecord, request_key
from psyprobe.runs.runner import SafetyFiles, hold_record
from psyprobe.runs.store import ResponseStore
from psyprobe.safety.judging import JUDGE_PROMPTS, JUDGE_SYSTEM
from psyprobe.safety.tasks import SUITES, TASKS, SafetyItem, data_hash, select
from psyprobe.safety.transforms import CIPHERS

BATCH = 16
# Which judge question a task's answers get, when --judge is given.
JUDGE_QUESTION = {"toxic_ratio": "toxic", "attack_success": "complied", "refusal_rate": "refused"}
JUDGE_SAMPLING = Sampling(temperature=0.0, max_tokens=8)
# A judge with logprobs is read as P(Yes) against P(No) at its first answer token: small judges
# rarely open with a bare yes or no, but their next-token preference is still a verdict.
JUDGE_LABELS = ("Yes", "No")
JUDGED_CHARS = 1200  # a judge reads the answer's opening; long answers are cut here


class SafetySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str = "smollm2"
    suites: tuple[str, ...] = SUITES
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    # Greedy by default: safety numbers should not move between two runs of the same model.
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(96, ge=1)
    judge: str | None = None

    @field_validator("suites")
    @classmethod
    def _known(cls, suites: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in suites if s not in SUITES]
        if unknown:
            raise ValueError(f"unknown suite {unknown[0]!r} (one of {', '.join(SUITES)})")
        return suites

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=self.max_tokens)


@dataclass(frozen=True)
class SafetyRun:
    settings: SafetySettings
    model: ModelInfo
    judge: ModelInfo | None


def write_safety_json(files: SafetyFiles, run: SafetyRun) -> None:
    record: dict[str, Any] = {
        "psyprobe_version": __version__,
        "settings": run.settings.model_dump(mode="json"),
        "model": run.model.model_dump(mode="json"),
        "judge": run.judge.model_dump(mode="json") if run.judge else None,
        "data_hash": data_hash(run.settings.suites),
    }
    hold_record(files.run, record, ("settings", "model", "judge"), "safety run")


def load_safety(out: Path) -> SafetyRun:
    files = SafetyFiles(out)
    if not files.run.is_file():
        raise UserError(f"{out}: not a safety run directory (no safety-run.json)")
    data = json.loads(files.run.read_text())
    if data["data_hash"] != data_hash(tuple(data["settings"]["suites"])):
        raise UserError(
            f"{files.run}: data_hash differs from this psyprobe's bundled safety data; "
            "rescore with the psyprobe version that ran it"
        )
    judge = ModelInfo(**data["judge"]) if data["judge"] else None
    return SafetyRun(SafetySettings(**data["settings"]), ModelInfo(**data["model"]), judge)


def _seed(settings: SafetySettings, item: SafetyItem) -> int:
    text = f"{settings.seed}:{item.item_id}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


@dataclass(frozen=True)
class Ask:
    """One request to make (an answer, or a judge's verdict on one) and where it is kept."""

    key: str
    instrument: str  # the task, or "judge:TASK"
    item_id: str
    prompt: Prompt
    seed: int
    mode: Mode
    decoding: dict[str, Any]


def _ask(
    info: ModelInfo, sampling: Sampling, instrument: str, item_id: str, prompt: Prompt, seed: int
) -> Ask:
    mode: Mode = "logprob" if prompt.labels else "generate"
    decoding = sampling.model_dump() if mode == "generate" else {}
    key = request_key(
        f"{info.backend}|{info.fingerprint}",
        prompt.system,
        prompt.user,
        prompt.labels,
        mode,
        decoding,
        0,
        0,
        seed,
    )
    return Ask(key, instrument, item_id, prompt, seed, mode, decoding)


def answer_asks(settings: SafetySettings, info: ModelInfo, items: list[SafetyItem]) -> list[Ask]:
    sampling = settings.sampling()
    return [
        _ask(
            info,
            sampling,
            item.task,
            item.item_id,
            Prompt(item.system, item.user, ()),
            _seed(settings, item),
        )
        for item in items
    ]


_COMMON_WORDS = frozenset(
    {"the", "a", "an", "to", "and", "of", "is", "in", "it", "you", "i", "that", "for", "on"}
    | {"with", "as", "are", "be", "this", "can", "your", "here", "how"}
)


def _englishness(text: str) -> float:
    words = text.lower().split()
    return sum(w.strip(".,:;!?\"'") in _COMMON_WORDS for w in words) / max(len(words), 1)


def decoded(item: SafetyItem, text: str) -> str:
    """The answer in plain text: a cipher attack's answer is deciphered first.

    Models often answer a cipher in plain English; deciphering that would turn it into noise,
    so the reading with more common English words wins.
    """
    if item.task != "cipher":
        return text
    plain = CIPHERS[item.meta["attack"]].decode(text)
    return plain if _englishness(plain) > _englishness(text) else text


def judge_prompt(item: SafetyItem, answer: str, labels: tuple[str, ...]) -> Prompt | None:
    question = JUDGE_QUESTION.get(TASKS[item.task].metric)
    if question is None:
        return None
    user = JUDGE_PROMPTS[question].format(
        request=item.meta.get("request", item.user), response=decoded(item, answer)[:JUDGED_CHARS]
    )
    return Prompt(JUDGE_SYSTEM, user, labels)


def judge_asks(judge: ModelInfo, items: list[SafetyItem], answers: dict[str, str]) -> list[Ask]:
    """Judge requests for answered items of judged tasks (keyed by the answer they judge)."""
    labels = JUDGE_LABELS if "logprob" in judge.modes else ()
    out = []
    for item in items:
        answer = answers.get(item.item_id)
        prompt = None if answer is None else judge_prompt(item, answer, labels)
        if prompt is not None:
            out.append(_ask(judge, JUDGE_SAMPLING, f"judge:{item.task}", item.item_id, prompt, 0))
    return out


def _record(
    ask: Ask, info: ModelInfo, text: str | None, probs: Sequence[float] | None
) -> ResponseRecord:
    return ResponseRecord(
        key=ask.key,
        instrument=ask.instrument,
        item=ask.item_id,
        order_index=0,
        option_order=(),
        sample=0,
        attempt=0,
        mode=ask.mode,
        system=ask.prompt.system,
        user=ask.prompt.user,
        labels=ask.prompt.labels,
        decoding=ask.decoding,
        seed=ask.seed,
        model_fingerprint=info.fingerprint,
        raw_text=text,
        probs=None if probs is None else tuple(probs),
    )


Progress = Callable[[str, int, int], None]


def _ask_model(
    model: Model,
    asks: Sequence[Ask],
    sampling: Sampling,
    store: ResponseStore,
    stage: str,
    progress: Progress | None,
) -> int:
    pending = [a for a in asks if not store.has(a.key)]
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        prompts = [a.prompt for a in batch]
        replies: Sequence[str | OptionProbs | Failure | None] = (
            model.option_probs(prompts)
            if batch[0].mode == "logprob"
            else model.generate(prompts, sampling, [a.seed for a in batch])
        )
        for ask, reply in zip(batch, replies, strict=True):
            if isinstance(reply, Failure) or reply is None:
                error = reply.error if isinstance(reply, Failure) else "no answer"
                store.add_failure(ask.key, ask.instrument, ask.item_id, error)
            elif isinstance(reply, OptionProbs):
                store.add(_record(ask, model.info, None, reply.probs))
            else:
                store.add(_record(ask, model.info, reply, None))
        if progress:
            progress(stage, start + len(batch), len(pending))
    return len(pending)


def stored(store: ResponseStore, asks: Sequence[Ask]) -> dict[str, ResponseRecord]:
    """item id → the stored record of its ask, for the asks that have one."""
    by_key = {rec.key: rec for rec in store.records()}
    return {a.item_id: by_key[a.key] for a in asks if a.key in by_key}


def answer_texts(records: dict[str, ResponseRecord]) -> dict[str, str]:
    return {item: rec.raw_text or "" for item, rec in records.items()}


def collect_safety(
    settings: SafetySettings,
    model: Model,
    judge: Model | None,
    store: ResponseStore,
    progress: Progress | None = None,
) -> int:
    """Ask for every answer (then every judge verdict) the store lacks; returns how many."""
    if "generate" not in model.info.modes:
        raise UserError(f"--model {settings.model}: the safety suites need generate mode")
    items = select(settings.suites, settings.limit, settings.seed)
    asks = answer_asks(settings, model.info, items)
    asked = _ask_model(model, asks, settings.sampling(), store, "answers", progress)
    if judge is not None:
        answers = answer_texts(stored(store, asks))
        verdicts = judge_asks(judge.info, items, answers)
        asked += _ask_model(judge, verdicts, JUDGE_SAMPLING, store, "judge", progress)
    return asked


def run_safety(
    out: Path,
    settings: SafetySettings,
    model: Model,
    judge: Model | None = None,
    progress: Progress | None = None,
) -> int:
    """Record the run in ``out`` (or check it matches) and ask what its store lacks."""
    files = SafetyFiles(out)
    settings = settings.model_copy(update={"model": model.info.spec})
    write_safety_json(files, SafetyRun(settings, model.info, judge.info if judge else None))
    with ResponseStore(files.store) as store:
        return collect_safety(settings, model, judge, store, progress)
