"""Running git (in a process group of its own) and the work done in a local repository: the cache, history
walks, LFS pointer scans, the plumbing of snapshot commits, local repositories as mirror ends.

What talks to a remote (ls-remote, fetch, push, and the credentials git sends there) is in
:mod:`gitmirror.remote`, which runs git through :func:`run_git` here. A failed git command is
classified by :func:`gitmirror.errors.error_for_git`, the one map from git's answers to errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror.errors import EnvironmentProblem, GitMirrorError, TransientError, error_for_git, error_for_oserror
from gitmirror.gitprogress import ProgressListener, communicate

if TYPE_CHECKING:
    from gitmirror.lfs import LfsObject

log = logging.getLogger("gitmirror.git")

MIN_GIT_VERSION = (2, 31)  # GIT_CONFIG_COUNT, the way we pass credentials, arrived in 2.31
#: Where fetched source refs live in the cache: refs/heads/main -> refs/src/heads/main.
SRC_NAMESPACE = "refs/src/"
#: Destination tips we had to fetch to tell an ancestor from a diverged ref.
DST_NAMESPACE = "refs/dst/"
GIT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class PointerHit:
    """An LFS pointer found in history, with one path it was seen at (for messages)."""

    obj: "LfsObject"
    path: str


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

def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str] | None = None,
    what: str,
    stdin: bytes | None = None,
    timeout: float = GIT_TIMEOUT,
    messages: list[str] | None = None,
    on_failure: Callable[[str, str], GitMirrorError] | None = None,
    progress: ProgressListener | None = None,
) -> bytes:
    """Run one git command; return its stdout bytes or raise a classified GitMirrorError.

    ``on_failure(stdout, stderr)`` classifies a failed command that reports on stdout too (``git
    push --porcelain``); without it stderr alone is classified. ``messages``, when given, receives
    git's stderr of a command that succeeded: its warnings (a fetch that left refs out says so
    only there). ``progress`` hears git's progress records as they come (:mod:`gitmirror.gitprogress`).

    ``env`` is added to this process's environment, with git's messages kept in English
    (``LC_ALL=C``, as GitPython sets them), which :func:`gitmirror.errors.error_for_git` reads.
    ``timeout`` (seconds) bounds the whole command: past it git is killed and the step fails
    as transient.

    Whatever ends the wait for git (the timeout, Ctrl-C's KeyboardInterrupt, any exception)
    kills git and every process below it (git-remote-https, git-lfs, index-pack) before passing
    on: no git outlives the run, and no watchdog thread keeps the process alive (GitPython's
    ``kill_after_timeout`` timer did, for up to an hour after Ctrl-C). git stays in gitmirror's
    process group, so a kill of the group (a terminal's Ctrl-C, a supervisor) reaches it too;
    :func:`kill_git_children` ends the git commands other threads are waiting for.
    """
    import git

    # GitPython starts git (its executable, LC_ALL=C, the environment); the wait is ours, with our
    # own timeout, because GitPython's kill_after_timeout watchdog outlived Ctrl-C by up to an hour.
    workdir = str(cwd) if cwd is not None and os.access(str(cwd), os.X_OK) else None
    try:
        handle = git.Git(workdir).execute(
            ["git", *args], as_process=True, env=dict(env or {}),
            istream=subprocess.PIPE if stdin is not None else None,
        )
    except git.GitCommandNotFound:
        raise EnvironmentProblem("git is not installed", hint="install git 2.31 or newer") from None
    proc = handle.proc
    try:
        out, err = proc.communicate(stdin, timeout=timeout) if progress is None else communicate(proc, stdin, timeout, progress)
    except subprocess.TimeoutExpired:
        _end_tree(proc)
        raise TransientError(f"{what}: git did not finish within {timeout:.0f} s") from None
    except BaseException:
        _end_tree(proc)
        raise
    if proc.returncode < 0:
        # Killed: by an interrupt (kill_git_children) or by this machine (the OOM killer). Never
        # retried: a retry would start a new git that an interrupted run leaves behind.
        raise EnvironmentProblem(f"{what}: git was killed by signal {-proc.returncode}",
                                 hint="if nobody interrupted it, the machine may be out of memory")
    stderr = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        if on_failure is not None:
            raise on_failure(out.decode("utf-8", "replace").strip(), stderr.strip() or f"exit status {proc.returncode}")
        raise error_for_git(stderr.strip() or f"exit status {proc.returncode}", what)
    if messages is not None:
        messages.append(stderr)
    return out


def _end_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and every process below it, and reap ``proc``."""
    _kill_tree(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def kill_git_children() -> int:
    """Kill every process this one started (git and what git started) that is still running.

    For an interrupt: a SIGINT sent to gitmirror alone (``kill -INT``, a supervisor), or a git
    command a helper thread waits for, would otherwise leave git running. Reads the process
    tree from ``/proc`` (Linux); elsewhere does nothing. Returns how many children were killed.
    """
    children = _children(os.getpid())
    for child in children:
        _kill_tree(child)
    return len(children)


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it. Each is stopped first, so that none can start
    another while the tree is read (below ``pid`` is known from ``/proc`` only)."""
    stopped: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            os.kill(current, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            continue
        stopped.append(current)
        todo += _children(current)
    for current in stopped:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(current, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    """The direct children of ``pid``, from ``/proc/<pid>/task/*/children`` (empty where unreadable)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in children.read_text().split()]
    return found


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
        raise error_for_oserror(exc, "cannot create the cache repository", path) from exc
    return path


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


def blob_sizes(repo_dir: Path, shas: Sequence[str]) -> dict[str, int]:
    """Size in bytes of each blob among ``shas`` (other object types are left out), in one
    ``git cat-file --batch-check`` call."""
    if not shas:
        return {}
    out = run_git(["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
                  cwd=repo_dir, stdin="\n".join(shas).encode() + b"\n", what="listing blobs")
    sizes = {}
    for line in out.decode().splitlines():
        sha, kind, size = line.split(" ")
        if kind == "blob":
            sizes[sha] = int(size)
    return sizes


def blob_head(repo_dir: Path, sha: str, limit: int) -> bytes:
    """The first ``limit`` bytes of a blob, without reading the rest: git is stopped once they
    have arrived (a multi-gigabyte blob costs no more than a small one)."""
    import git

    process = git.Git(str(repo_dir)).execute(["git", "cat-file", "blob", sha], as_process=True)
    try:
        head = b""
        while len(head) < limit:
            chunk = process.proc.stdout.read(limit - len(head))
            if not chunk:
                break
            head += chunk
        return head
    finally:
        process.proc.kill()
        process.proc.wait()


def commits_adding(repo_dir: Path, tip: str, exclude: Sequence[str], blobs: set[str]) -> dict[str, str]:
    """For each blob of ``blobs`` that a commit of ``tip``'s new history (not reachable from
    ``exclude``) adds or changes a file to: the oldest such commit. Merges show no diff, so a
    blob only a merge brings in is left out."""
    out = run_git(["log", "--format=%x01%H", "--raw", "--no-abbrev", "--no-renames", tip,
                   *(f"^{sha}" for sha in exclude)], cwd=repo_dir, what="walking history")
    found: dict[str, str] = {}
    commit = ""
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        if line.startswith("\x01"):
            commit = line[1:]
        elif line.startswith(":"):
            new_blob = line.split("\t", 1)[0].split(" ")[3]
            if new_blob in blobs:
                found[new_blob] = commit  # git log lists newest first: the last one seen is the oldest
    return found


def ref_format_ok(ref: str) -> bool:
    """True when git accepts ``ref`` (a full name) as a ref name: ``git check-ref-format``."""
    try:
        run_git(["check-ref-format", ref], cwd=None, what="checking a ref name")
        return True
    except GitMirrorError:
        return False


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
    """Create a bare repository at ``path`` (a local mirror destination). Raises EnvironmentProblem
    when the path cannot be created (a parent that is a file, an unwritable directory)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error_for_oserror(exc, "cannot create the destination repository", path) from exc
    run_git(["init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)], cwd=None, what=f"creating {path}")


def local_git_dir(path: Path) -> Path | None:
    """The git directory of the local repository at ``path`` (bare or not), or None if it is not one.

    For a linked worktree or a submodule (``.git`` is a file) it is the common directory, where
    git-lfs keeps the objects.
    """
    if not path.is_dir():
        return None
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return path  # bare
    dot_git = path / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        try:
            out = run_git(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=path,
                          what=f"reading the repository at {path}")
        except GitMirrorError:
            return None
        common = out.decode("utf-8", "surrogateescape").strip()
        return Path(common) if common else None
    return None


def local_head_branch(path: Path) -> str | None:
    """The branch HEAD names in the local repository at ``path`` (``main``), or None (detached, unreadable)."""
    git_dir = local_git_dir(path)
    if git_dir is None:
        return None
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    target = head[5:].strip() if head.startswith("ref: ") else ""
    return target[len("refs/heads/"):] if target.startswith("refs/heads/") else None


# --- plumbing for snapshot commits ----------------------------------------------------------------


def rev_parse(repo_dir: Path, expression: str) -> str:
    """The object id ``expression`` names in ``repo_dir`` (``<sha>^{tree}``, a ref). Raises GitMirrorError."""
    out = run_git(["rev-parse", "--verify", "--quiet", expression], cwd=repo_dir, what=f"reading {expression}")
    return out.decode().strip()


def tree_of(repo_dir: Path, commit: str) -> str:
    """The id of ``commit``'s root tree."""
    return rev_parse(repo_dir, f"{commit}^{{tree}}")


def config_value(repo_dir: Path, key: str, *, local: bool = False) -> str | None:
    """git's configured ``key`` as seen from ``repo_dir`` (user, global and repository config;
    with ``local``, the repository's own config only), or None."""
    scope = ["--local"] if local else []
    try:
        value = run_git(["config", *scope, "--get", key], cwd=repo_dir, what=f"reading {key}").decode().strip()
    except GitMirrorError:
        return None
    return value or None


def blob_config(repo_dir: Path, commit: str, path: str) -> dict[str, str] | None:
    """The keys of the git-config file ``path`` at ``commit`` (``.lfsconfig``), read with
    ``git config --blob``: lower-case section and key names, the last value of each. None when
    the commit has no such file. Raises GitMirrorError when git cannot parse it."""
    spec = f"{commit}:{path}"
    if not has_object(repo_dir, spec):
        return None
    out = run_git(["config", "--blob", spec, "--null", "--list"], cwd=repo_dir, what=f"reading {path} at {commit[:12]}")
    values: dict[str, str] = {}
    for item in out.decode("utf-8", "surrogateescape").split("\0"):
        key, _, value = item.partition("\n")  # --null: "key\nvalue\0"
        if key:
            values[key] = value
    return values


_SHALLOW_REJECTION = re.compile(r"^warning: rejected (\S+) because shallow roots are not allowed to be updated$", re.M)


def shallow_rejections(messages: str) -> list[str]:
    """The local refs a fetch left out because the remote is shallow, from git's messages: git
    (2.39; fetch-pack.c) warns "rejected <ref> because shallow roots are not allowed to be
    updated" and still exits 0 when the repository fetched from is a shallow clone."""
    return _SHALLOW_REJECTION.findall(messages)


def is_shallow(path: Path) -> bool:
    """True when the local repository at ``path`` is a shallow clone (``git clone --depth``):
    its history stops at commits whose parents it lacks, so it can be fetched from only by a
    repository that is shallow too. False when git cannot tell."""
    try:
        out = run_git(["rev-parse", "--is-shallow-repository"], cwd=path, what=f"reading the repository at {path}")
    except GitMirrorError:
        return False
    return out.strip() == b"true"


def commit_tree(repo_dir: Path, tree: str, parent: str | None, message: str, identity: Mapping[str, str]) -> str:
    """Write one commit object into ``repo_dir`` (no ref, no checkout) and return its id.

    ``identity`` holds ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` for git's environment; the message
    goes on stdin, so it may hold anything.
    """
    args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
    out = run_git(args, cwd=repo_dir, env=identity, stdin=message.encode("utf-8"), what="making the snapshot commit")
    return out.decode().strip()
