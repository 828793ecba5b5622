"""All git work, through GitPython: ls-remote, fetch into the cache, history walks, LFS pointers, push.

Credentials reach git only through the environment (``GIT_CONFIG_COUNT``/``KEY``/``VALUE`` setting
``http.<url>.extraHeader``), scoped to the one URL, so they never appear in a child's argv, in the
cache repository's config, or in git's own error messages.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from gitmirror.errors import (
    AuthError,
    DivergedError,
    EnvironmentProblem,
    GitMirrorError,
    IntegrityError,
    PermissionDeniedError,
    RepoNotFoundError,
    TransientError,
    error_for_git,
    scrub,
)
from gitmirror.retry import RetryPolicy, retrying

if TYPE_CHECKING:
    import git

    from gitmirror.hubs.base import GitAuth
    from gitmirror.lfs import LfsObject

log = logging.getLogger("gitmirror.git")

MIN_GIT_VERSION = (2, 31)  # GIT_CONFIG_COUNT, the way we pass credentials, arrived in 2.31
#: Where fetched source refs live in the cache: refs/heads/main -> refs/src/heads/main.
SRC_NAMESPACE = "refs/src/"
#: Destination tips we had to fetch to tell an ancestor from a diverged ref.
DST_NAMESPACE = "refs/dst/"
GIT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RemoteRefs:
    """What ``git ls-remote`` saw: ref name -> object id, and where HEAD points (if the server says)."""

    refs: dict[str, str]
    head: str | None = None
    peeled: dict[str, str] = field(default_factory=dict)  # annotated tag -> commit it points at

    @property
    def is_empty(self) -> bool:
        return not self.refs


@dataclass(frozen=True)
class PushSpec:
    """One ref to push: ``new=None`` deletes; ``expect_old`` makes it a --force-with-lease push."""

    dst_ref: str
    new: str | None
    local_ref: str | None = None
    force: bool = False
    expect_old: str | None = None


@dataclass(frozen=True)
class PointerHit:
    """An LFS pointer found in history, with one path it was seen at (for messages)."""

    obj: "LfsObject"
    path: str


def git_env(
    url: str, auth: "GitAuth | None", base: Mapping[str, str] | None = None, policy: RetryPolicy | None = None,
) -> dict[str, str]:
    """Environment for a git child that talks to ``url``: credentials scoped to it, no prompts,
    and a stalled connection cut after the policy's read timeout (then retried)."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_LFS_SKIP_SMUDGE": "1",
        # A stray global `git lfs install` must not run hooks or filters inside our cache.
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if base:
        env.update(base)
    stall = int((policy or RetryPolicy()).read_timeout)
    pairs: list[tuple[str, str]] = [
        ("core.hooksPath", os.devnull),
        ("http.lowSpeedLimit", "1"),
        ("http.lowSpeedTime", str(max(1, stall))),
    ]
    if auth is not None and url.startswith(("http://", "https://")):
        pairs.append((f"http.{url}.extraHeader", f"Authorization: {auth.basic_header()}"))
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def check_git() -> tuple[int, ...]:
    """Raise EnvironmentProblem when git is missing or older than we need; return its version."""
    exe = shutil.which(os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git")
    if exe is None:
        raise EnvironmentProblem("git is not installed", hint="install git 2.31 or newer")
    try:
        out = run_git(["version"], cwd=None, what="checking git", timeout=60).decode()
        version = tuple(int(part) for part in re.findall(r"\d+", out.split("version", 1)[1])[:3])
    except (GitMirrorError, IndexError, ValueError) as exc:
        raise EnvironmentProblem(f"cannot run git: {exc}", hint="install git 2.31 or newer") from exc
    if tuple(version[:2]) < MIN_GIT_VERSION:
        found = ".".join(map(str, version))
        raise EnvironmentProblem(f"git {found} is too old", hint="install git 2.31 or newer")
    return tuple(version)


# --- running git -------------------------------------------------------------------------------

def classify_git_failure(stderr: str, what: str) -> GitMirrorError:
    """Turn git's stderr into one of our errors (through the one map, :func:`gitmirror.errors.error_for_git`)."""
    return error_for_git(stderr, what)


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str] | None = None,
    what: str,
    stdin: bytes | None = None,
    timeout: float = GIT_TIMEOUT,
) -> bytes:
    """Run one git command through GitPython; return stdout bytes or raise a classified GitMirrorError.

    ``env`` is added to this process's environment. GitPython keeps git's messages in English
    (``LC_ALL=C``), which :func:`classify_git_failure` reads. GitPython is imported here, not at
    the top, so that ``gitmirror --help`` stays fast.
    """
    import git

    runner = git.Git(str(cwd) if cwd else None)
    with _stdin_file(stdin) as istream:
        try:
            _status, out, _err = runner.execute(
                ["git", *args],
                env=dict(env or {}),
                istream=istream,
                with_extended_output=True,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
                kill_after_timeout=timeout,
            )
        except git.GitCommandNotFound:
            raise EnvironmentProblem("git is not installed", hint="install git 2.31 or newer") from None
        except git.GitCommandError as exc:
            stderr = _stderr_of(exc)
            if "did not complete in" in str(exc) or exc.status == -9:
                raise TransientError(f"{what}: git did not finish within {timeout:.0f} s") from None
            raise classify_git_failure(stderr or f"exit status {exc.status}", what) from None
    return out


def _stderr_of(exc: "git.GitCommandError") -> str:
    """GitPython wraps stderr as "\\n  stderr: '...'"; unwrap it."""
    raw = exc.stderr if isinstance(exc.stderr, str) else (exc.stderr or b"").decode("utf-8", "replace")
    raw = raw.strip()
    if raw.startswith("stderr: '") and raw.endswith("'"):
        raw = raw[len("stderr: '") : -1]
    return raw


@contextmanager
def _stdin_file(data: bytes | None) -> Iterator[BinaryIO | None]:
    """GitPython wants a real file for stdin: spool the bytes to an anonymous temporary file."""
    if data is None:
        yield None
        return
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        spool.seek(0)
        yield spool


# --- remote operations ---------------------------------------------------------------------------


def ls_remote(url: str, auth: "GitAuth | None", *, policy: RetryPolicy | None = None, on_retry=None) -> RemoteRefs:
    """List a remote's refs (one request with protocol v0). Retries transient faults only."""
    args = ["-c", "protocol.version=0", "ls-remote", "--symref", "--", url]
    for attempt in retrying(f"ls-remote {scrub(url)}", policy, on_retry):
        with attempt:
            out = run_git(args, cwd=None, env=git_env(url, auth, policy=policy), what=f"listing refs of {scrub(url)}")
    return parse_ls_remote(out.decode("utf-8", "surrogateescape"))


def anyone_can_clone(url: str, timeout: float = 15.0) -> bool:
    """True when ``url`` hands its refs to anyone: a public repository.

    One request for git's ref advertisement, made without git so that no credential helper,
    ``.netrc`` or configured header can lend it credentials: a private repository must never look
    public. Any other answer (401, 404, a redirect, an error) is False, and the caller asks the
    hub's API instead. Hubs let anyone clone a public repository, and only a public one.
    """
    if not url.startswith(("http://", "https://")):
        return False
    from gitmirror.httpclient import HttpClient

    probe = url.rstrip("/") + "/info/refs?service=git-upload-pack"
    try:
        with HttpClient(timeout=(timeout, timeout)) as http:
            resp = http.request("GET", probe)
    except GitMirrorError:
        return False
    return resp.status == 200 and (resp.headers.get("Content-Type") or "").startswith(
        "application/x-git-upload-pack-advertisement")


def parse_ls_remote(text: str) -> RemoteRefs:
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    head: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("ref: "):
            target, _, name = line[5:].partition("\t")
            if name == "HEAD":
                head = target.strip()
            continue
        sha, _, name = line.partition("\t")
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        elif name != "HEAD":
            refs[name] = sha
    return RemoteRefs(refs=refs, head=head, peeled=peeled)


CACHE_MARKER = "gitmirror-cache"


def open_cache(path: Path) -> Path:
    """The bare working repository for one mirror, created on first use and reused afterwards.

    The marker file is written last, so a cache whose creation was killed part-way is simply
    initialised again (``git init`` on an existing repository keeps its objects).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        if (path / CACHE_MARKER).exists():
            return path
        run_git(["init", "--bare", "--quiet", str(path)], cwd=None, what="creating the cache repository")
        # Never let git gc drop objects a half-finished run still needs to push.
        for key, value in (("gc.auto", "0"), ("core.logAllRefUpdates", "false")):
            run_git(["config", key, value], cwd=path, what="configuring the cache repository")
        (path / CACHE_MARKER).write_text("a gitmirror working repository; safe to delete between runs\n")
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create the cache repository: {exc.strerror}", hint="use --cache-dir") from exc
    return path


def fetch(
    repo_dir: Path,
    url: str,
    auth: "GitAuth | None",
    refs: Iterable[str],
    *,
    namespace: str = SRC_NAMESPACE,
    policy: RetryPolicy | None = None,
    on_retry=None,
) -> None:
    """Fetch the given remote refs into ``namespace`` of the cache (forced: sources may be rewritten)."""
    refspecs = [f"+{ref}:{namespace}{ref.removeprefix('refs/')}" for ref in sorted(set(refs))]
    if not refspecs:
        return
    args = ["fetch", "--no-tags", "--no-write-fetch-head", "--quiet", "--", url, *refspecs]
    for attempt in retrying(f"fetch {scrub(url)}", policy, on_retry):
        with attempt:
            run_git(args, cwd=repo_dir, env=git_env(url, auth, policy=policy), what=f"fetching from {scrub(url)}")


def local_ref(ref: str, namespace: str = SRC_NAMESPACE) -> str:
    return f"{namespace}{ref.removeprefix('refs/')}"


def cached_refs(repo_dir: Path, namespace: str = SRC_NAMESPACE) -> dict[str, str]:
    """Every ref of the cache under ``namespace`` (its full local name -> object id), in one git call."""
    out = run_git(["for-each-ref", "--format=%(objectname) %(refname)", namespace], cwd=repo_dir, what="reading the cache's refs")
    refs: dict[str, str] = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        sha, _, name = line.partition(" ")
        refs[name] = sha
    return refs


def push(
    repo_dir: Path,
    url: str,
    auth: "GitAuth | None",
    specs: Sequence[PushSpec],
    *,
    atomic: bool = True,
    policy: RetryPolicy | None = None,
    on_retry=None,
) -> None:
    """Push refs, atomically when the server allows it; rejected refs raise, never silently pass."""
    if not specs:
        return
    refspecs: list[str] = []
    leases: list[str] = []
    for spec in specs:
        source = "" if spec.new is None else (spec.local_ref or spec.new)
        refspecs.append(f"{'+' if spec.force else ''}{source}:{spec.dst_ref}")
        if spec.force or spec.new is None:
            leases.append(f"--force-with-lease={spec.dst_ref}:{spec.expect_old or ''}")
    base = ["push", "--porcelain", "--no-verify", *leases]
    args = [*base, "--atomic", "--", url, *refspecs] if atomic else [*base, "--", url, *refspecs]
    env = git_env(url, auth, policy=policy)
    for attempt in retrying(f"push {scrub(url)}", policy, on_retry):
        with attempt:
            try:
                run_git(args, cwd=repo_dir, env=env, what=f"pushing to {scrub(url)}")
            except GitMirrorError as exc:
                if atomic and "does not support --atomic" in str(exc):
                    log.info("server does not support atomic push; pushing refs one command")
                    args = [*base, "--", url, *refspecs]
                    run_git(args, cwd=repo_dir, env=env, what=f"pushing to {scrub(url)}")
                else:
                    raise _push_error(exc) from None


def _push_error(exc: GitMirrorError) -> GitMirrorError:
    text = str(exc)
    if re.search(r"non-fast-forward|fetch first|stale info|\[rejected\]", text):
        return DivergedError(f"the destination changed or diverged while pushing: {text}", hint="rerun; use --force to overwrite")
    if re.search(r"lfs|pre-receive hook declined", text, re.I) and not exc.transient:
        return IntegrityError(f"the destination refused the push: {text}")
    return exc


# --- local history -------------------------------------------------------------------------------


def has_object(repo_dir: Path, sha: str) -> bool:
    try:
        run_git(["cat-file", "-e", sha], cwd=repo_dir, what="checking an object")
        return True
    except GitMirrorError:
        return False


def is_ancestor(repo_dir: Path, old: str, new: str) -> bool:
    """True when ``old`` is reachable from ``new`` (a fast-forward). Both must be in the cache."""
    try:
        run_git(["merge-base", "--is-ancestor", old, new], cwd=repo_dir, what="comparing history")
        return True
    except GitMirrorError:
        return False


def resolve(repo_dir: Path, ref: str) -> str | None:
    try:
        return run_git(["rev-parse", "--verify", "--quiet", ref], cwd=repo_dir, what="reading a ref").decode().strip() or None
    except GitMirrorError:
        return None


def commit_summary(repo_dir: Path, sha: str) -> tuple[int, list[str]]:
    """(number of parents, paths in the tree) of a commit: enough to recognise a hub's initial commit."""
    out = run_git(["show", "-s", "--format=%P", sha], cwd=repo_dir, what="reading a commit").decode()
    parents = len(out.split())
    tree = run_git(["ls-tree", "--name-only", "-z", sha], cwd=repo_dir, what="reading a tree")
    return parents, [p for p in tree.decode("utf-8", "surrogateescape").split("\0") if p]


def iter_history_objects(repo_dir: Path, include: Sequence[str], exclude: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(object id, path) for every object reachable from ``include`` but not from ``exclude``."""
    if not include:
        return
    # "^<sha>" rather than a "--not" line: rev-list accepts options on stdin only from git 2.42.
    stdin = "\n".join([*include, *(f"^{sha}" for sha in exclude)]).encode() + b"\n"
    out = run_git(["rev-list", "--objects", "--stdin"], cwd=repo_dir, stdin=stdin, what="walking history")
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        sha, _, path = line.partition(" ")
        if path:  # commits have no path; trees and blobs do (the root tree has "")
            yield sha, path


def lfs_pointers(repo_dir: Path, include: Sequence[str], exclude: Sequence[str] = ()) -> list[PointerHit]:
    """Every LFS pointer blob in the history ``include`` adds on top of ``exclude``.

    Two passes over ``git cat-file``: sizes first, so that only blobs small enough to be a
    pointer are read.
    """
    from gitmirror.lfs.pointer import MAX_POINTER_SIZE as POINTER_MAX_SIZE, parse_pointer

    paths: dict[str, str] = {}
    for sha, path in iter_history_objects(repo_dir, include, exclude):
        paths.setdefault(sha, path)
    if not paths:
        return []
    stdin = "\n".join(paths).encode() + b"\n"
    check = run_git(
        ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
        cwd=repo_dir, stdin=stdin, what="listing blobs",
    )
    small = []
    for line in check.decode().splitlines():
        sha, kind, size = line.split(" ")
        if kind == "blob" and int(size) < POINTER_MAX_SIZE:
            small.append(sha)
    if not small:
        return []
    data = run_git(["cat-file", "--batch"], cwd=repo_dir, stdin="\n".join(small).encode() + b"\n", what="reading blobs")
    hits: dict[str, PointerHit] = {}
    for sha, body in _parse_cat_file_batch(data):
        obj = parse_pointer(body)
        if obj is not None and obj.oid not in hits:
            hits[obj.oid] = PointerHit(obj=obj, path=paths[sha])
    return sorted(hits.values(), key=lambda h: h.obj.oid)


def _parse_cat_file_batch(data: bytes) -> Iterator[tuple[str, bytes]]:
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        sha, _kind, size = data[pos:end].decode().split(" ")
        start = end + 1
        yield sha, data[start : start + int(size)]
        pos = start + int(size) + 1


def maintain(repo_dir: Path) -> None:
    """Let git pack the cache now and then (it is kept with gc.auto=0 so a run is never interrupted).

    Best effort: a cache that cannot be packed still works.
    """
    try:
        run_git(["-c", "gc.auto=6700", "-c", "gc.autoPackLimit=50", "gc", "--auto", "--quiet"], cwd=repo_dir,
                what="packing the cache", timeout=1800)
    except GitMirrorError as exc:
        log.warning("could not pack the cache: %s", exc)


def init_bare(path: Path, default_branch: str = "main") -> None:
    """Create a bare repository at ``path`` (a local mirror destination)."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(["init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)], cwd=None, what=f"creating {path}")
