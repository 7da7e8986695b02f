"""Command-line options shared by the commands that open a model."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from psyprobe.models.registry import BackendOptions

if TYPE_CHECKING:  # imported where used: the command line starts without the model stack
    from psyprobe.editing import Edits

Command = TypeVar("Command", bound=Callable[..., Any])

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="smollm2 | gemma3-270m | gguf:PATH | hf:PATH | openai:MODEL[@URL] | replay:FILE",
    ),
]


# The backend options a command line offers: BackendOptions' fields (batch_size is for the
# Python API and studies), as flags named after them (--base-url, --dtype, ...).
SERVER = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries")
TORCH = ("dtype", "device")
SERVER_AND_RUNTIME = (*SERVER, *TORCH, "threads")
BACKEND = BackendOptions()  # the defaults, for commands that take ``backend``


def _flag(name: str) -> inspect.Parameter:
    field = BackendOptions.model_fields[name]
    # ranges are BackendOptions' own checks: one line naming the flag (cli.main), not a box
    option = typer.Option(help=field.description or "")
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=field.default,
        annotation=Annotated[field.annotation, option],
    )


def backend_flags(*names: str) -> Callable[[Command], Command]:
    """Give a command the backend options ``names`` as flags, declared once in BackendOptions
    (type, default, help, checks); the command receives them as ``backend: BackendOptions``."""

    def add(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "backend"]
        flags = [_flag(name) for name in names]

        @functools.wraps(command)
        def with_backend(*args: Any, **kwargs: Any) -> Any:
            backend = BackendOptions(**{name: kwargs.pop(name) for name in names})
            return command(*args, backend=backend, **kwargs)

        parameters = [*own, *flags]
        # typer reads the signature and the annotations: both as evaluated objects
        with_backend.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_backend.__annotations__ = {p.name: p.annotation for p in parameters}
        return cast(Command, with_backend)

    return add


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
