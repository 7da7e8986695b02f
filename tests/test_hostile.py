"""Hostile input through the real command line: files, flags, directories and storage.

Each case is one a user (or a broken tool upstream) can produce; each must end in one line and
exit 2, or be handled correctly, with nothing already computed lost and nothing written outside
the run directory. The broken-server cases are in test_openai_faults.py. The command runs in this
process, except where a child process is the point: a disk that fills up and a read-only
directory are limits set on the child (RLIMIT_FSIZE, dropped capabilities).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import error_line, psyprobe, write_json, write_jsonl
from psyprobe.instruments import load_instrument
from psyprobe.prompting import TEMPLATES, build_prompts, population, prompt_count
from psyprobe.runs.directory import hold_record, json_text, replacing, write_text
from psyprobe.runs.store import ResponseStore

RUN = ("run", "--model", "sim:Machiavellianism=2", "--instrument", "sd3", "--orders", "fixed")
RUN = (*RUN, "--respondents", "0")
pytestmark = pytest.mark.unit
TWO = {
    "name": "Two",
    "scale": {"min": 1, "max": 2, "labels": ["No", "Yes"]},
    "dimensions": ["D"],
    "items": [{"id": i, "text": f"Statement {i}.", "dimension": "D"} for i in (1, 2)],
}


def _fails(*args: str) -> str:
    """The command's one-line error (asserting it is one line, exit 2, no traceback)."""
    proc = psyprobe(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    return error_line(proc)


# --- directories ----------------------------------------------------------------------------------


def test_a_directory_that_is_not_psyprobes_is_never_written_into(tmp_path: Path) -> None:
    notes = tmp_path / "d" / "report.md"
    notes.parent.mkdir()
    notes.write_text("my notes")
    assert "not psyprobe's (it holds report.md)" in _fails(*RUN, "--out", str(notes.parent))
    assert notes.read_text() == "my notes" and len(list(notes.parent.iterdir())) == 1
    assert "is a file" in _fails(*RUN, "--out", str(notes))


def test_report_keeps_results_when_the_store_is_gone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    psyprobe(*RUN, "--out", str(out))
    kept = (out / "results.json").read_bytes()
    (out / "responses.sqlite").unlink()
    assert "missing" in _fails("report", str(out))
    assert (out / "results.json").read_bytes() == kept
    assert not (out / "responses.sqlite").exists()  # reporting did not create an empty one


def test_junk_records_and_stores_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    psyprobe(*RUN, "--out", str(out))
    (out / "run.json").write_text("{not json")
    assert "run.json: not valid JSON" in _fails("report", str(out))
    assert "run.json: not a psyprobe record" in _fails(*RUN, "--out", str(out))
    other = tmp_path / "other"
    psyprobe(*RUN, "--out", str(other))
    for stale in other.glob("responses.sqlite*"):
        stale.unlink()
    (other / "responses.sqlite").write_bytes(b"junk " * 200)
    assert "not a usable answer store" in _fails("report", str(other))


def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    psyprobe(*RUN, "--out", str(out))
    with ResponseStore(out / "responses.sqlite"):  # this process holds it, as a running run
        assert "another psyprobe process" in _fails(*RUN, "--out", str(out))
    psyprobe("report", str(out))  # released: the directory is usable again


def test_answers_of_another_model_in_the_store_are_never_scored(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    psyprobe(*RUN, "--out", str(mine))
    psyprobe("run", "--model", "sim:Machiavellianism=-2", *RUN[3:], "--out", str(other))
    kept = json.loads((mine / "results.json").read_text())
    with ResponseStore(other / "responses.sqlite") as theirs:
        foreign = list(theirs.records())
    with ResponseStore(mine / "responses.sqlite") as store:  # a store copied in from elsewhere
        for record in foreign:
            store.add(record)
    psyprobe("report", str(mine))
    assert json.loads((mine / "results.json").read_text())["instruments"] == kept["instruments"]


def test_the_record_is_created_once_and_compared_after(tmp_path: Path) -> None:
    record = tmp_path / "d" / "run.json"
    hold_record(record, {"settings": {"a": 1}}, ("settings",), "run")
    hold_record(record, {"settings": {"a": 1}}, ("settings",), "run")
    with pytest.raises(Exception, match=r"other settings \(a\)"):
        hold_record(record, {"settings": {"a": 2}}, ("settings",), "run")
    assert json.loads(record.read_text()) == {"settings": {"a": 1}}
    assert [p.name for p in record.parent.iterdir()] == ["run.json"]  # no partial file left


# --- files written ------------------------------------------------------------------------------


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("good")
    with pytest.raises(KeyboardInterrupt), replacing(path) as fh:
        fh.write("half of the new")
        raise KeyboardInterrupt  # a kill during the write
    assert path.read_text() == "good" and list(tmp_path.iterdir()) == [path]


def test_what_a_killed_writer_left_is_cleared_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    gone = tmp_path / ".results.json.999999999.partial"  # no process has this id
    alive = tmp_path / ".results.json.1.partial"  # init's: a writer still at work
    other = tmp_path / ".report.md.999999999.partial"  # another file's
    for left in (gone, alive, other):
        left.write_text("half")
    write_text(path, "whole")
    assert path.read_text() == "whole" and not gone.exists()
    assert alive.exists() and other.exists()


def test_a_conversion_another_process_is_making_is_waited_for_not_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs started at once on one GGUF file: the second waits on the first's lock and
    loads its conversion (converting into the same place crashed the second before)."""
    pytest.importorskip("filelock")
    import filelock

    from psyprobe.models.hf import load

    monkeypatch.setenv("PSYPROBE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights")
    target = tmp_path / "cache" / "hf" / load.file_fingerprint(weights)[len("sha256:") :][:32]
    monkeypatch.setattr(load, "_convert", lambda *_: pytest.fail("converted a second time"))
    target.parent.mkdir(parents=True)
    waiting = threading.Event()

    class Waited(filelock.FileLock):  # the real lock; says when the second run reaches it
        def __enter__(self) -> Any:
            waiting.set()
            return super().__enter__()

    found: list[Path] = []
    with filelock.FileLock(target.with_name(target.name + ".lock")):  # the first run's
        monkeypatch.setattr(filelock, "FileLock", Waited)
        second = threading.Thread(target=lambda: found.append(load.saved_model_dir(weights)[0]))
        second.start()
        assert waiting.wait(timeout=60)  # it found no conversion and waits for the lock
        target.mkdir()
        (target / "config.json").write_text("{}")  # the first run's conversion, finished
    second.join()
    assert found == [target]


def test_every_command_that_writes_keeps_to_its_own_files_and_folders(tmp_path: Path) -> None:
    """#38, ownership: a file psyprobe did not write is never replaced, a folder holding the
    user's files is never written into; psyprobe's own are (a rerun)."""
    import torch

    from psyprobe.editing import SteeringVector, save_vector

    vector = tmp_path / "v.safetensors"
    save_vector(SteeringVector({3: torch.ones(4)}, {"dimension": "bfi:Agreeableness"}), vector)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my readme")
    (folder / "dose_response.png").write_bytes(b"my figure")
    refused = [
        ("dpo", "pairs", "--out", str(notes)),
        ("steer", "export", str(vector), "--out", str(notes)),
        ("steer", "build", "--model", "hf:smollm2", "--out", str(notes)),
        ("dpo", "train", "--pairs", str(tmp_path / "p.jsonl"), "--out", str(folder)),
        ("steer", "sweep", "--vector", str(vector), "--out", str(folder)),
    ]
    pairs = tmp_path / "p.jsonl"
    psyprobe("dpo", "pairs", "--out", str(pairs))
    psyprobe("dpo", "pairs", "--out", str(pairs))  # its own file: replaced
    for args in refused:
        says = _fails(*args)
        assert "did not write" in says or "not psyprobe's (it holds README.md" in says, args
    assert notes.read_text() == "mine" and (folder / "README.md").read_text() == "my readme"
    assert (folder / "dose_response.png").read_bytes() == b"my figure"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "dose_response.png"]
    exported = tmp_path / "control.gguf"
    psyprobe("steer", "export", str(vector), "--out", str(exported))
    psyprobe("steer", "export", str(vector), "--out", str(exported))  # its own: replaced


def test_a_figure_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    from psyprobe.report.figures import save_figure

    path = tmp_path / "sd3-scores.png"
    path.write_bytes(b"the old figure")
    fig = plt.figure()

    def killed(target: Path, **options: object) -> None:  # a kill halfway through the PNG
        Path(target).write_bytes(b"half a")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", killed)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, path)
    assert path.read_bytes() == b"the old figure" and list(tmp_path.iterdir()) == [path]
    save_figure(plt.figure(), path)
    assert path.read_bytes().startswith(b"\x89PNG") and list(tmp_path.iterdir()) == [path]


def test_json_out_is_strict() -> None:
    text = json_text({"d": math.nan, "ci": [-math.inf, 1.0], "n": 3})
    assert json.loads(text) == {"d": None, "ci": [None, 1.0], "n": 3}
    assert "NaN" not in text and "Infinity" not in text


# --- instruments --------------------------------------------------------------------------------


def test_an_instrument_edited_since_the_run_is_refused(tmp_path: Path) -> None:
    inst = write_json(tmp_path / "two.json", TWO)
    rows = [{"instrument": "two", "item": i, "response": 2} for i in (1, 2)]
    replay = write_jsonl(tmp_path / "a.jsonl", rows)
    args = ("run", "--model", f"replay:{replay}", "--instrument", str(inst))
    psyprobe(*args, "--out", str(tmp_path / "run"))
    write_json(inst, {**TWO, "scale": {"min": 1, "max": 2, "labels": ["Never", "Always"]}})
    assert "other instruments (two)" in _fails(*args, "--out", str(tmp_path / "run"))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"name": "../../x"}, "field name: use letters"),
        ({"name": "SD-3"}, "is the built-in sd3's but its items are not"),
    ],
)
def test_instrument_names_cannot_escape_or_impersonate(
    tmp_path: Path, change: dict[str, str], says: str
) -> None:
    inst = write_json(tmp_path / "x.json", TWO | change)
    out = tmp_path / "deep" / "run"
    run = ("run", "--model", "sim:noise=1", "--instrument", str(inst), "--out", str(out))
    assert says in _fails(*run)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_unreadable_instrument_files_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "latin1.json").write_bytes('{"name": "café"}'.encode("latin-1"))
    assert "nested too deeply" in _fails("instruments", "validate", str(tmp_path / "deep.json"))
    assert "not UTF-8" in _fails("instruments", "validate", str(tmp_path / "latin1.json"))


def test_markup_in_a_user_file_is_printed_as_text(tmp_path: Path) -> None:
    inst = write_json(tmp_path / "m.json", TWO | {"dimensions": ["[/x] D"]} | {
        "items": [{"id": 1, "text": "[bold]Statement[/] 1.", "dimension": "[/x] D"}]
    })  # fmt: skip
    proc = psyprobe("instruments", "show", str(inst))
    assert "[bold]Statement[/] 1." in proc.stdout and "[/x] D" in proc.stdout
    # an escape sequence in a user's file is shown as text, never sent to the terminal
    escaping = write_json(tmp_path / "e.json", TWO | {
        "items": [{"id": 1, "text": "Statement \x1b]0;pwned\x07\x1b[2J 1.", "dimension": "D"}]
    })  # fmt: skip
    shown = psyprobe("instruments", "show", str(escaping)).stdout
    assert "\x1b" not in shown and "Statement \\x1b]0;pwned" in shown


def test_a_design_too_large_is_refused_before_it_is_built(tmp_path: Path) -> None:
    labels = [str(k) for k in range(1, 11)]
    inst = write_json(
        tmp_path / "ten.json", TWO | {"scale": {"min": 1, "max": 10, "labels": labels}}
    )
    says = _fails(
        "run", "--model", "sim:noise=1", "--instrument", str(inst), "--orders", "all", "--dry-run",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert "3,628,800 orders of 10 options" in says


def test_a_workload_too_large_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    # 40,000 answers to one item read as 40,000 samples of every SD-3 item: 1,080,000 requests
    rows = [{"instrument": "sd3", "item": "1", "response": 3}] * 40_000
    replay = write_jsonl(tmp_path / "big.jsonl", rows)
    says = _fails("run", "--model", f"replay:{replay}", "--out", str(tmp_path / "run"))
    assert "1,080,000 answers (27 prompts × 40,000 samples; at most 1,000,000)" in says
    assert not (tmp_path / "run").exists()
    says = _fails(*RUN, "--mode", "generate", "--samples", "40000", "--dry-run")
    assert "1,080,000 answers" in says


def test_a_workload_is_bounded_by_what_it_costs_not_only_its_prompt_count(
    tmp_path: Path,
) -> None:
    """#38: 120,000 answers pass the answer cap, but on a 101-point scale they hold 12 million
    option probabilities (each prompt lists every option; scoring holds every probability)."""
    wide = {**TWO, "scale": {"min": 0, "max": 100, "labels": [f"p{i}" for i in range(101)]}}
    inst = write_json(tmp_path / "wide.json", wide)
    # a server's model: a dry run counts without asking it anything
    server = "openai:m@http://127.0.0.1:9/v1"
    args = ("run", "--model", server, "--instrument", str(inst), "--orders", "fixed",
            "--respondents", "0", "--mode", "generate", "--dry-run")  # fmt: skip
    says = _fails(*args, "--samples", "60000")
    assert "120,000 answers hold 12,120,000 option probabilities (at most 10,000,000)" in says
    assert "prompts" in psyprobe(*args, "--samples", "100").stdout  # a 101-point scale: admitted


def test_the_prompt_count_is_what_the_builder_builds() -> None:
    """The count the refusal rests on, against the prompts themselves."""
    questions = load_instrument("bfi").questions()[:5] + load_instrument("sd3").questions()[:5]
    for design, respondents, balance in [
        ("latin", 0, "within"),
        ("random:3", 0, "within"),
        ("fixed", 4, "within"),
        ("latin", 4, "within"),
        ("latin", 7, "rotate"),
        ("all", 2, "rotate"),
    ]:
        built = list(
            build_prompts(
                "x", questions, design, TEMPLATES["study-a"], 0, population(respondents), balance
            )
        )
        assert prompt_count(questions, design, respondents, balance) == len(built), design


# --- numbers in, numbers out ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ("--samples", "0", "--mode", "generate"),
        ("--temperature", "nan", "--mode", "generate"),
        ("--concurrency", "0"),
        ("--seed", "-1"),
    ],
)
def test_out_of_range_options_are_one_line_before_anything_is_written(
    tmp_path: Path, option: tuple[str, ...]
) -> None:
    assert option[0] in _fails(*RUN, *option, "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_other_commands_name_the_flag_or_file_in_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hi\n")
    out = str(tmp_path / "out")
    for args, says in [
        (("run", "--model", f"gguf:{text}", "--out", out), f"{text} is not a GGUF file"),
        (("run", "--model", f"gguf:{tmp_path}", "--out", out), f"{tmp_path} is not a GGUF file"),
        (("study", str(text), "--out", out), f"{text}: not a study"),
        (("capability", "--arc-limit", "0", "--out", out), "--arc-limit: "),
        (("safety", "--max-tokens", "0", "--out", out), "--max-tokens: "),
    ]:
        assert says in _fails(*args)
    assert not (tmp_path / "out").exists()


def test_replayed_numbers_off_the_scale_are_invalid_not_rounded(tmp_path: Path) -> None:
    inst = write_json(tmp_path / "two.json", TWO)
    rows = [
        {"instrument": "two", "item": 1, "response": -2},  # was read as 2
        {"instrument": "two", "item": 2, "response": 1.7},  # was read as 1
    ]
    replay = write_jsonl(tmp_path / "a.jsonl", rows)
    out = tmp_path / "run"
    psyprobe("run", "--model", f"replay:{replay}", "--instrument", str(inst), "--out", str(out))
    dim = json.loads((out / "results.json").read_text())["instruments"]["two"]
    assert dim["valid_rate"] == 0.0 and dim["dimensions"]["D"]["score"] is None


def test_a_study_name_cannot_leave_the_study_directory(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nmodel: sim:Machiavellianism=2\ninstruments: [sd3]\nsafety: null\n"
        "arc_limit: null\nconditions:\n  - name: '..'\n"
    )
    assert "conditions.0.name" in _fails("study", str(study), "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# --- numbers that would be silently wrong -------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "says"),
    [
        # neighbouring integers that are one float: every score alike, a zero-width CI
        ({"min": 10**17, "max": 10**17 + 1, "labels": ["No", "Yes"]}, "less than or equal"),
        ({"min": 1, "max": 10**400, "labels": ["No", "Yes"]}, "less than or equal"),
        # 20,000 labels in every prompt: gigabytes before the first score
        ({"min": 1, "max": 20_000, "labels": ["x"] * 20_000}, "20,000 points"),
    ],
)
def test_a_scale_that_floats_cannot_hold_is_refused(
    tmp_path: Path, scale: dict[str, object], says: str
) -> None:
    inst = write_json(tmp_path / "wide.json", TWO | {"scale": scale})
    message = _fails("instruments", "validate", str(inst))
    assert "scale" in message and says in message


def test_a_simulated_respondent_too_sure_to_compute_is_refused(tmp_path: Path) -> None:
    # noise 1e-300 squared is 0: the option logits were NaN and poisoned the store
    says = _fails("run", "--model", "sim:noise=1e-300", *RUN[3:], "--out", str(tmp_path / "r"))
    assert "noise must be ≥ 0.001" in says and not (tmp_path / "r").exists()


def test_compare_of_runs_with_nothing_in_common_is_refused(tmp_path: Path) -> None:
    sd3, swls = tmp_path / "sd3", tmp_path / "swls"
    psyprobe(*RUN, "--out", str(sd3))
    psyprobe("run", "--model", "sim:Machiavellianism=2", "--instrument", "swls", *RUN[5:],
             "--out", str(swls))  # fmt: skip
    says = _fails("compare", str(sd3), str(swls), "--out", str(tmp_path / "cmp"))
    assert "no instrument in common" in says and "(swls vs sd3)" in says
    assert not (tmp_path / "cmp").exists()
    (swls / "results.json").write_text('{"instruments": 3}')  # a junk results file
    assert "results.json: not psyprobe results" in _fails("compare", str(sd3), str(swls))


@pytest.mark.unit
def test_text_from_outside_is_shown_as_text_and_stored_whole() -> None:
    """Hostile text: escape sequences and newlines written as escapes in a one-line message;
    an answer keeps its newlines, and a lone surrogate (unencodable) becomes U+FFFD."""
    from psyprobe.untrusted import one_line, storable

    hostile = "ok\x1b]0;title\x07\x1b[2J\nforged line\x9b\ud800"
    shown = one_line(hostile)
    assert shown.isprintable() and "\\x1b]0;title" in shown and "\\n" in shown
    assert len(one_line("x" * 500)) == 200
    kept = storable("line one\nline two \ud800")
    assert kept == "line one\nline two \ufffd" and kept.encode("utf-8")


# --- every command × every file argument ---------------------------------------------------------

# What a file argument can be, short of a good file: each is made in a fresh folder and handed
# to every command below in the place of its file (or directory).
NASTY: dict[str, Callable[[Path], Path]] = {}


def _nasty(name: str) -> Callable[[Callable[[Path], Path]], Callable[[Path], Path]]:
    def register(make: Callable[[Path], Path]) -> Callable[[Path], Path]:
        NASTY[name] = make
        return make

    return register


@_nasty("missing")
def _missing(d: Path) -> Path:
    return d / "no-such-file.json"


@_nasty("empty")
def _empty(d: Path) -> Path:
    (d / "empty.json").write_bytes(b"")
    return d / "empty.json"


@_nasty("binary")
def _binary(d: Path) -> Path:
    (d / "binary.json").write_bytes(bytes(range(256)) * 64)
    return d / "binary.json"


@_nasty("latin-1")
def _latin1(d: Path) -> Path:
    (d / "latin.json").write_bytes('{"name": "Caf\u00e9", "items": [1]}\n'.encode("latin-1"))
    return d / "latin.json"


@_nasty("deep")
def _deep(d: Path) -> Path:
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    return d / "deep.json"


@_nasty("huge")
def _huge(d: Path) -> Path:
    with (d / "huge.json").open("wb") as fh:  # sparse: 256 MiB that take no disk
        fh.truncate(256 * 2**20)
    return d / "huge.json"


@_nasty("long name")
def _long(d: Path) -> Path:
    return d / ("x" * 300 + ".json")


@_nasty("symlink loop")
def _loop(d: Path) -> Path:
    (d / "a.json").symlink_to(d / "b.json")
    (d / "b.json").symlink_to(d / "a.json")
    return d / "a.json"


@_nasty("directory")
def _directory(d: Path) -> Path:
    (d / "folder.json").mkdir()
    (d / "folder.json" / "inside.txt").write_text("x")
    return d / "folder.json"


SIM_SD3 = ("--model", "sim:Machiavellianism=2", "--respondents", "0", "--orders", "fixed")
# Every command with a file or directory argument; FILE is where the nasty path goes.
COMMANDS: dict[str, tuple[str, ...]] = {
    "run --instrument": ("run", *SIM_SD3, "--instrument", "FILE"),
    "run replay": ("run", "--model", "replay:FILE", "--instrument", "sd3"),
    "run gguf": ("run", "--model", "gguf:FILE", "--instrument", "sd3"),
    "report": ("report", "FILE"),
    "compare": ("compare", "FILE", "FILE"),
    "study": ("study", "FILE"),
    "instruments show": ("instruments", "show", "FILE"),
    "instruments validate": ("instruments", "validate", "FILE"),
    "import": ("import", "FILE", "--instrument", "sd3"),
    "models-table": ("models-table", "FILE"),
    "export": ("export", "FILE"),
    "steer sweep": ("steer", "sweep", "--vector", "FILE"),
    "steer export": ("steer", "export", "FILE"),
    "dpo train": ("dpo", "train", "--pairs", "FILE"),
}


@pytest.mark.parametrize("nasty", list(NASTY))
def test_every_command_meets_a_bad_file_with_one_line(
    nasty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#38: no traceback, exit 2 with one line, and nothing written but the command's own
    output folder, for every command given each kind of bad file."""
    monkeypatch.chdir(tmp_path)  # default --out folders land here, and only they may appear
    bad = NASTY[nasty](tmp_path)
    before = {p.name for p in tmp_path.iterdir()}
    failed = []
    for name, template in COMMANDS.items():
        args = [a.replace("FILE", str(bad)) for a in template]
        try:
            ran = psyprobe(*args, check=False)
            assert ran.returncode == 2, f"exit {ran.returncode}: {ran.stderr}"
            error_line(ran)
            made = sorted({p.name for p in tmp_path.iterdir()} - before)
            assert all(m.startswith("psyprobe-") for m in made), f"wrote {made}"
        except Exception as exc:  # every command's failure, not only the first
            failed.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
    assert not failed, "\n".join(failed)
