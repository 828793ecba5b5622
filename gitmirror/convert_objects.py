"""Git objects as bytes for ``--convert`` (:mod:`gitmirror.convert`): reading them in batch from
the cache repository, taking trees, commits and tags apart and putting them back together byte for
byte, and writing the new ones.

Objects are read through two long-lived ``git cat-file`` processes (``--batch-check`` for sizes,
``--batch`` for contents; git flushes its answer after each object unless ``--buffer`` is given,
so one request at a time cannot deadlock), never a process per object. New objects get their ids
computed here (SHA-1 over ``<type> <size>\\0<bytes>``, git's object format) and are written at the
end in one pack by dulwich, which keeps the bytes it is given.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitmirror.errors import EnvironmentProblem, IntegrityError, error_for_oserror

#: Commit headers that carry a signature over the commit's bytes: a rewritten commit cannot keep them.
SIGNATURE_HEADERS = (b"gpgsig", b"gpgsig-sha256")
#: The lines that open a signature appended to an annotated tag's message (git's ``parse_signed_buffer``).
TAG_SIGNATURE_STARTS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN PGP MESSAGE-----",
                        b"-----BEGIN SSH SIGNATURE-----", b"-----BEGIN SIGNED MESSAGE-----")
TREE_MODE = b"40000"
#: Regular files, plain and executable; symlinks (120000) and submodules (160000) are never converted.
FILE_MODES = (b"100644", b"100755")


def object_id(kind: str, raw: bytes) -> str:
    """The id git gives an object of type ``kind`` (``blob``, ``tree``, ``commit``, ``tag``) with body ``raw``."""
    return hashlib.sha1(f"{kind} {len(raw)}\0".encode() + raw).hexdigest()


# --- trees -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree object: ``mode`` as git writes it (``b"100644"``, ``b"40000"``), ``name``
    (bytes: git's paths need not be UTF-8), ``sha`` (40 hex digits)."""

    mode: bytes
    name: bytes
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == TREE_MODE

    def sort_key(self) -> bytes:
        # git orders a tree's entries by name, a subtree's name compared as if it ended in "/".
        return self.name + (b"/" if self.is_tree else b"")


def parse_tree(raw: bytes) -> list[TreeEntry]:
    """A tree object's entries, in their order: ``<mode> <name>\\0<20-byte id>`` each."""
    entries, pos = [], 0
    while pos < len(raw):
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        entries.append(TreeEntry(raw[pos:space], raw[space + 1 : nul], raw[nul + 1 : nul + 21].hex()))
        pos = nul + 21
    return entries


def format_tree(entries: list[TreeEntry]) -> bytes:
    """The tree object of ``entries``, sorted as git sorts them."""
    return b"".join(e.mode + b" " + e.name + b"\0" + bytes.fromhex(e.sha) for e in sorted(entries, key=TreeEntry.sort_key))


# --- commits and tags ----------------------------------------------------------------------------


def _header_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """A commit's or tag's header fields (each with its continuation lines, without the final
    newline) and the rest (the blank line and the message, kept as they are)."""
    end = raw.find(b"\n\n")
    header, rest = (raw, b"") if end < 0 else (raw[:end], raw[end:])
    fields: list[bytes] = []
    for line in header.split(b"\n"):
        if line.startswith(b" ") and fields:
            fields[-1] += b"\n" + line  # a continuation line (a signature, a mergetag)
        else:
            fields.append(line)
    return fields, rest


def commit_links(raw: bytes) -> tuple[str, list[str]]:
    """(tree, parents) of a commit object."""
    fields, _ = _header_fields(raw)
    tree = next(f[5:].decode() for f in fields if f.startswith(b"tree "))
    return tree, [f[7:].decode() for f in fields if f.startswith(b"parent ")]


def rewrite_commit(raw: bytes, tree: str, parents: list[str]) -> tuple[bytes, bool]:
    """``raw`` with its tree and parents replaced (in order) and its signature headers dropped;
    every other byte (author, committer, encoding, mergetag and other headers, message) kept.
    Returns (new bytes, whether a signature was dropped)."""
    fields, rest = _header_fields(raw)
    out: list[bytes] = []
    dropped = False
    parent_lines = iter(parents)
    for field in fields:
        key = field.split(b" ", 1)[0]
        if key == b"tree":
            out.append(b"tree " + tree.encode())
        elif key == b"parent":
            out.append(b"parent " + next(parent_lines).encode())
        elif key in SIGNATURE_HEADERS:
            dropped = True
        else:
            out.append(field)
    return b"\n".join(out) + rest, dropped


def tag_target(raw: bytes) -> tuple[str, str]:
    """(object id, type) an annotated tag points to."""
    fields, _ = _header_fields(raw)
    target = next(f[7:].decode() for f in fields if f.startswith(b"object "))
    kind = next(f[5:].decode() for f in fields if f.startswith(b"type "))
    return target, kind


def rewrite_tag(raw: bytes, target: str) -> tuple[bytes, bool]:
    """``raw`` pointing at ``target``, its signature (appended to the message, or a ``gpgsig``
    header) dropped; tagger, date, name and message kept. Returns (new bytes, signature dropped)."""
    fields, rest = _header_fields(raw)
    out, dropped = [], False
    for field in fields:
        key = field.split(b" ", 1)[0]
        if key == b"object":
            out.append(b"object " + target.encode())
        elif key in SIGNATURE_HEADERS:
            dropped = True
        else:
            out.append(field)
    starts = [rest.rfind(b"\n" + marker + b"\n") for marker in TAG_SIGNATURE_STARTS]
    cut = max(starts)
    if cut >= 0:
        rest, dropped = rest[: cut + 1], True
    return b"\n".join(out) + rest, dropped


def is_signed(kind: str, raw: bytes) -> bool:
    """Whether a commit or annotated tag (``kind``, its bytes ``raw``) carries a signature that a
    rewrite of it drops (the test :func:`rewrite_commit` / :func:`rewrite_tag` apply)."""
    if kind == "commit":
        tree, parents = commit_links(raw)
        return rewrite_commit(raw, tree, parents)[1]
    return kind == "tag" and rewrite_tag(raw, tag_target(raw)[0])[1]


# --- reading -------------------------------------------------------------------------------------


class CatFile:
    """``git cat-file --batch-check`` and ``--batch`` kept running on the cache repository, one
    object asked at a time. Use as a context manager: the processes end with it (killed when it
    ends with an exception, so an interrupted run leaves no git behind)."""

    def __init__(self, repo_dir: Path) -> None:
        self.repo_dir = repo_dir
        self._check = self._start("--batch-check")
        self._batch = self._start("--batch")

    def _start(self, mode: str) -> subprocess.Popen[bytes]:
        git = os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git"
        try:
            return subprocess.Popen([git, "cat-file", mode], cwd=self.repo_dir, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
        except OSError as exc:
            raise error_for_oserror(exc, "cannot run git cat-file", self.repo_dir) from exc

    def __enter__(self) -> "CatFile":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        for proc in (self._check, self._batch):
            if kind is None and proc.stdin:
                proc.stdin.close()
                proc.wait(timeout=60)
            else:
                proc.kill()
                proc.wait()

    @staticmethod
    def _ask(proc: subprocess.Popen[bytes], sha: str) -> tuple[str, int]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(sha.encode() + b"\n")
        proc.stdin.flush()
        line = proc.stdout.readline().decode().split()
        if len(line) != 3:
            raise IntegrityError(f"the cache repository lacks object {sha} (converting history)",
                                 hint="delete the pair's cache (or run with --no-cache) and run again")
        return line[1], int(line[2])

    def info(self, sha: str) -> tuple[str, int]:
        """(type, size in bytes) of an object."""
        return self._ask(self._check, sha)

    def read(self, sha: str) -> tuple[str, bytes]:
        """(type, bytes) of an object, read whole: for commits, trees, tags and small blobs."""
        kind, size = self._ask(self._batch, sha)
        data = _read_exactly(self._batch.stdout, size)
        _read_exactly(self._batch.stdout, 1)  # the newline after each object
        return kind, data

    def stream(self, sha: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """A blob's bytes in chunks of at most ``chunk`` bytes: a blob of gigabytes never sits in
        memory. The iterator must be read to its end before the next request."""
        _, size = self._ask(self._batch, sha)
        left = size
        while left:
            data = _read_exactly(self._batch.stdout, min(chunk, left))
            left -= len(data)
            yield data
        _read_exactly(self._batch.stdout, 1)


def _read_exactly(stream: IO[bytes] | None, size: int) -> bytes:
    assert stream is not None
    parts, left = [], size
    while left:
        part = stream.read(left)
        if not part:
            raise EnvironmentProblem("git cat-file ended early while converting history",
                                     hint="if nobody interrupted it, the machine may be out of memory")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


# --- writing -------------------------------------------------------------------------------------


def write_objects(repo_dir: Path, objects: dict[str, tuple[str, bytes]]) -> None:
    """Write ``objects`` ({id: (type, bytes)}) into the repository ``repo_dir`` as one pack.

    dulwich keeps the bytes it is given (no re-serialisation), so each object's id is the one
    computed by :func:`object_id`; any difference raises IntegrityError before anything is written.
    """
    if not objects:
        return
    from dulwich.object_store import DiskObjectStore
    from dulwich.objects import ShaFile, object_class

    made = []
    for sha, (kind, raw) in objects.items():
        obj = ShaFile.from_raw_string(object_class(kind.encode()).type_num, raw)
        if obj.id.decode() != sha:
            raise IntegrityError(f"a rewritten {kind} came out as {obj.id.decode()}, not {sha}")
        made.append((obj, None))
    DiskObjectStore(str(repo_dir / "objects")).add_objects(made)
