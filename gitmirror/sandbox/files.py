"""A repository's files at a revision, for the hubs' download APIs (shared by the HF and MS kinds).

The real hubs list a revision's tree and serve each file from it: a plain blob from the hub
itself, an LFS file by a redirect to object storage (sources: huggingface_hub 2.4.0
``_snapshot_download.py`` / ``file_download.py``; modelscope_hub 0.5.1 ``_download.py`` /
``_legacy_api.py``; see docs/hubs.md). This module reads the bare repository with git
(``ls-tree``, ``cat-file``) and makes the presigned storage href of a download redirect; the
kinds shape the answers.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from typing import Protocol

from gitmirror.sandbox.lfs import LfsHubView, ObjectGrant, now_ms, storage_href
from gitmirror.sandbox.state import RepoKey

POINTER_PREFIXES = (b"version https://git-lfs.github.com/spec/v1\n", b"version https://hawser.github.com/spec/v1\n")
MAX_POINTER = 1024  # git-lfs: a pointer is a blob under 1024 bytes
GIT_TIMEOUT = 120  # seconds for one git call on the hub's bare repository


class FilesHubView(LfsHubView, Protocol):
    """What reading files uses of a hub (:class:`gitmirror.sandbox.hub.Hub`). Kinds hold their hub
    as a ``kinds.HubView``; the one they are given is a Hub, which is all of this too."""

    env: dict[str, str]  # the environment server-side git runs in


@dataclass(frozen=True)
class LfsRef:
    """The LFS object an entry's pointer names: ``oid`` (sha256 hex), ``size`` in bytes."""

    oid: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One tree entry at a revision.

    ``kind`` is ``"blob"`` or ``"tree"``; ``oid`` the git object id; ``size`` the blob's size
    in git in bytes (the pointer's, for an LFS file; 0 for a tree); ``lfs`` the object a
    pointer names; ``sha256`` of the file's real content (the LFS oid, or the blob's own hash).
    """

    path: str
    kind: str
    mode: str
    oid: str
    size: int
    lfs: LfsRef | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def file_size(self) -> int:
        """Bytes a download of this file yields."""
        return self.lfs.size if self.lfs else self.size


def git_bytes(hub: FilesHubView, key: RepoKey, *args: str, stdin: bytes | None = None) -> bytes:
    """Run git in ``key``'s bare repository; its raw stdout. Raises RuntimeError when git fails."""
    done = subprocess.run(["git", "--git-dir", str(hub.repo_path(key)), *args], input=stdin, env=hub.env,
                          capture_output=True, timeout=GIT_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def resolve_commit(hub: FilesHubView, key: RepoKey, revision: str) -> str | None:
    """The commit a branch, tag, ``refs/...`` name or full sha names, or None."""
    if not revision or revision.startswith("-") or any(c in revision for c in "\n\0 "):
        return None
    try:
        out = git_bytes(hub, key, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    except RuntimeError:
        return None
    return out.decode().strip() or None


def split_revision(hub: FilesHubView, key: RepoKey, parts: list[str]) -> tuple[str, str, str] | None:
    """``[rev..., path...]`` of a URL whose revision may hold slashes -> (revision, commit, path).

    The shortest leading run of segments that names a commit wins (the URL is percent-decoded
    before it gets here, so ``feature%2Fx`` and ``feature/x`` look alike). None: no revision.
    """
    for cut in range(1, len(parts) + 1):
        revision = "/".join(parts[:cut])
        commit = resolve_commit(hub, key, revision)
        if commit is not None:
            return revision, commit, "/".join(parts[cut:])
    return None


def list_tree(hub: FilesHubView, key: RepoKey, commit: str, root: str = "", recursive: bool = True) -> list[Entry] | None:
    """Entries under ``root`` ("" = the top) at ``commit``: every level when ``recursive``
    (trees included, as the hubs list them), else the direct children. None when ``root``
    is not a directory there."""
    root = root.strip("/")
    if root and file_entry(hub, key, commit, root, kind="tree") is None:
        return None
    args = ["ls-tree", "-z", "-l"] + (["-r", "-t"] if recursive else []) + [commit]
    if root:
        args += ["--", root + "/"]
    entries = [e for e in _parse_ls_tree(git_bytes(hub, key, *args)) if not root or e.path.startswith(root + "/")]
    return _with_contents(hub, key, entries)


def file_entry(hub: FilesHubView, key: RepoKey, commit: str, path: str, kind: str = "blob") -> Entry | None:
    """The entry at exactly ``path`` (a file, or a directory with ``kind="tree"``), or None."""
    path = path.strip("/")
    if not path:
        return None
    entries = [e for e in _parse_ls_tree(git_bytes(hub, key, "ls-tree", "-z", "-l", commit, "--", path))
               if e.path == path and e.kind == kind]
    return _with_contents(hub, key, entries)[0] if entries else None


def read_blob(hub: FilesHubView, key: RepoKey, oid: str) -> bytes:
    """A blob's bytes, exactly as stored."""
    return git_bytes(hub, key, "cat-file", "blob", oid)


def download_href(hub: FilesHubView, key: RepoKey, lfs: LfsRef) -> str:
    """A presigned storage href for one LFS object, valid ``href_ttl`` seconds (hub option):
    the target of a download redirect, which carries no header, hence always presigned."""
    ttl_ms = int(float(hub.options.get("href_ttl", 3600)) * 1000)
    return storage_href(hub, ObjectGrant("download", key, lfs.oid, lfs.size, now_ms() + ttl_ms), presigned=True)


def remove_repository(hub: FilesHubView, key: RepoKey) -> bool:
    """Forget a repository and delete its directory (the hubs' delete APIs); False if unknown."""
    with hub.state.lock:
        record = hub.state.repos.pop(key, None)
    if record is None:
        return False
    shutil.rmtree(hub.repo_path(key), ignore_errors=True)
    return True


def parse_pointer(data: bytes) -> LfsRef | None:
    """The object a git-lfs pointer names, or None when ``data`` is not a pointer."""
    if len(data) >= MAX_POINTER or not data.startswith(POINTER_PREFIXES):
        return None
    fields = dict(line.split(" ", 1) for line in data.decode("utf-8", "replace").splitlines() if " " in line)
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or len(oid) != 71 or not size.isdigit():
        return None
    return LfsRef(oid[len("sha256:"):], int(size))


def _parse_ls_tree(out: bytes) -> list[Entry]:
    """``<mode> <type> <oid> <size>\\t<path>`` records, NUL-separated (``ls-tree -z -l``)."""
    entries = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        if kind in ("blob", "tree"):  # submodules ("commit") have no files to serve
            entries.append(Entry(path.decode("utf-8", "surrogateescape"), kind, mode, oid,
                                 int(size) if size.isdigit() else 0))
    return entries


def _with_contents(hub: FilesHubView, key: RepoKey, entries: list[Entry]) -> list[Entry]:
    """Entries with ``lfs`` and ``sha256`` filled in, from one ``cat-file --batch`` over the blobs."""
    blobs = sorted({e.oid for e in entries if e.kind == "blob"})
    if not blobs:
        return entries
    contents = _cat_blobs(hub, key, blobs)
    done = []
    for entry in entries:
        data = contents.get(entry.oid)
        if data is None:
            done.append(entry)
            continue
        pointer = parse_pointer(data) if entry.size < MAX_POINTER else None
        digest = pointer.oid if pointer else hashlib.sha256(data).hexdigest()
        done.append(Entry(entry.path, entry.kind, entry.mode, entry.oid, entry.size, pointer, digest))
    return done


def _cat_blobs(hub: FilesHubView, key: RepoKey, oids: list[str]) -> dict[str, bytes]:
    out = git_bytes(hub, key, "cat-file", "--batch", stdin="".join(f"{oid}\n" for oid in oids).encode())
    found: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        oid, _, size = out[pos:header_end].decode().split(" ")
        start = header_end + 1
        found[oid] = out[start:start + int(size)]
        pos = start + int(size) + 1
    return found
