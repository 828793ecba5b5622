"""The transfer queue: :func:`transfer` copies LFS objects from one store to another, several at
once, and :func:`missing` tells which objects a store lacks.

:func:`transfer` asks the destination which objects it lacks, asks the source where to download
those, and streams each one from the source straight into the destination (no local copy), checking
sha256 and size on the fly (:mod:`gitmirror.lfs.stream`). An upload whose bytes turn out wrong is
aborted before its last byte leaves, so the destination never holds a complete bad object.
Modelled on git-lfs's ``tq`` (transfer queue): batches of :data:`MAX_BATCH` planned ahead of a
pool of workers, per-object retries that ask the batch API again.

Retries, counted and budgeted once:

- a batch request for a whole chunk of objects is retried on its own (the policy's ``attempts``);
- each object then has one budget of ``policy.attempts`` tries. A retry of an object asks both
  batch APIs again for that object with a *single-attempt* batch request, so a failing batch
  call spends the object's budget instead of multiplying it: every request made on behalf of one
  object after its chunk was planned belongs to at most ``policy.attempts`` tries.
- every retry, of a batch request or of an object, is counted once in
  :attr:`TransferReport.retries` and told once to ``on_retry``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitmirror.errors import EnvironmentProblem, GitMirrorError, IntegrityError, ProtocolError, TransientError
from gitmirror.lfs.events import EventKind, TransferEvent, TransferFailure, TransferReport, summary_error
from gitmirror.lfs.pointer import LfsObject
from gitmirror.lfs.store import DownloadTicket, LfsStore, OnRetry, UploadTicket
from gitmirror.lfs.store_local import LocalLfsStore
from gitmirror.lfs.stream import CHUNK, ReadAhead, VerifyingStream
from gitmirror.lfs.wire import MAX_BATCH
from gitmirror.retry import RetryPolicy, retrying

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport

__all__ = ["MAX_BATCH", "PLAN_AHEAD", "missing", "transfer"]

log = logging.getLogger("gitmirror.lfs")

#: Objects planned ahead of the workers; bounded so that hrefs do not go stale while they wait.
PLAN_AHEAD = 2 * MAX_BATCH


class _Cancelled(GitMirrorError):
    """The run was abandoned; never retried."""


@dataclass
class _Run:
    """State shared by the workers of one :func:`transfer` call."""

    src: LfsStore
    dst: LfsStore
    policy: RetryPolicy
    progress: Callable[[TransferEvent], None] | None
    http: Transport
    report: TransferReport
    cache: LocalLfsStore | None = None
    on_retry: OnRetry | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set when the run is abandoned (Ctrl-C, a whole-run error): workers stop at their next chunk
    #: instead of finishing multi-gigabyte uploads nobody waits for.
    abort: threading.Event = field(default_factory=threading.Event)

    def check_abort(self) -> None:
        if self.abort.is_set():
            raise _Cancelled("LFS transfer cancelled")

    def emit(self, kind: EventKind, obj: LfsObject, nbytes: int = 0, message: str = "") -> None:
        if self.progress is None:
            return
        try:
            self.progress(TransferEvent(kind, obj, nbytes, message))
        except Exception:  # a broken progress bar must not break a mirror
            log.exception("progress callback failed")

    def count_retry(self, what: str, exc: BaseException) -> None:
        """The one place a retry is counted: in the report, and told to the caller's ``on_retry``."""
        with self.lock:
            self.report.retries += 1
        if self.on_retry is not None:
            self.on_retry(what, exc)

    def present(self, obj: LfsObject) -> None:
        with self.lock:
            self.report.already_present += 1
        self.emit("skipped", obj)

    def moved(self, obj: LfsObject) -> None:
        with self.lock:
            self.report.moved += 1
            self.report.bytes_moved += obj.size
        self.emit("done", obj)

    def failed(self, obj: LfsObject, exc: GitMirrorError) -> None:
        with self.lock:
            self.report.failures.append(TransferFailure(obj.oid, str(exc), exc))
        self.emit("failed", obj, message=str(exc))


def transfer(
    objects: Iterable[LfsObject],
    src: LfsStore,
    dst: LfsStore,
    *,
    jobs: int = 8,
    progress: Callable[[TransferEvent], None] | None = None,
    policy: RetryPolicy | None = None,
    lfs_cache: LocalLfsStore | None = None,
    on_retry: OnRetry | None = None,
    transport: Transport | None = None,
) -> TransferReport:
    """Copy to ``dst`` every object of ``objects`` it lacks, streaming from ``src``, ``jobs`` at a time.

    With ``lfs_cache``, objects are staged there instead (downloads resume with ``Range`` after a
    cut, and objects already in the cache are not downloaded again); without it nothing touches disk.

    ``policy`` bounds the retries: ``policy.attempts`` tries per object (see the module's
    docstring). ``on_retry(what, exc)`` is told of every retry, of batch requests and of objects,
    from worker threads (it must be thread-safe); :attr:`TransferReport.retries` counts exactly
    the retries ``on_retry`` was told of, so a caller counting through ``on_retry`` must not add
    the report's count as well. ``transport`` sends the HTTP requests (default: a new
    :class:`~gitmirror.httpclient.HttpClient`, closed at the end; a given one is left open).

    Moves everything it can, then raises if any object failed (an error of the class of the most
    telling failure, IntegrityError first, carrying the report as ``.report``): the caller must not
    push refs then.
    Whole-run problems (the destination refuses our token, a repository is missing) raise at once.
    """
    started = time.monotonic()
    wanted = sorted(set(objects))
    report = TransferReport(requested=len(wanted))
    try:
        with _transport(transport, jobs) as http:
            run = _Run(src, dst, policy or RetryPolicy(), progress, http, report, lfs_cache, on_retry)
            _run_pool(run, wanted, jobs)
    finally:
        report.seconds = time.monotonic() - started
    if report.failures:
        raise summary_error(report)
    return report


def _run_pool(run: _Run, wanted: list[LfsObject], jobs: int) -> None:
    """Plan chunk after chunk and hand the objects to ``jobs`` workers, at most PLAN_AHEAD waiting."""
    with _workers(jobs) as pool:
        pending: set[Future] = set()
        # Finished futures arrive here: waiting on the whole pending set after every completion
        # (concurrent.futures.wait) costs O(pending) each time, ~6 % of the CPU with 2,000 objects.
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()

        def reap() -> None:
            while True:
                try:
                    fut = finished.get(timeout=0.5)
                except queue.Empty:
                    continue
                pending.discard(fut)
                fut.result()  # _move_one records per-object failures itself; what it raises ends the run
                return

        try:
            for start in range(0, len(wanted), MAX_BATCH):
                chunk = wanted[start : start + MAX_BATCH]
                for obj, up, down in _plan_chunk(run, chunk):
                    fut = pool.submit(_move_one, run, obj, up, down)
                    pending.add(fut)
                    fut.add_done_callback(finished.put)
                while len(pending) > PLAN_AHEAD:
                    reap()
            while pending:
                reap()
        except BaseException:
            run.abort.set()
            for fut in pending:
                fut.cancel()
            raise


@contextmanager
def _workers(jobs: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``jobs`` worker threads, waited for on the way out, except after Ctrl-C: an
    interrupted run must end within moments, and its workers stop by themselves at their next
    chunk (the run's abort event, set by :func:`_run_pool`)."""
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="lfs")
    interrupted = False
    try:
        yield pool
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=interrupted)


@contextmanager
def _transport(given: Transport | None, jobs: int) -> Iterator[Transport]:
    """``given``, left open; or a new HttpClient for ``jobs`` workers, closed on the way out
    (except after Ctrl-C: a worker blocked in a read holds its connection's buffer, which closing
    waits for, up to a read timeout, and the process is ending anyway)."""
    if given is not None:
        yield given
        return
    from gitmirror.httpclient import HttpClient

    http = HttpClient(pool_size=max(4, jobs))
    interrupted = False
    try:
        yield http
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not interrupted:
            http.close()


def _plan_chunk(run: _Run, chunk: list[LfsObject]):
    """Ask dst what it lacks and src where to read it; yield (obj, upload ticket, download ticket)."""
    uploads = run.dst.plan_uploads(chunk, run.http, run.count_retry)  # a whole chunk: its own retries
    needed = []
    for obj in chunk:
        ticket = uploads.get(obj)
        if ticket is None:
            run.present(obj)
        elif isinstance(ticket, GitMirrorError):
            run.failed(obj, ticket)
        else:
            needed.append(obj)
    if not needed:
        return
    downloads = _plan_sources(run, needed)
    for obj in needed:
        down = downloads.get(obj)
        if isinstance(down, GitMirrorError):
            run.failed(obj, down)
        elif down is not None:
            yield obj, uploads[obj], down


def _plan_sources(
    run: _Run, objects: list[LfsObject], attempts: int | None = None
) -> dict[LfsObject, DownloadTicket | GitMirrorError]:
    """Download tickets; objects already in the cache need no source link."""
    cached = {obj: DownloadTicket(obj) for obj in objects if run.cache is not None and run.cache.has(obj)}
    rest = [obj for obj in objects if obj not in cached]
    planned = run.src.plan_downloads(rest, run.http, run.count_retry, attempts=attempts) if rest else {}
    return {**planned, **cached}


def _move_one(run: _Run, obj: LfsObject, up: UploadTicket, down: DownloadTicket) -> None:
    """Stream one object within its one budget of ``policy.attempts`` tries; a retry (or a stale
    link) asks both batch APIs again, once each, as part of the try."""
    attempt_no = 0
    sent = _Counter()
    run.emit("started", obj)
    try:
        for attempt in retrying(f"LFS object {obj.oid}", run.policy, run.count_retry):
            with attempt:
                run.check_abort()
                attempt_no += 1
                if attempt_no > 1:
                    run.emit("retrying", obj, sent.take())  # those bytes will be sent again
                if attempt_no > 1 or up.stale() or down.stale():
                    fresh = _replan(run, obj)
                    if fresh is None:
                        run.present(obj)  # an earlier attempt got through after all
                        return
                    up, down = fresh
                _stream(run, obj, up, down, sent)
    except EnvironmentProblem:
        # This machine's fault (a full disk under --lfs-cache): every other object would meet it
        # too, so the whole transfer stops now instead of downloading the rest onto a disk that
        # cannot hold them (the other workers see the abort event before their next try).
        run.abort.set()
        raise
    except GitMirrorError as exc:
        run.failed(obj, exc)
        return
    run.moved(obj)


class _Counter:
    """Bytes of one object handed to the destination in the current attempt (one worker thread)."""

    def __init__(self) -> None:
        self.value = 0

    def take(self) -> int:
        value, self.value = self.value, 0
        return value


def _replan(run: _Run, obj: LfsObject) -> tuple[UploadTicket, DownloadTicket] | None:
    """Fresh tickets for one object, each batch request tried once: a transient failure here is a
    failed try of the object, retried (and counted) by :func:`_move_one`'s loop alone."""
    up = run.dst.plan_uploads([obj], run.http, run.count_retry, attempts=1).get(obj)
    if up is None:
        return None
    if isinstance(up, GitMirrorError):
        raise up
    down = _plan_sources(run, [obj], attempts=1).get(obj)
    if isinstance(down, GitMirrorError) or down is None:
        raise down or ProtocolError(f"no download ticket for LFS object {obj.oid}")
    return up, down


def _stream(run: _Run, obj: LfsObject, up: UploadTicket, down: DownloadTicket, sent: _Counter) -> None:
    http = run.http
    if run.cache is None:
        _send(run, obj, up, run.src, down, sent)
        return
    if not run.cache.has(obj):
        run.cache.fill(obj, lambda offset: run.src.reading(down, http, offset))
    try:
        _send(run, obj, up, run.cache, DownloadTicket(obj), sent)
    except IntegrityError:
        # A copy kept from an earlier run whose bytes no longer match its pointer (a disk fault,
        # a hand edit) is the cache's fault, not the source's: drop it and download again, within
        # the object's budget of tries, instead of failing every later run the same way.
        run.cache.discard(obj)
        raise TransientError(f"the LFS cache's copy of {obj.oid} does not match its pointer; "
                             "it was removed and is downloaded again") from None


def _send(run: _Run, obj: LfsObject, up: UploadTicket, source: LfsStore, down: DownloadTicket,
          sent: _Counter) -> None:
    """Stream ``obj`` from ``source`` (the source store or the local cache) to the destination."""
    http = run.http

    def advanced(n: int) -> None:
        run.check_abort()  # raised inside the upload body: the PUT is abandoned mid-way
        sent.value += n
        run.emit("advanced", obj, n)

    with source.reading(down, http) as chunks:
        if obj.size <= 2 * CHUNK:  # nothing to overlap: spare the thread (many-small-files repos)
            run.dst.write(up, VerifyingStream(obj, chunks, advanced), http)
            return
        ahead = ReadAhead(chunks)
        try:
            run.dst.write(up, VerifyingStream(obj, ahead, advanced), http)
        finally:
            ahead.close()


def missing(store: LfsStore, objects: Iterable[LfsObject], *, transport: Transport | None = None) -> list[LfsObject]:
    """Which ``objects`` ``store`` lacks, moving no object bytes (for verification).

    ``transport`` sends the requests (default: a new HttpClient, closed at the end).
    """
    wanted = sorted(set(objects))
    if not wanted:
        return []
    with _transport(transport, 1) as http:
        return sorted(store.lacking(wanted, http))
