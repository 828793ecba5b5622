"""The LFS batch API and the storage port, spoken to directly over HTTP."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
import requests

from gitmirror.sandbox import Hub, Sandbox

pytestmark = pytest.mark.timeout(60)

LFS_JSON = "application/vnd.git-lfs+json"


class Client:
    """A minimal LFS client bound to one repository, with a token for the hub only."""

    def __init__(self, hub: Hub, repo_id: str, token: str | None) -> None:
        self.hub = hub
        self.repo_id = repo_id
        self.token = token
        self.session = requests.Session()

    def batch(self, operation: str, objects: list[dict], transfers=("basic",), token: str | None = "default"):
        headers = {"Accept": LFS_JSON, "Content-Type": LFS_JSON}
        token = self.token if token == "default" else token
        if token:  # what git-lfs sends: Basic with the git credentials
            user = "oauth2" if self.hub.kind.name == "modelscope" else "alice"
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        body = {"operation": operation, "transfers": list(transfers), "objects": objects, "hash_algo": "sha256"}
        return self.session.post(self.hub.lfs_url(self.repo_id) + "/objects/batch", json=body,
                                 headers=headers, timeout=10)

    def upload(self, data: bytes) -> dict:
        """Batch + PUT + verify, the way a careful client does it; returns the batch object."""
        obj = self.batch("upload", [_obj(data)]).json()["objects"][0]
        actions = obj.get("actions", {})
        if "upload" in actions:
            up = actions["upload"]
            done = self.session.put(up["href"], data=data, headers=up.get("header", {}), timeout=10)
            assert done.status_code == 200, done.text
        if "verify" in actions:
            self.verify(actions["verify"], data)
        return obj

    def verify(self, action: dict, data: bytes) -> requests.Response:
        headers = {"Content-Type": LFS_JSON, **action.get("header", {})}
        return self.session.post(action["href"], json=_obj(data), headers=headers, timeout=10)


def _obj(data: bytes) -> dict:
    return {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture(params=["git", "modelscope", "huggingface"])
def setup(request, sandbox: Sandbox, unique_name):
    hub = sandbox.add_hub(request.param, multipart_threshold=1000, multipart_chunk_size=400)
    hub.add_user("alice")
    token = hub.issue_token("alice", "write")
    repo_id = f"alice/{unique_name('lfs')}"
    hub.create_repo(repo_id, initial_commit=False)
    return hub, repo_id, Client(hub, repo_id, hub.git_token_for(token))


def test_upload_download_verify(setup):
    hub, repo_id, client = setup
    data = b"object one" * 100
    obj = client.upload(data)
    assert obj["authenticated"] is True
    assert hub.has_lfs_object(repo_id, obj["oid"])
    again = client.batch("upload", [_obj(data)]).json()["objects"][0]
    assert "actions" not in again  # already stored: nothing to do

    answer = client.batch("download", [_obj(data)])
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(LFS_JSON)
    download = answer.json()["objects"][0]["actions"]["download"]
    assert download["expires_in"] > 3000 and download["expires_at"].endswith("Z")
    assert download["href"].startswith(hub.storage_endpoint)
    got = requests.get(download["href"], headers=download.get("header", {}), timeout=10)
    assert got.status_code == 200 and got.content == data


def test_missing_download_is_a_per_object_404(setup):
    _hub, _repo_id, client = setup
    answer = client.batch("download", [_obj(b"nobody uploaded this")])
    assert answer.status_code == 200
    assert answer.json()["objects"][0]["error"]["code"] == 404


def test_more_than_100_objects_is_413(setup):
    _hub, _repo_id, client = setup
    objects = [_obj(str(n).encode()) for n in range(101)]
    assert client.batch("download", objects).status_code == 413
    assert client.batch("download", objects[:100]).status_code == 200


def test_hash_or_size_mismatch_is_422_and_nothing_kept(setup):
    hub, repo_id, client = setup
    data = b"the real content"
    up = client.batch("upload", [_obj(data)]).json()["objects"][0]["actions"]["upload"]
    wrong = b"the fake content"  # same size, other bytes
    done = requests.put(up["href"], data=wrong, headers=up.get("header", {}), timeout=10)
    assert done.status_code == 422
    assert not hub.has_lfs_object(repo_id, _obj(data)["oid"])
    assert not list((hub.repo_path(repo_id) / "lfs" / "tmp").glob("*"))
    short = requests.put(up["href"], data=data[:-1], headers=up.get("header", {}), timeout=10)
    assert short.status_code == 422
    assert not hub.has_lfs_object(repo_id, _obj(data)["oid"])


def test_chunked_upload_is_411(setup):
    hub, repo_id, client = setup
    data = b"chunky"
    up = client.batch("upload", [_obj(data)]).json()["objects"][0]["actions"]["upload"]
    done = requests.put(up["href"], data=iter([data]), headers=up.get("header", {}), timeout=10)
    assert done.status_code == 411
    assert not hub.has_lfs_object(repo_id, _obj(data)["oid"])


def test_range_get(setup):
    hub, repo_id, client = setup
    data = bytes(range(256)) * 40
    client.upload(data)
    download = client.batch("download", [_obj(data)]).json()["objects"][0]["actions"]["download"]
    got = requests.get(download["href"], headers={**download.get("header", {}), "Range": "bytes=1000-"}, timeout=10)
    assert got.status_code == 206
    assert got.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert got.content == data[1000:]
    bad = requests.get(download["href"], headers={**download.get("header", {}), "Range": "bytes=99999-"}, timeout=10)
    assert bad.status_code == 416


def test_verify_action(setup):
    hub, repo_id, client = setup
    data = b"verify me"
    obj = client.batch("upload", [_obj(data)]).json()["objects"][0]
    verify = obj["actions"]["verify"]
    assert verify["href"].startswith(hub.lfs_url(repo_id))
    assert client.verify(verify, data).status_code == 404  # not uploaded yet
    client.upload(data)
    assert client.verify(verify, data).status_code == 200


def test_hub_token_sent_to_storage_is_refused(setup):
    hub, repo_id, client = setup
    data = b"secret weights"
    client.upload(data)
    download = client.batch("download", [_obj(data)]).json()["objects"][0]["actions"]["download"]
    leaky = {**download.get("header", {}), "Authorization": f"Bearer {client.token}"}
    got = requests.get(download["href"], headers=leaky, timeout=10)
    assert got.status_code in (400, 403)
    assert hub.token_leaks == 1
    basic = requests.get(download["href"], auth=("oauth2", client.token), timeout=10)
    assert basic.status_code in (400, 403)
    assert hub.token_leaks == 2


def test_storage_needs_exactly_the_given_header_or_signature(setup):
    hub, repo_id, client = setup
    data = b"signed"
    client.upload(data)
    download = client.batch("download", [_obj(data)]).json()["objects"][0]["actions"]["download"]
    if download.get("header"):
        assert requests.get(download["href"], timeout=10).status_code == 403  # header left out
    tampered = download["href"].replace("size=6", "size=7")
    assert requests.get(tampered, headers=download.get("header", {}), timeout=10).status_code == 403


def test_expired_href_is_403(sandbox, unique_name):
    hub = sandbox.add_hub("git", href_ttl=0.4)
    hub.add_user("alice")
    repo_id = f"alice/{unique_name('exp')}"
    hub.create_repo(repo_id)
    client = Client(hub, repo_id, hub.issue_token("alice"))
    data = b"short lived"
    hub.put_lfs_object(repo_id, data)
    download = client.batch("download", [_obj(data)]).json()["objects"][0]["actions"]["download"]
    assert download["expires_in"] == 0 and download["expires_at"].endswith("Z")
    fresh = requests.get(download["href"], headers=download.get("header", {}), timeout=10)
    assert fresh.status_code == 200
    time.sleep(0.45)
    stale = requests.get(download["href"], headers=download.get("header", {}), timeout=10)
    assert stale.status_code == 403 and "expired" in stale.text
    renewed = client.batch("download", [_obj(data)]).json()["objects"][0]["actions"]["download"]
    assert requests.get(renewed["href"], headers=renewed.get("header", {}), timeout=10).content == data


def test_batch_auth(sandbox, unique_name):
    hub = sandbox.add_hub("git")
    hub.add_user("alice")
    hub.add_user("bob")
    repo_id = f"alice/{unique_name('priv')}"
    hub.create_repo(repo_id, private=True)
    obj = [_obj(b"x")]
    anonymous = Client(hub, repo_id, None).batch("download", obj)
    assert anonymous.status_code == 401 and "LFS-Authenticate" in anonymous.headers
    assert Client(hub, repo_id, "sbxgit_not-a-token").batch("download", obj).status_code == 401
    assert Client(hub, repo_id, hub.issue_token("bob")).batch("download", obj).status_code == 404
    reader = Client(hub, repo_id, hub.issue_token("alice", "read"))
    assert reader.batch("download", obj).status_code == 200
    assert reader.batch("upload", obj).status_code == 403


def test_multipart_upload_mechanics(sandbox, unique_name):
    hub = sandbox.add_hub("huggingface", multipart_threshold=1000, multipart_chunk_size=400)
    hub.add_user("alice")
    repo_id = f"alice/{unique_name('mp')}"
    hub.create_repo(repo_id, initial_commit=False)
    client = Client(hub, repo_id, hub.issue_token("alice"))
    data = bytes(range(256)) * 5  # 1280 bytes: 4 parts of 400/400/400/80
    small = b"tiny"
    answer = client.batch("upload", [_obj(data), _obj(small)], transfers=("basic", "multipart")).json()
    assert answer["transfer"] == "multipart"
    big, little = answer["objects"]
    assert "chunk_size" not in little["actions"]["upload"].get("header", {})
    upload = big["actions"]["upload"]
    header = upload["header"]
    assert header["chunk_size"] == "400"
    part_urls = [header[f"{n:05d}"] for n in range(1, 5)]  # zero-padded keys, as huggingface.js documents
    assert "00005" not in header and len(header) == 5
    etags = []
    for number, url in enumerate(part_urls):
        chunk = data[number * 400:(number + 1) * 400]
        put = requests.put(url, data=chunk, timeout=10)
        assert put.status_code == 200
        etags.append(put.headers["ETag"])
    bad = requests.post(upload["href"], json={"oid": big["oid"], "parts": [
        {"partNumber": n + 1, "etag": '"0000"' if n == 2 else etag} for n, etag in enumerate(etags)]}, timeout=10)
    assert bad.status_code == 400
    done = requests.post(upload["href"], json={"oid": big["oid"], "parts": [
        {"partNumber": n + 1, "etag": etag} for n, etag in enumerate(etags)]}, timeout=10)
    assert done.status_code == 200, done.text
    assert hub.has_lfs_object(repo_id, big["oid"])
    assert client.verify(big["actions"]["verify"], data).status_code == 200
    snap = hub.counters.snapshot()
    assert snap.count("lfs-multipart-part", "PUT") == 4 and snap.bytes_in["lfs-multipart-part"] == len(data)
    # Basic-only clients still get a basic upload for big objects.
    other = client.batch("upload", [_obj(data + b"!")]).json()
    assert other["transfer"] == "basic" and "chunk_size" not in other["objects"][0]["actions"]["upload"].get("header", {})


def test_multipart_with_wrong_bytes_is_422(sandbox, unique_name):
    hub = sandbox.add_hub("huggingface", multipart_threshold=10, multipart_chunk_size=8)
    hub.add_user("alice")
    repo_id = f"alice/{unique_name('mp')}"
    hub.create_repo(repo_id, initial_commit=False)
    client = Client(hub, repo_id, hub.issue_token("alice"))
    data = b"0123456789abcdef"
    obj = client.batch("upload", [_obj(data)], transfers=("basic", "multipart")).json()["objects"][0]
    header = obj["actions"]["upload"]["header"]
    etags = [requests.put(header[f"{n:05d}"], data=b"X" * 8, timeout=10).headers["ETag"] for n in (1, 2)]
    done = requests.post(obj["actions"]["upload"]["href"], json={"oid": obj["oid"], "parts": [
        {"partNumber": n + 1, "etag": etag} for n, etag in enumerate(etags)]}, timeout=10)
    assert done.status_code == 422
    assert not hub.has_lfs_object(repo_id, obj["oid"])


def test_empty_object_and_head(setup):
    hub, repo_id, client = setup
    client.upload(b"")
    assert hub.has_lfs_object(repo_id, _obj(b"")["oid"])
    download = client.batch("download", [_obj(b"")]).json()["objects"][0]["actions"]["download"]
    got = requests.get(download["href"], headers=download.get("header", {}), timeout=10)
    assert got.status_code == 200 and got.content == b""
    data = b"headed" * 10
    client.upload(data)
    download = client.batch("download", [_obj(data)]).json()["objects"][0]["actions"]["download"]
    head = requests.head(download["href"], headers=download.get("header", {}), timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and head.content == b""
