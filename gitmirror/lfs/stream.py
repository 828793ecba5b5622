"""The verifying stream: an object's bytes on their way from the source to the destination,
hashed and counted as they pass, the last byte withheld unless sha256 and size match.

Also :class:`Slice` (one multipart part of such a stream) and :class:`ReadAhead` (the source read
in a thread of its own, a few chunks ahead of the upload). Errors: :class:`IntegrityError` for
wrong bytes, :class:`TransientError` for a source that ends early or breaks off.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator

from gitmirror.errors import GitMirrorError, IntegrityError, TransientError
from gitmirror.lfs.failures import transport_error
from gitmirror.lfs.pointer import LfsObject

__all__ = ["CHUNK", "BodyAborted", "ReadAhead", "Slice", "VerifyingStream"]

#: Read and write objects in pieces of this size (bytes): memory stays flat whatever the object
#: size, and pieces this large keep per-call overhead (hashing, syscalls) negligible.
CHUNK = 1 << 20


class BodyAborted(Exception):
    """Raised inside an upload body; deliberately not an OSError so that urllib3 does not wrap it."""


class VerifyingStream:
    """A file-like view of an object's bytes as they arrive from the source.

    It has ``__len__`` so that uploads send a ``Content-Length`` (object stores reject chunked
    bodies). It checks the sha256 and size before it hands over the chunk holding the last byte, and
    raises instead when they do not match, so the receiver never gets a complete wrong body. The first
    failure is kept in ``failure`` because the HTTP stack may wrap what ``read`` raises.
    """

    def __init__(
        self,
        obj: LfsObject,
        chunks: Iterator[bytes],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.obj = obj
        self._chunks = chunks
        self._on_bytes = on_bytes
        self._hash = hashlib.sha256()
        self._pending = memoryview(b"")
        self.received = 0  # bytes taken from the source
        self.delivered = 0  # bytes handed to the receiver
        self.verified = False
        self.failure: GitMirrorError | None = None

    def __len__(self) -> int:
        return self.obj.size

    def read(self, n: int = -1) -> bytes:
        try:
            if not self._pending and not self.verified:
                self._pull()
            if not self._pending:
                return b""
            if n is None or n < 0 or n >= len(self._pending):
                n = len(self._pending)
            if self._on_bytes is not None:
                self._on_bytes(n)  # may raise to cancel the transfer
        except GitMirrorError as exc:
            self.failure = exc
            raise BodyAborted(str(exc)) from exc
        piece, self._pending = self._pending[:n], self._pending[n:]
        self.delivered += n
        # The usual case (the reader takes a whole chunk) hands over the source's bytes object itself.
        return piece.obj if len(piece) == len(piece.obj) else bytes(piece)  # type: ignore[arg-type]

    def _pull(self) -> None:
        """Take the next source chunk into ``_pending``, verifying when it completes the object."""
        expected = self.obj.size
        while True:
            if self.received == expected:
                self._check()
                return
            try:
                chunk = next(self._chunks)
            except StopIteration:
                raise TransientError(
                    f"source ended LFS object {self.obj.oid} after {self.received} of {expected} bytes"
                ) from None
            except GitMirrorError:
                raise
            except Exception as exc:  # connection cut, timeout: worth another try
                raise transport_error(f"reading LFS object {self.obj.oid} from the source", exc) from exc
            if not chunk:
                continue
            self.received += len(chunk)
            if self.received > expected:
                raise IntegrityError(
                    f"LFS object {self.obj.oid} from the source is larger than its pointer says ({expected} bytes)"
                )
            self._hash.update(chunk)
            self._pending = memoryview(chunk)
            if self.received == expected:
                self._check()
            return

    def _check(self) -> None:
        if self.verified:
            return
        actual = self._hash.hexdigest()
        if actual != self.obj.oid:
            raise IntegrityError(
                f"LFS object {self.obj.oid} from the source has sha256 {actual}: its bytes do not match the pointer"
            )
        self.verified = True

    def read_whole(self) -> bytes:
        """All the remaining bytes at once, verified (for small objects)."""
        pieces = []
        while piece := self.read():  # the last piece comes only once the object checked out
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def drain(self) -> None:
        """Read everything left (used by stores that write to files)."""
        while self.read(CHUNK):
            pass


class Slice:
    """``length`` bytes of a shared stream, as a file-like with ``__len__`` (one multipart part)."""

    def __init__(self, stream: VerifyingStream, length: int) -> None:
        self._stream = stream
        self._left = length
        self._length = length

    def __len__(self) -> int:
        return self._length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._stream.read(n)
        self._left -= len(data)
        return data


class ReadAhead:
    """Reads the source in a thread of its own, up to ``depth`` chunks ahead of the upload.

    Without it one object alternates between waiting for the source and waiting for the
    destination; with it both links stay busy. On the sandbox with 100 MB/s caps each way
    (2 CPUs shared with the server) one 256 MB object went from 84-85 to 87-88 MB/s; with 8
    objects at once the sandbox itself is the limit (download alone: 88-91 MB/s) and the
    difference is lost in the noise. On real links with round-trip latency the overlap matters
    more. Memory stays bounded: at most ``depth`` chunks per object are held.
    """

    def __init__(self, chunks: Iterator[bytes], depth: int = 4) -> None:
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(chunks,), daemon=True, name="lfs-read")
        self._thread.start()

    def _run(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._put(("chunk", chunk)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # handed to the consumer, which decides what it means
            self._put(("error", exc))

    def _put(self, item: tuple[str, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> "ReadAhead":
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "chunk":
            return value  # type: ignore[return-value]
        self._done = True
        if kind == "end":
            raise StopIteration
        raise value  # type: ignore[misc]

    def close(self) -> None:
        """Stop reading (the reader may be blocked in a read until the source response closes)."""
        self._stop.set()
