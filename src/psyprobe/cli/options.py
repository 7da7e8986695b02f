"""Command-line options shared by the commands that open a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from psyprobe.models.registry import BackendOptions

if TYPE_CHECKING:  # imported where used: the command line starts without the model stack
    from psyprobe.editing import Edits

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="smollm2 | gemma3-270m | gguf:PATH | hf:PATH | openai:MODEL[@URL] | replay:FILE",
    ),
]


def _help(name: str) -> str:
    return BackendOptions.model_fields[name].description or ""


# The backend options, their help and defaults (BACKEND) as models/registry.py declares them.
BACKEND = BackendOptions()
BaseUrl = Annotated[str | None, typer.Option(help=_help("base_url"))]
KeyEnv = Annotated[str, typer.Option(help=_help("api_key_env"))]
Concurrency = Annotated[int, typer.Option(help=_help("concurrency"))]
Timeout = Annotated[float, typer.Option(help=_help("timeout"))]
MaxRetries = Annotated[int, typer.Option(help=_help("max_retries"))]
DType = Annotated[str, typer.Option(help=_help("dtype"))]
Device = Annotated[str, typer.Option(help=_help("device"))]
Threads = Annotated[int | None, typer.Option(min=1, help=_help("threads"))]


def backend_options(
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    max_retries: int,
    dtype: str,
    device: str,
    threads: int | None,
) -> BackendOptions:
    return BackendOptions(
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        dtype=dtype,
        device=device,
        threads=threads,
    )


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


def edits(persona: str | None, steer: list[str] | None, adapter: str | None) -> Edits:
    from psyprobe.editing import Edits

    return Edits(persona=persona, steer=tuple(steer or ()), adapter=adapter)
