"""Keep many mirrors current, unattended: ``gitmirror sync`` for cron, CI and Kubernetes.

Each mirror is an ordinary :func:`gitmirror.api.mirror` run; this module runs several at once,
spaces their starts per hub, backs a whole hub off when it answers 429, keeps going after a
failure, and reports every mirror's outcome.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gitmirror.errors import EXIT_OK, EXIT_PARTIAL, GitMirrorError, LockedError, error_for_oserror, scrub
from gitmirror.hubs.logins import LoginCache
from gitmirror.mirrors_file import MirrorEntry
from gitmirror.plan import MirrorOptions
from gitmirror.planner import parse_map
from gitmirror.runner import RunOptions, run_mirror, run_snapshot

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport

log = logging.getLogger("gitmirror.sync")

Status = Literal["up-to-date", "updated", "failed", "skipped"]
#: How long a hub is left alone after a 429 that named no Retry-After.
DEFAULT_BACKOFF = 10.0


@dataclass
class MirrorOutcome:
    """How one mirror of a sync run ended."""

    entry: MirrorEntry
    status: Status
    reason: str = ""
    exit_code: int = EXIT_OK
    refs_changed: int = 0
    objects_moved: int = 0
    bytes_moved: int = 0
    retries: int = 0
    seconds: float = 0.0
    finished_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["entry"] = {"src": self.entry.src, "dst": self.entry.dst}
        return data


@dataclass
class SyncReport:
    """What a sync run did: one :class:`MirrorOutcome` per mirror in list order, the run's start
    (epoch seconds) and its duration (seconds). ``exit_code`` is 0 when none failed, 11 otherwise,
    130 for a run cut short by Ctrl-C (``interrupted``: the outcomes are of the mirrors that
    finished before it)."""

    outcomes: list[MirrorOutcome] = field(default_factory=list)
    started_at: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> list[MirrorOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return {
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "counts": counts,
            "mirrors": [o.to_dict() for o in self.outcomes],
        }


class HostPacer:
    """Spaces mirror starts per hub and backs a hub off after a 429.

    Thread-safe; one per sync run (hosts are endpoint origins or "local").
    """

    def __init__(self, delay: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.delay = delay
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next_start: dict[str, float] = {}

    def wait(self, hosts: Iterable[str]) -> None:
        hosts = sorted(set(hosts))
        while True:
            with self._lock:
                now = self.clock()
                ready = max([self._next_start.get(h, 0.0) for h in hosts] + [now])
                if ready <= now:
                    for h in hosts:
                        self._next_start[h] = now + self.delay
                    return
            self.sleep(min(ready - now, 1.0))

    def back_off(self, host: str, seconds: float) -> None:
        with self._lock:
            until = self.clock() + seconds
            if until > self._next_start.get(host, 0.0):
                log.warning("backing off from %s for %.0f s after a 429", host, seconds)
                self._next_start[host] = until


def hosts_of(entry: MirrorEntry, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The two hubs a mirror talks to, as endpoint origins (or "local" for paths)."""
    from urllib.parse import urlsplit

    from gitmirror.specs import parse_spec

    def host(text: str, role: str) -> str:
        spec = parse_spec(text, role, env)  # type: ignore[arg-type]
        if spec.endpoint:
            return spec.endpoint
        if spec.path is not None:
            return "local"
        parts = urlsplit(spec.url or spec.text)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"

    return host(entry.src, "src"), host(entry.dst, "dst")


def _is_rate_limited(exc: BaseException) -> bool:
    """A server asked us to slow down: it named a wait, or answered 429 (read from the status, never the text)."""
    return getattr(exc, "retry_after", None) is not None or getattr(exc, "status", None) == 429


def run_one(entry: MirrorEntry, *, pacer: HostPacer, cache_dir: Path | None, policy, env: Mapping[str, str] | None,
            dry_run: bool = False, logins: "LoginCache[Any] | None" = None,
            http: "Transport | None" = None, listing_helper: Executor | None = None,
            git_checked: bool = False) -> MirrorOutcome:
    """One mirror of a sync run; never raises for a mirror's own failure. ``logins``: the run's
    shared hub logins (:class:`~gitmirror.hubs.logins.LoginCache`); ``http``: the run's HTTP
    client for ref listings; ``listing_helper``: the run's threads for the sources' listings;
    ``git_checked``: the run has found git recent enough (else the mirror checks)."""
    started = time.monotonic()
    environ = os.environ if env is None else env
    hosts: tuple[str, ...] = ()

    def on_retry(what: str, exc: BaseException) -> None:
        if _is_rate_limited(exc):
            named = [h for h in hosts if h in what or h in str(exc)] or list(hosts)
            for h in named:
                pacer.back_off(h, getattr(exc, "retry_after", None) or DEFAULT_BACKOFF)

    try:
        hosts = hosts_of(entry, env)
        pacer.wait(hosts)

        selection = MirrorOptions(refs=tuple(entry.refs), exclude=tuple(entry.exclude), map=parse_map(entry.map),
                                  force=entry.force, prune=entry.prune, modelscope_card=entry.card,
                                  convert=entry.convert)
        options = RunOptions(
            src_token=environ.get(entry.src_token_env) if entry.src_token_env else None,
            dst_token=environ.get(entry.dst_token_env) if entry.dst_token_env else None,
            src_token_source=f"environment variable {entry.src_token_env}" if entry.src_token_env else None,
            dst_token_source=f"environment variable {entry.dst_token_env}" if entry.dst_token_env else None,
            private=entry.private, jobs=entry.jobs, requests_per_hub=entry.requests_per_hub,
            bytes_in_flight=entry.bytes_in_flight, cache_dir=cache_dir, policy=policy, env=env,
            dry_run=dry_run, on_retry=on_retry, repair=entry.repair, src_lfs_url=entry.src_lfs_url,
            logins=logins, http=http, listing_helper=listing_helper, git_checked=git_checked,
        )
        if entry.snapshot:
            result = run_snapshot(entry.src, entry.dst, options, revision=entry.revision, message=entry.commit_message)
        else:
            result = run_mirror(entry.src, entry.dst, selection, options)
    except LockedError as exc:
        return MirrorOutcome(entry, "skipped", reason=str(exc), exit_code=exc.exit_code,
                             seconds=time.monotonic() - started, finished_at=time.time())
    except GitMirrorError as exc:
        # A pause longer than this run could wait (RateLimitedError) ends the mirror without a
        # retry: the hub's other mirrors still have to hear it.
        on_retry("", exc)
        return MirrorOutcome(entry, "failed", reason=str(exc), exit_code=exc.exit_code,
                             seconds=time.monotonic() - started, finished_at=time.time())
    except Exception as exc:  # a bug in one mirror must not stop the others
        log.debug("unexpected error in %s", entry.name, exc_info=True)
        return MirrorOutcome(entry, "failed", reason=scrub(f"unexpected {type(exc).__name__}: {exc}"), exit_code=1,
                             seconds=time.monotonic() - started, finished_at=time.time())
    foreseen = result.plan.foreseen if result.dry_run else ()
    if foreseen:  # a dry run ends as the run would
        return MirrorOutcome(entry, "failed", reason=f"the run would fail: {foreseen[0].error}",
                             exit_code=foreseen[0].error.exit_code, seconds=time.monotonic() - started,
                             finished_at=time.time())
    return MirrorOutcome(
        entry,
        "updated" if result.changed or (result.dry_run and not result.plan.is_noop) else "up-to-date",
        refs_changed=len(result.pushed),
        objects_moved=result.objects_moved,
        bytes_moved=result.bytes_moved,
        retries=result.retries,
        seconds=time.monotonic() - started,
        finished_at=time.time(),
    )


def _git_usable() -> bool:
    """Check git once for the run's mirrors. When it is missing or too old, each mirror checks
    again and fails with the reason (exit 9), as a run of one would."""
    from gitmirror import gitrepo  # noqa: PLC0415 - not for `--help`

    try:
        gitrepo.check_git()
    except GitMirrorError:
        return False
    return True


def sync(
    entries: Sequence[MirrorEntry],
    *,
    jobs: int = 4,
    delay: float = 0.0,
    cache_dir: Path | None = None,
    policy=None,
    env: Mapping[str, str] | None = None,
    dry_run: bool = False,
    on_outcome: Callable[[MirrorOutcome], None] | None = None,
) -> SyncReport:
    """Run every mirror, ``jobs`` at a time; a failed mirror does not stop the others."""
    report = SyncReport(started_at=time.time())
    started = time.monotonic()
    pacer = HostPacer(delay)
    logins: LoginCache[Any] = LoginCache()  # one login per token per run, not per mirror
    from gitmirror.httpclient import HttpClient  # noqa: PLC0415 - not for `--help`

    http = HttpClient(pool_size=max(1, jobs), env=dict(env) if env is not None else None)
    # The sources' listings run on threads of the run, not a new thread per mirror: a thread keeps
    # its connection to a hub, so a no-op mirror costs its two requests and no new connection
    # (with TLS, two round trips less; 1,000 no-op mirrors made 1,000 connections to the source).
    listing = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="listing")
    git_checked = _git_usable()

    def work(entry: MirrorEntry) -> MirrorOutcome:
        outcome = run_one(entry, pacer=pacer, cache_dir=cache_dir, policy=policy, env=env, dry_run=dry_run,
                          logins=logins, http=http, listing_helper=listing, git_checked=git_checked)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mirror")
    interrupted = False
    try:
        report.outcomes = list(pool.map(work, entries))
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # Ctrl-C: mirrors not started never start, and the caller exits without waiting for the
        # running ones (the interrupt ends their git; a rerun resumes each of them), nor for the
        # run's HTTP connections that a worker may be reading from.
        pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        listing.shutdown(wait=not interrupted, cancel_futures=interrupted)
        if not interrupted:
            http.close()
    report.seconds = time.monotonic() - started
    return report


# --- reports, metrics, cache hygiene ----------------------------------------------------------------


def write_json_report(report: SyncReport, path: Path) -> None:
    _atomic_write(path, json.dumps(report.to_dict(), indent=2) + "\n")


def write_metrics(report: SyncReport, path: Path, state_path: Path) -> None:
    """Prometheus textfile-collector metrics. The last success time of a mirror that failed this
    run comes from ``state_path``, which remembers it across runs."""
    state = _load_state(state_path)
    for outcome in report.outcomes:
        entry_state = state.setdefault(outcome.entry.key, {"src": outcome.entry.src, "dst": outcome.entry.dst,
                                                           "failures_total": 0, "bytes_total": 0})
        if outcome.status in ("up-to-date", "updated"):
            entry_state["last_success"] = outcome.finished_at
        elif outcome.status == "failed":
            entry_state["failures_total"] += 1
        entry_state["bytes_total"] += outcome.bytes_moved
        entry_state["last_bytes"] = outcome.bytes_moved
        entry_state["last_status"] = outcome.status
    _atomic_write(state_path, json.dumps(state, indent=2) + "\n")

    lines = [
        "# HELP gitmirror_last_success_timestamp_seconds When the mirror last finished without error.",
        "# TYPE gitmirror_last_success_timestamp_seconds gauge",
    ]
    listed = {o.entry.key for o in report.outcomes}
    rows = [(k, v) for k, v in sorted(state.items()) if k in listed]
    lines += [f"gitmirror_last_success_timestamp_seconds{_labels(v)} {v['last_success']:.0f}" for _, v in rows if "last_success" in v]
    lines += ["# HELP gitmirror_last_run_bytes LFS bytes moved by the mirror's last run.",
              "# TYPE gitmirror_last_run_bytes gauge"]
    lines += [f"gitmirror_last_run_bytes{_labels(v)} {v['last_bytes']}" for _, v in rows]
    lines += ["# HELP gitmirror_bytes_total LFS bytes moved by the mirror, all runs.",
              "# TYPE gitmirror_bytes_total counter"]
    lines += [f"gitmirror_bytes_total{_labels(v)} {v['bytes_total']}" for _, v in rows]
    lines += ["# HELP gitmirror_failures_total Failed runs of the mirror.", "# TYPE gitmirror_failures_total counter"]
    lines += [f"gitmirror_failures_total{_labels(v)} {v['failures_total']}" for _, v in rows]
    lines += ["# HELP gitmirror_sync_failed_mirrors Mirrors that failed in the last sync run.",
              "# TYPE gitmirror_sync_failed_mirrors gauge", f"gitmirror_sync_failed_mirrors {len(report.failed)}"]
    _atomic_write(path, "\n".join(lines) + "\n")


def _labels(state: Mapping[str, Any]) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return f'{{src="{esc(scrub(state["src"]))}",dst="{esc(scrub(state["dst"]))}"}}'


def _load_state(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it (readers never see half a file).

    Raises EnvironmentProblem (exit 9) naming the path when the disk or directory refuses it.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise error_for_oserror(exc, "cannot write the file", path) from exc


def prune_cache(cache_dir: Path, entries: Sequence[MirrorEntry], env: Mapping[str, str] | None = None) -> list[Path]:
    """Remove the working repositories of mirrors no longer listed. Returns what was removed.

    A cache whose lock is held (a run is using it) is left alone.
    """
    from filelock import FileLock, Timeout

    from gitmirror.cache import mirror_key

    keep = {mirror_key(e.src, e.dst, env) for e in entries}
    root = cache_dir / "repos"
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for repo in sorted(root.glob("*.git")):
        key = repo.name.removesuffix(".git")
        if key in keep:
            continue
        lock = FileLock(str(root / f"{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            shutil.rmtree(repo, ignore_errors=True)
            removed.append(repo)
        finally:
            lock.release()
            (root / f"{key}.lock").unlink(missing_ok=True)
    return removed
