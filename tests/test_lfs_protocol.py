"""The HTTP LFS client against a fake LFS server behind a fake transport (no sockets), for
protocol corners the sandbox hubs need not reproduce: 307 on the batch URL, 413 halving, HTML
answers, per-object errors, multipart assembly, redirects, expiring links, a body aborted
mid-upload, which headers reach the storage host, and how retries are budgeted and counted."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from gitmirror.errors import (
    AuthError,
    GitMirrorError,
    IntegrityError,
    PermissionDeniedError,
    ProtocolError,
    RepoNotFoundError,
    TransientError,
)
from gitmirror.lfs import CHUNK, HttpLfsStore, LfsObject, LocalLfsStore, missing, transfer
from gitmirror.retry import FAST
from lfsfake import ENDPOINT, HUB, STORAGE, FakeLfs, FakeResponse, MockTransport

TOKEN = "Bearer s3cr3t-hub-token"


def obj_of(data: bytes) -> LfsObject:
    return LfsObject(hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def fake() -> FakeLfs:
    return FakeLfs()


def store(fake: FakeLfs, **kw) -> HttpLfsStore:
    return HttpLfsStore(ENDPOINT, {"Authorization": TOKEN}, policy=FAST, **kw)


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
    report = transfer(objs, local, remote, transport=fake.transport())
    assert report.moved == 3
    assert all(fake.objects[o.oid] == b for o, b in zip(objs, blobs))
    assert missing(remote, objs, transport=fake.transport()) == []
    back = LocalLfsStore(tmp_path / "back")
    assert transfer(objs, remote, back, transport=fake.transport()).moved == 3
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
    report = transfer(objs, local, store(fake), transport=fake.transport())
    assert (report.moved, report.already_present) == (1, 1)


def test_batch_307_keeps_method_and_body(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"redirected"])
    fake.redirect_batch_to = f"{HUB}/moved.git/info/lfs/objects/batch"
    assert transfer(objs, local, store(fake), transport=fake.transport()).moved == 1
    posts = [p for m, p, _ in fake.seen if m == "POST" and p.endswith("/batch")]
    assert posts[:2] == ["/repo.git/info/lfs/objects/batch", "/moved.git/info/lfs/objects/batch"]


def test_413_halves_the_batch(fake, tmp_path):
    local, objs = local_with(tmp_path, [i.to_bytes(2, "big") for i in range(30)])
    fake.max_batch = 8
    report = transfer(objs, local, store(fake), transport=fake.transport())
    assert report.moved == 30


def test_html_answer_is_a_protocol_error(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"x"])
    fake.html = True
    with pytest.raises(ProtocolError, match="HTML"):
        transfer(objs, local, store(fake), transport=fake.transport())


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
            transfer(objs, local, remote, transport=fake.transport())
        else:
            transfer(objs, remote, LocalLfsStore(tmp_path / "d"), transport=fake.transport())
    assert "s3cr3t" not in str(info.value) and "\n" not in str(info.value)


def test_source_missing_object(fake, tmp_path):
    remote = store(fake)
    good = obj_of(b"good")
    fake.objects[good.oid] = b"good"
    gone = obj_of(b"gone")
    dst = LocalLfsStore(tmp_path / "d")
    with pytest.raises(IntegrityError, match=gone.oid):
        transfer([good, gone], remote, dst, transport=fake.transport())
    assert dst.has(good) and not dst.has(gone)
    assert missing(remote, [good, gone], transport=fake.transport()) == [gone]


def test_mismatch_aborts_upload_before_last_byte(fake, tmp_path):
    data = os.urandom(2 * CHUNK + 99)
    obj = obj_of(data)
    local = LocalLfsStore(tmp_path / "objects")
    path = local.path_of(obj.oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:-1] + b"\0" if data[-1] else data[:-1] + b"\1")
    with pytest.raises(IntegrityError, match=obj.oid):
        transfer([obj], local, store(fake), transport=fake.transport())
    assert obj.oid not in fake.objects  # the server never got a complete body


def test_multipart_upload(fake, tmp_path):
    fake.multipart_chunk = CHUNK + 1000
    blobs = [os.urandom(3 * CHUNK), b"small"]
    local, objs = local_with(tmp_path, blobs)
    report = transfer(objs, local, store(fake, multipart=True), transport=fake.transport())
    assert report.moved == 2
    assert fake.objects[objs[0].oid] == blobs[0]
    part_puts = [h for m, p, h in fake.seen if m == "PUT" and p.startswith("/part/")]
    assert len(part_puts) == 3 + 1
    assert sorted(int(h["Content-Length"]) for h in part_puts) == sorted([CHUNK + 1000] * 2 + [CHUNK - 2000, 5])
    assert all("Authorization" not in h for h in part_puts)


def test_multipart_only_when_offered(fake, tmp_path):
    fake.multipart_chunk = 4
    local, objs = local_with(tmp_path, [b"0123456789"])
    assert transfer(objs, local, store(fake), transport=fake.transport()).moved == 1
    assert not fake.parts


def test_transient_batch_errors_are_retried_and_counted(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"x"])
    fake.batch_statuses = [503, 503]
    report = transfer(objs, local, store(fake), transport=fake.transport())
    assert report.moved == 1 and report.retries >= 1


@pytest.mark.parametrize("status", [500, 403])
def test_href_failures_never_show_the_signed_query(fake, tmp_path, status):
    obj = obj_of(b"payload")
    fake.objects[obj.oid] = b"payload"
    fake.storage_status = status
    with pytest.raises(Exception) as info:
        transfer([obj], store(fake), LocalLfsStore(tmp_path / "d"), policy=FAST, transport=fake.transport())
    text = str(info.value)
    assert obj.oid in text and "SIGNED" not in text and "s3cr3t" not in text and "\n" not in text
    assert info.value.report.retries >= 1  # transient (500) or a stale link (403): asked again


def test_verify_under_our_endpoint_gets_our_credentials(fake, tmp_path):
    # Hugging Face's verify href is its own LFS API and comes without a header.
    fake.verify_href = f"{ENDPOINT}/objects/verify"
    local, objs = local_with(tmp_path, [b"verify me"])
    assert transfer(objs, local, store(fake), transport=fake.transport()).moved == 1
    verifies = [h for m, p, h in fake.seen if p.endswith("/objects/verify")]
    assert len(verifies) == 1 and verifies[0].get("Authorization") == TOKEN
    puts = [h for m, p, h in fake.seen if m == "PUT"]
    assert puts and all("Authorization" not in h for h in puts)
