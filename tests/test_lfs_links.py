"""Object hrefs: whose credentials go where, links that expire unannounced, upload link lifetimes.

The rule (git-lfs ``tq/adapterbase.go`` ``doHTTP`` and ``lfsapi/auth.go`` ``getCredURLForAPI``):
an href gets exactly its action's ``header``; when its object is not marked ``authenticated:
true`` and the href is on the LFS endpoint's own origin (scheme, host, port), the hub's
credentials go along; never to another origin, not even after a 401 there.
Protocol corners run against tests/lfsfake.py; the rest end to end through the sandbox, under
both of its settings: signed storage hrefs (the default) and upload hrefs on the hub's own origin
that want the hub's git credentials (``upload_href_on_hub_origin`` + ``upload_requires_hub_auth``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import time
import urllib.error
import urllib.request

import pytest

from gitmirror import api
from gitmirror.errors import GitMirrorError
from gitmirror.httpclient import HttpClient
from gitmirror.lfs import HttpLfsStore, LfsObject, LocalLfsStore, transfer
from gitmirror.lfs.hrefs import OriginCredentials, StaleLink
from gitmirror.lfs.wire import Link
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes
from lfsfake import ENDPOINT, HUB, STORAGE, FakeLfs, local_with, obj_of

from judges import auth_env, clone_and_check_lfs, remote_refs
from test_lfs_sandbox import make_side

TOKEN = "Bearer s3cr3t-hub-token"
OTHER = "https://other.example"
KIB = 1024
HUB_AUTH = {"upload_href_on_hub_origin": True, "upload_requires_hub_auth": True}


def fake_store(**kw) -> HttpLfsStore:
    return HttpLfsStore(ENDPOINT, {"Authorization": TOKEN}, policy=FAST, **kw)


# -- the rule itself --------------------------------------------------------------------------------


def test_origin_credentials_go_to_the_endpoints_origin_only():
    creds = OriginCredentials(ENDPOINT, {"Authorization": TOKEN})
    on_origin = Link(f"{HUB}/elsewhere/upload/1", {"X-A": "1"})
    assert dict(creds.add_to(on_origin).header) == {"X-A": "1", "Authorization": TOKEN}
    for href in (f"{STORAGE}/x", "http://hub.example/x", "https://hub.example:8443/x", f"{OTHER}/x"):
        assert creds.add_to(Link(href, {"X-A": "1"})).header == {"X-A": "1"}, href
    own = Link(f"{HUB}/x", {"authorization": "Basic per-object"})  # any spelling of the name
    assert creds.add_to(own).header == {"authorization": "Basic per-object"}
    assert TOKEN not in repr(creds)


# -- against the fake -------------------------------------------------------------------------------


def test_hrefs_on_our_origin_get_our_credentials_when_not_authenticated(tmp_path):
    fake = FakeLfs(authenticated=None, upload_origin=HUB, hub_auth=TOKEN)  # no "authenticated" field
    local, objs = local_with(tmp_path, [b"up on the hub", os.urandom(3000)])
    report = transfer(objs, local, fake_store(), transport=fake.transport(), policy=FAST)
    assert report.moved == 2 and report.retries == 0
    assert all(fake.objects[o.oid] == local.path_of(o.oid).read_bytes() for o in objs)
    puts = [(p, h) for m, p, h in fake.seen if m == "PUT"]
    assert len(puts) == 2 and all(h.get("Authorization") == TOKEN for _, h in puts)  # up front: no 401 first
    verifies = [h for m, p, h in fake.seen if p.startswith("/verify")]
    assert verifies and all(h.get("Authorization") == TOKEN and h.get("X-Verify") == "v" for h in verifies)


def test_downloads_from_storage_never_get_our_credentials_when_not_authenticated(tmp_path):
    fake = FakeLfs(authenticated=False)
    obj = obj_of(b"on storage")
    fake.objects[obj.oid] = b"on storage"
    assert transfer([obj], fake_store(), LocalLfsStore(tmp_path / "d"), transport=fake.transport()).moved == 1
    gets = [h for m, p, h in fake.seen if m == "GET"]
    assert gets and all("Authorization" not in h and h.get("X-Sig") == "h1" for h in gets)


def test_authenticated_objects_get_exactly_their_header_even_on_our_origin(tmp_path):
    fake = FakeLfs(authenticated=True, upload_origin=HUB, hub_auth=TOKEN)
    local, objs = local_with(tmp_path, [b"authenticated"])
    with pytest.raises(GitMirrorError):
        transfer(objs, local, fake_store(), transport=fake.transport(), policy=FAST)
    puts = [h for m, p, h in fake.seen if m == "PUT"]
    assert len(puts) == FAST.attempts and all("Authorization" not in h for h in puts)


def test_another_origin_answering_401_never_gets_our_token(tmp_path):
    fake = FakeLfs(authenticated=None, upload_origin=OTHER)  # answers 401 to anything
    local, objs = local_with(tmp_path, [b"to another host"])
    transport = fake.transport()
    with pytest.raises(GitMirrorError) as info:
        transfer(objs, local, fake_store(), transport=transport, policy=FAST)
    elsewhere = [r for r in transport.requests if r.origin == OTHER]
    # Asked again for a fresh link after each 401 (a stale link), within the object's budget...
    assert len(elsewhere) == FAST.attempts and info.value.report.retries == FAST.attempts - 1
    # ...and never once with our token, nor any Authorization at all.
    assert all(not any(k.lower() == "authorization" for k in r.headers) for r in elsewhere)
    assert "s3cr3t" not in str(info.value)


def test_a_link_without_announced_expiry_is_refreshed_after_a_403_within_the_budget(tmp_path):
    # Storage links with no expires_in/expires_at; the first PUT finds its link expired (403).
    fake = FakeLfs(download_link={"header": {"X-Sig": "h1"}}, stale_puts=1)
    local, objs = local_with(tmp_path, [b"late"])
    two_tries = dataclasses.replace(FAST, attempts=2)
    retried = []
    report = transfer(objs, local, fake_store(), transport=fake.transport(), policy=two_tries,
                      on_retry=lambda what, exc: retried.append(exc))
    assert report.moved == 1 and fake.objects[objs[0].oid] == b"late"
    # Counted as one retry of the object (one of its two tries), its fresh link from one more batch call.
    assert report.retries == 1 and len(retried) == 1
    assert isinstance(retried[0], StaleLink) and retried[0].status == 403  # never read as a 429 by sync
    assert fake.count("POST", "/repo.git/info/lfs/objects/batch") == 2
    assert fake.count("PUT", "/storage/") == 2


# -- the sandbox: both settings ---------------------------------------------------------------------


def sandbox_side(sandbox, unique_name, kind: str, scope: str, **options):
    """A hub of ``kind``, a repository of alice's, an LFS store on it with a ``scope`` git token,
    and that token's Basic credentials."""
    side = make_side(sandbox, unique_name, kind, scope, **options)
    return side.hub, side.repo, side.store, side.auth["Authorization"].removeprefix("Basic ")


def batch(hub, repo, basic, operation, objs):
    body = json.dumps({"operation": operation, "transfers": ["basic"],
                       "objects": [{"oid": o.oid, "size": o.size} for o in objs]}).encode()
    req = urllib.request.Request(f"{hub.lfs_url(repo)}/objects/batch", data=body, method="POST", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/vnd.git-lfs+json",
        "Accept": "application/vnd.git-lfs+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def put(url, data, headers=None):
    req = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Length": str(len(data)),
                                                                       **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def test_sandbox_hub_origin_upload_answers_look_as_specified(sandbox, unique_name):
    hub, repo, _, basic = sandbox_side(sandbox, unique_name, "modelscope", "write", **HUB_AUTH)
    data = b"hub origin bytes"
    obj = obj_of(data)
    answer = batch(hub, repo, basic, "upload", [obj])["objects"][0]
    upload, verify = answer["actions"]["upload"], answer["actions"]["verify"]
    assert "authenticated" not in answer
    assert upload["href"].startswith(f"{hub.lfs_url(repo)}/objects/upload/{obj.oid}?")
    assert "sig=" not in upload["href"] and "header" not in upload and "header" not in verify
    assert verify["href"].startswith(hub.endpoint)
    status, headers = put(upload["href"], data)  # no credentials
    assert status == 401 and "Basic" in headers.get("WWW-Authenticate", "")
    reader = base64.b64encode(f"oauth2:{hub.git_token_for(hub.issue_token('alice', 'read'))}".encode()).decode()
    assert put(upload["href"], data, {"Authorization": f"Basic {reader}"})[0] == 403
    assert not hub.has_lfs_object(repo, obj.oid)
    assert put(upload["href"], data, {"Authorization": f"Basic {basic}"})[0] == 200
    assert hub.lfs_object_path(repo, obj.oid).read_bytes() == data
    # Downloads stay on signed storage hrefs, marked authenticated.
    down = batch(hub, repo, basic, "download", [obj])["objects"][0]
    assert down["authenticated"] is True and down["actions"]["download"]["href"].startswith(hub.storage_endpoint)


@pytest.mark.parametrize("options", [{}, HUB_AUTH], ids=["signed-storage-hrefs", "hub-origin-hrefs"])
def test_sandbox_transfer_under_both_settings(sandbox, unique_name, options):
    src, src_repo, src_store, _ = sandbox_side(sandbox, unique_name, "git", "read")
    dst, dst_repo, dst_store, _ = sandbox_side(sandbox, unique_name, "modelscope", "write", **options)
    blobs = [os.urandom(n) for n in (1, 70 * KIB, 600 * KIB)]
    objs = [LfsObject(*src.put_lfs_object(src_repo, b)) for b in blobs]
    dst.counters.reset()
    report = transfer(objs, src_store, dst_store, policy=FAST)
    assert report.moved == 3 and report.retries == 0
    assert all(dst.lfs_object_path(dst_repo, o.oid).read_bytes() == b for o, b in zip(objs, blobs))
    snap = dst.counters.snapshot()
    assert snap.count("lfs-upload") == 3 and snap.status_count("lfs-upload", 200) == 3  # no 401 on the way
    on_hub = sum(n for path, n in snap.paths.items() if "/info/lfs/objects/upload/" in path)
    assert on_hub == (3 if options else 0)
    assert src.token_leaks == 0 and dst.token_leaks == 0  # no hub token ever reached a storage port


def test_sandbox_link_without_announced_expiry_is_refreshed(sandbox, unique_name):
    src, src_repo, src_store, _ = sandbox_side(sandbox, unique_name, "git", "read")
    dst, dst_repo, dst_store, _ = sandbox_side(sandbox, unique_name, "huggingface", "write",
                                              announce_href_expiry=False, href_ttl=1)
    obj = LfsObject(*src.put_lfs_object(src_repo, os.urandom(20 * KIB)))

    class SlowFirstPut:
        """The first upload waits past the link's (unannounced) 1 s life, as a busy queue would."""

        def __init__(self, http):
            self.http, self.waited = http, False

        def request(self, method, url, **kw):
            if method == "PUT" and not self.waited:
                self.waited = True
                time.sleep(1.3)
            return self.http.request(method, url, **kw)

    dst.counters.reset()
    with HttpClient() as http:
        report = transfer([obj], src_store, dst_store, policy=FAST, transport=SlowFirstPut(http))
    assert report.moved == 1 and report.retries == 1 and dst.has_lfs_object(dst_repo, obj.oid)
    snap = dst.counters.snapshot()
    assert snap.status_count("lfs-upload", 403) == 1 and snap.status_count("lfs-upload", 200) == 1
    assert snap.count("lfs-batch") == 2


def test_sandbox_upload_links_live_their_own_ttl_and_may_announce_no_expiry(sandbox, unique_name):
    hub, repo, _, basic = sandbox_side(sandbox, unique_name, "huggingface", "write", upload_href_ttl=900)
    stored = LfsObject(*hub.put_lfs_object(repo, b"stored"))
    new = obj_of(b"not yet")
    up = batch(hub, repo, basic, "upload", [new])["objects"][0]["actions"]["upload"]
    down = batch(hub, repo, basic, "download", [stored])["objects"][0]["actions"]["download"]
    assert 890 <= up["expires_in"] <= 900 and 3590 <= down["expires_in"] <= 3600
    quiet, qrepo, _, qbasic = sandbox_side(sandbox, unique_name, "modelscope", "write", announce_href_expiry=False)
    answer = batch(quiet, qrepo, qbasic, "upload", [new])["objects"][0]["actions"]
    assert all("expires_in" not in a and "expires_at" not in a for a in answer.values())


# -- end to end: clone-push to a ModelScope hub whose upload hrefs want its git credentials ----------


def test_clone_push_to_hub_origin_upload_hrefs(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair(ms=HUB_AUTH)
    tokens = {"hf": hf.issue_token("alice", "write"), "ms": ms.issue_token("alice", "write")}
    name = unique_name("auth")
    b = RepoBuilder()
    files = {"a.bin": random_bytes(40_000, "a"), "b.bin": random_bytes(3_000, "b")}
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# m\n", **{p: lfs(d) for p, d in files.items()}})
    src_refs = b.push_to_hub(hf, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint}
    ms.counters.reset()
    result = api.mirror(f"hf://org/{name}", f"ms://org/{name}", src_token=tokens["hf"], dst_token=tokens["ms"],
                        env=env, cache_dir=tmp_path / "cache", policy=FAST)
    assert result.verified and result.objects_moved == 2
    judge = auth_env(ms.endpoint, "oauth2", ms.git_token_for(tokens["ms"]), git_env)
    url = ms.git_url(f"org/{name}")
    assert remote_refs(url, judge) == {"refs/heads/master": src_refs["refs/heads/main"]}
    clone_and_check_lfs(url, judge, tmp_path, {hashlib.sha256(d).hexdigest(): d for d in files.values()})
    snap = ms.counters.snapshot()
    assert sum(n for p, n in snap.paths.items() if p.startswith("PUT ") and "/objects/upload/" in p) == 2
    assert snap.status_count("lfs-upload", 401) == 0
    assert hf.token_leaks == 0 and ms.token_leaks == 0


def test_git_lfs_itself_pushes_to_hub_origin_upload_hrefs(sandbox, git, tmp_path, unique_name):
    """git-lfs, credentials from a helper (not an extraHeader it would send everywhere), uploads to
    the hub-origin hrefs: the sandbox's setting is one the reference client copes with."""
    hub, repo, _, basic = sandbox_side(sandbox, unique_name, "modelscope", "write", **HUB_AUTH)
    token = base64.b64decode(basic).decode().split(":", 1)[1]
    helper = f"!f() {{ echo username=oauth2; echo password={token}; }}; f"
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": helper}
    work = tmp_path / "work"
    git("init", "-q", "-b", "master", str(work))
    (work / ".gitattributes").write_text(LFS_ATTRIBUTES)
    data = random_bytes(30_000, "git-lfs-hub-origin")
    (work / "weights.bin").write_bytes(data)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "weights", cwd=work)
    hub.counters.reset()
    git("push", hub.git_url(repo), "HEAD:master", cwd=work, env=env)
    assert hub.lfs_object_path(repo, hashlib.sha256(data).hexdigest()).read_bytes() == data
    snap = hub.counters.snapshot()
    assert sum(n for p, n in snap.paths.items() if p.startswith("PUT ") and "/objects/upload/" in p) >= 1
    assert snap.status_count("lfs-upload", 200) == 1 and hub.token_leaks == 0
    # git-lfs sends the PUT bare first and again with the credentials after the 401 (tq/basic_upload.go
    # makeRequest); gitmirror sends them up front (test_sandbox_transfer_under_both_settings: no 401).
    assert snap.status_count("lfs-upload", 401) <= 1
