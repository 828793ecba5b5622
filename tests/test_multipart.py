"""Hugging Face's multipart transfer: part keys of any width, and the adapter chosen per object.

Sources: huggingface.js documents zero-padded part keys ("00001"); huggingface_hub ``lfs.py``
reads ``chunk_size`` from each object's own upload action. Protocol corners run against the fake
LFS server (tests/lfsfake.py); the mixed batch also runs through the sandbox's Hugging Face kind.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from gitmirror import api
from gitmirror.errors import ProtocolError
from gitmirror.lfs import CHUNK, HttpLfsStore, transfer
from gitmirror.lfs.adapters import adapter_for, part_urls
from gitmirror.lfs.wire import Link
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes
from lfsfake import ENDPOINT, FakeLfs, MockTransport, Request, local_with
from test_lfs_sandbox import make_side

from judges import auth_env, clone_and_check_lfs, remote_refs

TOKEN = "Bearer s3cr3t-hub-token"
KIB = 1024


def hf_store() -> HttpLfsStore:
    return HttpLfsStore(ENDPOINT, {"Authorization": TOKEN}, policy=FAST, multipart=True)


def test_part_keys_are_ordered_as_numbers_whatever_their_width():
    header = {"chunk_size": "4", "00010": "u10", "00002": "u2", "00001": "u1", "3": "u3", "X-Other": "x"}
    assert list(part_urls(header).items()) == [(1, "u1"), (2, "u2"), (3, "u3"), (10, "u10")]
    with pytest.raises(ProtocolError, match="part 1 twice"):
        part_urls({"1": "a", "01": "b"})


def test_zero_padded_part_keys_upload_in_order(tmp_path):
    fake = FakeLfs(multipart_chunk=4, multipart_key_width=5)
    local, objs = local_with(tmp_path, [b"0123456789"])
    transport = fake.transport()
    report = transfer(objs, local, hf_store(), transport=transport, policy=FAST)
    assert report.moved == 1 and report.retries == 0  # before: KeyError on "1" for keys "00001"..
    oid = objs[0].oid
    parts = [r for r in transport.requests if r.method == "PUT"]
    assert [r.body for r in parts] == [b"0123", b"4567", b"89"]
    complete = [r for r in transport.requests if r.path == f"/complete/{oid}"]
    assert [p["partNumber"] for p in complete[0].json()["parts"]] == [1, 2, 3]
    assert fake.objects[oid] == b"0123456789"


def test_adapter_is_read_from_each_objects_own_action():
    assert adapter_for(Link("https://s/x", {"chunk_size": "10", "00001": "https://s/p"})) == "multipart"
    assert adapter_for(Link("https://s/x", {"X-Sig": "h"})) == "basic"


def test_a_mixed_batch_uploads_each_object_its_own_way_without_retries(tmp_path):
    # The batch says "multipart" for both; the small object's action is a plain upload.
    fake = FakeLfs(multipart_chunk=CHUNK, multipart_key_width=5, multipart_min_size=64 * KIB)
    blobs = [os.urandom(2 * CHUNK + 5), b"small"]
    local, objs = local_with(tmp_path, blobs)
    transport = fake.transport()
    report = transfer(objs, local, hf_store(), transport=transport, policy=FAST)
    assert report.moved == 2 and report.retries == 0 and not report.failures
    assert fake.objects[objs[0].oid] == blobs[0] and fake.objects[objs[1].oid] == b"small"
    assert fake.count("POST", "/repo.git/info/lfs/objects/batch") == 1  # no second batch call for a retry
    assert fake.count("PUT", f"/storage/{objs[1].oid}") == 1  # the small one: one basic PUT
    assert fake.count("PUT", f"/part/{objs[0].oid}/") == 3


def test_an_action_with_chunk_size_is_refused_when_multipart_was_not_offered(tmp_path):
    fake = FakeLfs(multipart_chunk=4)
    local, objs = local_with(tmp_path, [b"0123456789"])

    def per_object_only(req):  # says "basic" for the batch, yet gives the object a multipart action
        if not req.path.endswith("/objects/batch"):
            return fake(req)
        doc = {**req.json(), "transfers": ["basic", "multipart"]}
        resp = fake(Request(req.method, req.url, req.headers, json.dumps(doc).encode()))
        resp.data = json.dumps({**json.loads(resp.data), "transfer": "basic"}).encode()
        return resp

    plain = HttpLfsStore(ENDPOINT, {"Authorization": TOKEN}, policy=FAST)
    planned = plain.plan_uploads(objs, MockTransport(per_object_only))
    assert isinstance(planned[objs[0]], ProtocolError)
    assert "'multipart', which was not offered" in str(planned[objs[0]])


# -- end to end through the sandbox's Hugging Face kind -----------------------------------------------


def test_a_mixed_batch_to_the_hf_kind_needs_no_retry(sandbox, unique_name, tmp_path):
    side = make_side(sandbox, unique_name, "huggingface", "write", multipart=True,
                     multipart_threshold=64 * KIB, multipart_chunk_size=100 * KIB)
    hub, repo = side.hub, side.repo
    blobs = [os.urandom(350 * KIB), os.urandom(10 * KIB)]
    local, objs = local_with(tmp_path, blobs)
    hub.counters.reset()
    report = transfer(objs, local, side.store, policy=FAST)
    assert report.moved == 2 and report.retries == 0
    assert all(hub.lfs_object_path(repo, o.oid).read_bytes() == b for o, b in zip(objs, blobs))
    snap = hub.counters.snapshot()
    assert snap.count("lfs-batch") == 1  # one upload batch, no replan of the small object
    assert snap.count("lfs-multipart-part") == 4 and snap.count("lfs-multipart-complete") == 1
    assert snap.count("lfs-upload") == 1 and snap.status_count("lfs-upload", 200) == 1  # the small one, basic
    assert hub.token_leaks == 0


def test_clone_push_of_a_mixed_batch_to_the_hf_kind_has_zero_retries(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair(hf={"multipart_threshold": 150 * KIB, "multipart_chunk_size": 100 * KIB})
    tokens = {"hf": hf.issue_token("alice", "write"), "ms": ms.issue_token("alice", "write")}
    name = unique_name("mixed")
    files = {"model.safetensors": random_bytes(400_000, "mixed-big"), "a.bin": random_bytes(3_000, "mixed-a"),
             "b.bin": random_bytes(5_000, "mixed-b")}
    builder = RepoBuilder(default_branch="master")
    builder.commit({".gitattributes": LFS_ATTRIBUTES, **{p: lfs(d) for p, d in files.items()}})
    src_refs = builder.push_to_hub(ms, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint}
    hf.counters.reset()
    result = api.mirror(f"ms://org/{name}", f"hf://org/{name}", src_token=tokens["ms"], dst_token=tokens["hf"],
                        env=env, cache_dir=tmp_path / "cache", policy=FAST)
    assert result.retries == 0 and result.objects_moved == 3 and result.verified
    snap = hf.counters.snapshot()
    assert snap.count("lfs-multipart-complete") == 1 and snap.count("lfs-multipart-part") == 4
    assert snap.count("lfs-upload") == 2 and snap.status_count("lfs-upload", 200) == 2  # each small one once
    judge = auth_env(hf.endpoint, "user", tokens["hf"], git_env)
    url = hf.git_url(f"org/{name}")
    assert remote_refs(url, judge)["refs/heads/main"] == src_refs["refs/heads/master"]
    clone_and_check_lfs(url, judge, tmp_path, {hashlib.sha256(d).hexdigest(): d for d in files.values()})
