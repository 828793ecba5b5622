"""One run, from two specs to a result: open both hubs, list both sides, create a missing
destination, plan in the locked cache, and hand the plan to the :class:`~gitmirror.execute.Executor`.

The public functions of :mod:`gitmirror.api` and each mirror of :mod:`gitmirror.sync` come here
with a :class:`RunOptions`. What a run plans (a full mirror, a snapshot) is the caller's
``make`` function; everything around planning is the same for both.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor as TaskExecutor
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmirror import cache, gitrepo
from gitmirror.errors import AuthError, GitMirrorError, PermissionDeniedError, RepoNotFoundError
from gitmirror.execute import Executor, MirrorResult, RetryCounter
from gitmirror.lfsconfig import check_override, choose_source_endpoint
from gitmirror.plan import LfsScope, MirrorOptions, MirrorPlan
from gitmirror.planner import PlanContext, make_plan, prefetch_for_new_destination, ref_name_violations
from gitmirror.preload import in_background, preload
from gitmirror.remote import RemoteRefs, anyone_can_clone
from gitmirror.rules import DestinationRulesError
from gitmirror.specs import parse_spec

if TYPE_CHECKING:
    from gitmirror.gitprogress import StepListener
    from gitmirror.hubs._support import OnRetry
    from gitmirror.hubs.base import Hub
    from gitmirror.hubs.logins import LoginCache
    from gitmirror.httpclient import Transport
    from gitmirror.lfs import TransferEvent
    from gitmirror.retry import RetryPolicy

log = logging.getLogger("gitmirror")

PathLike = str | os.PathLike[str]


def as_path(value: PathLike | None) -> Path | None:
    """``value`` as a :class:`Path` (``~`` expanded), None stays None: the API takes ``str`` or ``PathLike``."""
    return None if value is None else Path(value).expanduser()


@dataclass(frozen=True)
class RunOptions:
    """How one run goes, whatever it plans.

    - ``src_token`` / ``dst_token``: explicit tokens; None means the environment and stored logins.
      ``src_token_source`` / ``dst_token_source`` say where they came from, for messages (None:
      ``--src-token`` / ``--dst-token``; ``sync`` names the mirrors file's variable).
    - ``private``: visibility of a destination that has to be created; None follows the source.
    - ``dry_run``: plan only (and ask the source's LFS API whether it has the plan's objects).
      ``jobs``: LFS objects transferred at once, at most (None: as the two bounds below allow);
      ``requests_per_hub``: LFS requests in flight at each hub; ``bytes_in_flight``: sizes of the
      LFS objects being transferred at once, in bytes (None: the defaults of
      :class:`gitmirror.lfs.admission.Limits`).
    - ``repair``: ask the destination about every LFS object of the history, as the first run
      for a pair does, and upload what it lacks (see :func:`lfs_scope`).
    - ``cache_dir``: where working repositories live (``str`` or ``PathLike``; None: the default,
      :func:`gitmirror.cache.default_cache_dir`); ``no_cache``: a temporary one, removed after.
    - ``lfs_cache``: stage LFS objects in this directory (resumable downloads); None streams.
    - ``policy``: retries and timeouts (None: :class:`~gitmirror.retry.RetryPolicy` defaults).
    - ``progress``: told of each :class:`~gitmirror.lfs.TransferEvent`, from worker threads.
    - ``git_progress(step, event)``: told of git's progress in the source fetch and the push
      (:class:`~gitmirror.gitprogress.GitProgress`), from a reader thread; None: git runs quiet.
    - ``on_retry(what, exc)``: told of each retry of any step (git, hub API, LFS).
    - ``env``: replaces ``os.environ`` for every lookup (tokens, cache, identity).
    - ``logins``: hub logins shared by every run given the same cache (a ``sync`` makes one:
      one ModelScope login per token per run); None: each adapter logs in for itself.
    - ``http``: the HTTP client (a :class:`~gitmirror.httpclient.Transport`) the ref listings use,
      shared by a run's mirrors and left open; None: a client per listing.
    - ``listing_helper``: the executor the source's listing runs on, left open (a sync's: its
      threads, and the connections they keep, serve every mirror); None: a thread of this run's.
    - ``git_checked``: git was already found recent enough (a sync checks once for all its
      mirrors: a ``git version`` child per no-op mirror was a third of its CPU); False: this run checks.
    - ``src_lfs_url``: the source's LFS API (http(s)) whatever its configuration says; None: the
      endpoint git-lfs would use (:mod:`gitmirror.lfsconfig`).
    """

    src_token: str | None = None
    dst_token: str | None = None
    src_token_source: str | None = None
    dst_token_source: str | None = None
    private: bool | None = None
    dry_run: bool = False
    repair: bool = False
    jobs: int | None = None
    requests_per_hub: int | None = None
    bytes_in_flight: int | None = None
    cache_dir: Path | None = None
    no_cache: bool = False
    lfs_cache: Path | None = None
    policy: "RetryPolicy | None" = None
    progress: "Callable[[TransferEvent], None] | None" = None
    git_progress: "StepListener | None" = None
    on_retry: "OnRetry | None" = None
    env: Mapping[str, str] | None = None
    src_lfs_url: str | None = None
    logins: "LoginCache[Any] | None" = None
    http: "Transport | None" = None
    listing_helper: "TaskExecutor | None" = None
    git_checked: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", as_path(self.cache_dir))
        object.__setattr__(self, "lfs_cache", as_path(self.lfs_cache))


def open_hub(spec_text: str, role: str, token: str | None, options: RunOptions, on_retry: "OnRetry | None" = None) -> "Hub":
    """The hub adapter for a spec as typed by the user. Raises UsageError for a malformed spec."""
    from gitmirror.hubs import open_hub as open_adapter

    spec = parse_spec(spec_text, role, options.env)  # type: ignore[arg-type]
    source = options.src_token_source if role == "src" else options.dst_token_source
    return open_adapter(spec, token=token, env=options.env, role=role, policy=options.policy,  # type: ignore[arg-type]
                        on_retry=on_retry, logins=options.logins, token_source=source)


def existing_refs(hub: "Hub", http: "Transport | None" = None) -> RemoteRefs:
    """Log in, then ls-remote a repository that must exist (the source; both sides for ``verify``),
    over ``http``, the run's client, when given; on failure ask the hub's API why (missing,
    private, gated)."""
    hub.login()
    try:
        return hub.remote().ls_remote(http)
    except (RepoNotFoundError, AuthError, PermissionDeniedError):
        hub.preflight_source()  # raises the precise error when there is one
        raise


def list_both(src: "Hub", dst: "Hub", http: "Transport | None" = None,
              helper: TaskExecutor | None = None) -> tuple[RemoteRefs, RemoteRefs | None]:
    """ls-remote both sides at once (over ``http``, the run's client, when given: its connections
    are reused from one mirror to the next); the destination's refs are None when it seems not to exist.

    The two listings are independent and each mostly waits for a server, so the source's runs on
    ``helper`` (a sync's executor, whose threads outlive a mirror and keep their connections; by
    default a thread of its own). Errors keep their order: the source's first, then the destination's.
    """
    with contextlib.ExitStack() as stack:
        if helper is None:
            helper = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitmirror-src"))
        src_listing = helper.submit(existing_refs, src, http)
        try:
            dst.login()
            dst_refs: RemoteRefs | None = dst.remote().ls_remote(http)
            dst_error: GitMirrorError | None = None
        except (RepoNotFoundError, AuthError):
            dst_refs, dst_error = None, None  # missing, or invisible to us: create_destination decides
        except GitMirrorError as exc:
            dst_refs, dst_error = None, exc
        src_refs = src_listing.result()
    if dst_error is not None:
        raise dst_error
    return src_refs, dst_refs


def create_destination(src: "Hub", dst: "Hub", private: bool | None,
                       meanwhile: Callable[[], None] | None = None, http: "Transport | None" = None) -> RemoteRefs:
    """Create the destination (or find it there after all, and check write access); return its refs.

    ``private=None`` gives it the source's visibility; ``http``: the run's client, for the listing. ``meanwhile`` (the source fetch of a first
    run) runs in a helper thread during the hub API calls, which take about a second of imports
    and requests. It is a head start only: its failure is logged and left to planning, which
    fetches whatever is still missing and reports errors in the usual order.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitmirror-warm") as helper:
        warming = helper.submit(meanwhile) if meanwhile is not None else None
        if private is None:
            # A source anyone can clone is public, and saying so needs no hub SDK (a third of a
            # second to load); anything else is for the hub's API to tell (private, gated, gone).
            private = False if anyone_can_clone(src.git_url, http=http) else src.preflight_source().private
        info = dst.ensure_destination(private)
        if info.created:
            log.info("created %s", dst.display_name())
        refs = dst.remote().ls_remote(http)
        if warming is not None and warming.exception() is not None:
            log.debug("the early source fetch failed (planning fetches again): %s", warming.exception())
    return refs


#: Written into a pair's cache repository once a run has seen every LFS object of the history on
#: the destination; until then every run checks the whole history.
HISTORY_CHECKED = "gitmirror-lfs-history-checked"


def lfs_scope(workdir: Path, repair: bool) -> LfsScope:
    """Which LFS objects this run asks the destination about: the whole history's (``--repair``,
    or no run for this pair has checked them yet), else only the new history's."""
    return "history" if repair or not (workdir / HISTORY_CHECKED).exists() else "new"


def mark_history_checked(workdir: Path) -> None:
    """Remember in the cache that the destination was seen holding every LFS object of the history.

    Best effort: the run has succeeded either way; without the mark the next run checks again."""
    try:
        if workdir.is_dir():
            (workdir / HISTORY_CHECKED).write_text("every LFS object of the mirrored history was seen on the destination\n")
    except OSError as exc:
        log.warning("could not mark the cache as checked (the next run checks the whole history again): %s", exc.strerror)


def plan_and_run(
    src: str,
    dst: str,
    make: Callable[[PlanContext], MirrorPlan],
    options: RunOptions,
    warm: Callable[[PlanContext], None] | None = None,
    names_refused: Callable[[PlanContext], tuple] | None = None,
) -> MirrorResult:
    """List both sides, plan with ``make`` (in the locked cache), then LFS, push and verification.

    ``warm`` fills the cache for a destination that does not exist yet (given a context whose
    destination has no refs), while the destination is being created; ``make`` plans after it.
    ``names_refused`` (same context) gives the rule violations of the ref names ``make`` would
    create, checked before a missing destination is created (see :func:`_create_unless_refused`).
    Raises a :class:`~gitmirror.errors.GitMirrorError` subclass on failure.
    """
    started = time.monotonic()
    src_lfs_url = check_override(options.src_lfs_url)
    from gitmirror.retry import RetryPolicy

    # Each run waits out servers' pauses within a budget of its own (RetryPolicy.wait_budget).
    options = replace(options, policy=(options.policy or RetryPolicy()).for_run())
    preload("filelock")  # the cache lock, taken once both sides are listed
    retries = RetryCounter(listener=options.on_retry)
    src_hub = open_hub(src, "src", options.src_token, options, retries)
    dst_hub = open_hub(dst, "dst", options.dst_token, options, retries)
    if cache.likely_first_run(src_hub, dst_hub, options.cache_dir, options.no_cache):
        # Creating the destination needs its hub's SDK, a few tenths of a second to import, which
        # listing both sides spends waiting for git. A run with nothing to do never loads it, and
        # the source's SDK loads only if the source turns out not to be public.
        in_background(dst_hub.warm_up)
    if not options.git_checked:
        gitrepo.check_git()  # after the warm-up has started: loading GitPython takes 80 ms
    # One client for the run's HTTP: the source's listing opens the connection its LFS batch
    # request then reuses (a TLS handshake is two round trips on a far link), and so on.
    with run_client(options) as http:
        src_refs, listed = list_both(src_hub, dst_hub, options.http or http, options.listing_helper)
        with cache.workdir(src_hub, dst_hub, options.cache_dir, options.no_cache) as workdir:
            scans: dict = {}  # LFS pointer scans, shared by the early fetch and planning
            scope = lfs_scope(workdir, options.repair)

            def context(dst_refs: RemoteRefs) -> PlanContext:
                return PlanContext(src_hub, dst_hub, workdir, src_refs, dst_refs, scans=scans, lfs_scope=scope,
                                   git_progress=options.git_progress)

            checked = listed is None  # ensure_destination (the write check) runs while creating
            planned = None  # a plan made before creating the destination, still right if it is empty
            if listed is None and not options.dry_run:
                listed, planned = _create_unless_refused(src_hub, dst_hub, options, make, context, warm, names_refused,
                                                     http)
            elif listed is None:
                # A dry run moves nothing, and creates nothing: a destination that does not exist is
                # planned as the empty repository a real run would create and fill.
                listed = RemoteRefs(refs={})
            plan = planned if planned is not None and not listed.refs else make(context(listed))
            if plan.violations:  # the destination would refuse it: say so before any LFS request
                raise DestinationRulesError(plan.dst, plan.violations)
            choose_source_endpoint(context(listed), plan, src_lfs_url)
            executor = Executor(src_hub, dst_hub, workdir, jobs=options.jobs, policy=options.policy,
                                requests_per_hub=options.requests_per_hub, bytes_in_flight=options.bytes_in_flight,
                                progress=options.progress, lfs_cache=options.lfs_cache, retries=retries,
                                git_progress=options.git_progress, http=http)
            if options.dry_run:
                plan = replace(plan, failures=plan.failures + executor.foresee(plan))
                return MirrorResult(plan=plan, dry_run=True, retries=retries.count, seconds=time.monotonic() - started)
            if not plan.is_noop and not checked:
                # Write access is checked before any byte moves, so a read-only token fails cleanly;
                # a run with nothing to do skips this and costs only the two ls-remote requests.
                dst_hub.ensure_destination(options.private)
            result = executor.run(plan)
            if plan.lfs_scope == "history" and result.verified and not options.no_cache:
                mark_history_checked(workdir)
            if not plan.is_noop and not options.no_cache:
                gitrepo.maintain(workdir)
    result.seconds = time.monotonic() - started
    return result


@contextlib.contextmanager
def run_client(options: RunOptions) -> "Iterator[Transport]":
    """The HTTP client of one run: its listings (unless ``options.http``, a sync's, is given), its
    LFS transfer and its final check, keeping up to the transfer's object workers' connections per
    origin (:class:`~gitmirror.lfs.admission.Limits`). Closed on the way out, except after Ctrl-C
    (a worker blocked in a read holds its connection, and the process is ending anyway)."""
    from gitmirror.httpclient import open_client
    from gitmirror.lfs.admission import Limits

    limits = Limits.of(options.requests_per_hub, options.bytes_in_flight, options.jobs)
    with open_client(pool_size=max(4, min(limits.workers, limits.requests_per_hub)),
                     env=dict(options.env) if options.env is not None else None) as http:
        yield http


def _create_unless_refused(src_hub: "Hub", dst_hub: "Hub", options: RunOptions,
                           make: Callable[[PlanContext], MirrorPlan], context: Callable[[RemoteRefs], PlanContext],
                           warm: Callable[[PlanContext], None] | None,
                           names_refused: Callable[[PlanContext], tuple] | None,
                           http: "Transport | None" = None) -> tuple[RemoteRefs, MirrorPlan | None]:
    """Create the missing destination unless its rules would refuse the plan; return its refs and
    the plan made for it as an empty repository (None when none was made).

    A run stopped by the destination's rules (DestinationRulesError, exit 7) leaves no empty
    repository behind. Rules on blobs (``DestinationRules.checks_blobs``) need the history: the
    plan is made first, for the empty repository the destination will be, and the hub's API
    creates it afterwards. Rules on ref names need only the source's listing
    (``names_refused``): they are checked first, and the source history is fetched (``warm``)
    while the hub's API creates the repository.
    """
    empty = context(RemoteRefs(refs={}))
    if dst_hub.rules().checks_blobs:
        planned = make(empty)
        if planned.violations:
            raise DestinationRulesError(planned.dst, planned.violations)
        return create_destination(src_hub, dst_hub, options.private, http=http), planned
    refused = names_refused(empty) if names_refused is not None else ()
    if refused:
        raise DestinationRulesError(dst_hub.display_name(), refused)
    meanwhile = functools.partial(warm, empty) if warm else None
    return create_destination(src_hub, dst_hub, options.private, meanwhile, http), None


def run_mirror(src: str, dst: str, selection: MirrorOptions, options: RunOptions) -> MirrorResult:
    """A full mirror (:func:`gitmirror.api.mirror`) with its options as data: which refs to take
    and how (``selection``), and how the run goes (``options``). Raises UsageError for
    ``selection.modelscope_card`` toward anything but a ModelScope model, before anything moves."""
    if selection.modelscope_card:
        from gitmirror.card import require_modelscope_model

        spec = parse_spec(dst, "dst", options.env)
        require_modelscope_model(spec.host, spec.repo_type)
    return plan_and_run(src, dst, lambda ctx: make_plan(ctx, selection), options,
                        warm=lambda ctx: prefetch_for_new_destination(ctx, selection),
                        names_refused=lambda ctx: ref_name_violations(ctx, selection))


def run_snapshot(src: str, dst: str, options: RunOptions, *, revision: str | None = None,
                 message: str | None = None) -> MirrorResult:
    """A snapshot run (:func:`gitmirror.api.snapshot`, a mirrors file's ``snapshot = true``): the
    source's tree at ``revision`` (None: its default branch) as one commit with ``message``
    (None: one naming the source), made by :func:`gitmirror.snapshot.make_snapshot_plan`."""
    from gitmirror.snapshot import make_snapshot_plan

    return plan_and_run(src, dst, lambda ctx: make_snapshot_plan(ctx, revision=revision, message=message, env=options.env),
                        options)
