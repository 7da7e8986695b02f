"""The one ask-loop (runs/asking.py): failures one way, answers stored as their batch returns."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from psyprobe.models import Mode, Model, ModelInfo, OptionProbs, Sampling
from psyprobe.models.base import Completion, Failure, Until
from psyprobe.prompting import Prompt
from psyprobe.runs import asking
from psyprobe.runs import store as store_module
from psyprobe.runs.asking import BATCH, Origin, Request, ask, derive_seed, make_request
from psyprobe.runs.store import ResponseStore

pytestmark = pytest.mark.unit

INFO = ModelInfo(spec="fake", backend="fake", fingerprint="f", modes=("generate", "logprob"))


class FakeModel(Model):
    """A fake that isolates the loop: answers by the prompt's text, fails or has nothing to say
    where told, and can be interrupted at a given call."""

    info = INFO

    def __init__(self, interrupt_at_call: int | None = None):
        self.calls: list[tuple[str, int]] = []
        self.interrupt_at_call = interrupt_at_call

    def _called(self, mode: str, n: int) -> None:
        self.calls.append((mode, n))
        if len(self.calls) == self.interrupt_at_call:
            raise KeyboardInterrupt

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Failure | None]:
        self._called("generate", len(prompts))
        out: list[str | Failure | None] = []
        for p in prompts:
            out.append(Failure("boom") if "fail" in p.user else None if "none" in p.user else "ok")
        return out

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        self._called("logprob", len(prompts))
        return [OptionProbs(probs=[0.25, 0.75]) for _ in prompts]


def _requests(texts: Sequence[str], mode: Mode = "generate") -> list[Request]:
    labels = ("A", "B") if mode == "logprob" else ()
    return [
        make_request(
            INFO,
            Prompt(None, text, labels),
            mode,
            Sampling(temperature=0.0, max_tokens=4),
            derive_seed(0, text),
            Origin("task", f"item-{k}"),
        )
        for k, text in enumerate(texts)
    ]


def test_a_failure_is_asked_again_and_a_none_is_an_answer_without_text(tmp_path: Path) -> None:
    requests = _requests(["say ok", "fail please", "none here"])
    with ResponseStore(tmp_path / "s.sqlite") as store:
        assert ask(FakeModel(), requests, store).asked == 3
        records = {r.user: r for r in store.records()}
        assert records["say ok"].raw_text == "ok" and records["none here"].raw_text is None
        assert store.failures() == {"boom": 1}
        # the rerun asks only for the failed one
        model = FakeModel()
        assert ask(model, requests, store).asked == 1 and model.calls == [("generate", 1)]


def test_modes_are_batched_apart_and_answers_stored_as_each_batch_returns(tmp_path: Path) -> None:
    requests = _requests([f"q{k}" for k in range(BATCH + 5)]) + _requests(["a", "b"], "logprob")
    with ResponseStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            ask(FakeModel(interrupt_at_call=2), requests, store)
        assert store.count() == BATCH  # the first batch was kept; the interrupted one is asked
        model = FakeModel()
        assert ask(model, requests, store).asked == 7
        assert sorted(model.calls) == [("generate", 5), ("logprob", 2)]
        probs = [r.probs for r in store.records() if r.mode == "logprob"]
        assert probs == [(0.25, 0.75)] * 2


def test_progress_hears_of_scores_a_call_at_a_time_and_of_generated_answers_one_by_one(
    tmp_path: Path,
) -> None:
    """A call's next-token scores come back together: progress is told once they are all
    stored, so a line says what is done (told one by one, a line printed at the first counted
    the call's others as still to come). Generated answers end one at a time: each is told."""
    requests = _requests([f"q{k}" for k in range(BATCH + 5)], "logprob") + _requests(["a", "b"])
    told: list[int] = []
    with ResponseStore(tmp_path / "s.sqlite") as store:
        ask(FakeModel(), requests, store, lambda what, done, total, loads: told.append(done))
    assert told == [BATCH, BATCH + 5, BATCH + 6, BATCH + 7]


def test_derived_seeds_depend_only_on_their_parts() -> None:
    assert derive_seed(0, "item-1") == derive_seed(0, "item-1") != derive_seed(1, "item-1")
    assert 0 <= derive_seed("x") < 2**31


# --- keys: one answer per question ----------------------------------------------------------


def test_two_questions_with_one_prompt_are_two_answers(tmp_path: Path) -> None:
    """The same statement in two instruments, or twice in one: the prompt is the same, the
    questions are not (before, the second answer replaced the first under one key)."""
    prompt = Prompt(None, "I like to get revenge on authorities.", ("A", "B"))
    origins = [Origin("sd3", "1"), Origin("mine", "1"), Origin("mine", "2")]
    requests = [make_request(INFO, prompt, "logprob", Sampling(), 0, o) for o in origins]
    assert len({r.key for r in requests}) == 3
    with ResponseStore(tmp_path / "s.sqlite") as store:
        assert ask(FakeModel(), requests, store).asked == 3
        stored = sorted((r.instrument, r.item) for r in store.records())
    assert stored == [("mine", "1"), ("mine", "2"), ("sd3", "1")]


def test_a_store_written_before_keys_named_the_question_is_adopted(tmp_path: Path) -> None:
    """An old store filed each answer under a key of its prompt alone: a rerun adopts each
    answer for the question it says it answers, and asks the question whose answer was lost
    to the old collision (the store kept the last writer's)."""
    from dataclasses import replace

    from psyprobe.runs.asking import _key, _record

    prompt = Prompt(None, "I like to get revenge on authorities.", ("A", "B"))
    first, second = (
        make_request(INFO, prompt, "logprob", Sampling(), 0, Origin(name, "1"))
        for name in ("sd3", "mine")
    )
    path = tmp_path / "s.sqlite"
    with ResponseStore(path) as store:  # the old scheme: one key, the last writer's answer
        old = _key(INFO, first)
        store.add(_record(replace(second, key=old), INFO, OptionProbs(probs=[0.2, 0.8])))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")  # as every store written before
    with ResponseStore(path) as store:
        assert store.legacy
        model = FakeModel()
        assert ask(model, [first, second], store).asked == 1  # "mine" adopted, "sd3" asked
        assert model.calls == [("logprob", 1)]
        held = {r.instrument: (r.key, r.probs) for r in store.records()}
    assert held == {"mine": (second.key, (0.2, 0.8)), "sd3": (first.key, (0.25, 0.75))}


class NotANumber(FakeModel):
    """A backend that returns NaN probabilities (a fake of a broken runtime or server)."""

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        return [OptionProbs(probs=[math.nan, 0.5]) for _ in prompts]


def test_probabilities_that_are_not_numbers_are_a_failure_never_an_answer(tmp_path: Path) -> None:
    requests = _requests(["a", "b"], "logprob")
    with ResponseStore(tmp_path / "s.sqlite") as store:
        assert ask(NotANumber(), requests, store).asked == 2
        assert store.count() == 0
        assert store.failures() == {"probabilities that are not numbers in [0, 1]: [nan, 0.5]": 2}
        assert ask(FakeModel(), requests, store).asked == 2  # asked again, and stored
        assert store.count() == 2


def test_a_plan_is_walked_in_windows_never_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#37: a plan made afresh on each pass (``Remade``) is counted, then asked WINDOW requests
    at a time: the requests taken from it but not yet answered never exceed a window, and what
    the store holds is skipped on both passes."""
    monkeypatch.setattr(asking, "WINDOW", 10)
    texts = [f"prompt {k:03d}" for k in range(45)]
    taken = 0

    def made() -> Iterator[Request]:
        nonlocal taken
        for r in _requests(texts):
            taken += 1
            yield r

    ahead: list[int] = []

    class Watched(FakeModel):
        def _called(self, mode: str, n: int) -> None:
            # of the asking pass: taken, less the 7 stored it skipped and those answered
            ahead.append(taken - 45 - 7 - sum(k for _, k in self.calls))
            super()._called(mode, n)

    with ResponseStore(tmp_path / "s.sqlite") as store:
        ask(FakeModel(), _requests(texts[:7]), store)  # seven answered before
        model = Watched()
        done = ask(model, asking.Remade(made), store)
        assert (done.planned, done.asked, done.lacking) == (45, 38, 0)
        assert taken == 2 * 45  # two passes: counted, then asked
        assert ahead == [10, 10, 10, 8]  # one window ahead of the answers, never more
        assert [n for _, n in model.calls] == [10, 10, 10, 8]
        assert store.count() == 45


def test_a_batch_is_committed_together_and_at_least_every_commit_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#37: the store's writes are batched — another reader sees none of a batch's answers
    until it ends (one commit, not one per answer) — but no answer waits uncommitted longer
    than COMMIT_EVERY (with 0, each is committed as the next arrives)."""
    path = tmp_path / "s.sqlite"
    seen: list[int] = []

    class Peeking(FakeModel):
        def generate_as_ready(
            self,
            prompts: Sequence[Prompt],
            sampling: Sampling,
            seeds: Sequence[int],
            until: Sequence[Until | None] | None = None,
        ) -> Iterator[tuple[int, str | Completion | Failure | None]]:
            for i, answer in enumerate(self.generate(prompts, sampling, seeds, until)):
                with sqlite3.connect(path) as other:
                    seen.append(other.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
                yield i, answer

    with ResponseStore(path) as store:
        ask(Peeking(), _requests(["a", "b", "c"]), store)
        monkeypatch.setattr(store_module, "COMMIT_EVERY", 0.0)
        ask(Peeking(), _requests(["d", "e", "f"]), store)
    assert seen == [0, 0, 0, 3, 4, 5]
