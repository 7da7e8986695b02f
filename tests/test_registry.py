"""Backends declare themselves: a new backend is one module in ``psyprobe.models``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import psyprobe.models
from psyprobe.errors import UserError
from psyprobe.models import backends, open_model, registry

ECHO = """
from psyprobe.models.registry import backend
from psyprobe.models.sim import SimModel


@backend("echo", usage="echo:PROFILE", name="echo", modes="logprob, generate",
         what="a test backend declared in one file")
def open_echo(spec, rest, options, connect):
    return SimModel("sim:" + rest)
"""


@pytest.mark.unit
def test_a_backend_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "echo.py").write_text(ECHO)
    # the module lies beside the package's own: nothing else names it
    monkeypatch.setattr(psyprobe.models, "__path__", [*psyprobe.models.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.delitem(sys.modules, "psyprobe.models.echo", raising=False)
    try:
        assert backends()["echo"].usage == "echo:PROFILE"
        model = open_model("echo:Machiavellianism=5")
        assert model.info.backend == "sim"
        assert "gguf" in backends() and "openai" in backends()  # the built-in ones are kept
    finally:
        sys.modules.pop("psyprobe.models.echo", None)
    with pytest.raises(UserError, match="unknown backend 'nope'"):
        open_model("nope:x")


@pytest.mark.e2e
def test_finding_every_backend_loads_no_runtime() -> None:
    """Listing backends imports each backend's module, never its runtime (llama.cpp, torch)."""
    code = (
        "import sys; from psyprobe.models import backends; found = backends(); "
        "print(sorted(found), [m for m in ('torch', 'transformers', 'llama_cpp') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['gguf', 'hf', 'openai', 'replay', 'sim'] []"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("mode", "installed", "path"),
    [
        ("logprob", True, "hf"),
        ("logprob", False, "gguf"),  # without the hf extra: llama.cpp
        ("generate", True, "gguf"),  # generation stays on llama.cpp
        (None, True, "gguf"),  # a caller that asks both (a study, the safety suites)
    ],
)
def test_an_alias_scores_through_transformers_only_where_it_can(
    monkeypatch: pytest.MonkeyPatch, mode: str | None, installed: bool, path: str
) -> None:
    """The rule alone: the openers are replaced by recorders (no weights are loaded; the
    real paths and their agreement are tests/test_backends.py's)."""
    opened: list[tuple[str, str, str]] = []
    known = dict(backends())
    for kind in ("gguf", "hf"):
        known[kind] = registry.Backend(
            kind, "", "", "", "",
            lambda spec, rest, options, connect, kind=kind: opened.append((kind, spec, rest)),
        )  # fmt: skip
    monkeypatch.setattr(registry, "_BACKENDS", known)
    monkeypatch.setattr(registry, "scores_on_transformers", lambda: installed)
    open_model("smollm2", mode=mode)  # type: ignore[arg-type]
    assert opened == [(path, "smollm2", "smollm2")]  # the spec stays the alias: the run says so
    opened.clear()
    open_model("gguf:smollm2", mode="logprob")  # a named path is kept
    assert opened == [("gguf", "gguf:smollm2", "smollm2")]
