"""The HTTP LFS client against a minimal in-test batch server, for protocol corners the sandbox
hubs need not reproduce: 307 on the batch URL, 413 halving, HTML answers, multipart assembly,
a body aborted mid-upload, and which headers reach the storage host."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gitmirror.errors import AuthError, IntegrityError, PermissionDeniedError, ProtocolError, RepoNotFoundError
from gitmirror.lfs import CHUNK, HttpLfsStore, LfsObject, LocalLfsStore, missing, transfer
from gitmirror.retry import FAST

TOKEN = "Bearer s3cr3t-hub-token"


def obj_of(data: bytes) -> LfsObject:
    return LfsObject(hashlib.sha256(data).hexdigest(), len(data))


@dataclass
class FakeLfs:
    """State of the fake server; tests tweak the knobs."""

    objects: dict[str, bytes] = field(default_factory=dict)
    parts: dict[tuple[str, int], bytes] = field(default_factory=dict)
    seen: list[tuple[str, str, dict]] = field(default_factory=list)  # (method, path, headers)
    max_batch: int = 100
    redirect_batch: bool = False
    html: bool = False
    multipart_chunk: int | None = None
    batch_status: int | None = None
    storage_status: int | None = None
    verify_href: str = "/verify"
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", ctype="application/vnd.git-lfs+json", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    self._send(411, b'{"message":"chunked bodies refused"}')
                    self.close_connection = True
                    return None
                length = int(self.headers.get("Content-Length", "0"))
                data = b""
                while len(data) < length:
                    piece = self.rfile.read(min(65536, length - len(data)))
                    if not piece:
                        self.close_connection = True
                        return None  # client went away mid-body: nothing is stored
                    data += piece
                return data

            def do_POST(self):
                fake.seen.append(("POST", self.path, dict(self.headers)))
                body = self._body()
                if body is None:
                    return
                if self.path == "/repo.git/info/lfs/objects/batch" and fake.redirect_batch:
                    return self._send(307, headers={"Location": "/moved.git/info/lfs/objects/batch"})
                if self.path.endswith("/info/lfs/objects/batch"):
                    return self._batch(json.loads(body))
                if self.path.startswith("/complete/"):
                    oid = self.path.rsplit("/", 1)[1]
                    doc = json.loads(body)
                    data = b"".join(fake.parts[(oid, p["partNumber"])] for p in doc["parts"])
                    assert all(p["etag"] == f'"etag-{oid[:8]}-{p["partNumber"]}"' for p in doc["parts"])
                    if hashlib.sha256(data).hexdigest() == oid:
                        fake.objects[oid] = data
                        return self._send(200, b"{}")
                    return self._send(422, b'{"message":"bad parts"}')
                if self.path in ("/verify", "/repo.git/info/lfs/objects/verify"):
                    doc = json.loads(body)
                    ok = len(fake.objects.get(doc["oid"], b"")) == doc["size"] and doc["oid"] in fake.objects
                    return self._send(200 if ok else 404, b"{}")
                self._send(404)

            def _batch(self, doc):
                if fake.batch_status:
                    return self._send(fake.batch_status, b'{"message":"nope"}', headers={"Retry-After": "0"})
                if fake.html:
                    return self._send(200, b"<html>login</html>", ctype="text/html")
                if len(doc["objects"]) > fake.max_batch:
                    return self._send(413, b'{"message":"too many"}')
                transfer = "basic"
                if fake.multipart_chunk and "multipart" in doc.get("transfers", []):
                    transfer = "multipart"
                out = []
                for o in doc["objects"]:
                    oid, size = o["oid"], o["size"]
                    have = oid in fake.objects
                    entry: dict = {"oid": oid, "size": size}
                    if doc["operation"] == "download":
                        if have:
                            entry["actions"] = {"download": {"href": f"{fake.url}/storage/{oid}?sig=SIGNED",
                                                             "header": {"X-Sig": "h1"}, "expires_in": 3600}}
                        else:
                            entry["error"] = {"code": 404, "message": "Object does not exist"}
                    elif not have:
                        verify = {"href": f"{fake.url}{fake.verify_href}"}
                        if fake.verify_href == "/verify":
                            verify["header"] = {"X-Verify": "v"}
                        if transfer == "multipart":
                            n = max(1, -(-size // fake.multipart_chunk))
                            header = {"chunk_size": str(fake.multipart_chunk)}
                            header.update({str(i): f"{fake.url}/part/{oid}/{i}?sig=P" for i in range(1, n + 1)})
                            upload = {"href": f"{fake.url}/complete/{oid}", "header": header}
                        else:
                            upload = {"href": f"{fake.url}/storage/{oid}?sig=SIGNED", "header": {"X-Sig": "h2"}}
                        entry["actions"] = {"upload": upload, "verify": verify}
                    out.append(entry)
                self._send(200, json.dumps({"transfer": transfer, "objects": out}).encode())

            def do_GET(self):
                fake.seen.append(("GET", self.path, dict(self.headers)))
                if fake.storage_status:
                    return self._send(fake.storage_status, b'{"message":"see https://x.example/a?sig=SIGNED"}')
                oid = self.path.split("?")[0].rsplit("/", 1)[1]
                data = fake.objects.get(oid)
                if data is None:
                    return self._send(404)
                self._send(200, data, ctype="application/octet-stream")

            def do_PUT(self):
                fake.seen.append(("PUT", self.path, dict(self.headers)))
                body = self._body()
                if body is None:
                    return
                path = self.path.split("?")[0]
                if path.startswith("/part/"):
                    _, _, oid, n = path.split("/")
                    fake.parts[(oid, int(n))] = body
                    return self._send(200, headers={"ETag": f'"etag-{oid[:8]}-{n}"'})
                oid = path.rsplit("/", 1)[1]
                fake.objects[oid] = body  # stores whatever complete body it gets, right or wrong
                self._send(200)

        return Handler


@pytest.fixture
def fake():
    state = FakeLfs()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def store(fake: FakeLfs, **kw) -> HttpLfsStore:
    return HttpLfsStore(f"{fake.url}/repo.git/info/lfs", {"Authorization": TOKEN}, policy=FAST, **kw)


def local_with(tmp_path, blobs) -> tuple[LocalLfsStore, list[LfsObject]]:
    local = LocalLfsStore(tmp_path / "objects")
    objs = []
    for data in blobs:
        obj = obj_of(data)
        path = local.path_of(obj.oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        objs.append(obj)
    return local, objs


def test_upload_download_round_trip_and_headers(fake, tmp_path):
    blobs = [os.urandom(n) for n in (0, 10, 3 * CHUNK + 1)]
    local, objs = local_with(tmp_path, blobs)
    remote = store(fake)
    report = transfer(objs, local, remote)
    assert report.moved == 3
    assert all(fake.objects[o.oid] == b for o, b in zip(objs, blobs))
    assert missing(remote, objs) == []
    back = LocalLfsStore(tmp_path / "back")
    assert transfer(objs, remote, back).moved == 3
    assert all(back.path_of(o.oid).read_bytes() == b for o, b in zip(objs, blobs))
    # The hub token went to the batch endpoint only; hrefs got exactly their own headers.
    for method, path, headers in fake.seen:
        if path.endswith("/objects/batch"):
            assert headers.get("Authorization") == TOKEN
        else:
            assert "Authorization" not in headers
            if path.startswith("/storage/"):
                assert headers.get("X-Sig") == ("h1" if method == "GET" else "h2")
                if method == "PUT":
                    assert int(headers["Content-Length"]) in (0, 10, 3 * CHUNK + 1)
            if path == "/verify":
                assert headers.get("X-Verify") == "v"


def test_present_objects_skipped(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"one", b"two"])
    fake.objects[objs[0].oid] = b"one"
    report = transfer(objs, local, store(fake))
    assert (report.moved, report.already_present) == (1, 1)


def test_batch_307_keeps_method_and_body(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"redirected"])
    fake.redirect_batch = True
    assert transfer(objs, local, store(fake)).moved == 1
    posts = [p for m, p, _ in fake.seen if m == "POST" and p.endswith("/batch")]
    assert posts[:2] == ["/repo.git/info/lfs/objects/batch", "/moved.git/info/lfs/objects/batch"]


def test_413_halves_the_batch(fake, tmp_path):
    local, objs = local_with(tmp_path, [i.to_bytes(2, "big") for i in range(30)])
    fake.max_batch = 8
    report = transfer(objs, local, store(fake))
    assert report.moved == 30


def test_html_answer_is_a_protocol_error(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"x"])
    fake.html = True
    with pytest.raises(ProtocolError, match="HTML"):
        transfer(objs, local, store(fake))


@pytest.mark.parametrize(
    "status,operation,error",
    [
        (401, "upload", AuthError),
        (403, "upload", PermissionDeniedError),
        (403, "download", AuthError),
        (404, "upload", RepoNotFoundError),
    ],
)
def test_batch_status_mapping(fake, tmp_path, status, operation, error):
    local, objs = local_with(tmp_path, [b"x"])
    fake.objects[objs[0].oid] = b"x"
    fake.batch_status = status
    remote = store(fake)
    with pytest.raises(error) as info:
        if operation == "upload":
            transfer(objs, local, remote)
        else:
            transfer(objs, remote, LocalLfsStore(tmp_path / "d"))
    assert "s3cr3t" not in str(info.value) and "\n" not in str(info.value)


def test_source_missing_object(fake, tmp_path):
    remote = store(fake)
    good = obj_of(b"good")
    fake.objects[good.oid] = b"good"
    gone = obj_of(b"gone")
    dst = LocalLfsStore(tmp_path / "d")
    with pytest.raises(IntegrityError, match=gone.oid):
        transfer([good, gone], remote, dst)
    assert dst.has(good) and not dst.has(gone)
    assert missing(remote, [good, gone]) == [gone]


def test_mismatch_aborts_upload_before_last_byte(fake, tmp_path):
    data = os.urandom(2 * CHUNK + 99)
    obj = obj_of(data)
    local = LocalLfsStore(tmp_path / "objects")
    path = local.path_of(obj.oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:-1] + b"\0" if data[-1] else data[:-1] + b"\1")
    with pytest.raises(IntegrityError, match=obj.oid):
        transfer([obj], local, store(fake))
    assert obj.oid not in fake.objects  # the server never got a complete body


def test_multipart_upload(fake, tmp_path):
    fake.multipart_chunk = CHUNK + 1000
    blobs = [os.urandom(3 * CHUNK), b"small"]
    local, objs = local_with(tmp_path, blobs)
    report = transfer(objs, local, store(fake, multipart=True))
    assert report.moved == 2
    assert fake.objects[objs[0].oid] == blobs[0]
    part_puts = [h for m, p, h in fake.seen if m == "PUT" and p.startswith("/part/")]
    assert len(part_puts) == 3 + 1
    assert sorted(int(h["Content-Length"]) for h in part_puts) == sorted([CHUNK + 1000] * 2 + [CHUNK - 2000, 5])
    assert all("Authorization" not in h for h in part_puts)


def test_multipart_only_when_offered(fake, tmp_path):
    fake.multipart_chunk = 4
    local, objs = local_with(tmp_path, [b"0123456789"])
    assert transfer(objs, local, store(fake)).moved == 1
    assert not fake.parts


def test_transient_batch_errors_are_retried_and_counted(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"x"])
    fake.batch_status = 503

    def recover():
        fake.batch_status = None

    timer = threading.Timer(0.15, recover)
    timer.start()
    report = transfer(objs, local, store(fake))
    timer.join()
    assert report.moved == 1 and report.retries >= 1


@pytest.mark.parametrize("status", [500, 403])
def test_href_failures_never_show_the_signed_query(fake, tmp_path, status):
    obj = obj_of(b"payload")
    fake.objects[obj.oid] = b"payload"
    fake.storage_status = status
    with pytest.raises(Exception) as info:
        transfer([obj], store(fake), LocalLfsStore(tmp_path / "d"), policy=FAST)
    text = str(info.value)
    assert obj.oid in text and "SIGNED" not in text and "s3cr3t" not in text and "\n" not in text
    assert info.value.report.retries >= 1  # transient (500) or a stale link (403): asked again


def test_verify_under_our_endpoint_gets_our_credentials(fake, tmp_path):
    # Hugging Face's verify href is its own LFS API and comes without a header.
    fake.verify_href = "/repo.git/info/lfs/objects/verify"
    local, objs = local_with(tmp_path, [b"verify me"])
    assert transfer(objs, local, store(fake)).moved == 1
    verifies = [h for m, p, h in fake.seen if p.endswith("/objects/verify")]
    assert len(verifies) == 1 and verifies[0].get("Authorization") == TOKEN
    puts = [h for m, p, h in fake.seen if m == "PUT"]
    assert puts and all("Authorization" not in h for h in puts)
