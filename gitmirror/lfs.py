"""Git LFS: pointer parsing, the batch API client, object stores (HTTP and local), streaming transfer.

The central operation is :func:`transfer`: it asks the destination which objects it lacks, asks the
source where to download those, and streams each one from the source straight into the destination
(no local copy), several at once, checking sha256 and size on the fly. An upload whose bytes turn out
wrong is aborted before its last byte leaves, so the destination never holds a complete bad object.

Credentials: an :class:`HttpLfsStore` sends its own headers only to its batch endpoint. An object
href gets exactly the headers the batch response gave for it (signed URLs on storage hosts must never
see a hub token).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin, urlsplit

from gitmirror.errors import (
    AuthError,
    GitMirrorError,
    IntegrityError,
    PermissionDeniedError,
    ProtocolError,
    RepoNotFoundError,
    TransientError,
    scrub,
)
from gitmirror.retry import RetryPolicy, parse_retry_after, retrying

if TYPE_CHECKING:  # urllib3 is imported lazily so that `gitmirror --help` stays fast.
    import urllib3

    from gitmirror.httpclient import HttpClient

__all__ = [
    "CHUNK",
    "MAX_BATCH",
    "DownloadTicket",
    "HttpLfsStore",
    "LfsObject",
    "LfsStore",
    "Link",
    "LocalLfsStore",
    "TransferEvent",
    "TransferFailure",
    "TransferReport",
    "UploadTicket",
    "VerifyingStream",
    "format_pointer",
    "missing",
    "parse_pointer",
    "transfer",
]

log = logging.getLogger("gitmirror.lfs")

#: Read and write objects in pieces of this size: memory stays flat whatever the object size,
#: and pieces this large keep per-call overhead (hashing, syscalls) negligible.
CHUNK = 1 << 20
#: Clients send at most this many objects per batch request (git-lfs does the same; servers answer 413).
MAX_BATCH = 100
#: Objects planned ahead of the workers; bounded so that hrefs do not go stale while they wait.
PLAN_AHEAD = 2 * MAX_BATCH

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
MAX_POINTER_SIZE = 1024
EMPTY_OID = hashlib.sha256(b"").hexdigest()

Operation = Literal["upload", "download"]


# --------------------------------------------------------------------------------------------------
# Pointers


@dataclass(frozen=True, order=True)
class LfsObject:
    """One LFS object: its sha256 (64 lowercase hex digits) and its size in bytes."""

    oid: str
    size: int


_OID = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_EXT_KEY = re.compile(r"ext-[0-9]-[a-z0-9]+")
_KEY = re.compile(r"[a-z0-9.-]+")


def parse_pointer(data: bytes) -> LfsObject | None:
    """The object a pointer blob names, or None when ``data`` is not a valid LFS pointer.

    Strict per the spec: under 1024 bytes, UTF-8, ``version`` line first, the other keys sorted
    and unique, ``ext-`` lines allowed, ``oid sha256:<64 hex>`` and a decimal ``size``, every line
    ending in a newline. Anything else is an ordinary file that merely looks like a pointer.
    """
    if len(data) >= MAX_POINTER_SIZE or not data.endswith(b"\n"):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text[:-1].split("\n")
    if lines[0] != f"version {POINTER_VERSION}":
        return None
    fields: dict[str, str] = {}
    previous = ""
    for line in lines[1:]:
        key, sep, value = line.partition(" ")
        if not sep or not _KEY.fullmatch(key) or key <= previous or not value:
            return None  # malformed line, unsorted or duplicate key
        if key.startswith("ext-") and not _EXT_KEY.fullmatch(key):
            return None
        fields[key] = value
        previous = key
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or not _OID.fullmatch(oid[7:]) or not _SIZE.fullmatch(size):
        return None
    known = {"oid", "size"}
    if any(k not in known and not k.startswith("ext-") for k in fields):
        return None
    return LfsObject(oid[7:], int(size))


def format_pointer(obj: LfsObject) -> bytes:
    """The canonical pointer blob for ``obj`` (what git-lfs writes)."""
    return f"version {POINTER_VERSION}\noid sha256:{obj.oid}\nsize {obj.size}\n".encode()


# --------------------------------------------------------------------------------------------------
# Reports and progress


EventKind = Literal["started", "advanced", "done", "skipped", "retrying", "failed"]


@dataclass(frozen=True)
class TransferEvent:
    """One step of one object, for a progress bar. ``nbytes`` is the advance for ``advanced``.

    Per object: ``started`` once, then ``advanced`` as bytes reach the destination, then ``done``
    or ``failed``; ``retrying`` (its ``nbytes`` = the bytes advanced in the failed attempt, to be
    taken back) may come in between. Objects the destination already has get only ``skipped``
    (or ``started`` ... ``skipped`` when a retry finds the object there).
    Events come from worker threads; a callback must be thread-safe (rich's Progress is).
    """

    kind: EventKind
    obj: LfsObject
    nbytes: int = 0
    message: str = ""


@dataclass(frozen=True)
class TransferFailure:
    oid: str
    reason: str
    error: GitMirrorError = field(repr=False, compare=False)


@dataclass
class TransferReport:
    """What :func:`transfer` did. ``moved`` + ``already_present`` + failures == ``requested``."""

    requested: int = 0
    already_present: int = 0
    moved: int = 0
    bytes_moved: int = 0
    retries: int = 0
    failures: list[TransferFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


# --------------------------------------------------------------------------------------------------
# Links and tickets (what a batch answer says about one object)


@dataclass(frozen=True)
class Link:
    """An action of a batch answer: where to send a request and exactly which headers to send."""

    href: str
    header: Mapping[str, str]
    expires_at: float | None = None  # epoch seconds
    issued_at: float = 0.0

    def stale(self, now: float | None = None) -> bool:
        """True when the link has expired or is about to (within 30 s, or half its lifetime if shorter)."""
        if self.expires_at is None:
            return False
        now = time.time() if now is None else now
        margin = min(30.0, max(0.0, (self.expires_at - self.issued_at) / 2))
        return now >= self.expires_at - margin


@dataclass(frozen=True)
class DownloadTicket:
    """Where to read one object from. ``link`` is None for a local store."""

    obj: LfsObject
    link: Link | None = None

    def stale(self) -> bool:
        return self.link is not None and self.link.stale()


@dataclass(frozen=True)
class UploadTicket:
    """Where to write one object. ``transfer`` is ``basic`` or ``multipart``; actions by name."""

    obj: LfsObject
    transfer: str = "basic"
    actions: Mapping[str, Link] = field(default_factory=dict)

    def stale(self) -> bool:
        return any(link.stale() for link in self.actions.values())


# --------------------------------------------------------------------------------------------------
# The verifying stream: hash and count on the fly, refuse to hand over a wrong last byte


class _BodyAborted(Exception):
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
            raise _BodyAborted(str(exc)) from exc
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
                raise _transport_error(f"reading LFS object {self.obj.oid} from the source", exc) from exc
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


class _Slice:
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


# --------------------------------------------------------------------------------------------------
# Stores


class LfsStore(ABC):
    """Somewhere LFS objects live. Methods take the run's :class:`~gitmirror.httpclient.HttpClient`.

    Batch-style methods accept any number of objects; HTTP stores split them into batches.
    """

    #: For messages: where this store is, without credentials or query strings.
    label: str = "LFS store"

    @abstractmethod
    def plan_uploads(
        self, objects: Sequence[LfsObject], http: HttpClient, on_retry: _OnRetry | None = None
    ) -> dict[LfsObject, UploadTicket | None | GitMirrorError]:
        """For each object: a ticket to upload it, None when the store already has it, or an error."""

    @abstractmethod
    def plan_downloads(
        self, objects: Sequence[LfsObject], http: HttpClient, on_retry: _OnRetry | None = None
    ) -> dict[LfsObject, DownloadTicket | GitMirrorError]:
        """For each object: a ticket to read it, or an error (IntegrityError when the store lacks it)."""

    @abstractmethod
    @contextmanager
    def reading(
        self, ticket: DownloadTicket, http: HttpClient, offset: int = 0
    ) -> Iterator[Iterator[bytes]]:
        """The object's bytes from ``offset`` on, as an iterator of chunks of about :data:`CHUNK` bytes."""

    @abstractmethod
    def write(self, ticket: UploadTicket, body: VerifyingStream, http: HttpClient) -> None:
        """Store the object from ``body``. Nothing may be stored when ``body`` raises."""

    @abstractmethod
    def lacking(self, objects: Sequence[LfsObject], http: HttpClient) -> list[LfsObject]:
        """Which of ``objects`` this store does not have, moving no object bytes."""


_OnRetry = Callable[[str, BaseException], None]


class LocalLfsStore(LfsStore):
    """Objects in a directory laid out as git-lfs does: ``<objects_dir>/aa/bb/<oid>``."""

    def __init__(self, objects_dir: Path | str) -> None:
        self.objects_dir = Path(objects_dir)
        self.label = f"local LFS store {self.objects_dir}"

    def path_of(self, oid: str) -> Path:
        return self.objects_dir / oid[0:2] / oid[2:4] / oid

    def has(self, obj: LfsObject) -> bool:
        try:
            return self.path_of(obj.oid).stat().st_size == obj.size
        except OSError:
            return False

    def plan_uploads(self, objects, http=None, on_retry=None):
        return {obj: None if self.has(obj) else UploadTicket(obj) for obj in objects}

    def plan_downloads(self, objects, http=None, on_retry=None):
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
        target.parent.mkdir(parents=True, exist_ok=True)
        # A temp file next to the target: same filesystem, so the final rename is atomic and a
        # crash never leaves a partial object under its real name.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{ticket.obj.oid[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                self._copy(body, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @staticmethod
    def _copy(body: VerifyingStream, fh) -> None:
        try:
            while chunk := body.read(CHUNK):
                fh.write(chunk)
        except _BodyAborted:
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
        target.parent.mkdir(parents=True, exist_ok=True)
        offset = part.stat().st_size if part.exists() else 0
        if offset > obj.size:
            part.unlink()
            offset = 0
        with open(part, "ab") as out, open_remote(offset) as remote:
            out.truncate(offset)

            def appended() -> Iterator[bytes]:
                for chunk in remote:
                    out.write(chunk)
                    yield chunk

            stream = VerifyingStream(obj, itertools.chain(_file_chunks(part, offset), appended()))
            try:
                stream.drain()
            except _BodyAborted:
                assert stream.failure is not None
                if isinstance(stream.failure, IntegrityError):
                    out.close()
                    part.unlink(missing_ok=True)  # wrong bytes: a resume would keep them
                raise stream.failure from None
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, target)


def _file_chunks(path: Path, limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of a file, in chunks (to re-hash a partial download)."""
    with open(path, "rb") as fh:
        while limit > 0:
            chunk = fh.read(min(CHUNK, limit))
            if not chunk:
                return
            limit -= len(chunk)
            yield chunk


class HttpLfsStore(LfsStore):
    """An LFS server reached through its batch API at ``<endpoint>/objects/batch``.

    ``auth_headers`` go to the batch endpoint only. ``multipart=True`` offers Hugging Face's
    multipart transfer in upload batches.
    """

    def __init__(
        self,
        endpoint: str,
        auth_headers: Mapping[str, str] | None = None,
        *,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
        multipart: bool = False,
        ref: str | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.batch_url = f"{self.endpoint}/objects/batch"
        self._auth = dict(auth_headers or {})
        self.policy = policy
        if timeout is None:
            knobs = policy or RetryPolicy()
            timeout = (knobs.connect_timeout, knobs.read_timeout)
        self.timeout = timeout
        self.multipart = multipart
        self.ref = ref
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.label = f"LFS endpoint {_public(self.endpoint)}"

    # -- batch API ---------------------------------------------------------------------------------

    def plan_uploads(self, objects, http, on_retry=None):
        result: dict[LfsObject, UploadTicket | None | GitMirrorError] = {}
        for entry in self._batch_all("upload", objects, http, on_retry):
            obj, error = entry["_obj"], entry.get("error")
            if error is not None:
                result[obj] = self._object_error("upload", obj, error)
            elif not entry.get("actions"):
                result[obj] = None  # no actions: the server already has it
            else:
                result[obj] = self._upload_ticket(obj, entry)
        return result

    def plan_downloads(self, objects, http, on_retry=None):
        result: dict[LfsObject, DownloadTicket | GitMirrorError] = {}
        for entry in self._batch_all("download", objects, http, on_retry):
            obj, error = entry["_obj"], entry.get("error")
            if error is not None:
                result[obj] = self._object_error("download", obj, error)
                continue
            link = (entry.get("actions") or {}).get("download")
            if link is None:
                result[obj] = ProtocolError(f"{self.label} gave no download link for LFS object {obj.oid}")
            else:
                result[obj] = DownloadTicket(obj, link)
        return result

    def lacking(self, objects, http):
        planned = self.plan_downloads(objects, http)
        return sorted(obj for obj, ticket in planned.items() if not isinstance(ticket, DownloadTicket))

    def _upload_ticket(self, obj: LfsObject, entry: dict) -> UploadTicket | GitMirrorError:
        actions = entry["actions"]
        transfer = entry.get("_transfer", "basic")
        if "upload" not in actions:
            return ProtocolError(f"{self.label} gave no upload link for LFS object {obj.oid}")
        if transfer not in ("basic", "multipart"):
            return ProtocolError(f"{self.label} chose LFS transfer {transfer!r}, which was not offered")
        return UploadTicket(obj, transfer, actions)

    def _object_error(self, operation: Operation, obj: LfsObject, error: dict) -> GitMirrorError:
        code = error.get("code") if isinstance(error, dict) else None
        message = _one_line(str(error.get("message", ""))) if isinstance(error, dict) else ""
        if operation == "download" and code in (404, 410, 422):
            what = {404: "lacks", 410: "has removed", 422: "holds an invalid copy of"}[code]
            return IntegrityError(
                f"source {self.label} {what} LFS object {obj.oid} ({obj.size} bytes): {code} {message}".rstrip()
            )
        return _status_error(code if isinstance(code, int) else 0, f"{self.label}, LFS object {obj.oid}", operation,
                             message=message)

    def _batch_all(
        self, operation: Operation, objects: Sequence[LfsObject], http, on_retry
    ) -> list[dict]:
        """Batch answers for all objects, at most ``batch_size`` a request, halving on a 413."""
        entries: list[dict] = []
        objects = list(dict.fromkeys(objects))
        size, i = self.batch_size, 0
        while i < len(objects):
            chunk = objects[i : i + size]
            try:
                entries.extend(self._batch(operation, chunk, http, on_retry))
            except _TooManyObjects:
                if len(chunk) == 1:
                    raise PermissionDeniedError(
                        f"{self.label} refuses even a one-object LFS {operation} batch (413)"
                    ) from None
                size = max(1, len(chunk) // 2)
                continue
            i += len(chunk)
        return entries

    def _batch(self, operation: Operation, chunk: Sequence[LfsObject], http, on_retry) -> list[dict]:
        body: dict = {
            "operation": operation,
            "transfers": ["basic", "multipart"] if (self.multipart and operation == "upload") else ["basic"],
            "objects": [{"oid": o.oid, "size": o.size} for o in chunk],
            "hash_algo": "sha256",
        }
        if self.ref:
            body["ref"] = {"name": self.ref}
        payload = json.dumps(body).encode()
        what = f"LFS {operation} batch at {self.label}"
        for attempt in retrying(what, self.policy, on_retry):
            with attempt:
                issued = time.time()
                doc = self._post_batch(payload, operation, http)
                return self._entries(doc, chunk, issued)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_batch(self, payload: bytes, operation: Operation, http) -> dict:
        url = self.batch_url
        for _hop in range(5):
            headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
            if _same_origin(url, self.batch_url):
                headers.update(self._auth)  # our credentials go to our endpoint's origin only
            try:
                resp = http.request("POST", url, body=payload, headers=headers, timeout=self.timeout)
            except Exception as exc:
                raise _transport_error(f"LFS {operation} batch at {self.label}", exc) from exc
            if resp.status in (307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])  # keep method and body
                continue
            if resp.status == 413:
                raise _TooManyObjects()
            if resp.status != 200:
                raise _response_error(resp, f"LFS {operation} batch at {self.label}", operation)
            return _json_of(resp, f"LFS {operation} batch at {self.label}")
        raise ProtocolError(f"LFS {operation} batch at {self.label}: too many redirects")

    def _entries(self, doc: dict, chunk: Sequence[LfsObject], issued: float) -> list[dict]:
        """Per-object answers, each with ``_obj`` set and actions parsed to :class:`Link`."""
        transfer = doc.get("transfer") or "basic"
        by_oid: dict[str, dict] = {}
        for raw in doc["objects"]:
            if isinstance(raw, dict) and isinstance(raw.get("oid"), str):
                by_oid[raw["oid"]] = raw
        entries = []
        for obj in chunk:
            raw = by_oid.get(obj.oid)
            if raw is None:
                raise ProtocolError(f"{self.label} left LFS object {obj.oid} out of its batch answer")
            entry: dict = {"_obj": obj, "_transfer": transfer, "error": raw.get("error")}
            actions = raw.get("actions")
            if isinstance(actions, dict) and actions:
                entry["actions"] = {name: _link(spec, issued, self.label) for name, spec in actions.items()}
            entries.append(entry)
        return entries

    # -- object transfers --------------------------------------------------------------------------

    @contextmanager
    def reading(self, ticket: DownloadTicket, http, offset: int = 0) -> Iterator[Iterator[bytes]]:
        assert ticket.link is not None
        link = ticket.link
        # identity: byte counts and Range offsets must refer to the stored bytes, not a gzip of them.
        headers = {"Accept-Encoding": "identity", **link.header}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        what = f"downloading LFS object {ticket.obj.oid} from {_public(link.href)}"
        whole = ticket.obj.size <= CHUNK and not offset  # small: read in one go, not streamed in pieces
        try:
            resp = http.request("GET", link.href, headers=headers, stream=not whole, follow_redirects=True,
                                timeout=self.timeout)
        except Exception as exc:
            raise _transport_error(what, exc) from exc
        if whole:  # read already, and its connection back in the pool
            _check_href_status(resp, what, "download")
            yield iter((resp.data,))
            return
        with resp:  # a body read to its end keeps the connection for the next request
            _check_href_status(resp, what, "download")
            chunks = resp.stream(CHUNK)
            if offset and resp.status != 206:
                chunks = _skip(chunks, offset)  # the server ignored Range: drop what we already have
            yield chunks

    def write(self, ticket: UploadTicket, body: VerifyingStream, http) -> None:
        if ticket.transfer == "multipart":
            self._write_multipart(ticket, body, http)
        else:
            self._put(ticket.actions["upload"], body, body, http, f"uploading LFS object {ticket.obj.oid}")
        if not body.verified:
            raise ProtocolError(
                f"{self.label} answered before receiving all of LFS object {ticket.obj.oid}"
            )
        verify = ticket.actions.get("verify")
        if verify is not None:
            self._verify(verify, ticket.obj, http)

    def _put(self, link: Link, data, body: VerifyingStream, http, what: str) -> urllib3.BaseHTTPResponse:
        what = f"{what} to {_public(link.href)}"
        # An explicit length: without it a file-like body goes out chunked, which object stores refuse.
        headers = {**link.header, "Content-Length": str(len(data))}
        try:
            if data is body and len(body) <= CHUNK:
                # A small object is read (and verified) whole before the request: one send of
                # bytes instead of a file-like read in pieces, which cost more than the bytes.
                data = body.read_whole()
            resp = http.request("PUT", link.href, body=data, headers=headers, timeout=self.timeout)
        except _BodyAborted:
            raise body.failure from None  # type: ignore[misc]
        except Exception as exc:
            if body.failure is not None:
                raise body.failure from None
            raise _transport_error(what, exc) from exc
        _check_href_status(resp, what, "upload")
        return resp

    def _write_multipart(self, ticket: UploadTicket, body: VerifyingStream, http) -> None:
        """Hugging Face multipart: PUT consecutive slices to the numbered part URLs, then complete."""
        obj, action = ticket.obj, ticket.actions["upload"]
        try:
            chunk_size = int(action.header["chunk_size"])
        except (KeyError, ValueError):
            raise ProtocolError(f"{self.label} sent a multipart upload for {obj.oid} without a valid chunk_size") from None
        numbers = sorted(int(k) for k in action.header if k.isdigit())
        expected_parts = max(1, -(-obj.size // chunk_size))
        if numbers != list(range(1, expected_parts + 1)):
            raise ProtocolError(
                f"{self.label} sent {len(numbers)} part URLs for LFS object {obj.oid}, expected {expected_parts}"
            )
        parts = []
        for number in numbers:
            length = min(chunk_size, obj.size - (number - 1) * chunk_size)
            part_link = Link(action.header[str(number)], {}, action.expires_at, action.issued_at)
            resp = self._put(part_link, _Slice(body, length), body, http, f"uploading part {number} of {obj.oid}")
            etag = resp.headers.get("ETag")
            if not etag:
                raise ProtocolError(f"{self.label}: part {number} of LFS object {obj.oid} got no ETag")
            parts.append({"partNumber": number, "etag": etag})
        if not body.verified:
            return  # write() reports it
        self._post_json(
            Link(action.href, {}, action.expires_at, action.issued_at),
            {"oid": obj.oid, "parts": parts},
            http,
            f"completing the multipart upload of LFS object {obj.oid}",
        )

    def _verify(self, link: Link, obj: LfsObject, http) -> None:
        what = f"verifying LFS object {obj.oid}"
        if self._under_endpoint(link.href) and not any(k.lower() == "authorization" for k in link.header):
            # Hugging Face's verify href is its own LFS API (``.../info/lfs/objects/verify``) and
            # gives no header: its client sends the hub token there. That is still our endpoint,
            # not a storage host, so our credentials may go along.
            link = Link(link.href, {**link.header, **self._auth}, link.expires_at, link.issued_at)
        try:
            self._post_json(link, {"oid": obj.oid, "size": obj.size}, http, what)
        except (RepoNotFoundError, IntegrityError) as exc:
            raise IntegrityError(f"{self.label} did not confirm LFS object {obj.oid} after upload: {exc}") from None

    def _under_endpoint(self, href: str) -> bool:
        """True for an href of our own LFS API: same origin, path under the endpoint's."""
        return _same_origin(href, self.endpoint) and urlsplit(href).path.startswith(urlsplit(self.endpoint).path + "/")

    def _post_json(self, link: Link, doc: dict, http, what: str) -> None:
        what = f"{what} at {_public(link.href)}"
        headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE, **link.header}
        try:
            resp = http.request("POST", link.href, body=json.dumps(doc).encode(), headers=headers,
                                timeout=self.timeout)
        except Exception as exc:
            raise _transport_error(what, exc) from exc
        _check_href_status(resp, what, "upload")


class _TooManyObjects(Exception):
    """A batch answered 413: send fewer objects at a time."""


class _Cancelled(GitMirrorError):
    """The run was abandoned; never retried."""


class _StaleLink(TransientError):
    """An href was refused (401/403) or expired: worth asking the batch API again."""


# --------------------------------------------------------------------------------------------------
# HTTP helpers


def _skip(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:]
        count = 0


def _public(url: str) -> str:
    """A URL fit for messages: no user-info, no query string (signed URLs carry secrets there).

    Plain string work rather than urlsplit: it names every object request, thousands a run.
    """
    scheme, sep, rest = url.split("#", 1)[0].split("?", 1)[0].partition("://")
    if not sep:
        return "<url>"
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(scrub(text).split())
    # A server may echo a signed URL back: keep only its public part.
    text = re.sub(r"(https?://[^\s?#]+)\?\S*", r"\1?…", text)
    return text[:limit]


def _link(spec: object, issued: float, label: str) -> Link:
    if not isinstance(spec, dict) or not isinstance(spec.get("href"), str):
        raise ProtocolError(f"{label} sent an action without an href")
    header = spec.get("header") or {}
    if not isinstance(header, dict):
        raise ProtocolError(f"{label} sent an action whose header is not an object")
    # As git-lfs reads them: a relative expires_in wins over an absolute expires_at (the
    # server's clock may differ from ours).
    expires_at = None
    if isinstance(spec.get("expires_in"), (int, float)) and spec["expires_in"] > 0:
        expires_at = issued + float(spec["expires_in"])
    elif isinstance(spec.get("expires_at"), str):
        expires_at = _parse_time(spec["expires_at"])
    return Link(
        href=spec["href"],
        header={str(k): str(v) for k, v in header.items()},
        expires_at=expires_at,
        issued_at=issued,
    )


def _parse_time(value: str) -> float | None:
    """RFC 3339 time as epoch seconds; None when unreadable (or the zero time some servers send)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if when.year <= 1:
        return None
    return when.timestamp()


def _json_of(resp: urllib3.BaseHTTPResponse, what: str) -> dict:
    ctype = resp.headers.get("Content-Type", "")
    try:
        doc = json.loads(resp.data)
    except ValueError:
        kind = "an HTML page" if "html" in ctype.lower() else f"something that is not JSON ({ctype or 'no type'})"
        raise ProtocolError(f"{what} answered {kind}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
        raise ProtocolError(f"{what} answered JSON without an objects list")
    return doc


def _server_message(resp: urllib3.BaseHTTPResponse) -> str:
    try:
        doc = json.loads(resp.data)
    except (ValueError, OSError):  # OSError: the body of a streamed answer broke off
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return _one_line(doc["message"])
    return ""


def _response_error(resp: urllib3.BaseHTTPResponse, what: str, operation: Operation) -> GitMirrorError:
    return _status_error(
        resp.status,
        what,
        operation,
        message=_server_message(resp),
        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
    )


def _status_error(
    status: int, what: str, operation: Operation, *, message: str = "", retry_after: float | None = None
) -> GitMirrorError:
    """The gitmirror error for an HTTP status from the LFS API."""
    text = f"{what}: HTTP {status}" + (f" ({message})" if message else "")
    if status == 401:
        return AuthError(text, hint="check the token for this hub")
    if status == 403:
        if operation == "upload":
            return PermissionDeniedError(text, hint="the token may not write to this repository")
        return AuthError(text, hint="the token may not read this repository")
    if status == 404:
        return RepoNotFoundError(text)
    if status in (410, 422):
        return IntegrityError(text)
    if status in (408, 425, 429) or 500 <= status <= 599:
        return TransientError(text, retry_after=retry_after)
    return GitMirrorError(text)


def _check_href_status(resp: urllib3.BaseHTTPResponse, what: str, operation: Operation) -> None:
    status = resp.status
    if 200 <= status < 300:
        return
    if status in (401, 403):
        # Signed links expire; storage answers 401/403 then. Ask the batch API for a fresh one.
        raise _StaleLink(f"{what}: HTTP {status}, the link is stale or refused; asking for a new one")
    if status in (404, 410) and operation == "download":
        # The batch API promised the object but its storage does not have it: the source lacks it.
        raise IntegrityError(f"{what}: HTTP {status}, the source's storage does not have it")
    if status == 404:
        # An upload link that no longer leads anywhere (an expired upload session): ask again.
        raise _StaleLink(f"{what}: HTTP 404, the link leads nowhere; asking for a new one")
    if 300 <= status < 400 and operation == "upload":
        raise ProtocolError(f"{what}: unexpected redirect (HTTP {status})")
    raise _response_error(resp, what, operation)


def _transport_error(what: str, exc: BaseException) -> GitMirrorError:
    from gitmirror.httpclient import TransportError

    if isinstance(exc, TransportError):  # it says how the connection failed; we say to what
        return TransientError(f"{what}: {exc.message}")
    if isinstance(exc, GitMirrorError):
        return exc
    return TransientError(f"{what}: {type(exc).__name__}: {_one_line(str(exc))}")


# --------------------------------------------------------------------------------------------------
# Transfer


@dataclass
class _Run:
    """State shared by the workers of one :func:`transfer` call."""

    src: LfsStore
    dst: LfsStore
    policy: RetryPolicy
    progress: Callable[[TransferEvent], None] | None
    http: HttpClient
    report: TransferReport
    cache: LocalLfsStore | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set when the run is abandoned (Ctrl-C, a whole-run error): workers stop at their next chunk
    #: instead of finishing multi-gigabyte uploads nobody waits for.
    abort: threading.Event = field(default_factory=threading.Event)

    def check_abort(self) -> None:
        if self.abort.is_set():
            raise _Cancelled("LFS transfer cancelled")

    def emit(self, kind: EventKind, obj: LfsObject, nbytes: int = 0, message: str = "") -> None:
        if self.progress is None:
            return
        try:
            self.progress(TransferEvent(kind, obj, nbytes, message))
        except Exception:  # a broken progress bar must not break a mirror
            log.exception("progress callback failed")

    def count_retry(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.report.retries += 1

    def present(self, obj: LfsObject) -> None:
        with self.lock:
            self.report.already_present += 1
        self.emit("skipped", obj)

    def moved(self, obj: LfsObject) -> None:
        with self.lock:
            self.report.moved += 1
            self.report.bytes_moved += obj.size
        self.emit("done", obj)

    def failed(self, obj: LfsObject, exc: GitMirrorError) -> None:
        with self.lock:
            self.report.failures.append(TransferFailure(obj.oid, str(exc), exc))
        self.emit("failed", obj, message=str(exc))


def transfer(
    objects: Iterable[LfsObject],
    src: LfsStore,
    dst: LfsStore,
    *,
    jobs: int = 8,
    progress: Callable[[TransferEvent], None] | None = None,
    policy: RetryPolicy | None = None,
    lfs_cache: LocalLfsStore | None = None,
) -> TransferReport:
    """Copy to ``dst`` every object of ``objects`` it lacks, streaming from ``src``, ``jobs`` at a time.

    With ``lfs_cache``, objects are staged there instead (downloads resume with ``Range`` after a
    cut, and objects already in the cache are not downloaded again); without it nothing touches disk.

    Moves everything it can, then raises if any object failed (an error of the class of the most
    telling failure, IntegrityError first, carrying the report as ``.report``): the caller must not
    push refs then.
    Whole-run problems (the destination refuses our token, a repository is missing) raise at once.
    """
    started = time.monotonic()
    wanted = sorted(set(objects))
    report = TransferReport(requested=len(wanted))
    run = _Run(src, dst, policy or RetryPolicy(), progress, _client(jobs), report, lfs_cache)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="lfs") as pool:
            pending: set[Future] = set()
            # Finished futures arrive here: waiting on the whole pending set after every completion
            # (concurrent.futures.wait) costs O(pending) each time, ~6 % of the CPU with 2,000 objects.
            finished: queue.SimpleQueue[Future] = queue.SimpleQueue()

            def reap() -> None:
                while True:
                    try:
                        fut = finished.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    pending.discard(fut)
                    _reraise_bugs((fut,))
                    return

            try:
                for start in range(0, len(wanted), MAX_BATCH):
                    chunk = wanted[start : start + MAX_BATCH]
                    for obj, up, down in _plan_chunk(run, chunk):
                        fut = pool.submit(_move_one, run, obj, up, down)
                        pending.add(fut)
                        fut.add_done_callback(finished.put)
                    while len(pending) > PLAN_AHEAD:
                        reap()
                while pending:
                    reap()
            except BaseException:
                run.abort.set()
                for fut in pending:
                    fut.cancel()
                raise
    finally:
        run.http.close()
        report.seconds = time.monotonic() - started
    if report.failures:
        raise _summary_error(report)
    return report


def _client(jobs: int) -> HttpClient:
    from gitmirror.httpclient import HttpClient

    return HttpClient(pool_size=max(4, jobs))


def _reraise_bugs(done: Iterable[Future]) -> None:
    for fut in done:
        fut.result()  # _move_one records expected failures itself; anything raised here is a bug


def _plan_chunk(run: _Run, chunk: list[LfsObject]):
    """Ask dst what it lacks and src where to read it; yield (obj, upload ticket, download ticket)."""
    http = run.http
    uploads = run.dst.plan_uploads(chunk, http, run.count_retry)
    needed = []
    for obj in chunk:
        ticket = uploads.get(obj)
        if ticket is None:
            run.present(obj)
        elif isinstance(ticket, GitMirrorError):
            run.failed(obj, ticket)
        else:
            needed.append(obj)
    if not needed:
        return
    downloads = _plan_sources(run, needed, http)
    for obj in needed:
        down = downloads.get(obj)
        if isinstance(down, GitMirrorError):
            run.failed(obj, down)
        elif down is not None:
            yield obj, uploads[obj], down


def _plan_sources(run: _Run, objects: list[LfsObject], http) -> dict[LfsObject, DownloadTicket | GitMirrorError]:
    """Download tickets; objects already in the cache need no source link."""
    cached = {obj: DownloadTicket(obj) for obj in objects if run.cache is not None and run.cache.has(obj)}
    rest = [obj for obj in objects if obj not in cached]
    planned = run.src.plan_downloads(rest, http, run.count_retry) if rest else {}
    return {**planned, **cached}


def _move_one(run: _Run, obj: LfsObject, up: UploadTicket, down: DownloadTicket) -> None:
    """Stream one object, retrying transient faults; a retry asks both batch APIs again."""
    attempt_no = 0
    sent = _Counter()
    run.emit("started", obj)
    try:
        for attempt in retrying(f"LFS object {obj.oid}", run.policy, run.count_retry):
            with attempt:
                run.check_abort()
                attempt_no += 1
                if attempt_no > 1:
                    run.emit("retrying", obj, sent.take())  # those bytes will be sent again
                if attempt_no > 1 or up.stale() or down.stale():
                    fresh = _replan(run, obj)
                    if fresh is None:
                        run.present(obj)  # an earlier attempt got through after all
                        return
                    up, down = fresh
                _stream(run, obj, up, down, sent)
    except GitMirrorError as exc:
        run.failed(obj, exc)
        return
    run.moved(obj)


class _Counter:
    """Bytes of one object handed to the destination in the current attempt (one worker thread)."""

    def __init__(self) -> None:
        self.value = 0

    def take(self) -> int:
        value, self.value = self.value, 0
        return value


def _replan(run: _Run, obj: LfsObject) -> tuple[UploadTicket, DownloadTicket] | None:
    http = run.http
    up = run.dst.plan_uploads([obj], http, run.count_retry).get(obj)
    if up is None:
        return None
    if isinstance(up, GitMirrorError):
        raise up
    down = _plan_sources(run, [obj], http).get(obj)
    if isinstance(down, GitMirrorError) or down is None:
        raise down or ProtocolError(f"no download ticket for LFS object {obj.oid}")
    return up, down


def _stream(run: _Run, obj: LfsObject, up: UploadTicket, down: DownloadTicket, sent: _Counter) -> None:
    http = run.http
    source: LfsStore = run.src
    if run.cache is not None:
        if not run.cache.has(obj):
            run.cache.fill(obj, lambda offset: run.src.reading(down, http, offset))
        source, down = run.cache, DownloadTicket(obj)

    def advanced(n: int) -> None:
        run.check_abort()  # raised inside the upload body: the PUT is abandoned mid-way
        sent.value += n
        run.emit("advanced", obj, n)

    with source.reading(down, http) as chunks:
        if obj.size <= 2 * CHUNK:  # nothing to overlap: spare the thread (many-small-files repos)
            run.dst.write(up, VerifyingStream(obj, chunks, advanced), http)
            return
        ahead = _ReadAhead(chunks)
        try:
            run.dst.write(up, VerifyingStream(obj, ahead, advanced), http)
        finally:
            ahead.close()


class _ReadAhead:
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

    def __iter__(self) -> "_ReadAhead":
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


def _summary_error(report: TransferReport) -> GitMirrorError:
    """One error for all failures, of the class of the most telling one (integrity first).

    The error carries the report as ``.report`` so that a caller can list every failed object.
    """
    failures = report.failures
    worst = next((f for f in failures if isinstance(f.error, IntegrityError)), failures[0])
    names = ", ".join(f.oid for f in failures[:5]) + (", ..." if len(failures) > 5 else "")
    message = (
        f"{len(failures)} of {report.requested} LFS objects could not be copied ({names}); "
        f"first: {worst.reason}"
    )
    error = type(worst.error)(message)
    error.report = report  # type: ignore[attr-defined]
    return error


def missing(store: LfsStore, objects: Iterable[LfsObject]) -> list[LfsObject]:
    """Which ``objects`` ``store`` lacks, moving no object bytes (for verification)."""
    wanted = sorted(set(objects))
    if not wanted:
        return []
    with _client(1) as http:
        return sorted(store.lacking(wanted, http))
