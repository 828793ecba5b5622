"""git's own progress (``git fetch --progress``, ``git push --progress``) read from its stderr as it arrives.

git writes one progress record per update, ended by ``\\r``; the last record of a phase ends with
``\\n`` (", done."). A record reads ``<Phase>: <counters>[, <bytes> | <rate>/s][, done.]`` where the
counters are ``45% (450/1000)`` when git knows the total, else a bare count (``Enumerating
objects: 1000``). The server's phases (``git upload-pack`` / ``receive-pack``) come through git's
sideband with a ``remote: `` prefix, padded with spaces (or ``ESC[K`` on a terminal). The format
is git's ``progress.c`` (``display()``, ``throughput_string()``) and ``strbuf_humanise()`` (units
``bytes``, ``KiB``, ``MiB``, ``GiB``, 1024-based), with git's messages in English (``LC_ALL=C``,
as :func:`gitmirror.gitrepo.run_git` runs git). A record is told by git's own format only; a
server's ``remote:`` line, which may be a hook's free text, only under one of git's phase titles.

:func:`communicate` runs where ``Popen.communicate`` would, hands each parsed record to a listener
as a :class:`GitProgress`, and returns stderr *without* what ``--progress`` added (its records,
the lines git prints only with progress, and the ref summary of a fetch run without ``--quiet``):
what git writes without it, so that errors are classified from exactly the same text
(:func:`gitmirror.errors.error_for_git`, :mod:`gitmirror.push_outcome`).
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

log = logging.getLogger("gitmirror.git")

#: Bytes per unit of git's ``strbuf_humanise()``.
UNITS = {"byte": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
#: Wide enough that git never splits a progress record over two lines (``progress.c`` does when
#: ``COLUMNS``, 80 on a pipe, is narrower than the record); the parser copes with a split anyway.
COLUMNS = "400"

_UNIT = r"bytes?|[KMG]iB"
_RECORD = re.compile(
    r"^(?P<phase>[A-Z][a-z]+(?: [a-z]+)*):\s+"
    r"(?:(?P<percent>\d+)% \((?P<done>\d+)/(?P<total>\d+)\)|(?P<count>\d+))"
    rf"(?:, (?P<size>\d+(?:\.\d+)?) (?P<unit>{_UNIT}) \| (?P<rate>\d+(?:\.\d+)?) (?P<rate_unit>{_UNIT})/s)?"
    r"(?:, (?P<tail>.*))?$"
)
#: git's "Receiving objects:" alone when the record was split (the counters follow, indented).
_TITLE = re.compile(r"^(?P<phase>[A-Z][a-z]+(?: [a-z]+)*):$")
_COUNTERS = re.compile(r"^ {2}\d")
#: Lines git prints only when progress is on (pack-objects' summary and thread count); of the
#: server's, only its pack-objects' summary.
_PROGRESS_ONLY = re.compile(r"^(?:Total \d+ \(delta \d+\)|Delta compression using up to \d+ threads?$)")
_SERVER_TOTAL = re.compile(r"^Total \d+ \(delta \d+\), reused \d+ \(delta \d+\)")
#: ``git fetch``'s ref summary, which ``--quiet`` silences, but ``--quiet`` silences "Receiving
#: objects" too (fetch-pack.c passes index-pack ``-v`` only without it): "From <url>", then one
#: line per ref, `` <flag> <summary> <remote ref> -> <local ref>[ (<reason>)]`` (fetch.c,
#: ``format_display()``), never prefixed with ``remote:``.
_FETCH_SUMMARY = re.compile(r"^(?:From \S.*| [ +\-t*=!] \S.* -> \S.*)$")
_REMOTE = "remote: "
#: The phases a server's git reports (the titles of ``start_progress()`` in git's pack-objects.c,
#: index-pack.c, unpack-objects.c, connected.c). A ``remote:`` line is the server's free text too
#: (a hook's "Offending files: 12"): only these titles make one a progress record, so the words a
#: push refusal quotes (:func:`gitmirror.push_outcome.server_words`) are never taken for progress.
SERVER_PHASES = frozenset({
    "Enumerating objects", "Counting objects", "Compressing objects", "Writing objects", "Receiving objects",
    "Indexing objects", "Resolving deltas", "Checking objects", "Unpacking objects", "Checking connectivity",
})
_PADDING = re.compile(r"(?:\x1b\[K|\s)+$")


@dataclass(frozen=True)
class GitProgress:
    """One progress record of git: ``phase`` ("Receiving objects"), ``done`` objects (or deltas)
    of ``total`` (None when git does not know it, as while enumerating), ``nbytes`` received or
    written so far (bytes, to git's rounding; None when git shows no throughput), ``rate`` (bytes
    per second), ``remote`` for the server's own phases, ``finished`` for a phase's last record."""

    phase: str
    done: int
    total: int | None = None
    nbytes: int | None = None
    rate: float | None = None
    remote: bool = False
    finished: bool = False

    @property
    def percent(self) -> int | None:
        """Whole percent done, as git shows it (None without a total)."""
        if self.total is None:
            return None
        return self.done * 100 // self.total if self.total else 100


ProgressListener = Callable[[GitProgress], None]
#: Told of git's progress during a run: ``(step, event)``, the step as the display names it
#: ("fetching source", "pushing"); called from a reader thread.
StepListener = Callable[[str, GitProgress], None]


def for_step(listener: StepListener | None, step: str) -> ProgressListener | None:
    """``listener`` bound to ``step`` for :meth:`gitmirror.remote.Remote.fetch`/``push``; None
    stays None (then git runs without ``--progress``)."""
    return None if listener is None else functools.partial(listener, step)


def binary_size(n: float) -> str:
    """Bytes in git's own units: ``12582912`` -> ``"12.0 MiB"``, ``512`` -> ``"512 bytes"``."""
    for unit in ("GiB", "MiB", "KiB"):
        if n >= UNITS[unit]:
            return f"{n / UNITS[unit]:.1f} {unit}"
    return f"{n:.0f} bytes"


def describe(event: GitProgress) -> str:
    """One record for a human: ``"Receiving objects 45% 450/1000 12.0 MiB 5.0 MiB/s"``; a server
    phase says so (``"Counting objects (server) ..."``), a finished one ends with ``"done"``."""
    parts = [event.phase + (" (server)" if event.remote else "")]
    if event.total is not None:
        parts += [f"{event.percent}%", f"{event.done}/{event.total}"]
    else:
        parts.append(str(event.done))
    if event.nbytes is not None:
        parts.append(binary_size(event.nbytes))
    if event.rate is not None and not event.finished:
        parts.append(f"{binary_size(event.rate)}/s")
    if event.finished:
        parts.append("done")
    return " ".join(parts)


def parse_size(number: str, unit: str) -> int:
    """``("12.00", "MiB")`` -> 12582912 bytes. Raises KeyError for a unit git does not print."""
    return round(float(number) * UNITS[unit])


def parse_record(text: str, finished: bool = False) -> GitProgress | None:
    """One record (its ``\\r``/``\\n`` removed) as a :class:`GitProgress`, or None when it is not
    a progress record. ``finished``: the record ended a line (``\\n``), the phase's last."""
    remote = text.startswith(_REMOTE)
    body = _PADDING.sub("", text[len(_REMOTE):] if remote else text)
    m = _RECORD.match(body)
    if m is None or (remote and m["phase"] not in SERVER_PHASES):
        return None
    return GitProgress(
        phase=m["phase"],
        done=int(m["done"] if m["done"] is not None else m["count"]),
        total=int(m["total"]) if m["total"] is not None else None,
        nbytes=parse_size(m["size"], m["unit"]) if m["size"] is not None else None,
        rate=float(parse_size(m["rate"], m["rate_unit"])) if m["rate"] is not None else None,
        remote=remote,
        finished=finished,
    )


class ProgressReader:
    """Reads git's stderr in chunks of any size: progress records go to ``listener`` as
    :class:`GitProgress`, every other line is kept, in order, for :meth:`messages`.

    A listener that raises is logged once and not called again: the stderr pipe must be drained
    to its end whatever the display does, or git blocks writing to it.
    """

    def __init__(self, listener: ProgressListener) -> None:
        self.listener: ProgressListener | None = listener
        self._pending = b""
        self._kept: list[bytes] = []
        # A "Phase:" record (raw, phase) whose counters follow on records of their own; raw is b""
        # once they came (the title was progress).
        self._split_title: tuple[bytes, str] | None = None

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of stderr (records may span chunks)."""
        data = self._pending + chunk
        start = 0
        for m in re.finditer(rb"[\r\n]", data):
            self._take(data[start:m.end()])
            start = m.end()
        self._pending = data[start:]

    def close(self) -> None:
        """End of stderr: a last record without its line end is taken as it is."""
        if self._pending:
            self._take(self._pending)
            self._pending = b""
        self._flush_title()

    def messages(self) -> bytes:
        """stderr without its progress records."""
        return b"".join(self._kept)

    def _take(self, raw: bytes) -> None:
        try:
            self._record(raw)
        except Exception:  # noqa: BLE001 - a reader fault must neither stop the drain nor lose a message
            log.debug("unreadable git progress record %r", raw, exc_info=True)
            self._kept.append(raw)

    def _record(self, raw: bytes) -> None:
        text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        finished = raw.endswith(b"\n")
        remote = text.startswith(_REMOTE)
        unprefixed = text[len(_REMOTE):] if remote else text
        body = _PADDING.sub("", unprefixed)
        if self._split_title is not None and _COUNTERS.match(unprefixed):
            event = parse_record(f"{_REMOTE if remote else ''}{self._split_title[1]}: {body.strip()}", finished)
            if event is not None:
                # git keeps a split phase split: its next records are counters alone too.
                self._split_title = (b"", self._split_title[1])
                self._tell(event)
                return
        self._flush_title()
        title = _TITLE.match(body)
        if title is not None and (not remote or title["phase"] in SERVER_PHASES):
            self._split_title = (raw, title["phase"])
            return
        event = parse_record(text, finished)
        if event is not None:
            self._tell(event)
        elif not ((not remote and _PROGRESS_ONLY.match(body)) or (remote and _SERVER_TOTAL.match(body))
                  or _FETCH_SUMMARY.match(text)):
            self._kept.append(raw)

    def _flush_title(self) -> None:
        if self._split_title is not None:
            self._kept.append(self._split_title[0])  # b"", or no counters followed: not progress after all
            self._split_title = None

    def _tell(self, event: GitProgress) -> None:
        if self.listener is None:
            return
        try:
            self.listener(event)
        except Exception:  # noqa: BLE001 - a display fault must not stop the drain (see the class)
            log.warning("git progress display failed; git goes on without it", exc_info=True)
            self.listener = None


def _drain(stream: IO[bytes] | None, sink: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    with stream:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            sink(chunk)


def communicate(
    proc: "subprocess.Popen[bytes]", stdin: bytes | None, timeout: float, listener: ProgressListener,
) -> tuple[bytes, bytes]:
    """``proc.communicate(stdin, timeout)`` that hands git's progress to ``listener`` as it arrives.

    Returns ``(stdout, stderr)`` bytes, stderr without its progress records (see
    :class:`ProgressReader`). Raises :class:`subprocess.TimeoutExpired` when ``proc`` has not
    ended, and its pipes closed, within ``timeout`` seconds, like ``communicate``; the caller ends
    the process (tree) on that and on any other exception, as it does around ``communicate``.
    The listener is called from a reader thread.
    """
    reader = ProgressReader(listener)
    out: list[bytes] = []
    threads = [threading.Thread(target=_drain, args=(proc.stdout, out.append), name="git-stdout", daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, reader.feed), name="git-stderr", daemon=True)]
    if proc.stdin is not None:
        threads.append(threading.Thread(target=_write, args=(proc.stdin, stdin or b""), name="git-stdin", daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    proc.wait(timeout=timeout)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():  # a grandchild still holds the pipe open
            raise subprocess.TimeoutExpired(proc.args, timeout)
    reader.close()
    return b"".join(out), reader.messages()


def _write(stream: IO[bytes], data: bytes) -> None:
    try:
        with stream:
            stream.write(data)
    except (BrokenPipeError, ValueError):
        pass  # git exited without reading all of it; its exit status tells
