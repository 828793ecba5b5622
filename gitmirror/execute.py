"""Carry a :class:`MirrorPlan` out: LFS objects first, then refs, then check the destination.

The order is the safety argument: a ref is pushed only after every LFS object its new history
points to is confirmed on the destination, so a destination never shows a commit with missing
content, and a run killed at any moment can simply be run again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmirror.errors import GitMirrorError, IntegrityError
from gitmirror.gitprogress import StepListener, for_step
from gitmirror.plan import ForeseenFailure, MirrorPlan, RefAction, RefUpdate, diverged_error
from gitmirror.remote import PushSpec

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub
    from gitmirror.httpclient import Transport
    from gitmirror.lfs import LfsObject, TransferEvent, TransferReport
    from gitmirror.retry import RetryPolicy

log = logging.getLogger("gitmirror.execute")


class RetryCounter:
    """Counts retries across threads; passed to every retried step as its ``on_retry``.

    ``listener`` is told of each retry too (``sync`` uses it to back a hub off after a 429).
    """

    def __init__(self, listener: Callable[[str, BaseException], None] | None = None) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.listener = listener

    def __call__(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self.count += 1
        if self.listener is not None:
            self.listener(what, exc)


@dataclass
class MirrorResult:
    """What a mirror run did. ``plan`` says what it meant to do.

    ``objects_checked`` counts the LFS objects the destination was asked about (the plan's
    ``lfs_scope`` says whether they were the whole history's or only the new ones); ``verified``
    is true once the destination was seen to hold every one of them, and the pushed refs.
    """

    plan: MirrorPlan
    dry_run: bool = False
    pushed: tuple[RefUpdate, ...] = ()
    objects_checked: int = 0
    objects_moved: int = 0
    objects_present: int = 0
    bytes_moved: int = 0
    retries: int = 0
    seconds: float = 0.0
    verified: bool = False
    lfs_seconds: float = 0.0

    @property
    def refs_created(self) -> int:
        return sum(1 for u in self.pushed if u.action is RefAction.CREATE)

    @property
    def refs_updated(self) -> int:
        return sum(1 for u in self.pushed if u.action in (RefAction.FAST_FORWARD, RefAction.FORCE, RefAction.REPLACE_INITIAL,
                                                          RefAction.REBUILD_CARD))

    @property
    def refs_deleted(self) -> int:
        return sum(1 for u in self.pushed if u.action is RefAction.DELETE)

    @property
    def refs_unchanged(self) -> int:
        return sum(1 for u in self.plan.updates if u.action in (RefAction.UP_TO_DATE, RefAction.KEEP))

    @property
    def changed(self) -> bool:
        """Whether the run changed the destination (a ref moved or an LFS object was uploaded)."""
        return bool(self.pushed or self.objects_moved)

    @property
    def throughput(self) -> float:
        """LFS bytes per second over the LFS phase."""
        return self.bytes_moved / self.lfs_seconds if self.lfs_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.plan.src,
            "dst": self.plan.dst,
            "dry_run": self.dry_run,
            "up_to_date": self.plan.is_noop if self.dry_run else not self.changed,
            "refs": {
                "created": self.refs_created,
                "updated": self.refs_updated,
                "deleted": self.refs_deleted,
                "unchanged": self.refs_unchanged,
            },
            "lfs": {
                "scope": self.plan.lfs_scope,
                "objects_in_plan": len(self.plan.lfs_objects),
                "objects_checked": self.objects_checked,
                "objects_moved": self.objects_moved,
                "objects_already_present": self.objects_present,
                "bytes_moved": self.bytes_moved,
            },
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "throughput_bytes_per_second": round(self.throughput),
            "verified": self.verified,
            "plan": self.plan.to_dict(),
        }


@dataclass
class Executor:
    """Runs one plan. Holds only what the run needs: the two hubs, the cache repository
    ``cache_dir`` (holding the plan's commits), the LFS bounds ``jobs`` (objects at once, at most;
    None: adaptive), ``requests_per_hub`` and ``bytes_in_flight`` (None: the defaults of
    :class:`gitmirror.lfs.admission.Limits`), the retry
    ``policy``, a ``progress`` callback for LFS events, an optional ``lfs_cache`` directory to
    stage objects in, the run's ``retries`` counter, and ``git_progress(step, event)`` told of the
    push's progress (:mod:`gitmirror.gitprogress`)."""

    src: "Hub"
    dst: "Hub"
    cache_dir: Path
    jobs: int | None = None
    requests_per_hub: int | None = None
    bytes_in_flight: int | None = None
    policy: "RetryPolicy | None" = None
    progress: "Callable[[TransferEvent], None] | None" = None
    lfs_cache: Path | None = None
    retries: RetryCounter = field(default_factory=RetryCounter)
    git_progress: StepListener | None = None
    #: The run's HTTP client (its connections kept from the listings on); None: one per transfer.
    http: "Transport | None" = None

    def run(self, plan: MirrorPlan) -> MirrorResult:
        """Carry ``plan`` out: its LFS objects to the destination, then its ref updates in one push,
        then check that the destination's refs and objects are as planned.

        A plan whose scope is the whole history (``plan.lfs_scope == "history"``) and whose refs
        all match still has its objects checked and the missing ones uploaded; nothing is pushed.

        Raises DivergedError (before anything moves) when the plan has diverged refs, the LFS
        transfer's error when any object could not be copied (then nothing is pushed), the push's
        error, or IntegrityError when the final check finds a difference.
        """
        started = time.monotonic()
        if plan.diverged:
            raise diverged_error(plan)
        result = MirrorResult(plan=plan)
        if plan.lfs_objects:
            lfs_started = time.monotonic()
            report = self.move_lfs(plan)
            result.lfs_seconds = time.monotonic() - lfs_started
            result.objects_checked = report.requested
            result.objects_moved = report.moved
            result.objects_present = report.already_present
            result.bytes_moved = report.bytes_moved
        if plan.moving:
            # The LFS half of the final check does not depend on the push: it runs alongside it.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-lfs") as pool:
                lacking = pool.submit(self.lacking_objects, plan)
                self.push(plan)
                result.pushed = plan.moving
                self.check_destination(plan, lacking.result)
            result.verified = True
        elif plan.lfs_scope == "history":
            # No ref moves: verified means every object of the history was seen on the destination.
            check_objects(self.lacking_objects(plan) if plan.lfs_objects else [])
            result.verified = True
        result.retries = self.retries.count
        result.seconds = time.monotonic() - started
        return result

    def move_lfs(self, plan: MirrorPlan) -> "TransferReport":
        """Copy every LFS object of the plan that the destination lacks, streaming from the source.

        Returns the transfer's report; raises when any object failed (see :func:`gitmirror.lfs.transfer`).
        """
        from gitmirror import lfs
        from gitmirror.lfs.admission import Limits

        staged, rest = self.split_staged(plan)
        reports = []
        # The run's counter hears every LFS retry (sync backs a hub off on a 429 through it); the
        # report's own count is of the same retries, so it is not added again.
        limits = Limits.of(self.requests_per_hub, self.bytes_in_flight, self.jobs)
        if staged:  # files --convert made LFS objects: their bytes are in the cache, not the source
            from gitmirror.convert import staging_store

            reports.append(lfs.transfer(staged, staging_store(self.cache_dir), self.dst.lfs_store(), limits=limits,
                                        progress=self.progress, policy=self.policy, on_retry=self.retries,
                                        transport=self.http))
        if rest or not staged:
            reports.append(lfs.transfer(
                rest,
                self.src.lfs_store(),
                self.dst.lfs_store(),
                limits=limits,
                progress=self.progress,
                policy=self.policy,
                lfs_cache=lfs.LocalLfsStore(self.lfs_cache) if self.lfs_cache else None,
                on_retry=self.retries,
                transport=self.http,
            ))
        return reports[0] if len(reports) == 1 else lfs.TransferReport(
            requested=sum(r.requested for r in reports), already_present=sum(r.already_present for r in reports),
            moved=sum(r.moved for r in reports), bytes_moved=sum(r.bytes_moved for r in reports),
            retries=sum(r.retries for r in reports), seconds=sum(r.seconds for r in reports))

    def split_staged(self, plan: MirrorPlan) -> tuple[list["LfsObject"], list["LfsObject"]]:
        """The plan's LFS objects as (those ``--convert`` staged in the cache, the source's)."""
        if plan.conversion is None:
            return [], list(plan.lfs_objects)
        from gitmirror.convert import staging_store

        store = staging_store(self.cache_dir)
        staged: list["LfsObject"] = []
        rest: list["LfsObject"] = []
        for obj in plan.lfs_objects:
            (staged if store.has(obj) else rest).append(obj)
        return staged, rest

    def push(self, plan: MirrorPlan) -> None:
        """Push the plan's moving refs to the destination, each to the exact object planned.

        A push reported as failed whose refs nonetheless landed as planned counts as done;
        otherwise the push's error (DivergedError, IntegrityError, ...) is raised.
        """
        specs = [push_spec(u) for u in plan.moving]
        try:
            self.dst.remote().push(self.cache_dir, specs, progress=for_step(self.git_progress, "pushing"))
        except GitMirrorError:
            # A push whose answer was lost (a cut connection) may have landed; a retry of a
            # --force-with-lease push then sees "stale info". If the refs are where the plan wants
            # them, the push did its job.
            if not self._refs_as_planned(plan):
                raise
            log.info("the push reported a failure, but the destination's refs are as planned")

    def _refs_as_planned(self, plan: MirrorPlan) -> bool:
        try:
            seen = self.dst.remote().ls_remote()
        except GitMirrorError:
            return False
        return all(seen.refs.get(u.dst_ref) == u.new for u in plan.moving)

    def lacking_objects(self, plan: MirrorPlan) -> list["LfsObject"]:
        """The plan's LFS objects the destination does not have (asked of its LFS API)."""
        from gitmirror import lfs

        return lfs.missing(self.dst.lfs_store(), list(plan.lfs_objects), transport=self.http)

    def check_destination(self, plan: MirrorPlan, lacking: "Callable[[], list[LfsObject]]") -> None:
        """The destination's refs equal the plan and every LFS object of the pushed history is there.

        ``lacking`` gives the missing objects (:meth:`lacking_objects`, asked alongside the push).
        """
        seen = self.dst.remote().ls_remote(self.http)
        missing = lacking()
        wrong = [u.dst_ref for u in plan.moving if seen.refs.get(u.dst_ref) != u.new]
        if wrong:
            raise IntegrityError(f"after the push the destination's {', '.join(wrong)} differ from the plan", hint="another writer may be pushing; rerun")
        check_objects(missing)

    def foresee(self, plan: MirrorPlan) -> tuple[ForeseenFailure, ...]:
        """For a dry run: the LFS objects of the plan the source cannot give, as a foreseen failure.

        Asks the source's LFS batch API for a download of each (100 objects a request; no object
        bytes move, and the destination is not asked). Returns () when the source has them all.
        """
        from gitmirror.httpclient import open_client
        from gitmirror.lfs.events import TransferFailure, TransferReport, summary_error

        objects = sorted(set(self.split_staged(plan)[1]))
        if not objects:
            return ()
        with open_client(self.http, pool_size=1) as http:  # the run's, when given: its kept connections
            tickets = self.src.lfs_store().plan_downloads(objects, http, self.retries)
        failures = [TransferFailure(obj.oid, str(t), t) for obj, t in tickets.items() if isinstance(t, GitMirrorError)]
        if not failures:
            return ()
        return (ForeseenFailure(summary_error(TransferReport(requested=len(objects), failures=failures)), "lfs"),)


def check_objects(missing: "list[LfsObject]") -> None:
    """Raise IntegrityError when the destination lacks any LFS object it was asked about."""
    if missing:
        raise IntegrityError(f"{len(missing)} LFS objects are missing on the destination after the transfer (first: {missing[0].oid})")


def push_spec(update: RefUpdate) -> PushSpec:
    """The push of one planned ref update, leased on the destination's object id when planned
    (``update.forced``: a rebuilt ModelScope card, ``REBUILD_CARD``, is leased on the old card commit)."""
    if update.action is RefAction.DELETE:
        return PushSpec(update.dst_ref, None, force=True, expect_old=update.old)
    # Push the exact object the plan was made for, not a ref name that may have moved since.
    return PushSpec(update.dst_ref, update.new, force=update.forced, expect_old=update.old)
