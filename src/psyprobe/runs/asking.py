"""The one way a model is asked: typed requests, one seed rule, one ask-loop that stores as it goes.

Personality runs, safety runs and judges all plan ``Request``s and hand them to ``ask``: it sends
what the store lacks in batches, writes every answer (or failure) the moment its batch returns,
so an interrupted run loses at most one batch, and records failures one way for all of them. A
plan may be made afresh on every pass (``Remade``) instead of held: a design of half a million
prompts costs the run its store, not its plan.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from psyprobe.models import Mode, Model, ModelInfo, OptionProbs, Sampling
from psyprobe.models.base import Completion, EndpointLoad, Failure, Until
from psyprobe.prompting import Prompt
from psyprobe.records import Origin, ResponseRecord, request_key
from psyprobe.runs.store import ResponseStore

BATCH = 32  # prompts per model call: small enough that an interrupt loses little
# Requests taken from a plan, checked against the store and put in text order together: what a
# run holds of its plan at a time, whatever the plan's size.
WINDOW = 8192


class Progress(Protocol):
    """Called as answers are stored (each generated answer; a call's scores once, together):
    what the batch asks (an instrument, a safety task, an ARC part), how many are asked of how
    many, and each endpoint's answers where several serve the model."""

    def __call__(
        self, what: str, done: int, total: int, endpoints: Sequence[EndpointLoad], /
    ) -> None: ...


@dataclass(frozen=True)
class Request:
    """One answer to ask for, and the key it is stored under."""

    key: str
    prompt: Prompt
    mode: Mode
    decoding: dict[str, Any]  # the sampling settings in generate mode; empty for logprobs
    seed: int
    origin: Origin
    # When the answer can be read (questionnaires with stop-when-read); not part of the key,
    # which holds the switch itself through ``decoding``.
    until: Until | None = field(default=None, compare=False)


T = TypeVar("T")


class Remade(Generic[T]):
    """An iterable made afresh by ``make`` on every pass: a plan walked more than once (counted,
    asked, read again for retries) without being held."""

    def __init__(self, make: Callable[[], Iterable[T]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[T]:
        return iter(self._make())


def derive_seed(*parts: object) -> int:
    """A request's sampling seed from what identifies it: the same parts, the same answer."""
    text = ":".join(map(str, parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


def make_request(
    info: ModelInfo,
    prompt: Prompt,
    mode: Mode,
    sampling: Sampling,
    seed: int,
    origin: Origin,
    until: Until | None = None,
) -> Request:
    decoding = sampling.model_dump() if mode == "generate" else {}
    request = Request("", prompt, mode, decoding, seed, origin, until)
    return replace(request, key=_key(info, request, origin.question()))


def _key(info: ModelInfo, r: Request, question: tuple[object, ...] = ()) -> str:
    """``r``'s store key; without ``question``, the key stores written before filed it under."""
    return request_key(
        # The same weights through another runtime answer slightly differently (llama.cpp's
        # quantised matmuls vs float transformers), so the runtime is part of the identity.
        f"{info.backend}|{info.fingerprint}",
        r.prompt.system,
        r.prompt.user,
        r.prompt.labels,
        r.mode,
        r.decoding,
        r.origin.sample,
        r.origin.attempt,
        r.seed,
        identity=question,
        history=r.prompt.history,
    )


def _record(
    req: Request, info: ModelInfo, answer: str | Completion | OptionProbs | None
) -> ResponseRecord:
    o = req.origin
    done = answer if isinstance(answer, Completion) else None
    return ResponseRecord(
        key=req.key,
        **o.stored(),
        option_order=o.option_order,
        mode=req.mode,
        system=req.prompt.system,
        user=req.prompt.user,
        labels=req.prompt.labels,
        decoding=req.decoding,
        seed=req.seed,
        model_fingerprint=info.fingerprint,
        raw_text=done.text if done else answer if isinstance(answer, str) else None,
        probs=tuple(answer.probs) if isinstance(answer, OptionProbs) else None,
        tokens=done.tokens if done else None,
        ended=done.ended if done else None,
        conditions=dict(o.conditions),
        history=req.prompt.history,
    )


def batches(requests: Iterable[Request], size: Callable[[Mode], int]) -> Iterator[list[Request]]:
    """Batches of one mode and decoding each, neighbours in text order together: they share the
    longest prefixes, which every backend with a prefix cache (llama.cpp here, vLLM on a server)
    turns into saved work. Taken WINDOW requests at a time, so a plan is never held whole."""
    taken = iter(requests)
    while window := list(islice(taken, WINDOW)):
        groups: dict[str, list[Request]] = defaultdict(list)
        for r in window:
            groups[f"{r.mode}|{sorted(r.decoding.items())}"].append(r)
        for group in groups.values():
            group.sort(key=lambda r: (r.prompt.system or "", r.prompt.history, r.prompt.user,
                                      r.origin.sample))  # fmt: skip
            step = size(group[0].mode)
            for i in range(0, len(group), step):
                yield group[i : i + step]


@dataclass(frozen=True)
class Asked:
    """What one ``ask`` did."""

    planned: int  # the requests it was given
    asked: int  # those the store lacked, asked for now
    lacking: int  # of those, still without an answer (failed: asked again by the next run)


def ask(
    model: Model,
    requests: Iterable[Request],
    store: ResponseStore,
    progress: Progress | None = None,
) -> Asked:
    """Ask for every request the store lacks.

    ``requests`` is walked twice — to count what is missing (the progress' total), then to ask
    it — so it is a list or a plan made afresh on each pass (``Remade``), never a one-pass
    iterator. A ``Failure`` (the backend gave up after its own retries) is recorded as a failure
    and asked again by the next run; ``None`` (the backend has no answer to give, e.g. a replay
    without that sample) is stored as an answer without text, which scoring reads as invalid.
    """
    info = model.info
    planned = total = 0
    for r in requests:
        planned += 1
        total += _lacks(store, info, r)
    done = lacking = 0
    missing = (r for r in requests if _lacks(store, info, r))
    # A backend that shares prefixes or decodes many sequences together says how many
    # requests of a mode it can use at once.
    for batch in batches(missing, lambda mode: max(BATCH, model.preferred_batch(mode))):
        prompts = [r.prompt for r in batch]
        replies: Iterable[tuple[int, OptionProbs | str | Completion | Failure | None]] = (
            enumerate(model.option_probs(prompts))
            if batch[0].mode == "logprob"
            else model.generate_as_ready(
                prompts,
                Sampling(**batch[0].decoding),
                [r.seed for r in batch],
                [r.until for r in batch],
            )
        )
        first = batch[0].origin
        what = (
            first.instrument if first.role == "answer" else f"{first.role}s on {first.instrument}"
        )
        # Each stored as it comes, committed with the rest of its batch (or every
        # COMMIT_EVERY seconds while a batch decodes): one disk write, not 32.
        together = batch[0].mode == "logprob"  # a call's scores all come back at once
        with store.together():
            for i, reply in replies:
                _store(store, batch[i], info, reply)
                done += 1
                # Per generated answer as it ends (one call can decode for minutes); once for
                # scores, when all are stored: reported one by one, a line printed at the
                # first would count the call's others as still to come.
                if progress and not (together and i < len(batch) - 1):
                    progress(what, done, total, model.endpoint_loads())
        lacking += sum(not store.has(r.key) for r in batch)
    return Asked(planned, total, lacking)


def _lacks(store: ResponseStore, info: ModelInfo, r: Request) -> bool:
    """Whether ``r`` has no answer in ``store`` (an answer stored under an old key is adopted
    where it says it is this question's)."""
    if store.has(r.key):
        return False
    return not (store.legacy and store.adopt(_key(info, r), r.key, r.origin.stored()))


def _store(
    store: ResponseStore,
    req: Request,
    info: ModelInfo,
    reply: OptionProbs | str | Completion | Failure | None,
) -> None:
    if isinstance(reply, OptionProbs) and not all(0 <= p < math.inf for p in reply.probs):
        # never stored: a NaN would poison every score and report built from the store
        reply = Failure(f"probabilities that are not numbers in [0, 1]: {reply.probs}")
    if isinstance(reply, Failure):
        store.add_failure(req.key, req.origin.instrument, req.origin.item, reply.error)
    else:
        store.add(_record(req, info, reply))
