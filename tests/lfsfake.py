"""A fake HTTP transport for the LFS client, and a fake LFS server to put behind it. No sockets.

:class:`MockTransport` implements :class:`gitmirror.httpclient.Transport` by calling a handler
function, request in, response out, as httpx's ``MockTransport`` does. It reads a file-like
request body the way an HTTP stack does (in pieces, so a body that raises half-way leaves the
handler never called: the server got no complete request), and it follows redirects when asked,
with :mod:`gitmirror.httpclient`'s own rule for dropping credentials off the origin.

:class:`FakeLfs` is such a handler: a batch API on ``https://hub.example`` with storage, multipart
parts and completion on ``https://storage.example``, and knobs for protocol corners.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gitmirror.httpclient import MAX_REDIRECTS, REDIRECT_STATUSES, _redirected
from gitmirror.lfs import LfsObject, LocalLfsStore

LFS_JSON = "application/vnd.git-lfs+json"
HUB = "https://hub.example"
STORAGE = "https://storage.example"
ENDPOINT = f"{HUB}/repo.git/info/lfs"


class Headers(dict):
    """Response headers looked up case-insensitively."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        super().__init__({k.lower(): v for k, v in (values or {}).items()})

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())


class FakeResponse:
    """A response as :class:`gitmirror.httpclient.Response` describes it."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None,
                 reason: str = "") -> None:
        self.status = status
        self.reason = reason
        self.headers = Headers(headers)
        self.data = body
        self.closed = False

    def stream(self, amt: int) -> Iterator[bytes]:
        for start in range(0, len(self.data), amt):
            yield self.data[start : start + amt]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def json_response(status: int, doc: object, headers: dict[str, str] | None = None) -> FakeResponse:
    return FakeResponse(status, json.dumps(doc).encode(), {"Content-Type": LFS_JSON, **(headers or {})})


@dataclass(frozen=True)
class Request:
    """One request as the handler sees it: ``path`` is the path with its query, as a server reads it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class MockTransport:
    """A :class:`gitmirror.httpclient.Transport` answering every request with ``handler(request)``."""

    def __init__(self, handler: Callable[[Request], FakeResponse]) -> None:
        self.handler = handler
        self.requests: list[Request] = []  # every request the handler answered, redirect hops included
        self.abandoned: list[tuple[str, str]] = []  # (method, url) of requests whose body raised
        self.closed = False
        self._lock = threading.Lock()

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None,
                stream: bool = False, follow_redirects: bool = False,
                timeout: float | tuple[float, float] | None = None) -> FakeResponse:
        try:
            data = _read_body(body)
        except BaseException:
            with self._lock:
                self.abandoned.append((method, url))
            raise
        for _hop in range(MAX_REDIRECTS + 1):
            resp = self._send(Request(method, url, dict(headers or {}), data))
            location = resp.headers.get("Location")
            if not (follow_redirects and resp.status in REDIRECT_STATUSES and location):
                return resp
            url, headers = _redirected(url, location, headers)
        return resp

    def _send(self, request: Request) -> FakeResponse:
        with self._lock:
            self.requests.append(request)
        return self.handler(request)

    def close(self) -> None:
        self.closed = True


def _read_body(body: Any) -> bytes | None:
    if body is None or isinstance(body, (bytes, bytearray, memoryview)):
        return None if body is None else bytes(body)
    if not hasattr(body, "__len__"):
        raise AssertionError("a file-like body without a length would go out chunked; object stores refuse that")
    pieces = []
    while piece := body.read(64 * 1024):
        pieces.append(piece)
    return b"".join(pieces)


@dataclass
class FakeLfs:
    """A fake LFS server: a batch API, signed storage hrefs, Hugging Face multipart. Tests tweak the knobs."""

    objects: dict[str, bytes] = field(default_factory=dict)
    parts: dict[tuple[str, int], bytes] = field(default_factory=dict)
    seen: list[tuple[str, str, dict]] = field(default_factory=list)  # (method, path, headers)
    max_batch: int = 100
    redirect_batch_to: str | None = None  # a 307 from the batch URL to this URL
    html: bool = False
    multipart_chunk: int | None = None
    batch_status: int | None = None
    batch_statuses: list[int] = field(default_factory=list)  # answered first, one a batch request
    storage_status: int | None = None
    put_status: int | None = None
    object_errors: dict[str, tuple[int, str]] = field(default_factory=dict)  # oid -> (code, message)
    left_out: set[str] = field(default_factory=set)  # oids a batch answer leaves out
    download_link: dict = field(default_factory=lambda: {"header": {"X-Sig": "h1"}, "expires_in": 3600})
    redirect_downloads_to: str | None = None  # storage GETs answer 302 to this origin
    verify_href: str = f"{HUB}/verify"
    # The object's "authenticated" field: True, False, or None to leave it out.
    authenticated: bool | None = True
    multipart_key_width: int = 0  # part keys zero-padded to this width ("00001" for 5)
    multipart_min_size: int = 0  # objects of at most this size get a basic upload in a multipart batch
    # Upload hrefs on this origin instead of storage's (f"{HUB}" = the endpoint's own), without a header.
    upload_origin: str | None = None
    # Uploads on the hub's origin answer 401 unless they carry exactly this Authorization.
    hub_auth: str | None = None
    stale_puts: int = 0  # the next storage PUTs answer 403 "Request has expired" (an unannounced expiry)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def transport(self) -> MockTransport:
        return MockTransport(self)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p, _ in self.seen if m == method and p.startswith(prefix))

    def __call__(self, req: Request) -> FakeResponse:
        with self.lock:
            self.seen.append((req.method, req.path, req.headers))
        route = getattr(self, f"_{req.method.lower()}")
        return route(req)

    # -- the hub: batch API and verify -----------------------------------------------------------------

    def _post(self, req: Request) -> FakeResponse:
        path = urlsplit(req.url).path
        if req.url == f"{ENDPOINT}/objects/batch" and self.redirect_batch_to:
            return FakeResponse(307, headers={"Location": self.redirect_batch_to})
        if path.endswith("/info/lfs/objects/batch"):
            return self._batch(req.json())
        if path.startswith("/complete/"):
            return self._complete(path.rsplit("/", 1)[1], req.json())
        if req.url.split("?")[0] in (f"{HUB}/verify", f"{ENDPOINT}/objects/verify"):
            doc = req.json()
            ok = doc["oid"] in self.objects and len(self.objects[doc["oid"]]) == doc["size"]
            return json_response(200 if ok else 404, {})
        return FakeResponse(404)

    def _batch(self, doc: dict) -> FakeResponse:
        with self.lock:
            status = self.batch_statuses.pop(0) if self.batch_statuses else self.batch_status
        if status:
            return json_response(status, {"message": "nope"}, {"Retry-After": "0"})
        if self.html:
            return FakeResponse(200, b"<html>login</html>", {"Content-Type": "text/html"})
        if len(doc["objects"]) > self.max_batch:
            return json_response(413, {"message": "too many"})
        transfer = "multipart" if self.multipart_chunk and "multipart" in doc.get("transfers", []) else "basic"
        out = [self._answer(doc["operation"], o["oid"], o["size"], transfer)
               for o in doc["objects"] if o["oid"] not in self.left_out]
        return json_response(200, {"transfer": transfer, "objects": out})

    def _answer(self, operation: str, oid: str, size: int, transfer: str) -> dict:
        entry: dict = {"oid": oid, "size": size}
        if self.authenticated is not None:
            entry["authenticated"] = self.authenticated
        if oid in self.object_errors:
            code, message = self.object_errors[oid]
            entry["error"] = {"code": code, "message": message}
        elif operation == "download":
            if oid in self.objects:
                entry["actions"] = {"download": {"href": f"{STORAGE}/storage/{oid}?sig=SIGNED", **self.download_link}}
            else:
                entry["error"] = {"code": 404, "message": "Object does not exist"}
        elif oid not in self.objects:
            verify: dict = {"href": self.verify_href}
            if self.verify_href == f"{HUB}/verify":
                verify["header"] = {"X-Verify": "v"}
            if transfer == "multipart" and size > self.multipart_min_size:
                assert self.multipart_chunk
                n = max(1, -(-size // self.multipart_chunk))
                header = {"chunk_size": str(self.multipart_chunk)}
                width = self.multipart_key_width
                header.update({f"{i:0{width}d}": f"{STORAGE}/part/{oid}/{i}?sig=P" for i in range(1, n + 1)})
                upload = {"href": f"{STORAGE}/complete/{oid}", "header": header}
            elif self.upload_origin:
                upload = {"href": f"{self.upload_origin}/upload/{oid}"}
            else:
                upload = {"href": f"{STORAGE}/storage/{oid}?sig=SIGNED", "header": {"X-Sig": "h2"}}
            entry["actions"] = {"upload": upload, "verify": verify}
        return entry

    def _complete(self, oid: str, doc: dict) -> FakeResponse:
        data = b"".join(self.parts[(oid, p["partNumber"])] for p in doc["parts"])
        assert all(p["etag"] == f'"etag-{oid[:8]}-{p["partNumber"]}"' for p in doc["parts"])
        if hashlib.sha256(data).hexdigest() == oid:
            self.objects[oid] = data
            return json_response(200, {})
        return json_response(422, {"message": "bad parts"})

    # -- storage ----------------------------------------------------------------------------------------

    def _get(self, req: Request) -> FakeResponse:
        if self.redirect_downloads_to and req.origin == STORAGE:
            return FakeResponse(302, headers={"Location": f"{self.redirect_downloads_to}{req.path}"})
        if self.storage_status:
            return json_response(self.storage_status, {"message": "see https://x.example/a?sig=SIGNED"})
        oid = req.path.split("?")[0].rsplit("/", 1)[1]
        data = self.objects.get(oid)
        if data is None:
            return FakeResponse(404)
        return FakeResponse(200, data, {"Content-Type": "application/octet-stream"})

    def _put(self, req: Request) -> FakeResponse:
        if self.put_status:
            return json_response(self.put_status, {"message": "storage trouble"})
        path = req.path.split("?")[0]
        if path.startswith("/upload/") and req.origin != STORAGE:
            if req.origin != HUB or self.hub_auth is None or req.headers.get("Authorization") != self.hub_auth:
                return json_response(401, {"message": "Authentication required"},
                                     {"WWW-Authenticate": 'Basic realm="fake"'})
        with self.lock:
            stale, self.stale_puts = self.stale_puts > 0, max(0, self.stale_puts - 1)
        if stale:
            return json_response(403, {"message": "Request has expired"})
        assert req.body is not None
        if path.startswith("/part/"):
            _, _, oid, n = path.split("/")
            self.parts[(oid, int(n))] = req.body
            return FakeResponse(200, headers={"ETag": f'"etag-{oid[:8]}-{n}"'})
        oid = path.rsplit("/", 1)[1]
        self.objects[oid] = req.body  # stores whatever complete body it gets, right or wrong
        return FakeResponse(200)


def obj_of(data: bytes) -> LfsObject:
    """The LFS object of ``data``."""
    return LfsObject(hashlib.sha256(data).hexdigest(), len(data))


def local_with(tmp_path: Path, blobs: list[bytes]) -> tuple[LocalLfsStore, list[LfsObject]]:
    """A local LFS store under ``tmp_path/objects`` holding ``blobs``, and their objects in order."""
    local = LocalLfsStore(tmp_path / "objects")
    objs = []
    for data in blobs:
        obj = obj_of(data)
        path = local.path_of(obj.oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        objs.append(obj)
    return local, objs
