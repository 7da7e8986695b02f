"""Storage that refuses a write, set on a real child process: a disk that fills up
(RLIMIT_FSIZE) and a read-only directory (the capabilities that let root write anywhere dropped).
Each ends in one line and exit 2 with nothing already computed lost; the same command resumes."""

from __future__ import annotations

import ctypes
import json
import os
import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import error_line, psyprobe, spawn
from psyprobe.runs.store import ResponseStore
from test_hostile import RUN

pytestmark = pytest.mark.e2e


def _filling(limit: int) -> Callable[[], None]:
    """A disk that fills up: no file of the child process may grow past ``limit`` bytes (the
    write fails with EFBIG; Python ignores the SIGXFSZ that would otherwise kill it)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_disk_that_fills_up_keeps_every_answer_and_resumes(tmp_path: Path) -> None:
    args = ("run", "--model", "sim:Machiavellianism=2", "--instrument", "sd3")
    out = tmp_path / "run"
    proc = spawn(*args, "--out", str(out), check=False, preexec_fn=_filling(200_000))
    assert proc.returncode == 2
    said = error_line(proc)
    assert said.startswith("error: the answer store") and "then rerun" in said
    with ResponseStore(out / "responses.sqlite") as store:
        kept = {r.key: r for r in store.records()}
    assert kept  # what was answered before the disk filled is on disk
    psyprobe(*args, "--out", str(out))  # space again: the same command resumes
    with ResponseStore(out / "responses.sqlite") as store:
        final = {r.key: r for r in store.records()}
    assert all(final[key] == record for key, record in kept.items())  # not asked again
    clean = tmp_path / "clean"
    psyprobe(*args, "--out", str(clean))  # the same run on a disk with room throughout
    resumed, fresh = (json.loads((d / "results.json").read_text()) for d in (out, clean))
    assert resumed["instruments"] == fresh["instruments"]


def test_a_full_disk_during_report_names_the_file_and_keeps_every_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    psyprobe(*RUN, "--out", str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for limit, says in [
        (20_000, "responses.sqlite: disk I/O error"),  # too full to open the store
        (50_000, "report.html: File too large"),  # the page is the file that does not fit
    ]:
        proc = spawn("report", str(out), check=False, preexec_fn=_filling(limit))
        assert proc.returncode == 2, proc.stderr
        assert says in error_line(proc) and "free space" in proc.stderr
        assert "move it away" not in proc.stderr  # the store is sound: never tell them to drop it
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        # every output is the old one or a whole new one (the same bytes: nothing changed)
        assert {k: v for k, v in after.items() if k in before} == before
        assert not [name for name in after if name.endswith(".partial")]


def _held_to_permissions() -> None:
    """The child process is held to the files' mode bits as any user is: as root it gives up
    the capabilities that override them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER;
    dropped from the bounding set, they are gone from the exec on)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2, 3):
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_a_read_only_directory_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    out, locked = tmp_path / "run", tmp_path / "locked"
    psyprobe(*RUN, "--out", str(out))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    locked.mkdir()
    paths = [out, locked, *out.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for args, says in [
            (("report", str(out)), f"{out}/responses.sqlite: Permission denied"),
            ((*RUN, "--out", str(out)), f"{out}/run.json: Permission denied"),
            ((*RUN, "--out", str(locked)), f"{locked}/run.json: Permission denied"),
            ((*RUN, "--out", str(locked / "new")), f"{locked / 'new'}: Permission denied"),
        ]:
            proc = spawn(*args, check=False, preexec_fn=_held_to_permissions)
            assert proc.returncode == 2, proc.stderr
            said = error_line(proc)
            assert says in said and "make the directory writable" in said
    finally:
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and not list(locked.iterdir())
