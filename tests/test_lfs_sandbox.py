"""The HTTP LFS client against the sandbox hubs: real batch API, signed storage hrefs, faults."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass

import pytest

from gitmirror.errors import IntegrityError, register_secret
from gitmirror.lfs import HttpLfsStore, LfsObject, LocalLfsStore, TransferEvent, missing, transfer
from gitmirror.retry import FAST
from gitmirror.sandbox import Hub

KIB = 1024
MIB = 1024 * 1024


@dataclass
class Side:
    hub: Hub
    repo: str
    store: HttpLfsStore
    token: str
    auth: dict

    def seed(self, data: bytes) -> LfsObject:
        oid, size = self.hub.put_lfs_object(self.repo, data)
        return LfsObject(oid, size)

    def has(self, obj: LfsObject) -> bool:
        return self.hub.has_lfs_object(self.repo, obj.oid)

    def counters(self):
        return self.hub.counters.snapshot()


def make_side(sandbox, unique_name, kind: str, scope: str, multipart: bool = False, **options) -> Side:
    hub = sandbox.add_hub(kind, name=unique_name(kind), **options)
    hub.add_user("alice")
    repo = "alice/" + unique_name("m")
    hub.create_repo(repo)
    # Git and LFS take the git token (a separate one on ModelScope) as the Basic password.
    token = hub.git_token_for(hub.issue_token("alice", scope))
    basic = base64.b64encode(f"oauth2:{token}".encode()).decode()
    register_secret(token)
    register_secret(basic)
    auth = {"Authorization": f"Basic {basic}"}
    store = HttpLfsStore(hub.lfs_url(repo), auth, policy=FAST, timeout=(5, 10), multipart=multipart)
    return Side(hub, repo, store, token, auth)


@pytest.fixture
def sides(sandbox, unique_name):
    made: list[Side] = []

    def make(src_kind="git", dst_kind="git", src_options=None, dst_options=None, multipart=False):
        src = make_side(sandbox, unique_name, src_kind, "read", **(src_options or {}))
        dst = make_side(sandbox, unique_name, dst_kind, "write", multipart=multipart, **(dst_options or {}))
        made.extend([src, dst])
        return src, dst

    yield make
    for side in made:  # no test may have sent a hub token to a storage host
        assert side.hub.token_leaks == 0, f"hub token sent to storage of {side.hub.name}"


def blobs(*sizes: int) -> list[bytes]:
    return [os.urandom(n) for n in sizes]


def test_transfer_between_hubs_and_second_run_moves_nothing(sides):
    src, dst = sides()
    data = blobs(0, 1, 100 * KIB, 3 * MIB + 17)
    objs = [src.seed(b) for b in data]
    events: list[TransferEvent] = []
    lock = threading.Lock()

    def progress(event):
        with lock:
            events.append(event)

    report = transfer(objs, src.store, dst.store, jobs=4, progress=progress)
    assert (report.requested, report.moved, report.already_present) == (4, 4, 0)
    assert report.bytes_moved == sum(map(len, data)) and report.retries == 0
    for obj, blob in zip(objs, data):
        assert dst.hub.lfs_object_path(dst.repo, obj.oid).read_bytes() == blob
    assert sum(e.nbytes for e in events if e.kind == "advanced") == report.bytes_moved
    assert dst.counters().count("lfs-upload") == 4
    assert missing(dst.store, objs) == []

    src.hub.counters.reset()
    dst.hub.counters.reset()
    again = transfer(objs, src.store, dst.store)
    assert (again.moved, again.already_present) == (0, 4)
    assert src.counters().total_requests() == 0  # nothing asked of the source at all
    assert dst.counters().count("lfs-batch") == 1 and dst.counters().count("lfs-upload") == 0


def test_objects_already_present_are_skipped(sides):
    src, dst = sides()
    objs = [src.seed(b) for b in blobs(10, 20, 30, 40)]
    for obj in objs[:2]:
        dst.hub.put_lfs_object(dst.repo, src.hub.lfs_object_path(src.repo, obj.oid).read_bytes())
    report = transfer(objs, src.store, dst.store)
    assert (report.moved, report.already_present) == (2, 2)
    assert src.counters().count("lfs-download") == 2


def test_503_burst_and_429_retry_after_survived_and_counted(sides):
    src, dst = sides()
    objs = [src.seed(b) for b in blobs(1000, 2000, 3000)]
    dst.hub.faults.fail("POST", r"/objects/batch$", status=503, times=2)
    src.hub.faults.fail("GET", "", route="lfs-download", status=429, retry_after=0.2, times=1)
    dst.hub.faults.fail("PUT", "", route="lfs-upload", status=503, times=1)
    report = transfer(objs, src.store, dst.store, policy=FAST)
    assert report.moved == 3 and all(dst.has(o) for o in objs)
    assert report.retries >= 4
    assert dst.counters().status_count("lfs-batch", 503) == 2
    assert src.counters().status_count("lfs-download", 429) == 1


@pytest.mark.parametrize("where", ["download", "upload"])
def test_a_cut_connection_is_survived(sides, where):
    src, dst = sides()
    objs = [src.seed(b) for b in blobs(2 * MIB, 3 * MIB)]
    if where == "download":
        src.hub.faults.cut("GET", objs[1].oid, route="lfs-download", after_bytes=300 * KIB, times=1)
    else:
        dst.hub.faults.cut("PUT", objs[1].oid, route="lfs-upload", after_bytes=500 * KIB, direction="request",
                           times=1)
    report = transfer(objs, src.store, dst.store, policy=FAST)
    assert report.moved == 2 and report.retries == 1
    for obj in objs:
        assert hashlib.sha256(dst.hub.lfs_object_path(dst.repo, obj.oid).read_bytes()).hexdigest() == obj.oid
    assert dst.counters().count("lfs-upload") == 3  # the cut object was sent again, whole


def test_expired_href_is_asked_for_again(sides):
    # Links live 2 s; the first download waits 2.5 s before the server looks at it, so the
    # storage refuses it as expired (403) and the client must ask the batch API again.
    src, dst = sides(src_options={"href_ttl": 2})
    obj = src.seed(os.urandom(5000))
    src.hub.faults.stall("GET", "", route="lfs-download", seconds=2.5, times=1)
    report = transfer([obj], src.store, dst.store, policy=FAST)
    assert report.moved == 1 and dst.has(obj)
    assert src.counters().status_count("lfs-download", 403) == 1
    assert src.counters().count("lfs-batch") >= 2


def test_source_missing_object_fails_naming_it_while_others_move(sides):
    src, dst = sides()
    objs = [src.seed(b) for b in blobs(100, 200, 300)]
    absent = LfsObject(hashlib.sha256(b"never stored").hexdigest(), 12)
    with pytest.raises(IntegrityError) as info:
        transfer(objs + [absent], src.store, dst.store)
    assert absent.oid in str(info.value)
    assert info.value.report.moved == 3 and [f.oid for f in info.value.report.failures] == [absent.oid]
    assert all(dst.has(o) for o in objs)
    assert missing(src.store, objs + [absent]) == [absent]
    assert missing(dst.store, objs + [absent]) == [absent]


def test_mismatched_bytes_never_stored(sides, tmp_path):
    _, dst = sides()
    local = LocalLfsStore(tmp_path / "objects")
    data = os.urandom(2 * MIB)
    obj = LfsObject(hashlib.sha256(data).hexdigest(), len(data))
    path = local.path_of(obj.oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(IntegrityError, match=obj.oid):
        transfer([obj], local, dst.store)
    assert not dst.has(obj)
    assert dst.counters().status_count("lfs-upload", 200) == 0


def test_413_from_a_small_batch_limit(sides):
    src, dst = sides(dst_options={"max_batch_objects": 7})
    objs = [src.seed(i.to_bytes(3, "big")) for i in range(30)]
    report = transfer(objs, src.store, dst.store, jobs=8)
    assert report.moved == 30
    assert dst.counters().status_count("lfs-batch", 413) >= 1


def test_missing_moves_no_bytes(sides):
    src, _ = sides()
    obj = src.seed(os.urandom(MIB))
    src.hub.counters.reset()
    assert missing(src.store, [obj]) == []
    snap = src.counters()
    assert snap.count("lfs-download") == 0 and snap.count("lfs-batch") == 1


def test_multipart_upload_to_the_hf_kind(sides):
    src, dst = sides(dst_kind="huggingface", multipart=True,
                     dst_options={"multipart_threshold": 64 * KIB, "multipart_chunk_size": 100 * KIB})
    big, small = src.seed(os.urandom(350 * KIB)), src.seed(os.urandom(10 * KIB))
    report = transfer([big, small], src.store, dst.store)
    assert report.moved == 2 and dst.has(big) and dst.has(small)
    snap = dst.counters()
    assert snap.count("lfs-multipart-part") == 4
    assert snap.count("lfs-multipart-complete") == 1
    assert snap.count("lfs-upload") == 1  # the small one, basic


def test_hf_to_modelscope_kinds_with_a_cache(sides, tmp_path):
    src, dst = sides(src_kind="huggingface", dst_kind="modelscope")
    objs = [src.seed(b) for b in blobs(MIB + 5, 7)]
    src.hub.faults.cut("GET", objs[0].oid, route="lfs-download", after_bytes=400 * KIB, times=1)
    cache = LocalLfsStore(tmp_path / "cache")
    report = transfer(objs, src.store, dst.store, lfs_cache=cache, policy=FAST)
    assert report.moved == 2 and all(dst.has(o) for o in objs) and all(cache.has(o) for o in objs)
    # The cut download resumed with a Range request instead of starting over.
    paths = src.counters().paths
    assert sum(n for p, n in paths.items() if p.startswith("GET /download/")) == 3
    assert src.counters().bytes_out.get("lfs-download", 0) < 2 * (MIB + 12)


def test_a_stalled_download_times_out_and_is_retried(sides):
    src, dst = sides()
    obj = src.seed(os.urandom(50 * KIB))
    src.hub.faults.stall("GET", obj.oid, route="lfs-download", seconds=2.0, times=1)
    impatient = HttpLfsStore(src.store.endpoint, src.auth, policy=FAST, timeout=(2, 0.5))
    report = transfer([obj], impatient, dst.store, policy=FAST)
    assert report.moved == 1 and report.retries == 1 and dst.has(obj)


def test_source_storage_losing_an_object_is_an_integrity_error(sides):
    src, dst = sides()
    objs = [src.seed(b) for b in blobs(100, 200)]
    src.hub.faults.fail("GET", objs[0].oid, route="lfs-download", status=404, times=None)
    with pytest.raises(IntegrityError, match=objs[0].oid):
        transfer(objs, src.store, dst.store, policy=FAST)
    assert dst.has(objs[1]) and not dst.has(objs[0])
    assert src.counters().count("lfs-download") == 2  # not retried
