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
