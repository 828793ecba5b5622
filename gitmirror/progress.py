"""Progress of a run: rich bars on a terminal, a plain line every few seconds elsewhere.

Both consume :class:`gitmirror.lfs.TransferEvent`s, which arrive from worker threads, and, through
their :meth:`git` method, git's own progress of the fetch and the push
(:class:`gitmirror.gitprogress.GitProgress`, from a reader thread).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    from gitmirror.gitprogress import GitProgress
    from gitmirror.lfs import TransferEvent

Reporter = Callable[["TransferEvent"], None]


class Totals:
    """Objects and bytes done so far; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects_done = 0
        self.objects_seen = 0
        self.bytes_done = 0
        self.bytes_seen = 0
        self._started: set[str] = set()

    def apply(self, event: "TransferEvent") -> None:
        with self.lock:
            if event.kind == "started":
                self._started.add(event.obj.oid)
                self.objects_seen += 1
                self.bytes_seen += event.obj.size
            elif event.kind == "skipped" and event.obj.oid not in self._started:
                # An object the destination already has comes as a lone "skipped": seen and done
                # (git-lfs counts it so too), but no bytes moved, so its size stays out of the rate.
                self.objects_seen += 1
                self.objects_done += 1
            elif event.kind == "advanced":
                self.bytes_done += event.nbytes
            elif event.kind == "retrying":
                self.bytes_done -= event.nbytes
            elif event.kind == "done":
                self.objects_done += 1


class PlainProgress:
    """For cron and CI logs: one line at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval
        self.totals = Totals()
        self.started = time.monotonic()
        self.last = self.started  # the first line after one interval: short runs stay quiet

    def __call__(self, event: "TransferEvent") -> None:
        self.totals.apply(event)
        now = time.monotonic()
        if now - self.last >= self.interval or event.kind == "failed":
            self.last = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def git(self, step: str, event: "GitProgress") -> None:
        """A line for git's progress (``"gitmirror: fetching source: Receiving objects 45% ..."``),
        at most one every ``interval`` seconds, as for LFS."""
        from gitmirror.gitprogress import describe

        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.stream.write(f"gitmirror: {step}: {describe(event)}\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        from gitmirror.report import human_bytes

        t = self.totals
        elapsed = max(now - self.started, 1e-6)
        return (f"gitmirror: LFS {t.objects_done}/{t.objects_seen} objects, "
                f"{human_bytes(t.bytes_done)}/{human_bytes(t.bytes_seen)}, {human_bytes(t.bytes_done / elapsed)}/s")


class RichProgress:
    """For a terminal: a total bar (objects, bytes, rate, ETA) and one bar per large object in flight."""

    LARGE = 8 * 1024 * 1024

    def __init__(self, console: "Console | None" = None) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), _bytes_only(DownloadColumn()), _bytes_only(TransferSpeedColumn()),
            _bytes_only(TimeRemainingColumn()), transient=True, console=console,
        )
        self.lock = threading.Lock()
        # Added on the first event of their kind: a bar at "0/0" while git works for minutes says nothing.
        self.total: int | None = None
        self.git_task: int | None = None
        self.totals = Totals()
        self.per_object: dict[str, int] = {}

    def git(self, step: str, event: "GitProgress") -> None:
        """Show git's current phase (objects done of total on the bar, bytes in the text)."""
        from gitmirror.gitprogress import describe

        with self.lock:
            description = f"{step}: {describe(event)}"
            if self.git_task is None:
                self.git_task = self.progress.add_task(description, total=None, git=True)
            self.progress.update(self.git_task, description=description, total=event.total, completed=event.done,
                                 visible=True)

    def __call__(self, event: "TransferEvent") -> None:
        self.totals.apply(event)
        with self.lock:
            t = self.totals
            if self.git_task is not None:  # the fetch is over when LFS objects move
                self.progress.update(self.git_task, visible=False)
            if self.total is None:
                self.total = self.progress.add_task("LFS objects 0/0", total=0)
            self.progress.update(self.total, total=t.bytes_seen, completed=t.bytes_done,
                                 description=f"LFS objects {t.objects_done}/{t.objects_seen}")
            self._object_bar(event)

    def _object_bar(self, event: "TransferEvent") -> None:
        oid = event.obj.oid
        if event.kind == "started" and event.obj.size >= self.LARGE:
            self.per_object[oid] = self.progress.add_task(f"  {oid[:12]}", total=event.obj.size)
        elif oid in self.per_object:
            task = self.per_object[oid]
            if event.kind == "advanced":
                self.progress.advance(task, event.nbytes)
            elif event.kind == "retrying":
                self.progress.reset(task)
            elif event.kind in ("done", "failed", "skipped"):
                self.progress.remove_task(self.per_object.pop(oid))


def _bytes_only(column: "ProgressColumn") -> "ProgressColumn":
    """``column`` (bytes, rate, time left) for LFS bars, blank on git's, whose counts are objects."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BytesOnly(ProgressColumn):
        def render(self, task: "Task") -> "Text":
            return Text("") if task.fields.get("git") else column.render(task)  # type: ignore[return-value]

    return BytesOnly()


@contextmanager
def progress_reporter(enabled: bool = True, stream: TextIO | None = None) -> Iterator["RichProgress | PlainProgress | None"]:
    """The right reporter for where output goes, or None when progress is off. Either kind is
    called with LFS events, and its ``git(step, event)`` with git's progress."""
    stream = stream or sys.stderr
    if not enabled:
        yield None
        return
    if stream.isatty():
        rich = RichProgress()
        with rich.progress:
            yield rich
        return
    yield PlainProgress(stream)
