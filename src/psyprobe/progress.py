"""What a long operation is doing, wherever its output goes: the command line's and the API's
progress (the ``Watcher`` of ``engine/measure.py``).

All of it goes to standard error, so that standard output holds the results alone (``psyprobe
run > results.txt`` keeps a clean table). On a terminal, a rich bar names the phase (loading,
asking, scoring, writing) and what is being asked. Where standard error is not a terminal —
``2> file``, CI, nohup, a notebook — a bar would leave nothing there until the end, so plain
timestamped lines go there instead: one per phase and, while asking, one at most every ``every``
seconds. Every line also goes to the run directory's ``run.log`` once the directory is claimed
(lines from before, such as loading the model, are kept until then). While a Reporter is open,
Python warnings and the log records of the libraries psyprobe loads (``libraries.py``) go to
run.log too, and not to the screen: the closing line says how many there were.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

if TYPE_CHECKING:
    from psyprobe.models.base import EndpointLoad

LOG = "run.log"
RATE_WINDOW = 60.0  # seconds of asking the time left is estimated from


def duration(seconds: float) -> str:
    """Seconds as people read them: "45 s", "4 min 05 s", "1 h 07 min"."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _windowed(seen: deque[tuple[float, int]], done: int) -> tuple[float, float, int]:
    """``done`` noted in ``seen`` ((time, done) pairs, oldest first), kept to the last
    RATE_WINDOW seconds, yet reaching back before the report before this one: a batching
    backend's call (reported once, ``runs.asking``) may take longer than the window, and the
    call before it is then what the rate is measured over. Returns now, and the time and count
    the window starts from."""
    now = time.monotonic()
    seen.append((now, done))
    while len(seen) > 2 and now - seen[1][0] >= RATE_WINDOW and seen[1][0] < seen[-2][0]:
        seen.popleft()
    return now, *seen[0]


def time_left(seen: deque[tuple[float, int]], done: int, total: int) -> str:
    """The time left, labelled, from the rate of the last RATE_WINDOW seconds of this phase:
    the first batches of a run — a model warming up, prompts that share nothing yet — would
    mislead an estimate from the start."""
    now, start, before = _windowed(seen, done)
    if done >= total:
        return ""
    if now - start < 5 or done <= before:
        return "time left: measuring the rate"
    left = (total - done) * (now - start) / (done - before)
    return f"about {duration(left)} left (at the rate of the last {now - start:.0f} s)"


def endpoint_rate(seen: deque[tuple[float, int]], load: EndpointLoad) -> str:
    """One endpoint's answers and rate over the last RATE_WINDOW seconds, and whether it is out
    (``seen``: its own (time, answered) pairs)."""
    now, start, before = _windowed(seen, load.answered)
    rate = f", {(load.answered - before) / (now - start):.1f}/s" if now - start >= 5 else ""
    out = "" if load.in_service else ", out after failing"
    return f"{load.url}: {load.answered} answered{rate}{out}"


class _Kept(logging.Handler):
    """Library warnings and records: into the Reporter's run.log, counted, not shown."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = " ".join(self.format(record).split())  # one line per record
        self.reporter.keep(f"[{stamp}] {record.name} {record.levelname.lower()}: {text}")


class Reporter:
    """Phases and asking progress, as a bar on a terminal and as lines elsewhere and in run.log."""

    def __init__(self, err: Console, every: float = 10.0) -> None:
        self.err = err
        self.every = every
        self._pending: list[str] = []  # lines said before the run directory was claimed
        self._log: TextIO | None = None
        self._last = 0.0
        self._phase = ""
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._seen: deque[tuple[float, int]] = deque()  # this phase's (time, done)
        self._served: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._kept = _Kept(self)

    def __enter__(self) -> Reporter:
        logging.captureWarnings(True)
        logging.getLogger().addHandler(self._kept)
        if self.err.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}", style="bold", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[left]}", markup=False),
                console=self.err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=None, left="")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        logging.getLogger().removeHandler(self._kept)
        logging.captureWarnings(False)
        if self._bar is not None:
            self._bar.stop()
        if self._log is not None:
            self._log.close()

    def log_to(self, folder: Path) -> None:
        """Append every line from now on (and those said before) to ``folder/run.log``; a
        study's conditions each get their own."""
        if self._log is not None:
            self._log.close()
        self._log = (folder / LOG).open("a", encoding="utf-8")
        for line in self._pending:
            self._write(line)
        self._pending.clear()

    def phase(self, text: str) -> None:
        """A new phase: "loading smollm2", "scoring", "writing report.html"."""
        self._phase = text
        self._seen.clear()
        self._seen.append((time.monotonic(), 0))  # none done yet: a first burst's rate counts
        self._line(text)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=text, completed=0, total=None, left="")

    def finish(self, text: str) -> None:
        """The closing line ("12 new answers, 1680 stored"): on stderr always, and in run.log."""
        if self._bar is not None:
            self._bar.stop()
        if self._kept.count:
            text += f" ({self._kept.count} library warnings and messages kept in {LOG})"
        self.err.print(text, highlight=False, soft_wrap=True)
        self.keep(f"[{time.strftime('%H:%M:%S')}] {text}")

    def asking(
        self, what: str, done: int, total: int, endpoints: Sequence[EndpointLoad] = ()
    ) -> None:
        """The ask-loop's callback: ``what`` was just asked; ``done`` of ``total`` so far; where
        several endpoints serve the model, each one's answers and rate."""
        description = f"{self._phase} · {what}" if self._phase else what
        if self._seen and self._seen[-1][1] > done:  # a new stage of the phase: a new rate
            self._seen.clear()
        left = time_left(self._seen, done, total)
        served = [endpoint_rate(self._served[e.url], e) for e in endpoints]
        if served:  # the time left is at their summed rate
            left = "; ".join([left, *served]) if left else "; ".join(served)
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task, description=description, completed=done, total=total, left=left
            )
        now = time.monotonic()
        if done >= total or now - self._last >= self.every:
            self._last = now
            share = f"{done}/{total} ({100 * done / max(total, 1):.0f} %)"
            self._line(f"{description}: {share}" + (f", {left}" if left else ""))

    def _line(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        if self._bar is None:
            self.err.print(line, highlight=False, soft_wrap=True)
        self.keep(line)

    def keep(self, line: str) -> None:
        """A line for run.log only (or for it once the run directory is known)."""
        if self._log is None:
            self._pending.append(line)
        else:
            self._write(line)

    def _write(self, line: str) -> None:
        assert self._log is not None
        self._log.write(line + "\n")
        self._log.flush()  # a killed run's log ends where the run did
