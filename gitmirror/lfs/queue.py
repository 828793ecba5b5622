"""The transfer queue: :func:`transfer` copies LFS objects from one store to another, many at
once, and :func:`missing` tells which objects a store lacks.

:func:`transfer` asks the destination which objects it lacks, asks the source where to download
those, and streams each one from the source straight into the destination (no local copy), checking
sha256 and size on the fly (:mod:`gitmirror.lfs.stream`). An upload whose bytes turn out wrong is
aborted before its last byte leaves, so the destination never holds a complete bad object.
Modelled on git-lfs's ``tq`` (transfer queue): batches of :data:`MAX_BATCH` planned ahead of a
pool of workers, per-object retries that ask the batch API again.

What runs at once (:mod:`gitmirror.lfs.admission`): at most ``requests_per_hub`` requests in flight
at each hub, objects admitted while their sizes stay within ``bytes_in_flight``, and at most
``jobs`` objects when that is given. On a link with a round-trip time the requests overlap:

- the source's batch request for a chunk runs in a thread of its own while the destination is
  asked about the next chunk (the source is still asked only about objects the destination lacks);
- a small object is downloaded whole, then uploaded, each request holding one slot at its hub;
- the ``verify`` POST runs in a pool of its own, so the worker takes its next object at once. An
  object counts as moved only when its verify answered, and :func:`transfer` returns only when
  every object is settled: the caller pushes refs after it returns, never before a verify.

Retries, counted and budgeted once:

- a batch request for a whole chunk of objects is retried on its own (the policy's ``attempts``);
- each object then has one budget of ``policy.attempts`` tries. A retry of an object asks both
  batch APIs again for that object with a *single-attempt* batch request, so a failing batch
  call spends the object's budget instead of multiplying it: every request made on behalf of one
  object after its chunk was planned belongs to at most ``policy.attempts`` tries. A failed
  verify fails its try: the object's retry loop resumes where it stopped, in an object worker.
- every retry, of a batch request or of an object, is counted once in
  :attr:`TransferReport.retries` and told once to ``on_retry``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tenacity

from gitmirror.errors import EnvironmentProblem, GitMirrorError, IntegrityError, ProtocolError, TransientError
from gitmirror.httpclient import open_client
from gitmirror.lfs.admission import ByteBudget, HubSlots, Limits
from gitmirror.lfs.events import EventKind, TransferEvent, TransferFailure, TransferReport, summary_error
from gitmirror.lfs.pointer import LfsObject
from gitmirror.lfs.store import DownloadTicket, LfsStore, OnRetry, UploadTicket
from gitmirror.lfs.store_local import LocalLfsStore
from gitmirror.lfs.stream import CHUNK, ReadAhead, VerifyingStream
from gitmirror.lfs.wire import MAX_BATCH
from gitmirror.retry import RetryPolicy, retrying

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport

__all__ = ["MAX_BATCH", "PLAN_AHEAD", "Limits", "missing", "transfer"]

log = logging.getLogger("gitmirror.lfs")

#: Objects planned ahead of the workers; bounded so that hrefs do not go stale while they wait.
PLAN_AHEAD = 2 * MAX_BATCH


class _Cancelled(GitMirrorError):
    """The run was abandoned; never retried."""


class _Settled:
    """How many objects are settled (moved, present or failed), and the first error that ends the
    run (raised by a worker: EnvironmentProblem, a whole-run batch failure, a bug). Thread-safe."""

    def __init__(self) -> None:
        self.count = 0
        self.error: BaseException | None = None
        self._cond = threading.Condition()

    def add(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = exc
            self._cond.notify_all()

    def wait_for(self, count: int) -> None:
        """Wait until ``count`` objects are settled; raise the run's error as soon as there is one.
        Waits in short slices so that Ctrl-C reaches the main thread."""
        with self._cond:
            while self.count < count and self.error is None:
                self._cond.wait(0.5)
            if self.error is not None:
                raise self.error


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
    limits: Limits = field(default_factory=Limits)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set when the run is abandoned (Ctrl-C, a whole-run error): workers stop at their next chunk
    #: instead of finishing multi-gigabyte uploads nobody waits for.
    abort: threading.Event = field(default_factory=threading.Event)
    settled: _Settled = field(default_factory=_Settled)
    budget: ByteBudget = field(init=False)
    slots: HubSlots = field(init=False)
    #: The object workers and the verify workers (set by :func:`_run_pool`).
    movers: ThreadPoolExecutor | None = None
    verifiers: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self.budget = ByteBudget(self.limits.bytes_in_flight)
        self.slots = HubSlots(self.limits.requests_per_hub)

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
        self.settled.add()

    def moved(self, obj: LfsObject) -> None:
        with self.lock:
            self.report.moved += 1
            self.report.bytes_moved += obj.size
        self.emit("done", obj)
        self.settled.add()

    def failed(self, obj: LfsObject, exc: GitMirrorError) -> None:
        with self.lock:
            self.report.failures.append(TransferFailure(obj.oid, str(exc), exc))
        self.emit("failed", obj, message=str(exc))
        self.settled.add()

    def submit(self, pool: ThreadPoolExecutor | None, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(self, *args)`` in ``pool``; what it raises ends the run (:class:`_Settled`)."""
        assert pool is not None
        pool.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(self, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self.abort.set()
            self.settled.fail(exc)


def transfer(
    objects: Iterable[LfsObject],
    src: LfsStore,
    dst: LfsStore,
    *,
    jobs: int | None = None,
    progress: Callable[[TransferEvent], None] | None = None,
    policy: RetryPolicy | None = None,
    lfs_cache: LocalLfsStore | None = None,
    on_retry: OnRetry | None = None,
    transport: Transport | None = None,
    limits: Limits | None = None,
) -> TransferReport:
    """Copy to ``dst`` every object of ``objects`` it lacks, streaming from ``src``, many at once.

    ``limits`` bounds what runs at once (:class:`~gitmirror.lfs.admission.Limits`: requests in
    flight per hub, bytes of objects in flight, objects at once); ``jobs``, when given, is the
    last of those (objects transferred at once) and overrides ``limits.jobs``.

    With ``lfs_cache``, objects are staged there instead (downloads resume with ``Range`` after a
    cut, and objects already in the cache are not downloaded again); without it nothing touches disk.

    ``policy`` bounds the retries: ``policy.attempts`` tries per object (see the module's
    docstring). ``on_retry(what, exc)`` is told of every retry, of batch requests and of objects,
    from worker threads (it must be thread-safe); :attr:`TransferReport.retries` counts exactly
    the retries ``on_retry`` was told of, so a caller counting through ``on_retry`` must not add
    the report's count as well. ``transport`` sends the HTTP requests (default: a new
    :class:`~gitmirror.httpclient.HttpClient`, closed at the end; a given one is left open).

    Returns only when every object is settled, each moved object's upload confirmed (its
    ``verify`` answered). Moves everything it can, then raises if any object failed (an error of
    the class of the most telling failure, IntegrityError first, carrying the report as
    ``.report``): the caller must not push refs then.
    Whole-run problems (the destination refuses our token, a repository is missing) raise at once.
    """
    started = time.monotonic()
    wanted = sorted(set(objects))
    report = TransferReport(requested=len(wanted))
    limits = limits or Limits()
    if jobs is not None:
        limits = Limits(limits.requests_per_hub, limits.bytes_in_flight, jobs)
    try:
        with open_client(transport, pool_size=max(4, min(limits.workers, limits.requests_per_hub))) as http:
            run = _Run(src, dst, policy or RetryPolicy(), progress, http, report, lfs_cache, on_retry, limits)
            _run_pool(run, wanted)
    finally:
        report.seconds = time.monotonic() - started
    if report.failures:
        raise summary_error(report)
    return report


def _run_pool(run: _Run, wanted: list[LfsObject]) -> None:
    """Plan chunk after chunk and hand the objects to the workers, at most PLAN_AHEAD waiting;
    return when every object is settled."""
    limits = run.limits
    with _workers(1, "lfs-plan") as planner, _workers(limits.requests_per_hub, "lfs-verify") as verifiers, \
            _workers(limits.workers, "lfs") as movers:
        run.movers, run.verifiers = movers, verifiers
        try:
            for start in range(0, len(wanted), MAX_BATCH):
                chunk = wanted[start : start + MAX_BATCH]
                needed, uploads = _plan_uploads(run, chunk)
                if needed:  # the source is asked in the planner's thread while we go on
                    run.submit(planner, _plan_downloads, needed, uploads)
                run.settled.wait_for(start + len(chunk) - PLAN_AHEAD)
            run.settled.wait_for(len(wanted))
        except BaseException:
            run.abort.set()
            raise


@contextmanager
def _workers(count: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``count`` threads, waited for on the way out, except after Ctrl-C: an
    interrupted run must end within moments, and its workers stop by themselves at their next
    chunk (the run's abort event, set by :func:`_run_pool`). Work not started is dropped after
    any failure."""
    pool = ThreadPoolExecutor(max_workers=max(1, count), thread_name_prefix=name)
    interrupted = failed = False
    try:
        yield pool
    except KeyboardInterrupt:
        interrupted = True
        raise
    except BaseException:
        failed = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=interrupted or failed)


def _plan_uploads(run: _Run, chunk: list[LfsObject]) -> tuple[list[LfsObject], dict]:
    """Ask dst which objects of ``chunk`` it lacks; settle the others. Returns the lacking objects
    and the upload answers."""
    with run.slots.hold(run.dst.hub_key):
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
    return needed, uploads


def _plan_downloads(run: _Run, needed: list[LfsObject], uploads: dict) -> None:
    """Ask src where to read ``needed`` and hand each object to a worker (in the planner's thread)."""
    downloads = _plan_sources(run, needed)
    for obj in needed:
        down = downloads.get(obj)
        if isinstance(down, GitMirrorError):
            run.failed(obj, down)
        elif down is None:
            run.failed(obj, ProtocolError(f"no download ticket for LFS object {obj.oid}"))
        else:
            run.submit(run.movers, _move_one, obj, uploads[obj], down)


def _plan_sources(
    run: _Run, objects: list[LfsObject], attempts: int | None = None
) -> dict[LfsObject, DownloadTicket | GitMirrorError]:
    """Download tickets; objects already in the cache need no source link."""
    cached = {obj: DownloadTicket(obj) for obj in objects if run.cache is not None and run.cache.has(obj)}
    rest = [obj for obj in objects if obj not in cached]
    planned = {}
    if rest:
        with run.slots.hold(run.src.hub_key):
            planned = run.src.plan_downloads(rest, run.http, run.count_retry, attempts=attempts)
    return {**planned, **cached}


@dataclass
class _Resume:
    """An object whose try number ``spent`` sent its bytes but whose verify failed with ``failure``."""

    spent: int
    failure: GitMirrorError
    sent: _Counter


def _move_one(run: _Run, obj: LfsObject, up: UploadTicket, down: DownloadTicket | None,
              resume: _Resume | None = None) -> None:
    """Stream one object within its one budget of ``policy.attempts`` tries; a retry (or a stale
    link) asks both batch APIs again, once each, as part of the try. Then hand its verify to the
    verify workers (:func:`_confirm`). ``resume``: go on after a try whose verify failed."""
    attempt_no = resume.spent if resume else 0
    sent = resume.sent if resume else _Counter()
    pending = resume.failure if resume else None
    if resume is None:
        run.emit("started", obj)
    try:
        for attempt in _tries(run, obj, resume):
            with attempt:
                run.check_abort()
                if pending is not None:
                    # That try failed at its verify: it fails here, retried (and counted) or not
                    # as any other failed try, by this loop.
                    failure, pending = pending, None
                    raise failure
                attempt_no += 1
                if attempt_no > 1:
                    run.emit("retrying", obj, sent.take())  # those bytes will be sent again
                if attempt_no > 1 or up.stale() or down is None or down.stale():
                    fresh = _replan(run, obj)
                    if fresh is None:
                        run.present(obj)  # an earlier attempt got through after all
                        return
                    up, down = fresh
                with run.budget.admit(obj.size, run.abort):
                    run.check_abort()
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
    run.submit(run.verifiers, _confirm, obj, up, attempt_no, sent)


def _tries(run: _Run, obj: LfsObject, resume: _Resume | None) -> tenacity.Retrying:
    """The object's retry loop; resumed, it has the tries left plus the one that failed at its verify."""
    tries = retrying(f"LFS object {obj.oid}", run.policy, run.count_retry)
    if resume is None:
        return tries
    return tries.copy(stop=tenacity.stop_after_attempt(max(1, run.policy.attempts - resume.spent + 1)))


def _confirm(run: _Run, obj: LfsObject, up: UploadTicket, spent: int, sent: _Counter) -> None:
    """The destination's verify for an object sent in try ``spent``: moved when it answers; when
    it fails, the object's retry loop decides what follows, in an object worker."""
    try:
        run.check_abort()
        with run.slots.hold(run.dst.hub_key):
            run.dst.confirm(up, run.http)
    except GitMirrorError as exc:
        run.submit(run.movers, _move_one, obj, up, None, _Resume(spent, exc, sent))
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
    with run.slots.hold(run.dst.hub_key):
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
        with run.slots.hold(run.src.hub_key):
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
    """Send ``obj`` from ``source`` (the source store or the local cache) to the destination: a
    small one downloaded whole first (each request holding one slot at its own hub), a larger one
    streamed (holding a slot at both hubs)."""
    http = run.http

    def advanced(n: int) -> None:
        run.check_abort()  # raised inside the upload body: the PUT is abandoned mid-way
        sent.value += n
        run.emit("advanced", obj, n)

    if obj.size <= CHUNK:  # nothing to overlap: spare the thread (many-small-files repos)
        with run.slots.hold(source.hub_key), source.reading(down, http) as chunks:
            data = list(chunks)
        with run.slots.hold(run.dst.hub_key):
            run.dst.upload(up, VerifyingStream(obj, iter(data), advanced), http)
        return
    with run.slots.hold(source.hub_key, run.dst.hub_key), source.reading(down, http) as chunks:
        ahead = ReadAhead(chunks)
        try:
            run.dst.upload(up, VerifyingStream(obj, ahead, advanced), http)
        finally:
            ahead.close()


def missing(store: LfsStore, objects: Iterable[LfsObject], *, transport: Transport | None = None) -> list[LfsObject]:
    """Which ``objects`` ``store`` lacks, moving no object bytes (for verification).

    ``transport`` sends the requests (default: a new HttpClient, closed at the end).
    """
    wanted = sorted(set(objects))
    if not wanted:
        return []
    with open_client(transport, pool_size=4) as http:
        return sorted(store.lacking(wanted, http))
