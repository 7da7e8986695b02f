"""Command-line options shared by the commands that open a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # imported where used: the command line starts without the model stack
    from psyprobe.editing import Edits
    from psyprobe.models.registry import BackendOptions

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="smollm2 | gemma3-270m | gguf:PATH | hf:PATH | openai:MODEL[@URL] | replay:FILE",
    ),
]
BaseUrl = Annotated[str | None, typer.Option(help="Server URL for openai:MODEL")]
KeyEnv = Annotated[str, typer.Option(help="Environment variable holding the API key")]
Concurrency = Annotated[int, typer.Option(help="Concurrent requests to a server")]
Timeout = Annotated[float, typer.Option(help="Seconds per server request")]
MaxRetries = Annotated[int, typer.Option(help="Retries of a failed server request")]
DType = Annotated[str, typer.Option(help="hf: float32 | bfloat16 | float16")]
Device = Annotated[str, typer.Option(help="hf: auto | cpu | cuda")]
Threads = Annotated[
    int | None, typer.Option(min=1, help="llama.cpp: CPU threads [default: one per core]")
]


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
    from psyprobe.models.registry import BackendOptions

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
