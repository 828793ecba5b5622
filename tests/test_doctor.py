"""gitmirror doctor on the sandbox hubs: passing rows, and each failure row with what to do."""

from __future__ import annotations

import json
import socket
import time
import subprocess
import sys

import pytest

from gitmirror import doctor
from gitmirror.doctor import Status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def hubs(hub_pair):
    hf, ms = hub_pair()
    return {"hf": hf, "ms": ms}


def closed_port_url() -> str:
    """A local URL nothing listens on: connecting fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def env_with(hubs, git_env, tmp_path, **extra) -> dict[str, str]:
    return {**git_env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint,
            "GITMIRROR_CACHE": str(tmp_path / "cache"), **extra}


def rows(report: doctor.DoctorReport) -> dict[str, doctor.Check]:
    return {c.name: c for c in report.checks}


def test_everything_passes_with_working_tokens(hubs, git_env, tmp_path):
    hf_token, ms_token = hubs["hf"].issue_token("alice"), hubs["ms"].issue_token("alice")
    env = env_with(hubs, git_env, tmp_path, HF_TOKEN=hf_token, MODELSCOPE_API_TOKEN=ms_token)
    report = doctor.run_checks(env=env, timeout=5)
    by_name = rows(report)
    assert report.ok and report.exit_code == 0, report.to_dict()
    assert by_name["git"].detail.startswith("git 2.")
    assert by_name["cache directory"].status is Status.OK and (tmp_path / "cache").is_dir()
    assert "environment variable HF_TOKEN" in by_name["Hugging Face token"].detail
    assert "alice" in by_name["Hugging Face token"].detail and "write" in by_name["Hugging Face token"].detail
    assert "environment variable MODELSCOPE_API_TOKEN" in by_name["ModelScope token"].detail
    assert "login" in by_name["ModelScope git token"].detail
    text = json.dumps(report.to_dict())
    assert hf_token not in text and ms_token not in text and hubs["ms"].git_token_for(ms_token) not in text


def test_no_token_is_a_warning_unless_required(hubs, git_env, tmp_path):
    report = doctor.run_checks(env=env_with(hubs, git_env, tmp_path), timeout=5)
    by_name = rows(report)
    assert report.ok
    assert by_name["Hugging Face token"].status is Status.WARN and by_name["Hugging Face token"].fix == "set HF_TOKEN"
    assert by_name["ModelScope token"].status is Status.WARN
    assert by_name["ModelScope git token"].status is Status.SKIP

    required = doctor.run_checks(env=env_with(hubs, git_env, tmp_path), timeout=5, require=("ms",))
    assert rows(required)["ModelScope token"].status is Status.FAIL
    assert rows(required)["Hugging Face token"].status is Status.WARN
    assert required.exit_code == 4


def test_wrong_tokens_fail_with_what_to_do(hubs, git_env, tmp_path):
    env = env_with(hubs, git_env, tmp_path, HF_TOKEN="hf_not_a_real_token_123", MODELSCOPE_API_TOKEN="ms-wrong-token-456")
    report = doctor.run_checks(env=env, timeout=5)
    by_name = rows(report)
    hf, ms = by_name["Hugging Face token"], by_name["ModelScope token"]
    assert hf.status is Status.FAIL and "rejected" in hf.detail and hf.fix
    assert ms.status is Status.FAIL and "rejected" in ms.detail.lower() and ms.fix
    assert by_name["ModelScope git token"].status is Status.SKIP
    assert report.exit_code == 4  # only tokens failed
    text = json.dumps(report.to_dict())
    assert "hf_not_a_real_token_123" not in text and "ms-wrong-token-456" not in text


def test_read_only_modelscope_token_gets_no_git_token(hubs, git_env, tmp_path):
    env = env_with(hubs, git_env, tmp_path, MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice", scope="read"))
    report = doctor.run_checks(env=env, timeout=5)
    by_name = rows(report)
    assert by_name["ModelScope token"].status is Status.OK
    git_row = by_name["ModelScope git token"]
    assert git_row.status is Status.FAIL and "read-only" in git_row.detail and "write" in git_row.fix
    assert report.exit_code == 4


def test_unreachable_endpoint_skips_its_token_check(hubs, git_env, tmp_path):
    env = env_with(hubs, git_env, tmp_path, HF_ENDPOINT=closed_port_url(), HF_TOKEN=hubs["hf"].issue_token("alice"))
    report = doctor.run_checks(env=env, timeout=2)
    by_name = rows(report)
    endpoint = by_name["Hugging Face endpoint"]
    assert endpoint.status is Status.FAIL and "cannot reach" in endpoint.detail and "HF_ENDPOINT" in endpoint.fix
    assert by_name["Hugging Face token"].status is Status.SKIP
    assert "environment variable HF_TOKEN" in by_name["Hugging Face token"].detail  # the source is still shown
    assert by_name["ModelScope endpoint"].status is Status.OK
    assert report.exit_code == 9


def test_unwritable_cache(hubs, git_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    # A path below a regular file cannot be created, even by root (chmod would not stop root).
    report = doctor.run_checks(env=env_with(hubs, git_env, tmp_path), cache_dir=blocker / "cache", timeout=5)
    by_name = rows(report)
    cache = by_name["cache directory"]
    assert cache.status is Status.FAIL and "not writable" in cache.detail and "--cache-dir" in cache.fix
    assert by_name["free disk"].status is Status.SKIP
    assert report.exit_code == 9


def test_low_disk_is_a_warning(hubs, git_env, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "LOW_DISK_BYTES", 1 << 62)
    report = doctor.run_checks(env=env_with(hubs, git_env, tmp_path), timeout=5)
    assert rows(report)["free disk"].status is Status.WARN and report.ok


def test_missing_git_lfs_is_only_a_warning(hubs, git_env, tmp_path):
    # A PATH with git but without git-lfs.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    (bindir / "git").symlink_to(real_git)
    row = doctor.check_git_lfs({**git_env, "PATH": str(bindir)}, timeout=5)
    assert row.status is Status.WARN and "optional" in row.fix


def test_cli_table_json_and_exit_codes(hubs, git_env, tmp_path):
    hf_token, ms_token = hubs["hf"].issue_token("alice"), hubs["ms"].issue_token("alice")
    env = env_with(hubs, git_env, tmp_path, HF_TOKEN=hf_token, MODELSCOPE_API_TOKEN=ms_token, COLUMNS="200")
    ok = subprocess.run([sys.executable, "-m", "gitmirror", "doctor"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "what to do" in ok.stdout and "All checks passed" in ok.stdout

    bad_env = {**env, "MODELSCOPE_API_TOKEN": "ms-wrong-token-789", "HF_ENDPOINT": closed_port_url()}
    bad = subprocess.run([sys.executable, "-m", "gitmirror", "doctor", "--json", "--timeout", "2"], env=bad_env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 9, bad.stderr
    data = json.loads(bad.stdout)
    assert data["ok"] is False and data["exit_code"] == 9
    failed = {c["name"] for c in data["checks"] if c["status"] == "fail"}
    assert failed == {"Hugging Face endpoint", "ModelScope token"}
    assert all(c["fix"] for c in data["checks"] if c["status"] == "fail")
    for out in (ok.stdout, ok.stderr, bad.stdout, bad.stderr):
        assert hf_token not in out and ms_token not in out and "ms-wrong-token-789" not in out


def test_a_stalled_whoami_is_a_network_failure_not_a_token_one(hubs, git_env, tmp_path):
    hf = hubs["hf"]
    env = env_with(hubs, git_env, tmp_path, HF_TOKEN=hf.issue_token("alice"))
    # Far longer than doctor may wait, so that a busy test machine cannot blur the difference.
    hf.faults.stall("GET", path="/api/whoami-v2", seconds=40, times=None)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "gitmirror", "doctor", "--json", "--timeout", "1"], env=env,
                              capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        hf.faults.clear()
    data = json.loads(done.stdout)
    row = next(c for c in data["checks"] if c["name"] == "Hugging Face token")
    assert row["status"] == "fail" and "could not be checked" in row["detail"] and "network" in row["fix"]
    assert done.returncode == 9 and data["exit_code"] == 9
    assert elapsed < 25, f"doctor waited {elapsed:.1f} s on a stalled hub"


@pytest.fixture
def answering_server():
    """A local web server that is not a hub: every request gets the status set in ``server.status``."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(self.server.status)
            if 300 <= self.server.status < 400:
                self.send_header("Location", "http://127.0.0.1:1/login")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.status = 404
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "words"), [(404, "no Hugging Face API"), (503, "server error"), (302, "redirected")])
def test_an_endpoint_that_is_not_the_hub_fails(hubs, git_env, tmp_path, answering_server, status, words):
    answering_server.status = status
    url = f"http://127.0.0.1:{answering_server.server_address[1]}"
    report = doctor.run_checks(env=env_with(hubs, git_env, tmp_path, HF_ENDPOINT=url), timeout=5)
    endpoint = rows(report)["Hugging Face endpoint"]
    assert endpoint.status is Status.FAIL, endpoint
    assert f"HTTP {status}" in endpoint.detail and words in endpoint.detail and endpoint.fix
    assert report.exit_code == 9 and rows(report)["ModelScope endpoint"].status is Status.OK


def test_the_hubs_api_answering_401_without_a_token_is_reachable(hubs, git_env, tmp_path):
    # The sandbox hubs, like the real ones, answer 404 at "/": only their API routes say who they are.
    report = doctor.run_checks(env=env_with(hubs, git_env, tmp_path), timeout=5)
    for label in ("Hugging Face", "ModelScope"):
        row = rows(report)[f"{label} endpoint"]
        assert row.status is Status.OK and "HTTP 401" in row.detail, row
