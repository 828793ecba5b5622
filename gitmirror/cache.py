"""The cache: one bare working repository per (source, destination) pair, locked while a run uses it.

``<cache>/repos/<key>.git`` holds git objects only (LFS content streams through). ``<key>`` is a
readable slug of the source plus a hash of both ends, stable across runs, so a cron job reuses
what the last run fetched. The cache directory is ``--cache-dir``, else ``GITMIRROR_CACHE``, else
``$XDG_CACHE_HOME/gitmirror`` (``~/.cache/gitmirror``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror.errors import LockedError, error_for_oserror
from gitmirror.specs import parse_spec

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub
    from gitmirror.specs import RepoSpec


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where caches live when no ``--cache-dir`` is given (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("GITMIRROR_CACHE"):
        return Path(env["GITMIRROR_CACHE"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gitmirror"


def mirror_key(src: str, dst: str, env: Mapping[str, str] | None = None) -> str:
    """A stable, readable cache name for one (source, destination) pair of specs."""
    return spec_key(parse_spec(src, "src", env), parse_spec(dst, "dst", env))


def spec_key(src: "RepoSpec", dst: "RepoSpec") -> str:
    """:func:`mirror_key` of parsed specs: ``<slug of the source>-<16 hex digits of both ends>``."""
    digest = hashlib.sha256(f"{src.identity}\0{dst.identity}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", src.display.split("://")[-1])[-60:]
    return f"{slug}-{digest}"


def cached_repo(src: "Hub", dst: "Hub", cache_dir: Path | None) -> Path:
    """Where this pair's working repository lives in the cache (``<cache>/repos/<key>.git``)."""
    return (cache_dir or default_cache_dir()) / "repos" / f"{spec_key(src.spec, dst.spec)}.git"


def likely_first_run(src: "Hub", dst: "Hub", cache_dir: Path | None, no_cache: bool) -> bool:
    """No cached repository for this pair yet: the destination may well have to be created."""
    return no_cache or not cached_repo(src, dst, cache_dir).exists()


@contextmanager
def workdir(src: "Hub", dst: "Hub", cache_dir: Path | None, no_cache: bool) -> Iterator[Path]:
    """The bare working repository for this mirror, locked against concurrent runs.

    With ``no_cache`` it is a temporary directory removed at exit whatever happens. Raises
    LockedError when another run holds this pair's lock, EnvironmentProblem when the cache
    directory cannot be created or written.
    """
    from filelock import FileLock, Timeout

    if no_cache:
        try:
            tmp = tempfile.mkdtemp(prefix="gitmirror-")
        except OSError as exc:
            raise error_for_oserror(exc, "cannot create a temporary working repository", tempfile.gettempdir()) from exc
        try:
            yield Path(tmp) / "repo.git"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    repo = cached_repo(src, dst, cache_dir)
    # A file lock is released by the kernel when its holder dies, so a killed run never blocks the next.
    lock = FileLock(str(repo.with_suffix(".lock")))
    try:
        repo.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        raise LockedError(f"another gitmirror run is working on {src.display_name()} -> {dst.display_name()}",
                          hint="wait for it to finish") from None
    except OSError as exc:
        raise error_for_oserror(exc, "cannot use the cache directory", repo.parent) from exc
    try:
        yield repo
    finally:
        lock.release()
