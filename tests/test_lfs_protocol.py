"""The HTTP LFS client against a fake LFS server behind a fake transport (no sockets), for
protocol corners the sandbox hubs need not reproduce: 307 on the batch URL, 413 halving, HTML
answers, per-object errors, multipart assembly, redirects, expiring links, a body aborted
mid-upload, which headers reach the storage host, and how retries are budgeted and counted."""

from __future__ import annotations

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
from gitmirror.lfs import CHUNK, HttpLfsStore, LocalLfsStore, missing, transfer
from gitmirror.retry import FAST
from lfsfake import ENDPOINT, HUB, STORAGE, FakeLfs, FakeResponse, MockTransport, local_with, obj_of

TOKEN = "Bearer s3cr3t-hub-token"


@pytest.fixture
def fake() -> FakeLfs:
    return FakeLfs()


def store(fake: FakeLfs, **kw) -> HttpLfsStore:
    return HttpLfsStore(ENDPOINT, {"Authorization": TOKEN}, policy=FAST, **kw)


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
        (404, "upload", PermissionDeniedError),  # no LFS API at the destination: LFS disabled there (issue 13)
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


# -- batch answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code,words", [(404, "lacks"), (410, "has removed"), (422, "holds an invalid copy of")])
def test_per_object_download_errors_are_integrity_errors(fake, tmp_path, code, words):
    good, bad = obj_of(b"good"), obj_of(b"bad")
    fake.objects.update({good.oid: b"good", bad.oid: b"bad"})
    fake.object_errors[bad.oid] = (code, "see https://s.example/x?sig=SIGNED")
    dst = LocalLfsStore(tmp_path / "d")
    with pytest.raises(IntegrityError) as info:
        transfer([good, bad], store(fake), dst, transport=fake.transport())
    text = str(info.value)
    assert f"{words} LFS object {bad.oid}" in text and f" {code} " in text and "SIGNED" not in text
    assert dst.has(good) and not dst.has(bad)


@pytest.mark.parametrize(
    "code,error,hint",
    [
        (401, AuthError, "check the token for this hub"),
        (403, PermissionDeniedError, "the token may not write to this repository"),
        (404, RepoNotFoundError, None),
        (410, IntegrityError, None),
        (422, IntegrityError, None),
        (400, GitMirrorError, None),
    ],
)
def test_per_object_upload_errors_go_through_the_error_map(fake, tmp_path, code, error, hint):
    local, objs = local_with(tmp_path, [b"refused"])
    fake.object_errors[objs[0].oid] = (code, "no")
    planned = store(fake).plan_uploads(objs, fake.transport())
    err = planned[objs[0]]
    assert type(err) is error and err.hint == hint
    assert str(err).startswith(f"LFS endpoint {ENDPOINT}, LFS object {objs[0].oid}: HTTP {code} (no)")


def test_a_batch_answer_leaving_an_object_out_is_a_protocol_error(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"asked", b"forgotten"])
    fake.left_out.add(objs[1].oid)
    with pytest.raises(ProtocolError, match=f"left LFS object {objs[1].oid} out of its batch answer"):
        store(fake).plan_uploads(objs, fake.transport())
    assert fake.count("POST", "/repo.git/info/lfs/objects/batch") == FAST.attempts  # malformed: asked again


@pytest.mark.parametrize("html", [True, False])
def test_an_answer_that_is_not_json_is_a_protocol_error(fake, tmp_path, html):
    local, objs = local_with(tmp_path, [b"x"])

    def handler(req):
        if html:
            return FakeResponse(200, b"<html>login</html>", {"Content-Type": "text/html; charset=utf-8"})
        return FakeResponse(200, b"\x00\x01", {"Content-Type": "application/octet-stream"})

    kind = "an HTML page" if html else r"something that is not JSON \(application/octet-stream\)"
    with pytest.raises(ProtocolError, match=kind):
        store(fake).plan_uploads(objs, MockTransport(handler))


def test_413_halves_until_the_server_accepts_and_one_object_refused_is_final(fake, tmp_path):
    local, objs = local_with(tmp_path, [i.to_bytes(2, "big") for i in range(30)])
    fake.max_batch = 8
    transport = fake.transport()
    assert all(ticket is not None for ticket in store(fake).plan_uploads(objs, transport).values())
    sizes = [len(r.json()["objects"]) for r in transport.requests]
    assert sizes[:3] == [30, 15, 7] and all(n <= 8 for n in sizes[2:]) and sum(sizes[2:]) == 30
    fake.max_batch = 0
    with pytest.raises(PermissionDeniedError, match="refuses even a one-object LFS upload batch"):
        store(fake).plan_uploads(objs[:1], fake.transport())


def test_batch_307_to_another_origin_keeps_the_body_but_not_our_credentials(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"moved away"])
    fake.redirect_batch_to = "https://mirror.example/repo.git/info/lfs/objects/batch"
    transport = fake.transport()
    assert transfer(objs, local, store(fake), transport=transport).moved == 1
    first, second = [r for r in transport.requests if r.url.endswith("/objects/batch")][:2]
    assert first.url.startswith(HUB) and first.headers["Authorization"] == TOKEN
    assert second.url.startswith("https://mirror.example/") and "Authorization" not in second.headers
    assert second.method == "POST" and second.body == first.body
    assert not transport.closed  # a transport the caller gave is the caller's to close


# -- multipart ----------------------------------------------------------------------------------------


def test_multipart_parts_etags_and_completion(fake, tmp_path):
    fake.multipart_chunk = 4
    local, objs = local_with(tmp_path, [b"0123456789"])
    transport = fake.transport()
    assert transfer(objs, local, store(fake, multipart=True), transport=transport).moved == 1
    oid = objs[0].oid
    parts = [r for r in transport.requests if r.method == "PUT"]
    assert [r.path for r in parts] == [f"/part/{oid}/{n}?sig=P" for n in (1, 2, 3)]
    assert [r.body for r in parts] == [b"0123", b"4567", b"89"]
    complete = [r for r in transport.requests if r.path == f"/complete/{oid}"]
    assert len(complete) == 1 and "Authorization" not in complete[0].headers
    assert complete[0].json() == {"oid": oid, "parts": [{"partNumber": n, "etag": f'"etag-{oid[:8]}-{n}"'}
                                                        for n in (1, 2, 3)]}
    assert fake.objects[oid] == b"0123456789"


def test_a_multipart_part_without_an_etag_is_a_protocol_error(fake, tmp_path):
    fake.multipart_chunk = 4
    local, objs = local_with(tmp_path, [b"0123456789"])

    def no_etags(req):
        resp = fake(req)
        resp.headers.pop("etag", None)
        return resp

    with pytest.raises(ProtocolError, match="part 1 of LFS object .* got no ETag"):
        transfer(objs, local, store(fake, multipart=True), transport=MockTransport(no_etags), policy=FAST)
    assert objs[0].oid not in fake.objects


def test_a_chosen_transfer_that_was_not_offered_is_refused(fake, tmp_path):
    fake.multipart_chunk = 4
    local, objs = local_with(tmp_path, [b"0123456789"])

    def insists_on_multipart(req):
        if req.path.endswith("/objects/batch"):
            req = type(req)(req.method, req.url, req.headers, req.body.replace(b'["basic"]', b'["basic", "multipart"]'))
        return fake(req)

    planned = store(fake).plan_uploads(objs, MockTransport(insists_on_multipart))
    assert isinstance(planned[objs[0]], ProtocolError)
    assert "chose LFS transfer 'multipart', which was not offered" in str(planned[objs[0]])


# -- redirects and expiring links ---------------------------------------------------------------------


def test_a_download_follows_redirects_and_credentials_stay_on_their_origin(fake, tmp_path):
    obj = obj_of(b"on the cdn")
    fake.objects[obj.oid] = b"on the cdn"
    fake.download_link = {"header": {"Authorization": "Basic c2lnbmVk", "X-Sig": "h1"}}
    fake.redirect_downloads_to = "https://cdn.example"
    transport = fake.transport()
    dst = LocalLfsStore(tmp_path / "d")
    assert transfer([obj], store(fake), dst, transport=transport).moved == 1
    assert dst.path_of(obj.oid).read_bytes() == b"on the cdn"
    storage, cdn = [r for r in transport.requests if r.method == "GET"]
    assert storage.url.startswith(STORAGE) and storage.headers["Authorization"] == "Basic c2lnbmVk"
    assert cdn.url.startswith("https://cdn.example/storage/") and "Authorization" not in cdn.headers


def test_an_upload_is_never_redirected(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"stay"])

    def redirecting_storage(req):
        if req.method == "PUT":
            return FakeResponse(307, headers={"Location": "https://elsewhere.example/x"})
        return fake(req)

    with pytest.raises(ProtocolError, match="unexpected redirect"):
        transfer(objs, local, store(fake), transport=MockTransport(redirecting_storage), policy=FAST)


def test_a_link_gone_stale_before_its_turn_is_asked_for_again(fake, tmp_path):
    obj = obj_of(b"slow to start")
    fake.objects[obj.oid] = b"slow to start"
    fake.download_link = {"header": {}, "expires_in": 1}  # stale after half its life

    def slow_start(event):
        if event.kind == "started":
            time.sleep(0.7)

    transport = fake.transport()
    dst = LocalLfsStore(tmp_path / "d")
    report = transfer([obj], store(fake), dst, progress=slow_start, transport=transport)
    assert report.moved == 1 and report.retries == 0  # a fresh link is not a retry
    assert fake.count("POST", "/repo.git/info/lfs/objects/batch") == 2  # planned, then asked again
    assert fake.count("GET", "/storage/") == 1  # the stale link was never used


def test_an_absolute_expiry_in_the_past_is_stale_at_once(fake, tmp_path):
    obj = obj_of(b"expired")
    fake.objects[obj.oid] = b"expired"
    fake.download_link = {"header": {}, "expires_at": "2000-01-01T00:00:00Z"}
    planned = store(fake).plan_downloads([obj], fake.transport())
    assert planned[obj].stale()
    fake.download_link = {"header": {}, "expires_at": "0001-01-01T00:00:00Z"}  # the zero time: no expiry
    assert not store(fake).plan_downloads([obj], fake.transport())[obj].stale()


# -- retries: one budget per object, every retry counted once ----------------------------------------


class Heard:
    """An on_retry listener that records what it hears (thread-safe)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()

    def __call__(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self.calls.append((what, exc))


def test_an_upload_failing_with_5xx_is_tried_exactly_policy_attempts_times(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"never lands"])
    fake.put_status = 503
    heard = Heard()
    with pytest.raises(TransientError) as info:
        transfer(objs, local, store(fake), policy=FAST, on_retry=heard, transport=fake.transport())
    assert fake.count("PUT", "/storage/") == FAST.attempts
    # one batch request planned the chunk; each retry asked again, once
    assert fake.count("POST", "/repo.git/info/lfs/objects/batch") == FAST.attempts
    report = info.value.report
    assert report.retries == len(heard.calls) == FAST.attempts - 1
    assert all(what == f"LFS object {objs[0].oid}" for what, _ in heard.calls)


def test_a_failing_batch_call_on_an_object_retry_spends_the_objects_budget(fake, tmp_path):
    """Before: each of the object's 8 tries ran a batch call retried 8 times (up to 64 requests)."""
    local, objs = local_with(tmp_path, [b"unlucky"])
    fake.put_status = 503  # the first try fails at the storage...
    fake.batch_statuses = [0]  # ...after a good plan; every later batch request fails
    fake.batch_status = 503
    heard = Heard()
    with pytest.raises(TransientError) as info:
        transfer(objs, local, store(fake), policy=FAST, on_retry=heard, transport=fake.transport())
    assert fake.count("PUT", "/storage/") == 1
    assert fake.count("POST", "/repo.git/info/lfs/objects/batch") == FAST.attempts
    assert info.value.report.retries == len(heard.calls) == FAST.attempts - 1


def test_on_retry_hears_batch_and_object_retries_alike(fake, tmp_path):
    local, objs = local_with(tmp_path, [b"eventually"])
    fake.batch_statuses = [503, 429]  # the chunk's batch request: retried by the batch client

    puts = []

    def flaky_storage(req):
        if req.method == "PUT" and not puts:
            puts.append(req)
            return FakeResponse(500)  # the object's first try: retried by the queue
        return fake(req)

    heard = Heard()
    report = transfer(objs, local, store(fake), policy=FAST, on_retry=heard, transport=MockTransport(flaky_storage))
    assert report.moved == 1 and fake.objects[objs[0].oid] == b"eventually"
    whats = [what for what, _ in heard.calls]
    assert whats == [f"LFS upload batch at LFS endpoint {ENDPOINT}"] * 2 + [f"LFS object {objs[0].oid}"]
    assert report.retries == 3
    assert [type(exc) for _, exc in heard.calls] == [TransientError] * 3
