"""A personality run's plan: its settings, every prompt it asks, the retries of unreadable answers.

A run directory holds ``run.json`` (settings, model identity, the instruments as asked) and
``responses.sqlite``; everything else in it is rebuilt from those two by ``psyprobe report``.
``engine.personality`` asks what is planned here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import (
    ValidationError,
)

from psyprobe.errors import UserError
from psyprobe.instruments import (
    Instrument,
    builtin_id,
    builtin_paths,
    load_instrument,
    parse_instrument,
    read_instrument,
)
from psyprobe.models import ModelInfo
from psyprobe.prompting import (
    TEMPLATES,
    ItemPrompt,
    build_prompts,
    crossed,
    population,
    prompt_count,
)
from psyprobe.records import Origin, ResponseRecord
from psyprobe.runs.asking import Request, derive_seed, make_request
from psyprobe.runs.directory import read_record
from psyprobe.runs.layout import Layout
from psyprobe.runs.settings import RunSettings
from psyprobe.runs.store import ResponseStore
from psyprobe.scoring.matrix import parse_record
from psyprobe.scoring.parse import settled

log = logging.getLogger("psyprobe")


@dataclass(frozen=True)
class Planned:
    """A questionnaire request with the item prompt it asks (how its answer is read back)."""

    request: Request
    item_prompt: ItemPrompt


def load_run(out: Path) -> tuple[RunSettings, ModelInfo, dict[str, Instrument]]:
    files = Layout(out)
    data = read_record(files.run, "run")
    try:
        instruments = {
            name: parse_instrument(raw, f"{files.run}: instruments.{name}")
            for name, raw in data["instruments"].items()
        }
        return RunSettings.stored(data["settings"]), ModelInfo(**data["model"]), instruments
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise UserError(f"{files.run}: not a psyprobe run record ({exc!r:.120})") from None


def resolve_instruments(names: Sequence[str]) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    builtins = builtin_paths()
    for name in names:
        instrument = load_instrument(name)
        key = builtin_id(instrument)
        if key in builtins:
            _check_variant(name, key, instrument, read_instrument(builtins[key]))
        if key in out:
            raise UserError(f"--instrument {name}: {key} is asked twice")
        out[key] = instrument
    return out


def _check_variant(name: str, key: str, instrument: Instrument, builtin: Instrument) -> None:
    """A file named like a built-in ("SD-3") is filed under the built-in's id: allowed for a
    variant of it (the same items and dimensions, other keys, wording or norms), said aloud;
    refused for a different instrument wearing its name."""
    if instrument == builtin:
        return
    same_items = [(q.item_id, q.dimension) for q in instrument.questions()] == [
        (q.item_id, q.dimension) for q in builtin.questions()
    ]
    if not same_items:
        raise UserError(
            f"--instrument {name}: its name {instrument.name!r} is the built-in {key}'s but its "
            "items are not; give your instrument another name"
        )
    log.warning(
        "note: %s is a variant of the built-in %s (other keys, wording or norms); it is asked and "
        "scored as written, and filed as %s",
        name,
        key,
        key,
    )


def _planned(
    settings: RunSettings, info: ModelInfo, ip: ItemPrompt, sample: int, attempt: int
) -> Planned:
    seed = 0
    asked_under = ip.conditions.stored()
    if settings.mode == "generate":
        parts: tuple[object, ...] = (
            settings.seed, ip.instrument, ip.question.item_id, ip.order_index, sample, attempt
        )  # fmt: skip
        if ip.respondent.persona is not None:  # runs of the model itself keep their old seeds
            parts += (ip.respondent.index,)
        seed = derive_seed(*parts, *asked_under)
    origin = Origin(
        ip.instrument,
        ip.question.item_id,
        ip.order_index,
        ip.order,
        sample,
        ip.respondent.index,
        attempt,
        conditions=asked_under,
    )
    until = None
    if settings.mode == "generate" and settings.stop_when_read:
        shown = [ip.question.options[i] for i in ip.order]
        until = partial(settled, shown=[o.text for o in shown], keys=[o.key for o in shown])
    request = make_request(info, ip.prompt, settings.mode, settings.sampling(), seed, origin, until)
    return Planned(request, ip)


# A plan is never held (the ask-loop takes it a window at a time), but scoring holds every
# answer, about 7 KB each at its peak (bench/RESULTS.md): a million is some 7 GB, as much as a
# laptop has to spare. (A replay file of a million lines reads as tens of thousands of samples.)
MAX_REQUESTS = 1_000_000
# options × answers: ten million floats in scoring's arrays, and the prompts that list them
MAX_CELLS = 10_000_000


def check_workload(settings: RunSettings, instruments: dict[str, Instrument]) -> None:
    """Refuse, before anything is built, a design with more answers than MAX_REQUESTS or more
    option probabilities than MAX_CELLS: what it costs to ask (a prompt lists every option) and
    to score (scoring holds every answer's probabilities) grows with both."""
    crossed_levels = len(crossed(settings.vary, settings.mode))
    prompts = cells = 0
    for inst in instruments.values():
        questions = inst.questions(settings.language)
        n = prompt_count(
            questions, settings.orders, settings.respondents, settings.balance, crossed_levels
        ) * (2 if "context" in settings.vary else 1)
        prompts += n
        cells += n * max(len(q.options) for q in questions)
    answers = prompts * settings.samples
    if answers > MAX_REQUESTS:
        raise UserError(
            f"the design asks {answers:,} answers ({prompts:,} prompts × "
            f"{settings.samples:,} samples; at most {MAX_REQUESTS:,}): use fewer samples, "
            "respondents or orders (latin, random:K)"
        )
    if cells * settings.samples > MAX_CELLS:
        raise UserError(
            f"the design's {answers:,} answers hold {cells * settings.samples:,} option "
            f"probabilities (at most {MAX_CELLS:,}): use fewer samples, respondents or orders, "
            "or a scale with fewer points"
        )


def plan(
    settings: RunSettings, instruments: dict[str, Instrument], info: ModelInfo
) -> Iterator[Planned]:
    """Every answer the design asks for, made as it is taken (``asking.Remade`` makes it again
    for another pass): a run holds none of its plan but the ask-loop's window."""
    template = TEMPLATES[settings.template]
    respondents = population(settings.respondents)
    for name, instrument in instruments.items():
        questions = instrument.questions(settings.language)
        prompts = build_prompts(
            name,
            questions,
            settings.orders,
            template,
            settings.seed,
            respondents,
            settings.balance,
            crossed(settings.vary, settings.mode),
        )
        for ip in prompts:
            for sample in range(settings.samples):
                yield _planned(settings, info, ip.with_sample(sample), sample, 0)


def _chosen(record: ResponseRecord, ip: ItemPrompt, numbers_are_values: bool) -> int | None:
    """The position an answer chose: the likeliest label, or the option its text names."""
    if record.probs is not None:
        return int(np.argmax(record.probs)) if sum(record.probs) > 0 else None
    if record.raw_text is None:
        return None
    return parse_record(record, ip.question, numbers_are_values).position


def plan_in_context(
    settings: RunSettings,
    instruments: dict[str, Instrument],
    info: ModelInfo,
    alone: Iterable[Planned],
    store: ResponseStore,
) -> list[Planned]:
    """Every prompt of ``alone`` asked again after the ``context_items`` items before it in its
    instrument (cyclically), each shown with the answer the same respondent (and sample) gave it
    alone — under the same order and conditions where it was asked so, else its first.
    Readable answers only; a prompt none of whose earlier items was answered is not asked.

    Unlike ``plan``, this is held whole (with every answer given alone): a conversation needs
    the answers of other items, which may be anywhere in the store."""
    stored: dict[Origin, list[ResponseRecord]] = defaultdict(list)
    for rec in store.records():  # by attempt
        stored[rec.origin.any_attempt()].append(rec)
    said: dict[tuple[object, ...], list[tuple[ItemPrompt, str, float]]] = defaultdict(list)
    for p in alone:
        ip, o = p.item_prompt, p.request.origin
        # the first attempt that was read, as scoring takes it
        answered = stored.get(o.any_attempt(), ())
        read = (_chosen(rec, ip, info.numbers_are_scale_values) for rec in answered)
        at = next((position for position in read if position is not None), None)
        if at is not None:
            value = ip.question.options[ip.order[at]].value
            said[(o.instrument, o.respondent, o.sample, o.item)].append(
                (ip, ip.prompt.labels[at], value)
            )
    order = {name: [q.item_id for q in inst.questions(settings.language)]
             for name, inst in instruments.items()}  # fmt: skip
    out = []
    for p in alone:
        ip, o = p.item_prompt, p.request.origin
        items = order[o.instrument]
        at = items.index(o.item)
        turns, values = [], []
        for back in range(min(settings.context_items, len(items) - 1), 0, -1):
            answers = said.get((o.instrument, o.respondent, o.sample, items[at - back]), [])
            same = [a for a in answers if (a[0].order_index, a[0].conditions) ==
                    (ip.order_index, ip.conditions)]  # fmt: skip
            if answers:
                shown, label, value = (same or answers)[0]
                turns.append((shown.prompt.user, label))
                values.append(value)
        if not turns:
            continue
        conditions = dataclasses.replace(ip.conditions, context=settings.context_items)
        assert ip.prompt.source is not None  # every questionnaire prompt has one
        source = dataclasses.replace(
            ip.prompt.source, conditions=conditions, previous=tuple(values)
        )
        prompt = dataclasses.replace(ip.prompt, source=source, history=tuple(turns))
        asked = dataclasses.replace(ip, prompt=prompt, conditions=conditions)
        out.append(_planned(settings, info, asked, o.sample, 0))
    return out


def replan(
    settings: RunSettings,
    info: ModelInfo,
    slots: Iterable[Planned],
    store: ResponseStore,
    attempt: int,
) -> Iterator[Planned]:
    """The slots of ``slots`` to ask again as ``attempt``, with a fresh seed: those whose stored
    answer could not be read at all. A refusal is an answer and is kept; a failed request has no
    answer here and is asked again by the next run, not retried."""
    for p in slots:
        record = store.get(p.request.key)
        if record is None or record.raw_text is None:
            continue
        parsed = parse_record(record, p.item_prompt.question, info.numbers_are_scale_values)
        if parsed.status == "invalid":
            yield _planned(settings, info, p.item_prompt, p.request.origin.sample, attempt)
