"""The Python API. The CLI is a thin shell over these functions.

    import gitmirror
    result = gitmirror.mirror("hf://Qwen/Qwen3-0.6B", "ms://my-org/Qwen3-0.6B")
    print(result.bytes_moved, result.refs_created)

Each function takes specs as typed on the command line and keyword options; the work is done
in :mod:`gitmirror.runner` (one run), :mod:`gitmirror.verification` and :mod:`gitmirror.sync`.
Paths may be given as ``str`` or any ``os.PathLike``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror.cache import default_cache_dir, mirror_key
from gitmirror.execute import MirrorResult
from gitmirror.plan import MirrorOptions
from gitmirror.planner import parse_map
from gitmirror.runner import PathLike, RunOptions, as_path, run_mirror, run_snapshot
from gitmirror.verification import VerifyResult, verify_pair

if TYPE_CHECKING:
    from gitmirror.gitprogress import StepListener
    from gitmirror.lfs import TransferEvent
    from gitmirror.mirrors_file import MirrorEntry
    from gitmirror.retry import RetryPolicy
    from gitmirror.sync import MirrorOutcome, SyncReport

__all__ = ["mirror", "snapshot", "verify", "sync", "MirrorResult", "VerifyResult", "RunOptions",
           "default_cache_dir", "mirror_key"]


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
    repair: bool = False,
    jobs: int | None = None,
    requests_per_hub: int | None = None,
    bytes_in_flight: int | None = None,
    cache_dir: PathLike | None = None,
    no_cache: bool = False,
    lfs_cache: PathLike | None = None,
    policy: "RetryPolicy | None" = None,
    progress: "Callable[[TransferEvent], None] | None" = None,
    on_retry: Callable[[str, BaseException], None] | None = None,
    env: Mapping[str, str] | None = None,
    src_lfs_url: str | None = None,
    git_progress: "StepListener | None" = None,
    modelscope_card: bool = False,
    convert: bool = False,
) -> MirrorResult:
    """Mirror SRC to DST: every selected branch and tag with its history and all its LFS objects.

    LFS objects move first, refs after, then the destination is checked. Raises a
    :class:`gitmirror.errors.GitMirrorError` subclass on failure (each has an ``exit_code``).

    ``src``/``dst`` are specs as on the command line (``hf://owner/name``, ``ms://datasets/o/n``,
    a git URL, a local path). Tokens default to the environment and stored logins, as in the CLI.
    ``refs`` adds ref patterns (``"refs/pr/*"``), ``exclude`` leaves some out, ``map`` renames
    branches (``"dev:develop"``). ``force`` overwrites diverged refs (with a lease), ``prune``
    deletes destination-only refs. ``dry_run`` plans only: the result's ``plan`` says what would
    move, and ``plan.foreseen`` / ``plan.exit_code`` the failures the run would meet (diverged
    refs; LFS objects the source's batch API says it cannot give: a dry run asks it, moving no
    bytes). The first run for a pair (no cache yet) and ``repair=True`` ask the destination about
    every LFS object of the history and upload what it lacks, even when every ref matches;
    later runs ask only about the new history's (``result.plan.lfs_scope``,
    ``result.objects_checked``). ``progress`` receives :class:`gitmirror.lfs.TransferEvent`s from worker threads;
    ``git_progress(step, event)`` git's own progress of the source fetch and the push
    (:class:`gitmirror.gitprogress.GitProgress`; step "fetching source" or "pushing"), from a reader thread;
    ``on_retry(what, exc)`` is told of each retry; ``env`` replaces ``os.environ`` for lookups.
    ``jobs`` caps the LFS objects transferred at once (default: as many as the other two bounds
    allow); ``requests_per_hub`` bounds the LFS requests in flight at each hub (default 32) and
    ``bytes_in_flight`` the sizes of the objects being transferred at once (bytes, default 1 GiB;
    see :class:`gitmirror.lfs.admission.Limits` and docs/usage.md).
    ``src_lfs_url`` (http(s)) is where the source's LFS objects are read, whatever its
    ``.lfsconfig`` says (default: the endpoint git-lfs would use; see docs/hubs.md).
    ``modelscope_card`` (ModelScope model destinations only, else UsageError) puts one commit on
    top of the mirrored default branch adding ``configuration.json`` and README.md's ``tasks``
    from the source card, rebuilt on each run (``result.plan.card``; see :mod:`gitmirror.card`).
    ``convert`` mirrors a rewritten history the destination's rules accept (files it refuses put
    in LFS; toward ModelScope, its metadata files out of LFS): see :mod:`gitmirror.convert` and
    ``result.plan.conversion``.

    Returns a :class:`gitmirror.execute.MirrorResult` (``plan``, ``pushed``, ``objects_moved``,
    ``bytes_moved``, ``verified``, ``to_dict()``).
    """
    selection = MirrorOptions(refs=tuple(refs), exclude=tuple(exclude), map=parse_map(map), force=force, prune=prune,
                              modelscope_card=modelscope_card, convert=convert)
    options = RunOptions(src_token=src_token, dst_token=dst_token, private=private, dry_run=dry_run, repair=repair,
                         jobs=jobs, requests_per_hub=requests_per_hub, bytes_in_flight=bytes_in_flight,
                         cache_dir=cache_dir, no_cache=no_cache, lfs_cache=lfs_cache, policy=policy,
                         progress=progress, on_retry=on_retry, env=env, src_lfs_url=src_lfs_url,
                         git_progress=git_progress)
    return run_mirror(src, dst, selection, options)


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
    jobs: int | None = None,
    requests_per_hub: int | None = None,
    bytes_in_flight: int | None = None,
    cache_dir: PathLike | None = None,
    no_cache: bool = False,
    lfs_cache: PathLike | None = None,
    policy: "RetryPolicy | None" = None,
    progress: "Callable[[TransferEvent], None] | None" = None,
    on_retry: Callable[[str, BaseException], None] | None = None,
    env: Mapping[str, str] | None = None,
    src_lfs_url: str | None = None,
    git_progress: "StepListener | None" = None,
) -> MirrorResult:
    """Put the source's current files on DST as one new commit, without the source's history.

    The commit's tree is the source's tree at ``revision`` (default: its default branch; a branch,
    tag or full ref name), its message ``message`` (default: names the source and its commit), and
    its parent the destination branch's head (none for an empty destination or one holding only
    the hub's initial commit). Only that tree's LFS objects move, before the push, as in
    :func:`mirror`. When the destination already has this tree, nothing is made or pushed.

    ``src_lfs_url`` and ``git_progress`` are as in :func:`mirror`.
    Returns a :class:`gitmirror.execute.MirrorResult` whose ``plan.snapshot`` describes the commit.
    """
    options = RunOptions(src_token=src_token, dst_token=dst_token, private=private, dry_run=dry_run, jobs=jobs,
                         requests_per_hub=requests_per_hub, bytes_in_flight=bytes_in_flight,
                         cache_dir=cache_dir, no_cache=no_cache, lfs_cache=lfs_cache, policy=policy,
                         progress=progress, on_retry=on_retry, env=env, src_lfs_url=src_lfs_url,
                         git_progress=git_progress)
    return run_snapshot(src, dst, options, revision=revision, message=message)


def verify(
    src: str,
    dst: str,
    *,
    src_token: str | None = None,
    dst_token: str | None = None,
    refs: Sequence[str] = (),
    exclude: Sequence[str] = (),
    map: Sequence[str] = (),
    cache_dir: PathLike | None = None,
    no_cache: bool = False,
    policy: "RetryPolicy | None" = None,
    env: Mapping[str, str] | None = None,
    convert: bool = False,
) -> VerifyResult:
    """Compare DST with SRC and change nothing on either: refs, then every LFS object of the history.

    Takes the same specs, tokens and ref selection as :func:`mirror`; with ``convert`` the
    destination is compared with the source's history as ``mirror(convert=True)`` rewrites it. Returns a
    :class:`VerifyResult`: ``in_sync``, ``ref_differences`` and ``missing_objects``. Raises a
    :class:`gitmirror.errors.GitMirrorError` subclass when either side cannot be read.
    """
    selection = MirrorOptions(refs=tuple(refs), exclude=tuple(exclude), map=parse_map(map), convert=convert)
    options = RunOptions(src_token=src_token, dst_token=dst_token, cache_dir=cache_dir, no_cache=no_cache,
                         policy=policy, env=env)
    return verify_pair(src, dst, selection, options)


def sync(
    mirrors: "PathLike | Sequence[MirrorEntry]",
    *,
    parallel: int = 4,
    jobs: int | None = None,
    delay: float = 0.0,
    shard: tuple[int, int] | None = None,
    cache_dir: PathLike | None = None,
    policy: "RetryPolicy | None" = None,
    env: Mapping[str, str] | None = None,
    dry_run: bool = False,
    on_outcome: "Callable[[MirrorOutcome], None] | None" = None,
) -> "SyncReport":
    """Bring every mirror of a mirrors file (or a list of entries) up to date, ``parallel`` at a time.

    ``jobs`` is the old name of ``parallel`` (mirrors at once), still accepted; in a mirror
    entry and in :func:`mirror`, ``jobs`` is LFS transfers at once. ``shard=(k, n)`` takes only
    the k-th of n stable, disjoint parts. Raises UsageError when an entry's ``src_token_env`` /
    ``dst_token_env`` names a variable that is not set in ``env``. Otherwise never raises for one
    mirror's failure: read each outcome in the returned report (``report.exit_code`` is 11 when
    any failed).
    """
    import os

    # By full name: the package attribute gitmirror.sync is this API function, not the module.
    from gitmirror.mirrors_file import check_token_variables, in_shard, load_mirrors
    from gitmirror.sync import sync as run_sync

    entries = load_mirrors(Path(mirrors)) if isinstance(mirrors, (str, os.PathLike)) else list(mirrors)
    if shard is not None:
        entries = [e for e in entries if in_shard(e, *shard)]
    check_token_variables(entries, os.environ if env is None else env)
    return run_sync(entries, jobs=parallel if jobs is None else jobs, delay=delay, cache_dir=as_path(cache_dir), policy=policy, env=env,
                    dry_run=dry_run, on_outcome=on_outcome)
