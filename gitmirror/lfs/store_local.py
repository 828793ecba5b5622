"""An LFS store in a local directory, laid out as git-lfs lays out ``.git/lfs/objects``:
``<objects_dir>/aa/bb/<oid>``. Serves a local bare repository and the download cache.

Objects are written to a temp file next to their final name and renamed once verified, so a
crash never leaves a partial object under its real name. Raises IntegrityError for an object the
store lacks or whose bytes do not match, and EnvironmentProblem (exit 9, never retried) when the
filesystem refuses a write: a full disk or an unwritable directory (errors.error_for_oserror).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gitmirror.errors import GitMirrorError, IntegrityError, error_for_oserror
from gitmirror.lfs.pointer import LfsObject
from gitmirror.lfs.store import DownloadTicket, LfsStore, UploadTicket
from gitmirror.lfs.stream import CHUNK, BodyAborted, VerifyingStream

__all__ = ["LocalLfsStore"]


class LocalLfsStore(LfsStore):
    """Objects in a directory laid out as git-lfs does: ``<objects_dir>/aa/bb/<oid>``."""

    def __init__(self, objects_dir: Path | str) -> None:
        self.objects_dir = Path(objects_dir)
        self.label = f"local LFS store {self.objects_dir}"

    def path_of(self, oid: str) -> Path:
        return self.objects_dir / oid[0:2] / oid[2:4] / oid

    def discard(self, obj: LfsObject) -> None:
        """Remove this store's copy of ``obj``, if any (a copy found wrong)."""
        self.path_of(obj.oid).unlink(missing_ok=True)

    def has(self, obj: LfsObject) -> bool:
        try:
            return self.path_of(obj.oid).stat().st_size == obj.size
        except OSError:
            return False

    def plan_uploads(self, objects, http=None, on_retry=None, *, attempts=None):
        return {obj: None if self.has(obj) else UploadTicket(obj) for obj in objects}

    def plan_downloads(self, objects, http=None, on_retry=None, *, attempts=None):
        result: dict[LfsObject, DownloadTicket | GitMirrorError] = {}
        for obj in objects:
            if self.has(obj):
                result[obj] = DownloadTicket(obj)
            else:
                result[obj] = IntegrityError(f"{self.label} lacks LFS object {obj.oid} ({obj.size} bytes)")
        return result

    @contextmanager
    def reading(self, ticket: DownloadTicket, http=None, offset: int = 0) -> Iterator[Iterator[bytes]]:
        with open(self.path_of(ticket.obj.oid), "rb") as fh:
            fh.seek(offset)
            yield iter(lambda: fh.read(CHUNK), b"")

    def write(self, ticket: UploadTicket, body: VerifyingStream, http=None) -> None:
        target = self.path_of(ticket.obj.oid)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # A temp file next to the target: same filesystem, so the final rename is atomic and a
            # crash never leaves a partial object under its real name.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{ticket.obj.oid[:12]}.", suffix=".tmp")
        except OSError as exc:
            raise error_for_oserror(exc, "writing to the local LFS store failed", target.parent) from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                self._copy(body, fh, tmp)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            _discard(tmp)
            raise error_for_oserror(exc, "writing to the local LFS store failed", tmp) from exc
        except BaseException:
            _discard(tmp)
            raise

    def _copy(self, body: VerifyingStream, fh, path: str) -> None:
        try:
            while chunk := body.read(CHUNK):
                _write(fh, chunk, "writing to the local LFS store failed", path)
        except BodyAborted:
            assert body.failure is not None
            raise body.failure from None
        if not body.verified:  # cannot happen with a well-behaved body; never rename an unchecked file
            raise IntegrityError(f"LFS object {body.obj.oid} was not verified before being stored")

    def lacking(self, objects, http=None):
        return [obj for obj in objects if not self.has(obj)]

    def fill(self, obj: LfsObject, open_remote: Callable[[int], contextlib.AbstractContextManager[Iterator[bytes]]]) -> None:
        """Download ``obj`` into this store, resuming a partial file left by an earlier try.

        ``open_remote(offset)`` gives the remote bytes from ``offset`` on. The partial file lives
        next to the final one (``<oid>.part``) and is renamed only once sha256 and size match.
        """
        target = self.path_of(obj.oid)
        part = target.with_name(obj.oid + ".part")
        what = "writing to the local LFS store failed"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            offset = part.stat().st_size if part.exists() else 0
            if offset > obj.size:
                part.unlink()
                offset = 0
            out = open(part, "ab")
        except OSError as exc:
            raise error_for_oserror(exc, what, part) from exc
        with out, open_remote(offset) as remote:
            out.truncate(offset)

            def appended() -> Iterator[bytes]:
                for chunk in remote:
                    _write(out, chunk, what, part)  # a full disk is ours, not the source's: never retried
                    yield chunk

            stream = VerifyingStream(obj, itertools.chain(_file_chunks(part, offset), appended()))
            try:
                stream.drain()
            except BodyAborted:
                assert stream.failure is not None
                if isinstance(stream.failure, IntegrityError):
                    out.close()
                    part.unlink(missing_ok=True)  # wrong bytes: a resume would keep them
                raise stream.failure from None
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise error_for_oserror(exc, what, part) from exc
        try:
            os.replace(part, target)
        except OSError as exc:
            raise error_for_oserror(exc, what, target) from exc


def _write(fh, chunk: bytes, what: str, path: object) -> None:
    """``fh.write(chunk)``; a refusal of the filesystem (ENOSPC, EDQUOT, EIO) is an EnvironmentProblem."""
    try:
        fh.write(chunk)
    except OSError as exc:
        raise error_for_oserror(exc, what, path) from exc


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _file_chunks(path: Path, limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of a file, in chunks (to re-hash a partial download)."""
    with open(path, "rb") as fh:
        while limit > 0:
            chunk = fh.read(min(CHUNK, limit))
            if not chunk:
                return
            limit -= len(chunk)
            yield chunk
