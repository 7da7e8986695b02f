"""Command-line options shared by the commands that open a model."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast, get_args

import typer
from pydantic import BaseModel
from rich.markup import escape

from psyprobe.capability import CapabilitySettings
from psyprobe.models.registry import BackendOptions
from psyprobe.runs.settings import RunSettings
from psyprobe.safety.settings import SafetySettings

if TYPE_CHECKING:  # imported where used: the command line starts without the model stack
    from psyprobe.editing import Edits

Command = TypeVar("Command", bound=Callable[..., Any])
Settings = TypeVar("Settings", bound=BaseModel)

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="smollm2 | gemma3-270m | gguf:PATH | hf:PATH | openai:MODEL[@URL] | replay:FILE",
    ),
]


# The backend options a command line offers: BackendOptions' fields (batch_size is for the
# Python API and studies), as flags named after them (--base-url, --dtype, ...).
SERVER = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries", "fingerprint")
TORCH = ("dtype", "device")
SERVER_AND_RUNTIME = (*SERVER, *TORCH, "threads")
BACKEND = BackendOptions()  # the defaults, for commands that take ``backend``
# The run settings ``psyprobe run`` offers (language is an instrument file's matter)
PERSONALITY = tuple(name for name in RunSettings.model_fields if name not in ("model", "language"))
# nothing chosen, for commands that take ``asked``
ASKED, SAFETY, CAPABILITY = RunSettings(), SafetySettings(), CapabilitySettings()


def _parameter(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _backend_flag(name: str) -> inspect.Parameter:
    field = BackendOptions.model_fields[name]
    # ranges are BackendOptions' own checks: one line naming the flag (cli.main), not a box
    option = typer.Option(help=field.description or "")
    if name == "base_url":  # repeatable on the command line: replicas of one model
        return _parameter(name, None, Annotated[list[str] | None, option])
    return _parameter(name, field.default, Annotated[field.annotation, option])


# How a setting is written on the command line where that is not its own name and type: a
# repeatable flag in the singular, a comma-separated list, a pair of switches.
SETTING_FLAGS: dict[str, tuple[str, Any]] = {
    "instruments": ("--instrument", list[str] | None),
    "vary": ("--vary", str | None),
    "stop_when_read": ("--stop-when-read/--full-answers", bool | None),
    "suites": ("--suite", str | None),
}


def _setting_flag(settings: type[BaseModel], name: str) -> inspect.Parameter:
    field = settings.model_fields[name]
    flag, annotation = SETTING_FLAGS.get(name, (f"--{name.replace('_', '-')}", None))
    if annotation is None:  # a number or a name: a choice among names is the type's own check
        number = [t for t in (int, float) if t in (field.annotation, *get_args(field.annotation))]
        annotation = (number[0] if number else str) | None
    # None: not given, so the type's default holds (shown in --help as it is now)
    default = field.default if not isinstance(field.default, tuple) else ",".join(field.default)
    shown = (
        f"{field.description or ''} [default: {default}]" if default != "" else field.description
    )
    option = typer.Option(flag, help=escape(shown or ""), show_default=False)
    return _parameter(name, None, Annotated[annotation, option])


def _with_flags(
    command: Command, into: str, flags: list[inspect.Parameter], made: Callable[..., Any]
) -> Command:
    """``command`` with ``flags`` in place of its parameter ``into``, which receives
    ``made(**the flags' values)``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != into]

    @functools.wraps(command)
    def with_flags(*args: Any, **kwargs: Any) -> Any:
        values = {p.name: kwargs.pop(p.name) for p in flags}
        return command(*args, **{into: made(**values)}, **kwargs)

    parameters = [*own, *flags]
    # typer reads the signature and the annotations: both as evaluated objects
    with_flags.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_flags.__annotations__ = {p.name: p.annotation for p in parameters}
    return cast(Command, with_flags)


def backend_flags(*names: str) -> Callable[[Command], Command]:
    """Give a command the backend options ``names`` as flags, declared once in BackendOptions
    (type, default, help, checks); the command receives them as ``backend: BackendOptions``."""
    return lambda command: _with_flags(
        command, "backend", [_backend_flag(n) for n in names], BackendOptions
    )


def setting_flags(
    settings: type[Settings], *names: str, made: Callable[..., Settings] | None = None
) -> Callable[[Command], Command]:
    """Give a command the fields ``names`` of a measure's settings type as flags, declared once
    there (type, default, help, checks); the command receives ``asked``: the settings made of
    those given (by ``made``, the type itself by default), so the rest keep the type's
    defaults and ``model_fields_set`` tells what was chosen."""

    def asked(**values: Any) -> Settings:
        given = {name: value for name, value in values.items() if value is not None}
        return made(**given) if made else settings.model_validate(given)

    flags = [_setting_flag(settings, name) for name in names]
    return lambda command: _with_flags(command, "asked", flags, asked)


def personality_flags(*names: str) -> Callable[[Command], Command]:
    """Run settings as flags (``psyprobe run``: all of them), checked by
    ``engine.asked_settings``: instruments by their one name, before any model loads."""

    def asked(**given: Any) -> RunSettings:
        from psyprobe.engine import asked_settings  # the engine loads once the command runs

        return asked_settings(**given)

    return setting_flags(RunSettings, *(names or PERSONALITY), made=asked)


Persona = Annotated[
    str | None,
    typer.Option(
        help="Persona: a built-in name (e.g. agreeableness-high, mbti-J) or your own text"
    ),
]
Steer = Annotated[
    list[str] | None,
    typer.Option(help="Steering vector FILE[:LAYER]@COEFFICIENT (hf: models); repeatable"),
]
Adapter = Annotated[str | None, typer.Option(help="LoRA adapter directory (hf: models)")]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the prompts, tokens and threads, and a time estimate from a few prompts "
        "asked on this machine (none from a server); nothing is stored",
    ),
]


def edits(persona: str | None, steer: list[str] | None, adapter: str | None) -> Edits:
    from psyprobe.editing import Edits

    return Edits(persona=persona, steer=tuple(steer or ()), adapter=adapter)
