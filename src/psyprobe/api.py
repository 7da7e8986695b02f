"""The Python API: measure any model — a spec, an open psyprobe model, or a transformers model
already in memory — and get typed results back.

    import psyprobe
    r = psyprobe.measure("sim:Machiavellianism=2", instruments=["sd3"], orders="latin")
    r.to_pandas()    # one row per dimension: score, CI, norms, reliability, verdict
    r.answers()      # one row per stored answer

Every call goes through the same engine as the command line (``psyprobe.engine``): a run
directory is written (``out``, or one under the cache keyed by model and settings), answers are
stored as they arrive, and the same call again resumes or returns at once.

Stability: ``measure``, ``measure_safety``, ``measure_capability``, ``load``, ``load_safety``,
their parameters and the fields of the results they return follow semantic versioning from 1.0;
before 1.0 a change to any of them is named in the release notes. Everything else is internal.
(``safety`` and ``capability`` are the names of psyprobe's subpackages: a function of the same
name on the package would be replaced by the module the moment it is imported.)
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import ValidationError

from psyprobe.errors import UserError, setting_error

if TYPE_CHECKING:
    from psyprobe.capability import CapabilityResults
    from psyprobe.models import Mode, Model
    from psyprobe.models.registry import BackendOptions
    from psyprobe.progress import Reporter
    from psyprobe.report.results import RunResults
    from psyprobe.safety.score import SafetyResults


Call = TypeVar("Call", bound=Callable[..., Any])


def _one_line(call: Call) -> Call:
    """A setting pydantic refuses, or a keyword that is none, is the command line's one-line
    ``UserError`` naming the keyword ("respondents: Input should be greater than or equal to 0
    (got -1)", "respondent: not a setting of measure; did you mean respondents?")."""

    known = [name for name in inspect.signature(call).parameters if name != "model"]

    @functools.wraps(call)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name in kwargs.keys() - set(known):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (one of {', '.join(known)})"
            raise UserError(f"{name}: not a setting of {call.__name__}{hint}")
        try:
            return call(*args, **kwargs)
        except ValidationError as exc:
            raise setting_error(exc, as_flag=False) from None

    return cast(Call, checked)


@contextmanager
def _opened(
    model: Any, tokenizer: Any, backend: dict[str, Any] | None, mode: Mode | None = None
) -> Iterator[Model]:
    """The psyprobe model behind ``model`` (a spec opened for what will be asked, ``mode``);
    closed afterwards only if it was opened here."""
    from psyprobe.editing import open_edited
    from psyprobe.models import Model
    from psyprobe.models.hf import HFModel

    if isinstance(model, Model):
        if tokenizer is not None:
            raise UserError("tokenizer: only for a transformers model, not an open psyprobe model")
        yield model
        return
    if isinstance(model, str):
        opened: Model = open_edited(model, _options(backend), mode=mode)
    elif _is_torch_module(model):
        if tokenizer is None:
            raise UserError("tokenizer: a transformers model needs its tokenizer")
        opened = HFModel.in_memory(model, tokenizer)
    else:
        raise UserError(
            f"model: {type(model).__name__} is neither a spec string, a psyprobe model nor a "
            "transformers model"
        )
    try:
        yield opened
    finally:
        opened.close()


@contextmanager
def _watched(progress: bool, model: Any) -> Iterator[Reporter | None]:
    """The command line's progress for a call, on standard error: a bar on a terminal,
    timestamped lines where it is no terminal (a notebook, ``python script.py 2> log``), also
    kept in the run's run.log; nothing with ``progress=False``."""
    if not progress:
        yield None
        return
    from rich.console import Console

    from psyprobe.progress import Reporter

    with Reporter(Console(stderr=True, markup=False, emoji=False)) as reporter:
        if isinstance(model, str):
            reporter.phase(f"loading {model}")
        yield reporter


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:  # no torch installed: it cannot be a torch module
        return False
    return isinstance(model, torch.nn.Module)


def _options(backend: dict[str, Any] | None) -> BackendOptions:
    from psyprobe.models.registry import BackendOptions

    return BackendOptions(**(backend or {}))


def _default_out(kind: str, model: Model, settings: Any) -> Path:
    """A run directory under the cache, one per model and settings: the same call resumes."""
    from psyprobe.models.base import cache_root

    key = f"{model.info.fingerprint}|{model.info.backend}|{settings.model_dump_json()}"
    return cache_root() / "runs" / kind / hashlib.sha256(key.encode()).hexdigest()[:24]


@_one_line
def measure(
    model: Any,
    instruments: Sequence[str] | str | None = None,
    *,
    orders: str | None = None,
    respondents: int | None = None,
    balance: str | None = None,
    mode: str | None = None,
    samples: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    retries: int | None = None,
    stop_when_read: bool | None = None,
    seed: int | None = None,
    template: str | None = None,
    vary: Sequence[str] | str | None = None,
    context_items: int | None = None,
    out: str | Path | None = None,
    tokenizer: Any = None,
    backend: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunResults:
    """Administer instruments to ``model`` and return the scored results.

    ``model``: a spec (``"smollm2"``, ``"hf:PATH"``, ``"openai:NAME@URL"``, ``"sim:..."``), an
    open psyprobe model, or a transformers model in memory (give ``tokenizer``; hooks and
    adapters on it are honoured). ``instruments``: built-in names or JSON paths (default: study
    A's four). From ``orders`` to ``context_items``: a run's settings as the command line names
    them, each meaning and default declared once in ``psyprobe.runs.RunSettings`` (None: its
    default); ``vary`` is a list of factors (``["templates", "labels", "context"]``) or one
    name. ``backend``: backend options (``base_url``, ``dtype``, ``threads``...).
    ``progress``: the command line's progress (a bar on a terminal, timestamped lines in a
    notebook or a log); False: silent.
    """
    from psyprobe.engine import Personality, asked_settings, personality_settings, run

    asked = asked_settings(**_given(**{k: v for k, v in locals().items() if k in _SETTINGS}))
    opening = _opened(model, tokenizer, backend, asked.mode)
    with _watched(progress, model) as watcher, opening as opened:
        chosen, _ = personality_settings(opened, asked)
        folder = Path(out) if out is not None else _default_out("personality", opened, chosen)
        return run(Personality(chosen), opened, folder, watcher).results


# measure's keywords that are run settings (RunSettings' fields; a test holds the two equal)
_SETTINGS = {
    name
    for name, p in inspect.signature(measure).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in ("out", "tokenizer", "backend", "progress")
} | {"instruments"}


@_one_line
def measure_safety(
    model: Any,
    suites: Sequence[str] | str | None = None,
    *,
    limit: int | None = None,
    judge: str | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    out: str | Path | None = None,
    tokenizer: Any = None,
    backend: dict[str, Any] | None = None,
    progress: bool = True,
) -> SafetyResults:
    """Run the safety suites (default: all five) on ``model``. From ``suites`` to
    ``max_tokens``: a safety run's settings, each meaning and default declared once in
    ``psyprobe.safety.planning.SafetySettings`` (None: its default; ``limit`` None: every
    item). ``progress`` as ``measure``'s."""
    from psyprobe.engine import Safety, run
    from psyprobe.models import open_model
    from psyprobe.safety.settings import SafetySettings

    chosen = _given(
        suites=suites,
        limit=limit,
        judge=judge,
        seed=seed,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    asked = SafetySettings.model_validate(chosen)
    with _watched(progress, model) as watcher, _opened(model, tokenizer, backend) as opened:
        settings = asked.model_copy(update={"model": opened.info.spec})
        folder = Path(out) if out is not None else _default_out("safety", opened, settings)
        judge_model = open_model(asked.judge, _options(backend)) if asked.judge else None
        try:
            return run(Safety(settings, judge_model), opened, folder, watcher).results
        finally:
            if judge_model:
                judge_model.close()


@_one_line
def measure_capability(
    model: Any,
    *,
    arc_limit: int | None = None,
    perplexity_tokens: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    tokenizer: Any = None,
    backend: dict[str, Any] | None = None,
    progress: bool = True,
) -> CapabilityResults:
    """ARC accuracy (models with next-token probabilities) and WikiText-2 perplexity over the
    first ``perplexity_tokens`` tokens (torch). ``arc_limit`` (questions per part),
    ``perplexity_tokens`` and ``seed``: declared once in
    ``psyprobe.capability.CapabilitySettings`` (None: its default; a limit above the bank's
    size asks every question). ``progress`` as ``measure``'s."""
    from psyprobe.capability import CapabilitySettings
    from psyprobe.engine import Capability, run

    settings = CapabilitySettings.model_validate(
        _given(arc_limit=arc_limit, perplexity_tokens=perplexity_tokens, seed=seed)
    )
    with _watched(progress, model) as watcher, _opened(model, tokenizer, backend) as opened:
        folder = Path(out) if out is not None else _default_out("capability", opened, settings)
        return run(Capability(settings), opened, folder, watcher).results


def _given(**values: object) -> dict[str, object]:
    """The settings a call chose: None is the settings type's default."""
    return {name: value for name, value in values.items() if value is not None}


@_one_line
def import_answers(
    files: str | Path | Sequence[str | Path],
    instruments: str | Sequence[str] | None = None,
    *,
    out: str | Path,
    columns: dict[str, str] | str | None = None,
    responses: str = "values",
    figures: bool = False,
) -> dict[str, RunResults]:
    """Import questionnaire answers collected elsewhere (the long format of the README: one
    row per answer, CSV, JSON lines or Parquet) as one scored, judged run directory per model
    under ``out``, with the many-model table beside them; returns each model's results by its
    name. ``columns`` maps your column names (``{"item": "statement"}`` or
    ``"item=statement"``); ``responses``: what a number in a response is, ``values`` (scale
    points) or ``positions``."""
    from psyprobe.collected import import_collection
    from psyprobe.collected.table import parse_columns

    paths = [Path(files)] if isinstance(files, str | Path) else [Path(f) for f in files]
    names = [instruments] if isinstance(instruments, str) else list(instruments or ())
    mapping = parse_columns(columns) if isinstance(columns, str) or columns is None else columns
    return import_collection(paths, Path(out), names, mapping, responses, figures)


def load(run_dir: str | Path) -> RunResults:
    """The results of a personality run directory (results.json), typed."""
    from psyprobe.report.results import RunResults

    return RunResults.load(Path(run_dir))


def load_safety(run_dir: str | Path) -> SafetyResults:
    """The results of a safety run directory (safety.json), typed."""
    from psyprobe.runs import Layout
    from psyprobe.safety.score import SafetyResults

    return SafetyResults.load(Layout(Path(run_dir)).safety_results)
