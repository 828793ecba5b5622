"""The sandbox's link model: a round-trip time per hub (option ``rtt``, seconds) and HTTPS.

Each request waits one RTT before its answer; a new connection costs one more (two more with
TLS). Measured with plain clients (http.client) on loopback; every call has a timeout.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import time

import pytest

from gitmirror.sandbox import Sandbox
from gitmirror.sandbox.tls import tls_env

pytestmark = pytest.mark.timeout(60)

RTT = 0.1


def connect(url: str, ca_file=None) -> http.client.HTTPConnection:
    scheme, _, netloc = url.partition("://")
    host, _, port = netloc.partition(":")
    if scheme == "https":
        return http.client.HTTPSConnection(host, int(port), timeout=10,
                                           context=ssl.create_default_context(cafile=str(ca_file)))
    return http.client.HTTPConnection(host, int(port), timeout=10)


def timed_get(conn: http.client.HTTPConnection, path: str = "/api/whoami") -> tuple[int, float]:
    """One GET on ``conn``; returns (status, seconds from sending to the whole answer read)."""
    start = time.monotonic()
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    return resp.status, time.monotonic() - start


def first_and_kept(url: str, ca_file=None, path: str = "/api/whoami") -> tuple[float, float]:
    """Seconds of a first GET on a new connection to ``url`` and of a second on the same one."""
    conn = connect(url, ca_file)
    try:
        return timed_get(conn, path)[1], timed_get(conn, path)[1]
    finally:
        conn.close()


def test_default_rtt_is_zero(sandbox):
    hub = sandbox.add_hub("git")
    assert hub.options["rtt"] == 0
    conn = connect(hub.endpoint)
    try:
        timings = [timed_get(conn)[1] for _ in range(5)]
    finally:
        conn.close()
    assert min(timings) < RTT  # loopback as it was: no request waits a round trip


def test_a_request_waits_one_rtt_and_a_new_connection_one_more(sandbox):
    hub = sandbox.add_hub("git", rtt=RTT)
    conn = connect(hub.endpoint)
    try:
        status, first = timed_get(conn)  # opens the connection
        assert status == 404
        kept = [timed_get(conn)[1] for _ in range(3)]  # the same connection, kept alive
    finally:
        conn.close()
    assert first >= 2 * RTT
    assert all(k >= RTT for k in kept)
    assert min(kept) < 2 * RTT  # a kept connection pays no connection cost again
    assert hub.counters.snapshot().features.get("connection-hub") == 1


def test_the_storage_port_has_the_same_link(sandbox):
    hub = sandbox.add_hub("git", rtt=RTT)
    first, kept = first_and_kept(hub.storage_endpoint, path="/download/x")
    assert first >= 2 * RTT and kept >= RTT


def test_source_and_destination_rtts_differ_and_change_at_run_time(sandbox):
    near = sandbox.add_hub("git", rtt=0)
    far = sandbox.add_hub("git", rtt=3 * RTT)
    for hub, low, high in ((near, 0, 3 * RTT), (far, 3 * RTT, None)):
        _, kept = first_and_kept(hub.endpoint)
        assert kept >= low and (high is None or kept < high), (hub.name, kept)
    far.options["rtt"] = 0  # read on every request: a test can change the link mid-run
    assert first_and_kept(far.endpoint)[1] < 3 * RTT


def test_the_control_endpoint_is_exempt(sandbox):
    hub = sandbox.add_hub("git", rtt=3 * RTT)
    conn = connect(hub.endpoint)
    try:
        timed_get(conn)
        status, kept = timed_get(conn, "/_sandbox/info")
    finally:
        conn.close()
    assert status == 200 and kept < 3 * RTT


# -- TLS ---------------------------------------------------------------------------------------------


def test_a_new_tls_connection_costs_two_more_rtts(sandbox_tls):
    hub = sandbox_tls.add_hub("git", rtt=RTT)
    first, kept = first_and_kept(hub.endpoint, sandbox_tls.ca_file)
    assert first >= 3 * RTT
    assert RTT <= kept < 3 * RTT


def test_every_port_speaks_https_only_with_the_sandbox_ca(sandbox_tls, tmp_path):
    hub = sandbox_tls.add_hub("git", storage_host="localhost")
    assert hub.endpoint.startswith("https://127.0.0.1:")
    assert hub.storage_endpoint.startswith("https://localhost:")
    for url in (hub.endpoint, hub.storage_endpoint):
        conn = connect(url, sandbox_tls.ca_file)  # the certificate names both host names
        try:
            assert timed_get(conn, "/")[0] == 404
        finally:
            conn.close()
        plain = connect(url.replace("https://", "http://"))
        try:
            with pytest.raises((http.client.HTTPException, OSError)):
                timed_get(plain, "/")
        finally:
            plain.close()
    # Certificate checks are real: the system's roots do not know the sandbox's CA.
    scheme, _, netloc = hub.endpoint.partition("://")
    host, _, port = netloc.partition(":")
    untrusting = http.client.HTTPSConnection(host, int(port), timeout=10, context=ssl.create_default_context())
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            timed_get(untrusting, "/")
    finally:
        untrusting.close()


def test_lfs_hrefs_are_https(sandbox_tls):
    hub = sandbox_tls.add_hub("git")
    hub.add_user("alice", orgs=("org",))
    hub.create_repo("org/m")
    oid, size = hub.put_lfs_object("org/m", b"tls object")
    scheme, _, netloc = hub.endpoint.partition("://")
    conn = connect(hub.endpoint, sandbox_tls.ca_file)
    try:
        body = json.dumps({"operation": "download", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]})
        conn.request("POST", "/org/m.git/info/lfs/objects/batch", body=body,
                     headers={"Content-Type": "application/vnd.git-lfs+json", "Accept": "application/vnd.git-lfs+json"})
        resp = conn.getresponse()
        doc = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200, doc
    href = doc["objects"][0]["actions"]["download"]["href"]
    assert href.startswith(hub.storage_endpoint + "/")


def test_tls_env_names_each_clients_own_setting(sandbox_tls):
    env = sandbox_tls.tls_env()
    assert env == tls_env(sandbox_tls.ca_file)
    assert set(env) == {"GIT_SSL_CAINFO", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"}
    assert all(value == str(sandbox_tls.ca_file) for value in env.values())
    with Sandbox() as plain:
        assert plain.tls_env() == {} and plain.ca_file is None and not plain.tls


def test_sandboxes_sharing_a_ca_dir_share_one_ca(tmp_path):
    with Sandbox(root=tmp_path / "a", tls=True, ca_dir=tmp_path / "ca") as first, \
            Sandbox(root=tmp_path / "b", tls=True, ca_dir=tmp_path / "ca") as second:
        assert first.ca_file == second.ca_file
        assert (tmp_path / "ca" / "sandbox-ca.key").stat().st_mode & 0o077 == 0  # the key is private
        hub = second.add_hub("git")
        conn = connect(hub.endpoint, first.ca_file)
        try:
            assert timed_get(conn, "/")[0] == 404
        finally:
            conn.close()


def test_command_line_tls_and_rtt(tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "gitmirror.sandbox", "--tls", "--rtt", "0.05",
                             "--state-file", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        facts = json.loads(state.read_text())
        assert all(hub["endpoint"].startswith("https://") for hub in facts["hubs"].values())
        ca_file = facts["env"]["GIT_SSL_CAINFO"]
        assert facts["env"]["SSL_CERT_FILE"] == facts["env"]["REQUESTS_CA_BUNDLE"] == ca_file
        base = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0"}
        start = time.monotonic()
        done = subprocess.run(["git", "ls-remote", facts["sample"]["git_url"]], capture_output=True, text=True,
                              timeout=30, env={**base, "GIT_SSL_CAINFO": ca_file})
        assert facts["sample"]["refs"]["refs/heads/main"] in done.stdout, done.stderr
        assert time.monotonic() - start >= 3 * 0.05  # a new TLS connection and one request
        refused = subprocess.run(["git", "ls-remote", facts["sample"]["git_url"]], capture_output=True, text=True,
                                 timeout=30, env=base)  # the system's roots: git refuses the certificate
        assert refused.returncode != 0
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
