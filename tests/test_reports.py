"""What people look at: report.md, report.html in a real browser, figures, comparisons."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from conftest import psyprobe

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.model
def test_figures_are_real_images(sd3_run: Path) -> None:
    for name in ("sd3-scores.png", "sd3-positions.png"):
        image = matplotlib.image.imread(sd3_run / "figures" / name)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50  # not blank


@pytest.mark.model
def test_markdown_carries_reliability_and_validity(sd3_run: Path) -> None:
    results = json.loads((sd3_run / "results.json").read_text())
    sd3 = results["instruments"]["sd3"]
    report = (sd3_run / "report.md").read_text()
    assert f"position bias {sd3['position_bias']:.3f}" in report
    header = next(line for line in report.splitlines() if line.startswith("| Dimension |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[8:13] == ["α", "ω", "Items", "Valid", "Validity"]
    for dim, d in sd3["dimensions"].items():
        row = next(line for line in report.splitlines() if line.startswith(f"| {dim} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(columns)
        assert cells[12] == d["validity"]
        for reason in d["validity_reasons"]:
            assert reason in report


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_html_renders_in_headless_chromium(sd3_run: Path, tmp_path: Path) -> None:
    page = (sd3_run / "report.html").resolve()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "Machiavellianism" in dom and dom.count("data:image/png;base64,") >= 2
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (1600, 1200)
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 100  # text and plots


@pytest.mark.model
def test_compare_smollm2_with_gemma(tmp_path: Path) -> None:
    # respondent populations on both sides: Welch's t needs respondents that vary (four do)
    population = ["--instrument", "swls", "--respondents", "4"]
    runs = {name: tmp_path / name for name in ("smollm2", "gemma3-270m")}
    for name, out in runs.items():
        psyprobe("run", "--model", name, *population, "--out", str(out))
    out = tmp_path / "cmp"
    proc = psyprobe("compare", *map(str, runs.values()), "--out", str(out))
    assert "compare.md" in proc.stdout
    data = json.loads((out / "compare.json").read_text())
    assert [r["model"] for r in data["runs"]] == ["smollm2", "gemma3-270m"]
    base, mine = (
        json.loads((runs[n] / "results.json").read_text())["instruments"]["swls"]["dimensions"]
        for n in runs
    )
    for row in data["comparisons"]:
        dim = row["dimension"]
        assert row["diff"] == pytest.approx(mine[dim]["score"] - base[dim]["score"])
        assert row["p"] is not None and row["p"] <= row["p_holm"] <= 1
        assert row["ci95"][0] <= row["ci95"][1]
    assert "| swls | Life satisfaction |" in (out / "compare.md").read_text()


@pytest.mark.unit
def test_compare_needs_two_runs(tmp_path: Path) -> None:
    proc = psyprobe("compare", str(tmp_path), check=False)
    assert proc.returncode == 2 and "at least two" in proc.stderr
