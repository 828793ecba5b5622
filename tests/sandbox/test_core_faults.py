"""Fault injection and counters, from Python and over the HTTP control endpoint."""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from gitmirror.sandbox import Sandbox
from gitmirror.sandbox.seed import random_bytes, seed_sample_model

pytestmark = pytest.mark.timeout(60)

LFS_JSON = "application/vnd.git-lfs+json"


@pytest.fixture
def hub(sandbox: Sandbox, unique_name):
    hub = sandbox.add_hub("git")
    hub.add_user("alice")
    hub.token = hub.issue_token("alice")  # type: ignore[attr-defined]
    hub.repo_id = f"alice/{unique_name('f')}"  # type: ignore[attr-defined]
    hub.create_repo(hub.repo_id)  # type: ignore[attr-defined]
    return hub


def _batch(hub, operation: str, data: bytes) -> requests.Response:
    body = {"operation": operation, "transfers": ["basic"],
            "objects": [{"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}]}
    return requests.post(hub.lfs_url(hub.repo_id) + "/objects/batch", json=body, timeout=10,
                         headers={"Accept": LFS_JSON, "Authorization": f"Bearer {hub.token}"})


def _download_action(hub, data: bytes) -> dict:
    hub.put_lfs_object(hub.repo_id, data)
    return _batch(hub, "download", data).json()["objects"][0]["actions"]["download"]


def _upload_action(hub, data: bytes) -> dict:
    return _batch(hub, "upload", data).json()["objects"][0]["actions"]["upload"]


def test_fail_next_n_matching_requests(hub):
    hub.faults.fail("POST", r"/objects/batch$", status=503, times=2)
    assert _batch(hub, "download", b"x").status_code == 503
    assert _batch(hub, "download", b"x").status_code == 503
    assert _batch(hub, "download", b"x").status_code == 200
    snap = hub.counters.snapshot()
    assert snap.count("lfs-batch", "POST") == 3
    assert snap.status_count("lfs-batch", 503) == 2 and snap.status_count("lfs-batch", 200) == 1


def test_fail_429_with_retry_after_by_route(hub):
    hub.faults.fail(route="lfs-batch", status=429, retry_after=7)
    got = _batch(hub, "download", b"x")
    assert got.status_code == 429 and got.headers["Retry-After"] == "7"
    hub.faults.fail("GET", r"info/refs", status=500, times=1)
    assert requests.get(hub.git_url(hub.repo_id) + "/info/refs?service=git-upload-pack",
                        timeout=10).status_code == 500


def test_fail_rule_method_must_match(hub):
    hub.faults.fail("GET", r"/objects/batch$", status=500, times=1)
    assert _batch(hub, "download", b"x").status_code == 200  # POST: rule does not apply
    assert hub.faults.rules()[0].fired == 0


def test_failures_make_git_fail_then_succeed(hub, git, tmp_path, auth_env):
    env = auth_env(hub.endpoint, hub.token, "alice")
    hub.faults.fail("GET", r"/info/refs", status=503, times=1)
    first = git("ls-remote", hub.git_url(hub.repo_id), env=env, check=False)
    assert first.returncode != 0 and "503" in first.stderr
    git("ls-remote", hub.git_url(hub.repo_id), env=env)


def test_cut_response_body(hub):
    data = random_bytes(50_000, "cut")
    action = _download_action(hub, data)
    hub.faults.cut(route="lfs-download", after_bytes=10_000)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(action["href"], headers=action.get("header", {}), timeout=10).content
    assert hub.counters.snapshot().bytes_out["lfs-download"] == 10_000
    whole = requests.get(action["href"], headers=action.get("header", {}), timeout=10)  # rule used up
    assert whole.content == data


def test_cut_request_body_keeps_nothing(hub):
    data = random_bytes(40_000, "up")
    action = _upload_action(hub, data)
    hub.faults.cut(route="lfs-upload", after_bytes=5_000, direction="request")
    with pytest.raises(requests.exceptions.RequestException):
        requests.put(action["href"], data=data, headers=action.get("header", {}), timeout=10)
    assert not hub.has_lfs_object(hub.repo_id, hashlib.sha256(data).hexdigest())
    assert hub.counters.snapshot().bytes_in["lfs-upload"] == 5_000
    ok = requests.put(action["href"], data=data, headers=action.get("header", {}), timeout=10)
    assert ok.status_code == 200 and hub.has_lfs_object(hub.repo_id, hashlib.sha256(data).hexdigest())


def test_cut_at_zero_drops_the_connection(hub):
    hub.faults.cut(route="lfs-batch", after_bytes=0)
    with pytest.raises(requests.exceptions.ConnectionError):
        _batch(hub, "download", b"x")
    assert _batch(hub, "download", b"x").status_code == 200


def test_cut_git_fetch(hub, git, tmp_path, auth_env):
    repo = hub.repo_id + "-seeded"
    seed_sample_model(hub, repo)
    env = auth_env(hub.endpoint, hub.token, "alice")
    hub.faults.cut(route="git-upload-pack", after_bytes=200, times=None)
    done = git("clone", "--bare", hub.git_url(repo), str(tmp_path / "c"), env=env, check=False, timeout=30)
    assert done.returncode != 0
    hub.faults.clear()
    git("clone", "--bare", hub.git_url(repo), str(tmp_path / "c2"), env=env)


def test_stall(hub):
    hub.faults.stall(route="lfs-batch", seconds=0.5)
    start = time.monotonic()
    assert _batch(hub, "download", b"x").status_code == 200
    assert time.monotonic() - start >= 0.5
    start = time.monotonic()
    _batch(hub, "download", b"x")
    assert time.monotonic() - start < 0.4


def test_bandwidth_caps_both_directions(hub):
    data = random_bytes(100_000, "bw")
    action = _download_action(hub, data)
    hub.faults.bandwidth(down=250_000)
    start = time.monotonic()
    assert requests.get(action["href"], headers=action.get("header", {}), timeout=10).content == data
    assert time.monotonic() - start >= 0.3
    upload_data = random_bytes(100_000, "bw-up")
    up = _upload_action(hub, upload_data)
    hub.faults.bandwidth(up=250_000)
    start = time.monotonic()
    assert requests.put(up["href"], data=upload_data, headers=up.get("header", {}), timeout=10).status_code == 200
    assert time.monotonic() - start >= 0.3
    hub.faults.clear()
    start = time.monotonic()
    requests.get(action["href"], headers=action.get("header", {}), timeout=10)
    assert time.monotonic() - start < 0.3


def test_control_endpoint(hub):
    control = hub.endpoint + "/_sandbox"
    rule = requests.post(control + "/faults", json={"action": "fail", "route": "lfs-batch", "status": 429,
                                                    "retry_after": 2, "times": 1}, timeout=10)
    assert rule.status_code == 200 and rule.json()["status"] == 429
    assert requests.get(control + "/faults", timeout=10).json()["rules"][0]["route"] == "lfs-batch"
    got = _batch(hub, "download", b"x")
    assert got.status_code == 429 and got.headers["Retry-After"] == "2"
    counters = requests.get(control + "/counters", timeout=10).json()
    assert counters["requests"]["lfs-batch"]["POST"] == 1
    assert counters["statuses"]["lfs-batch"]["429"] == 1
    assert "control" not in counters["requests"]  # the control endpoint is not counted
    assert requests.post(control + "/counters/reset", timeout=10).status_code == 200
    assert requests.get(control + "/counters", timeout=10).json()["requests"] == {}
    requests.post(control + "/faults", json={"action": "bandwidth", "down": 1000}, timeout=10)
    assert hub.faults.down is not None
    assert requests.delete(control + "/faults", timeout=10).json() == {"cleared": True}
    assert hub.faults.down is None and hub.faults.rules() == []
    assert requests.post(control + "/faults", json={"action": "explode"}, timeout=10).status_code == 400
    info = requests.get(control + "/info", timeout=10).json()
    assert info["kind"] == "git" and info["storage_endpoint"] == hub.storage_endpoint


def test_faults_on_storage_port_only(hub):
    data = b"storage only"
    action = _download_action(hub, data)
    hub.faults.fail(path=".*", port="storage", status=500, times=None)
    assert _batch(hub, "download", data).status_code == 200
    assert requests.get(action["href"], headers=action.get("header", {}), timeout=10).status_code == 500


def test_counters_bytes_and_reset(hub):
    data = random_bytes(12_345, "count")
    action = _download_action(hub, data)
    hub.counters.reset()
    requests.get(action["href"], headers=action.get("header", {}), timeout=10)
    snap = hub.counters.snapshot()
    assert snap.bytes_out == {"lfs-download": 12_345}
    assert snap.count("lfs-download") == 1 and snap.total_requests() == 1
    assert any(path.startswith("GET /download/") for path in snap.paths)
    hub.counters.reset()
    assert hub.counters.snapshot().total_requests() == 0


def test_keep_alive_serves_many_requests_on_one_connection(hub):
    parts = urlsplit(hub.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    sockets = []
    for _ in range(3):
        conn.request("POST", urlsplit(hub.lfs_url(hub.repo_id)).path + "/objects/batch",
                     body=b'{"operation":"download","objects":[]}',
                     headers={"Authorization": f"Bearer {hub.token}", "Content-Type": LFS_JSON})
        response = conn.getresponse()
        assert response.status == 200 and response.read()
        sockets.append(conn.sock)
    assert isinstance(sockets[0], socket.socket) and all(s is sockets[0] for s in sockets)
    conn.close()


def test_redirect_keeps_method_and_body(hub):
    data = b"redirected"
    hub.put_lfs_object(hub.repo_id, data)
    hub.faults.redirect(route="lfs-batch")
    got = _batch(hub, "download", data)  # requests follows a 307 with the same POST and body
    assert got.status_code == 200 and got.json()["objects"][0]["actions"]["download"]
    assert got.history and got.history[0].status_code == 307
    assert "_redirected=1" in got.url
    snap = hub.counters.snapshot()
    assert snap.status_count("lfs-batch", 307) == 1 and snap.status_count("lfs-batch", 200) == 1


def test_cut_git_push_request_leaves_refs_alone(hub, git, tmp_path, auth_env):
    env = auth_env(hub.endpoint, hub.token, "alice")
    work = tmp_path / "work"
    git("init", "-b", "main", str(work))
    (work / "data.txt").write_bytes(random_bytes(100_000, "push-cut"))
    git("add", ".", cwd=work)
    git("commit", "-m", "data", cwd=work)
    # Every attempt: curl silently retries a request whose reused connection died.
    hub.faults.cut(route="git-receive-pack", after_bytes=20_000, direction="request", times=None)
    failed = git("push", hub.git_url(hub.repo_id), "main", cwd=work, env=env, check=False, timeout=30)
    assert failed.returncode != 0
    assert hub.refs(hub.repo_id) == {}
    assert hub.counters.snapshot().bytes_in["git-receive-pack"] % 20_000 == 0
    hub.faults.clear()
    git("push", hub.git_url(hub.repo_id), "main", cwd=work, env=env)
    assert "refs/heads/main" in hub.refs(hub.repo_id)


def test_bandwidth_cap_applies_to_git_traffic(hub, git, tmp_path, auth_env):
    env = auth_env(hub.endpoint, hub.token, "alice")
    work = tmp_path / "work"
    git("init", "-b", "main", str(work))
    (work / "data.txt").write_bytes(random_bytes(200_000, "git-bw"))
    git("add", ".", cwd=work)
    git("commit", "-m", "data", cwd=work)
    git("push", hub.git_url(hub.repo_id), "main", cwd=work, env=env)
    hub.faults.bandwidth(down=250_000)
    start = time.monotonic()
    git("clone", "--bare", hub.git_url(hub.repo_id), str(tmp_path / "c"), env=env)
    assert time.monotonic() - start >= 0.6  # 200 KB of pack at 250 KB/s
    assert hub.counters.snapshot().bytes_out["git-upload-pack"] > 200_000
