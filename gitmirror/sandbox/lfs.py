"""The server side of Git LFS: the batch API, verify, and the object storage port.

Objects live in the bare repository's ``lfs/objects/aa/bb/<oid>`` (git-lfs's own layout).
Object hrefs point at the hub's second port ("storage", like the hubs' CDN/S3) and are signed
with an HMAC that covers operation, repository, oid, size and expiry:

* ``object_auth = "query"`` (HF): presigned URL (``sig`` in the query), no header; any
  ``Authorization`` sent along is refused with 400, as S3 does.
* ``object_auth = "header"`` (ModelScope, plain git; GitLab-like): the action's ``header``
  carries a per-object ``Authorization`` that must come back exactly.

Either way a request to storage that carries one of the hub's own tokens is refused (403):
a client must not leak its hub credentials to object hosts. Multipart uploads (HF) use
presigned part URLs and a presigned completion URL on the storage port; their part keys are
zero-padded (``"00001"``, as huggingface.js documents), and a batch is answered per object (a
small object beside a multipart one gets a plain upload action; the batch's ``transfer`` field
says ``multipart`` for both, as on the real hub).

Link options (hub options, see ``Sandbox.add_hub``):

* ``upload_href_on_hub_origin``: upload hrefs (basic) are ``<lfs endpoint>/objects/upload/<oid>``
  on the hub's own port instead of the storage port, signed as above;
* ``upload_requires_hub_auth`` (implies the former): those hrefs and ``verify`` carry no signature
  and no header, the objects are not marked ``authenticated``, and the hub's own git credentials
  are required there (401 without them): what ModelScope's SDK assumes of its upload hrefs;
* ``upload_href_ttl``: seconds an upload (and verify) href lives (None: ``href_ttl``; the real
  Hugging Face presigns S3 uploads for 15 minutes, 900);
* ``announce_href_expiry``: False leaves ``expires_in``/``expires_at`` out of every action (a
  client learns of an expired link from the storage's 403).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from gitmirror.sandbox.http import HttpError, Request, Response, json_response
from gitmirror.sandbox.kinds import HubKind, HubView
from gitmirror.sandbox.state import Principal, RepoKey
from gitmirror.sandbox.streams import BodyReader

LFS_JSON = "application/vnd.git-lfs+json"
OID_RE = re.compile(r"^[0-9a-f]{64}$")
OBJECT_USER = "lfs-object"  # user name inside the per-object Basic header (GitLab style)


def lfs_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, obj, headers, content_type=LFS_JSON)


def lfs_error(status: int, message: str, headers: dict[str, str] | None = None) -> HttpError:
    return HttpError(lfs_response(status, {"message": message}, headers))


def object_path(repo_path: Path, oid: str) -> Path:
    return Path(object_file(repo_path, oid))


def object_file(repo_path: Path, oid: str) -> str:
    """:func:`object_path` as a string: every LFS request asks, and pathlib showed in profiles."""
    return f"{repo_path}/lfs/objects/{oid[0:2]}/{oid[2:4]}/{oid}"


def stored_size(repo_path: Path, oid: str) -> int | None:
    try:
        return os.stat(object_file(repo_path, oid)).st_size
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectGrant:
    """What a signed storage URL allows: one operation on one object until ``expires``
    (milliseconds since the epoch, so tests can use sub-second TTLs)."""

    op: str  # "download" | "upload" | "verify" | "part" | "complete"
    key: RepoKey
    oid: str
    size: int
    expires: int
    extra: str = ""  # upload id and part number for multipart

    def message(self) -> bytes:
        fields = (self.op, self.key.repo_type, self.key.repo_id, self.oid, str(self.size),
                  str(self.expires), self.extra)
        return "\n".join(fields).encode()


class Signer:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def sign(self, grant: ObjectGrant) -> str:
        return hmac.digest(self._secret, grant.message(), "sha256").hex()

    def valid(self, grant: ObjectGrant, signature: str) -> bool:
        return hmac.compare_digest(self.sign(grant), signature or "")


class LfsHubView(HubView, Protocol):
    """What the LFS code uses of a hub, beyond what a kind may (the hub is
    :class:`gitmirror.sandbox.hub.Hub`, which imports this module)."""

    kind: HubKind
    signer: Signer
    token_leaks: int  # storage requests refused because they carried a hub token

    def repo_path(self, repo: str | RepoKey, repo_type: str = "model") -> Path: ...

    def lfs_url(self, repo: str | RepoKey, repo_type: str = "model") -> str: ...


def storage_href(hub: LfsHubView, grant: ObjectGrant, presigned: bool) -> str:
    path = f"/{grant.op}/{grant.key.repo_type}/{_quoted(grant.key.repo_id)}/{grant.oid}"
    # The values are digits, hex and dots, which need no escaping (built by hand: a batch makes thousands).
    query = f"size={grant.size}&exp={grant.expires}"
    if grant.extra:
        query += f"&x={quote(grant.extra)}"
    if presigned:
        query += f"&sig={hub.signer.sign(grant)}"
    return f"{hub.storage_endpoint}{path}?{query}"


@functools.lru_cache(maxsize=256)
def _quoted(repo_id: str) -> str:
    return quote(repo_id)


def object_auth_header(hub: LfsHubView, grant: ObjectGrant) -> str:
    raw = f"{OBJECT_USER}:{hub.signer.sign(grant)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def now_ms() -> int:
    return int(time.time() * 1000)


def _expiry_fields(hub: LfsHubView, expires: int) -> dict[str, Any]:
    """``expires_in`` and ``expires_at`` of an action, or nothing when the hub announces no expiry."""
    if not hub.options.get("announce_href_expiry", True):
        return {}
    return {"expires_in": max(0, (expires - now_ms()) // 1000), "expires_at": _timestamp(expires)}


@functools.lru_cache(maxsize=64)
def _timestamp(ms: int) -> str:
    """RFC 3339 with milliseconds; a batch's links all expire at the same moment."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def make_action(hub: LfsHubView, grant: ObjectGrant, href: str | None = None) -> dict[str, Any]:
    """One action dict: href (+ header) for ``grant``, signed the kind's way."""
    presigned = hub.kind.object_auth == "query"
    if href is None:
        href = storage_href(hub, grant, presigned)
    else:  # an href on the hub port (verify, uploads there): the expiry, and the signature if presigned
        separator = "&" if "?" in href else "?"
        href = f"{href}{separator}exp={grant.expires}" + (f"&sig={hub.signer.sign(grant)}" if presigned else "")
    action: dict[str, Any] = {"href": href}
    if not presigned:
        action["header"] = {"Authorization": object_auth_header(hub, grant)}
    action.update(_expiry_fields(hub, grant.expires))
    return action


# --------------------------------------------------------------------------------------------
# Batch API (hub port)
# --------------------------------------------------------------------------------------------
def handle_batch(hub: LfsHubView, key: RepoKey, request: Request, principal: Principal | None) -> Response:
    body = request.json()
    if not isinstance(body, dict):
        raise lfs_error(422, "batch request must be a JSON object")
    operation = body.get("operation")
    objects = body.get("objects")
    if operation not in ("upload", "download") or not isinstance(objects, list):
        raise lfs_error(422, "batch request needs operation upload|download and a list of objects")
    repo = hub.state.get_repo(key)
    if operation == "upload":
        hub.kind.can_write(hub, principal, key, repo)
    else:
        hub.kind.can_read(hub, principal, key, repo)
    if len(objects) > hub.options["max_batch_objects"]:
        raise lfs_error(413, f"too many objects in one batch (max {hub.options['max_batch_objects']})")
    offered = body.get("transfers") or ["basic"]
    if not isinstance(offered, list):
        offered = ["basic"]
    # One expiry for the whole answer: every link of a batch is issued at the same moment.
    expires = now_ms() + int(float(_href_ttl(hub, operation)) * 1000)
    answers = [_batch_object(hub, key, operation, obj, offered, expires) for obj in objects]
    transfer = "multipart" if any(a.pop("_multipart", False) for a in answers) else "basic"
    return lfs_response(200, {"transfer": transfer, "objects": answers, "hash_algo": "sha256"})


def _href_ttl(hub: LfsHubView, operation: str) -> float:
    """Seconds the hrefs of an ``operation`` batch live (``upload_href_ttl`` for uploads, if set)."""
    upload_ttl = hub.options.get("upload_href_ttl")
    if operation == "upload" and upload_ttl is not None:
        return float(upload_ttl)
    return float(hub.options["href_ttl"])


def _hub_auth_uploads(hub: LfsHubView) -> bool:
    """True when upload and verify hrefs want the hub's own credentials (see the module docstring)."""
    return bool(hub.options.get("upload_requires_hub_auth"))


def _uploads_on_hub(hub: LfsHubView) -> bool:
    """True when basic upload hrefs are on the hub's port (hub credentials imply it: the storage
    port refuses them as a leak)."""
    return bool(hub.options.get("upload_href_on_hub_origin")) or _hub_auth_uploads(hub)


def _upload_action(hub: LfsHubView, key: RepoKey, grant: ObjectGrant) -> dict[str, Any]:
    """The basic upload action: on the storage port, or on the hub's own (signed, or bare)."""
    if not _uploads_on_hub(hub):
        return make_action(hub, grant)
    href = f"{hub.lfs_url(key)}/objects/upload/{grant.oid}"
    if _hub_auth_uploads(hub):
        return {"href": f"{href}?size={grant.size}&exp={grant.expires}", **_expiry_fields(hub, grant.expires)}
    return make_action(hub, grant, href=f"{href}?size={grant.size}")


def _verify_action(hub: LfsHubView, key: RepoKey, grant: ObjectGrant) -> dict[str, Any]:
    href = hub.lfs_url(key) + "/objects/verify"
    if _hub_auth_uploads(hub):
        return {"href": href, **_expiry_fields(hub, grant.expires)}
    return make_action(hub, grant, href=href)


def _batch_object(hub: LfsHubView, key: RepoKey, operation: str, obj: Any, offered: list[str],
                  expires: int) -> dict[str, Any]:
    oid = obj.get("oid") if isinstance(obj, dict) else None
    size = obj.get("size") if isinstance(obj, dict) else None
    if not isinstance(oid, str) or not OID_RE.match(oid) or not isinstance(size, int) or size < 0:
        return {"oid": oid, "size": size, "error": {"code": 422, "message": "invalid object"}}
    repo_path = hub.repo_path(key)
    have = stored_size(repo_path, oid)
    answer: dict[str, Any] = {"oid": oid, "size": size}
    if not (operation == "upload" and _hub_auth_uploads(hub)):
        answer["authenticated"] = True
    if operation == "download":
        if have is None:
            answer["error"] = {"code": 404, "message": "Object does not exist"}
        elif have != size:
            answer["error"] = {"code": 422, "message": f"Object size mismatch: stored {have}"}
        else:
            grant = ObjectGrant("download", key, oid, size, expires)
            answer["actions"] = {"download": make_action(hub, grant)}
        return answer
    if have == size:
        return answer  # already stored: no actions at all
    transfer = hub.kind.choose_transfer(hub, offered, operation, size)
    if transfer == "multipart" and "multipart" in offered:
        answer["actions"] = _multipart_actions(hub, key, oid, size, expires)
        answer["_multipart"] = True
    else:
        answer["actions"] = {"upload": _upload_action(hub, key, ObjectGrant("upload", key, oid, size, expires))}
    answer["actions"]["verify"] = _verify_action(hub, key, ObjectGrant("verify", key, oid, size, expires))
    return answer


def _multipart_actions(hub: LfsHubView, key: RepoKey, oid: str, size: int, expires: int) -> dict[str, Any]:
    chunk = int(hub.options["multipart_chunk_size"])
    upload_id = secrets.token_hex(8)
    count = max(1, -(-size // chunk))
    header: dict[str, str] = {"chunk_size": str(chunk)}
    width = int(hub.options.get("multipart_key_width", 5))  # huggingface.js: "00001" .. "99999"
    for number in range(1, count + 1):
        grant = ObjectGrant("part", key, oid, size, expires, f"{upload_id}.{number}")
        header[f"{number:0{width}d}"] = storage_href(hub, grant, presigned=True)
    complete = ObjectGrant("complete", key, oid, size, expires, upload_id)
    action = {"href": storage_href(hub, complete, presigned=True), "header": header}
    action.update(_expiry_fields(hub, expires))
    return {"upload": action}


def handle_verify(hub: LfsHubView, key: RepoKey, request: Request) -> Response:
    """``POST .../objects/verify`` ``{oid,size}``: 200 when stored with that size, else 404.

    Accepted credentials: the action's own signature (header or query), or a hub token with
    write access (HF clients send their token here; the href is under the LFS endpoint).
    """
    body = request.json()
    oid = body.get("oid") if isinstance(body, dict) else None
    size = body.get("size") if isinstance(body, dict) else None
    if not isinstance(oid, str) or not OID_RE.match(oid) or not isinstance(size, int):
        raise lfs_error(422, "verify needs oid and size")
    if not _verify_signed(hub, key, oid, size, request):
        principal = hub.kind.authenticate(hub, request)
        hub.kind.can_write(hub, principal, key, hub.state.get_repo(key))
    have = stored_size(hub.repo_path(key), oid)
    if have != size:
        raise lfs_error(404, f"object {oid} not stored" if have is None else f"object {oid} size mismatch")
    return lfs_response(200, {"message": "ok"})


def _verify_signed(hub: LfsHubView, key: RepoKey, oid: str, size: int, request: Request) -> bool:
    """True when the request carries this verify action's own (valid, live) signature."""
    basic = request.basic_auth()
    signature = request.query_value("sig") or (basic[1] if basic and basic[0] == OBJECT_USER else None)
    exp = request.query_value("exp") or ""
    if not signature or not exp.isdigit():
        return False
    grant = ObjectGrant("verify", key, oid, size, int(exp))
    if not hub.signer.valid(grant, signature):
        raise lfs_error(403, "bad signature")
    if grant.expires < now_ms():
        raise lfs_error(403, "verify link expired")
    return True


# --------------------------------------------------------------------------------------------
# Storage port
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileBody:
    """A response whose body is (part of) a file, streamed by the server."""

    status: int
    path: str
    start: int
    length: int
    headers: dict[str, str]


STORAGE_PATH = re.compile(r"^/(download|upload|part|complete)/(model|dataset|space)/(.+)/([0-9a-f]{64})$")


def parse_storage_path(path: str) -> tuple[str, RepoKey, str] | None:
    match = STORAGE_PATH.match(path)
    if not match:
        return None
    op, repo_type, repo_id, oid = match.groups()
    return op, RepoKey(repo_type, repo_id), oid


def authorize_storage(hub: LfsHubView, request: Request, op: str, key: RepoKey, oid: str) -> ObjectGrant:
    """Check a storage request's signature and expiry; refuse hub credentials outright."""
    _refuse_hub_credentials(hub, request)
    return _signed_grant(hub, request, op, key, oid)


def _grant_from_query(request: Request, op: str, key: RepoKey, oid: str) -> ObjectGrant:
    try:
        size = int(request.query_value("size") or "")
        expires = int(request.query_value("exp") or "")
    except ValueError:
        raise lfs_error(400, "malformed object URL") from None
    return ObjectGrant(op, key, oid, size, expires, request.query_value("x") or "")


def _signed_grant(hub: LfsHubView, request: Request, op: str, key: RepoKey, oid: str) -> ObjectGrant:
    """The grant an object URL's signature (query or per-object header) and expiry allow."""
    grant = _grant_from_query(request, op, key, oid)
    expires = grant.expires
    query_sig = request.query_value("sig")
    auth = request.header("authorization")
    if query_sig is not None:
        if auth:  # S3 answers this way when a presigned URL also gets an Authorization header
            raise lfs_error(400, "Only one auth mechanism allowed")
        signature = query_sig
    else:
        basic = request.basic_auth()
        signature = basic[1] if basic and basic[0] == OBJECT_USER else ""
    if not signature or not hub.signer.valid(grant, signature):
        raise lfs_error(403, "invalid or missing object signature")
    if expires < now_ms():
        raise lfs_error(403, "Request has expired")
    if hub.state.get_repo(key) is None:
        raise lfs_error(404, "no such repository")
    return grant


def _refuse_hub_credentials(hub: LfsHubView, request: Request) -> None:
    presented = {request.bearer_token()}
    basic = request.basic_auth()
    if basic:
        presented.update(basic)
    presented.add((request.header("authorization") or "").strip())
    presented.discard(None)
    presented.discard("")
    if any(hub.state.lookup_token(value) for value in presented):
        with hub.state.lock:
            hub.token_leaks += 1
        raise lfs_error(403, "hub credentials must not be sent to object storage")


def storage_get(hub: LfsHubView, request: Request, grant: ObjectGrant) -> FileBody:
    if grant.op != "download":
        raise lfs_error(405, "method not allowed")
    path = object_file(hub.repo_path(grant.key), grant.oid)
    try:
        total = os.stat(path).st_size
    except FileNotFoundError:
        raise lfs_error(404, "object not found") from None
    start, end = _parse_range(request.header("range"), total)
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
               "ETag": f'"{grant.oid}"'}
    if start == 0 and end == total - 1 and not request.header("range"):
        return FileBody(200, path, 0, total, headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return FileBody(206, path, start, end - start + 1, headers)


def _parse_range(value: str | None, total: int) -> tuple[int, int]:
    if not value:
        return 0, total - 1
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if not match or (not match.group(1) and not match.group(2)):
        raise lfs_error(416, "unsupported Range", {"Content-Range": f"bytes */{total}"})
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        start, end = max(0, total - int(last)), total - 1
    else:
        start, end = int(first), (int(last) if last else total - 1)
    end = min(end, total - 1)
    if start >= total or start > end:
        raise lfs_error(416, "range not satisfiable", {"Content-Range": f"bytes */{total}"})
    return start, end


def _content_length(request: Request) -> int:
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        raise lfs_error(411, "chunked uploads are not accepted; send Content-Length")
    value = request.header("content-length")
    if value is None or not value.strip().isdigit():
        raise lfs_error(411, "Content-Length required")
    return int(value)


def storage_put(hub: LfsHubView, request: Request, grant: ObjectGrant, body: BodyReader) -> Response:
    """Store an object, checking size and sha256 while streaming; nothing kept on mismatch."""
    length = _content_length(request)
    if grant.op == "part":
        return _store_part(hub, grant, body)
    if grant.op != "upload":
        raise lfs_error(405, "method not allowed")
    if length != grant.size:
        body.drain()
        raise lfs_error(422, f"Content-Length {length} does not match object size {grant.size}")
    target = object_file(hub.repo_path(grant.key), grant.oid)
    _stream_to_store(hub, grant, [body], target)
    return Response(200, b"", {"ETag": f'"{grant.oid}"'})


HUB_UPLOAD_TAIL = re.compile(r"^/info/lfs/objects/upload/([0-9a-f]{64})$")


def hub_upload(hub: LfsHubView, request: Request, key: RepoKey, tail: str, body: BodyReader) -> Response:
    """``PUT <lfs endpoint>/objects/upload/<oid>?size=&exp=`` on the hub's own port (the
    ``upload_href_on_hub_origin`` option): the hub's git credentials with write access when
    ``upload_requires_hub_auth`` is set (401 without them), else the action's own signature."""
    match = HUB_UPLOAD_TAIL.match(tail)
    if match is None or request.method != "PUT" or not _uploads_on_hub(hub):
        raise lfs_error(404, "Not Found")
    oid = match.group(1)
    if _hub_auth_uploads(hub):
        principal = hub.kind.authenticate(hub, request)
        hub.kind.can_write(hub, principal, key, hub.state.get_repo(key))
        grant = _grant_from_query(request, "upload", key, oid)
        if grant.expires < now_ms():
            raise lfs_error(403, "Request has expired")
    else:
        grant = _signed_grant(hub, request, "upload", key, oid)
    return storage_put(hub, request, grant, body)


def _temp_file(hub: LfsHubView, key: RepoKey) -> tuple[int, str]:
    """A new temp file in the repository's ``lfs/tmp`` (made on first use).

    Named and opened here rather than by ``tempfile.mkstemp``, whose argument checks and name
    generator cost more than the rest of storing a small object.
    """
    folder = f"{hub.repo_path(key)}/lfs/tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = f"{folder}/in-{secrets.token_hex(8)}"
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
    raise FileExistsError(f"no free temporary name in {folder}")


def _stream_to_store(hub: LfsHubView, grant: ObjectGrant, sources: list[Any], target: str) -> None:
    """Copy ``sources`` (readers) into a temp file, hash them, and rename into place if right."""
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = _temp_file(hub, grant.key)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                while True:
                    data = source.read(1024 * 1024)
                    if not data:
                        break
                    written += len(data)
                    digest.update(data)
                    out.write(data)
        if written != grant.size or digest.hexdigest() != grant.oid:
            raise lfs_error(422, f"object does not match its oid/size (got {written} bytes, "
                                 f"sha256 {digest.hexdigest()})")
        try:
            os.replace(tmp_name, target)
        except FileNotFoundError:  # the object's fan-out folder does not exist yet
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _parts_dir(hub: LfsHubView, grant: ObjectGrant, upload_id: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{16}", upload_id):
        raise lfs_error(400, "bad upload id")
    return hub.repo_path(grant.key) / "lfs" / "multipart" / f"{grant.oid}-{upload_id}"


def _store_part(hub: LfsHubView, grant: ObjectGrant, body: BodyReader) -> Response:
    upload_id, _, number = grant.extra.partition(".")
    folder = _parts_dir(hub, grant, upload_id)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5()  # S3 part ETags are the part's MD5
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix="part-")
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                data = body.read(1024 * 1024)
                if not data:
                    break
                digest.update(data)
                out.write(data)
        etag = digest.hexdigest()
        os.replace(tmp_name, folder / f"{int(number)}.{etag}")
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return Response(200, b"", {"ETag": f'"{etag}"'})


def storage_complete(hub: LfsHubView, request: Request, grant: ObjectGrant) -> Response:
    """``POST`` the completion href with ``{"oid", "parts": [{"partNumber", "etag"}]}``."""
    if grant.op != "complete":
        raise lfs_error(405, "method not allowed")
    body = request.json()
    parts = body.get("parts") if isinstance(body, dict) else None
    if not isinstance(parts, list) or body.get("oid") != grant.oid:
        raise lfs_error(400, "completion needs the oid and a list of parts")
    folder = _parts_dir(hub, grant, grant.extra)
    files = []
    for expected, part in enumerate(sorted(parts, key=lambda p: p.get("partNumber", 0)), start=1):
        etag = str(part.get("etag", "")).strip('"')
        path = folder / f"{expected}.{etag}"
        if part.get("partNumber") != expected or not path.exists():
            raise lfs_error(400, f"part {expected} missing or its etag does not match")
        files.append(path)
    target = object_file(hub.repo_path(grant.key), grant.oid)
    handles = [path.open("rb") for path in files]
    try:
        _stream_to_store(hub, grant, handles, target)
    finally:
        for handle in handles:
            handle.close()
        _remove_tree(folder)
    return lfs_response(200, {"oid": grant.oid, "size": grant.size})


def _remove_tree(folder: Path) -> None:
    for child in folder.glob("*"):
        child.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass
