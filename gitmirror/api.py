"""The Python API. The CLI is a thin shell over these functions.

    import gitmirror
    result = gitmirror.mirror("hf://Qwen/Qwen3-0.6B", "ms://my-org/Qwen3-0.6B")
    print(result.bytes_moved, result.refs_created)
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmirror import gitrepo
from gitmirror.errors import AuthError, GitMirrorError, LockedError, PermissionDeniedError, RepoNotFoundError
from gitmirror.execute import Executor, MirrorResult, RetryCounter
from gitmirror.gitrepo import RemoteRefs
from gitmirror.plan import (
    MirrorOptions,
    MirrorPlan,
    PlanContext,
    dst_default_branch,
    make_plan,
    parse_map,
    prefetch_for_new_destination,
    select_refs,
)
from gitmirror.preload import in_background, preload
from gitmirror.specs import parse_spec

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub
    from gitmirror.specs import RepoSpec
    from gitmirror.lfs import LfsObject, TransferEvent
    from gitmirror.mirrors_file import MirrorEntry
    from gitmirror.retry import RetryPolicy
    from gitmirror.sync import MirrorOutcome, SyncReport

log = logging.getLogger("gitmirror")

__all__ = ["mirror", "snapshot", "verify", "sync", "MirrorResult", "VerifyResult", "default_cache_dir", "mirror_key"]


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("GITMIRROR_CACHE"):
        return Path(env["GITMIRROR_CACHE"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gitmirror"


def mirror_key(src: str, dst: str, env: Mapping[str, str] | None = None) -> str:
    """A stable, readable cache name for one (source, destination) pair."""
    return _key(parse_spec(src, "src", env), parse_spec(dst, "dst", env))


def _key(src: "RepoSpec", dst: "RepoSpec") -> str:
    digest = hashlib.sha256(f"{src.identity}\0{dst.identity}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", src.display.split("://")[-1])[-60:]
    return f"{slug}-{digest}"


@contextmanager
def _workdir(src: "Hub", dst: "Hub", cache_dir: Path | None, no_cache: bool) -> Iterator[Path]:
    """The bare working repository for this mirror, locked against concurrent runs.

    With ``no_cache`` it is a temporary directory removed at exit whatever happens.
    """
    from filelock import FileLock, Timeout

    if no_cache:
        tmp = tempfile.mkdtemp(prefix="gitmirror-")
        try:
            yield Path(tmp) / "repo.git"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    repo = _cached_repo(src, dst, cache_dir)
    repo.parent.mkdir(parents=True, exist_ok=True)
    # A file lock is released by the kernel when its holder dies, so a killed run never blocks the next.
    lock = FileLock(str(repo.with_suffix(".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LockedError(f"another gitmirror run is working on {src.display_name()} -> {dst.display_name()}", hint="wait for it to finish") from None
    try:
        yield repo
    finally:
        lock.release()


def _cached_repo(src: "Hub", dst: "Hub", cache_dir: Path | None) -> Path:
    """Where this pair's working repository lives in the cache (``<cache>/repos/<key>.git``)."""
    return (cache_dir or default_cache_dir()) / "repos" / f"{_key(src.spec, dst.spec)}.git"


def _likely_first_run(src: "Hub", dst: "Hub", cache_dir: Path | None, no_cache: bool) -> bool:
    """No cached repository for this pair yet: the destination may well have to be created."""
    return no_cache or not _cached_repo(src, dst, cache_dir).exists()


def _open(spec_text: str, role: str, token: str | None, env: Mapping[str, str] | None, policy=None, on_retry=None) -> "Hub":
    from gitmirror.hubs import open_hub

    spec = parse_spec(spec_text, role, env)  # type: ignore[arg-type]
    return open_hub(spec, token=token, env=env, role=role, policy=policy, on_retry=on_retry)  # type: ignore[arg-type]


def _source_refs(hub: "Hub", policy, on_retry) -> RemoteRefs:
    """ls-remote the source; on failure ask the hub's API why (missing, private, gated)."""
    try:
        return gitrepo.ls_remote(hub.git_url, hub.git_auth(), policy=policy, on_retry=on_retry)
    except (RepoNotFoundError, AuthError, PermissionDeniedError):
        hub.preflight_source()  # raises the precise error when there is one
        raise


def _list_both(src: "Hub", dst: "Hub", policy, on_retry) -> tuple[RemoteRefs, RemoteRefs | None]:
    """ls-remote both sides at once; the destination's refs are None when it seems not to exist.

    The two listings are independent and each mostly waits for a server, so the source's runs in
    a helper thread. Errors keep their old order: the source's first, then the destination's.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitmirror-src") as helper:
        src_listing = helper.submit(_source_refs, src, policy, on_retry)
        try:
            dst_refs: RemoteRefs | None = gitrepo.ls_remote(dst.git_url, dst.git_auth(), policy=policy, on_retry=on_retry)
            dst_error: GitMirrorError | None = None
        except (RepoNotFoundError, AuthError):
            dst_refs, dst_error = None, None  # missing, or invisible to us: _create_destination decides
        except GitMirrorError as exc:
            dst_refs, dst_error = None, exc
        src_refs = src_listing.result()
    if dst_error is not None:
        raise dst_error
    return src_refs, dst_refs


def _create_destination(
    src: "Hub", dst: "Hub", private: bool | None, policy, on_retry, meanwhile: Callable[[], None] | None = None,
) -> RemoteRefs:
    """Create the destination (or find it there after all, and check write access); return its refs.

    ``meanwhile`` (the source fetch of a first run) runs in a helper thread during the hub API
    calls, which take about a second of imports and requests. It is a head start only: its
    failure is logged and left to planning, which fetches whatever is still missing and reports
    errors in the usual order. It only writes to the local cache, so when creating fails, that
    error is raised once the helper has finished.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitmirror-warm") as helper:
        warming = helper.submit(meanwhile) if meanwhile is not None else None
        if private is None:
            # A source anyone can clone is public, and saying so needs no hub SDK (a third of a
            # second to load); anything else is for the hub's API to tell (private, gated, gone).
            private = False if gitrepo.anyone_can_clone(src.git_url) else src.preflight_source().private
        info = dst.ensure_destination(private)
        if info.created:
            log.info("created %s", dst.display_name())
        refs = gitrepo.ls_remote(dst.git_url, dst.git_auth(), policy=policy, on_retry=on_retry)
        if warming is not None and warming.exception() is not None:
            log.debug("the early source fetch failed (planning fetches again): %s", warming.exception())
    return refs


def mirror(
    src: str,
    dst: str,
    *,
    src_token: str | None = None,
    dst_token: str | None = None,
    refs: Sequence[str] = (),
    exclude: Sequence[str] = (),
    map: Sequence[str] = (),
    force: bool = False,
    prune: bool = False,
    private: bool | None = None,
    dry_run: bool = False,
    jobs: int = 8,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    lfs_cache: Path | None = None,
    policy: "RetryPolicy | None" = None,
    progress: "Callable[[TransferEvent], None] | None" = None,
    on_retry: Callable[[str, BaseException], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> MirrorResult:
    """Mirror SRC to DST: every selected branch and tag with its history and all its LFS objects.

    LFS objects move first, refs after, then the destination is checked. Raises a
    :class:`gitmirror.errors.GitMirrorError` subclass on failure (each has an ``exit_code``).

    ``src``/``dst`` are specs as on the command line (``hf://owner/name``, ``ms://datasets/o/n``,
    a git URL, a local path). Tokens default to the environment and stored logins, as in the CLI.
    ``refs`` adds ref patterns (``"refs/pr/*"``), ``exclude`` leaves some out, ``map`` renames
    branches (``"dev:develop"``). ``force`` overwrites diverged refs (with a lease), ``prune``
    deletes destination-only refs. ``dry_run`` plans only: the result's ``plan`` says what would
    move. ``progress`` receives :class:`gitmirror.lfs.TransferEvent`s from worker threads;
    ``on_retry(what, exc)`` is told of each retry; ``env`` replaces ``os.environ`` for lookups.

    Returns a :class:`gitmirror.execute.MirrorResult` (``plan``, ``pushed``, ``objects_moved``,
    ``bytes_moved``, ``verified``, ``to_dict()``).
    """
    options = MirrorOptions(refs=tuple(refs), exclude=tuple(exclude), map=parse_map(map), force=force, prune=prune)
    return _plan_and_run(
        src, dst, lambda ctx: make_plan(ctx, options), warm=lambda ctx: prefetch_for_new_destination(ctx, options),
        src_token=src_token, dst_token=dst_token, private=private,
        dry_run=dry_run, jobs=jobs, cache_dir=cache_dir, no_cache=no_cache, lfs_cache=lfs_cache, policy=policy,
        progress=progress, on_retry=on_retry, env=env,
    )


def _plan_and_run(
    src: str,
    dst: str,
    make: Callable[[PlanContext], MirrorPlan],
    *,
    warm: Callable[[PlanContext], None] | None = None,
    src_token: str | None,
    dst_token: str | None,
    private: bool | None,
    dry_run: bool,
    jobs: int,
    cache_dir: Path | None,
    no_cache: bool,
    lfs_cache: Path | None,
    policy: "RetryPolicy | None",
    progress: "Callable[[TransferEvent], None] | None",
    on_retry: Callable[[str, BaseException], None] | None,
    env: Mapping[str, str] | None,
) -> MirrorResult:
    """The run shared by :func:`mirror` and :func:`snapshot`: list both sides, plan with ``make``
    (in the locked cache), then LFS, push and verification by the Executor.

    ``warm`` fills the cache for a destination that does not exist yet (given a context whose
    destination has no refs), while the destination is being created; ``make`` plans after it.
    """
    import time

    started = time.monotonic()
    preload("filelock")  # the cache lock, taken once both sides are listed
    retries = RetryCounter(listener=on_retry)
    src_hub = _open(src, "src", src_token, env, policy, retries)
    dst_hub = _open(dst, "dst", dst_token, env, policy, retries)
    if _likely_first_run(src_hub, dst_hub, cache_dir, no_cache):
        # Creating the destination needs its hub's SDK, a few tenths of a second to import, which
        # listing both sides spends waiting for git. A run with nothing to do never loads it, and
        # the source's SDK loads only if the source turns out not to be public.
        in_background(dst_hub.warm_up)
    gitrepo.check_git()  # after the warm-up has started: loading GitPython takes 80 ms
    src_refs, listed = _list_both(src_hub, dst_hub, policy, retries)
    with _workdir(src_hub, dst_hub, cache_dir, no_cache) as workdir:
        scans: dict = {}  # LFS pointer scans, shared by the early fetch and planning

        def context(dst_refs: RemoteRefs) -> PlanContext:
            return PlanContext(src_hub, dst_hub, workdir, src_refs, dst_refs, policy=policy, on_retry=retries,
                               scans=scans)

        checked = listed is None  # ensure_destination (the write check) runs while creating
        if listed is None:
            meanwhile = functools.partial(warm, context(RemoteRefs(refs={}))) if warm else None
            listed = _create_destination(src_hub, dst_hub, private, policy, retries, meanwhile)
        plan = make(context(listed))
        if dry_run:
            return MirrorResult(plan=plan, dry_run=True, retries=retries.count, seconds=time.monotonic() - started)
        if not plan.is_noop and not checked:
            # Write access is checked before any byte moves, so a read-only token fails cleanly;
            # a run with nothing to do skips this and costs only the two ls-remote requests.
            dst_hub.ensure_destination(private)
        executor = Executor(src_hub, dst_hub, workdir, jobs=jobs, policy=policy, progress=progress,
                            lfs_cache=lfs_cache, retries=retries)
        result = executor.run(plan)
        if not plan.is_noop and not no_cache:
            gitrepo.maintain(workdir)
    result.seconds = time.monotonic() - started
    return result


def snapshot(
    src: str,
    dst: str,
    *,
    revision: str | None = None,
    message: str | None = None,
    src_token: str | None = None,
    dst_token: str | None = None,
    private: bool | None = None,
    dry_run: bool = False,
    jobs: int = 8,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    lfs_cache: Path | None = None,
    policy: "RetryPolicy | None" = None,
    progress: "Callable[[TransferEvent], None] | None" = None,
    on_retry: Callable[[str, BaseException], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> MirrorResult:
    """Put the source's current files on DST as one new commit, without the source's history.

    The commit's tree is the source's tree at ``revision`` (default: its default branch; a branch,
    tag or full ref name), its message ``message`` (default: names the source and its commit), and
    its parent the destination branch's head (none for an empty destination or one holding only
    the hub's initial commit). Only that tree's LFS objects move, before the push, as in
    :func:`mirror`. When the destination already has this tree, nothing is made or pushed.

    Returns a :class:`gitmirror.execute.MirrorResult` whose ``plan.snapshot`` describes the commit.
    """
    from gitmirror.snapshot import make_snapshot_plan

    return _plan_and_run(
        src, dst, lambda ctx: make_snapshot_plan(ctx, revision=revision, message=message, env=env),
        src_token=src_token, dst_token=dst_token, private=private, dry_run=dry_run, jobs=jobs, cache_dir=cache_dir,
        no_cache=no_cache, lfs_cache=lfs_cache, policy=policy, progress=progress, on_retry=on_retry, env=env,
    )


@dataclass
class VerifyResult:
    """Whether DST is an exact mirror of SRC, and every difference found."""

    src: str
    dst: str
    ref_differences: list[dict[str, Any]] = field(default_factory=list)
    missing_objects: list["LfsObject"] = field(default_factory=list)
    objects_checked: int = 0

    @property
    def in_sync(self) -> bool:
        return not self.ref_differences and not self.missing_objects

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "in_sync": self.in_sync,
            "ref_differences": self.ref_differences,
            "missing_objects": [{"oid": o.oid, "size": o.size} for o in self.missing_objects],
            "objects_checked": self.objects_checked,
        }


def verify(
    src: str,
    dst: str,
    *,
    src_token: str | None = None,
    dst_token: str | None = None,
    refs: Sequence[str] = (),
    exclude: Sequence[str] = (),
    map: Sequence[str] = (),
    cache_dir: Path | None = None,
    no_cache: bool = False,
    policy: "RetryPolicy | None" = None,
    env: Mapping[str, str] | None = None,
) -> VerifyResult:
    """Compare DST with SRC and change nothing on either: refs, then every LFS object of the history.

    Takes the same specs, tokens and ref selection as :func:`mirror`. Returns a
    :class:`VerifyResult`: ``in_sync``, ``ref_differences`` and ``missing_objects``. Raises a
    :class:`gitmirror.errors.GitMirrorError` subclass when either side cannot be read.
    """
    from gitmirror import lfs

    gitrepo.check_git()
    options = MirrorOptions(refs=tuple(refs), exclude=tuple(exclude), map=parse_map(map))
    src_hub = _open(src, "src", src_token, env, policy)
    dst_hub = _open(dst, "dst", dst_token, env, policy)
    src_refs = _source_refs(src_hub, policy, None)
    try:
        dst_refs = gitrepo.ls_remote(dst_hub.git_url, dst_hub.git_auth(), policy=policy)
    except (RepoNotFoundError, AuthError):
        dst_hub.preflight_source()
        raise
    chosen, _ = select_refs(src_refs, options, src_refs.head, dst_default_branch(dst_refs, dst_hub))
    result = VerifyResult(src=src_hub.display_name(), dst=dst_hub.display_name())
    for dst_ref, src_ref in sorted(chosen.items()):
        have = dst_refs.refs.get(dst_ref)
        if have != src_refs.refs[src_ref]:
            result.ref_differences.append({"ref": dst_ref, "source_ref": src_ref, "source": src_refs.refs[src_ref], "destination": have})
    with _workdir(src_hub, dst_hub, cache_dir, no_cache) as workdir:
        gitrepo.open_cache(workdir)
        gitrepo.fetch(workdir, src_hub.git_url, src_hub.git_auth(), list(chosen.values()), policy=policy)
        tips = sorted({src_refs.refs[s] for s in chosen.values()})
        objects = [hit.obj for hit in gitrepo.lfs_pointers(workdir, tips)]
    result.objects_checked = len(objects)
    result.missing_objects = lfs.missing(dst_hub.lfs_store(), objects)
    return result


def sync(
    mirrors: "Path | str | Sequence[MirrorEntry]",
    *,
    jobs: int = 4,
    delay: float = 0.0,
    shard: tuple[int, int] | None = None,
    cache_dir: Path | None = None,
    policy: "RetryPolicy | None" = None,
    env: Mapping[str, str] | None = None,
    dry_run: bool = False,
    on_outcome: "Callable[[MirrorOutcome], None] | None" = None,
) -> "SyncReport":
    """Bring every mirror of a mirrors file (or a list of entries) up to date, ``jobs`` at a time.

    ``shard=(k, n)`` takes only the k-th of n stable, disjoint parts. Never raises for one mirror's
    failure: read each outcome in the returned report (``report.exit_code`` is 11 when any failed).
    """
    # By full name: the package attribute gitmirror.sync is this API function, not the module.
    from gitmirror.sync import sync as run_sync
    from gitmirror.mirrors_file import in_shard, load_mirrors

    entries = load_mirrors(Path(mirrors)) if isinstance(mirrors, (str, Path)) else list(mirrors)
    if shard is not None:
        entries = [e for e in entries if in_shard(e, *shard)]
    return run_sync(entries, jobs=jobs, delay=delay, cache_dir=cache_dir, policy=policy, env=env,
                    dry_run=dry_run, on_outcome=on_outcome)
