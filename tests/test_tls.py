"""Mirrors over HTTPS: every sandbox port speaks TLS with a certificate from a local CA
(``Sandbox(tls=True)``); git, git-lfs, gitmirror and the hub SDKs trust it through their own
settings, and the judges are git and git-lfs over https with that CA. A second, unrelated CA must
make gitmirror stop with a certificate error (exit 9, never retried) on the git and the LFS path.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
import time

import pytest

from gitmirror import api
from gitmirror.errors import CertificateError, certificate_error, certificate_failure, error_for_git, is_transient
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, clone_and_check_lfs, remote_refs

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hubs(sandbox_tls):
    """One hub of each kind on the TLS sandbox, user "alice" in org "org", and her tokens."""
    hf = sandbox_tls.add_hub("huggingface", multipart_threshold=150 * 1024)
    ms = sandbox_tls.add_hub("modelscope")
    plain = sandbox_tls.add_hub("git", storage_host="localhost")
    tokens = {}
    for name, hub in (("hf", hf), ("ms", ms), ("git", plain)):
        hub.add_user("alice", orgs=("org",))
        tokens[name] = hub.issue_token("alice", scope="write")
    return {"hf": hf, "ms": ms, "git": plain, "tokens": tokens}


def history() -> tuple[RepoBuilder, dict[str, bytes]]:
    """Two branches, a tag, small and multipart-sized LFS objects; returns it with oid -> bytes."""
    b = RepoBuilder()
    files = {"small.bin": random_bytes(20_000, "tls-small"), "big.safetensors": random_bytes(300_000, "tls-big"),
             "dev.bin": random_bytes(15_000, "tls-dev")}
    c1 = b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# tls\n", "small.bin": lfs(files["small.bin"])})
    b.commit({"big.safetensors": lfs(files["big.safetensors"])}, message="big")
    b.tag("v1.0", message="Release 1.0")
    b.commit({"dev.bin": lfs(files["dev.bin"])}, branch="dev", base=c1, message="dev")
    return b, {hashlib.sha256(data).hexdigest(): data for data in files.values()}


def mirror(hubs, env, tmp_path, src, dst, src_token, dst_token):
    env = {**env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint}
    return api.mirror(src, dst, src_token=src_token, dst_token=dst_token, env=env,
                      cache_dir=tmp_path / "cache", policy=FAST)


def test_endpoints_and_hrefs_are_https(hubs):
    for hub in (hubs["hf"], hubs["ms"], hubs["git"]):
        assert hub.endpoint.startswith("https://") and hub.storage_endpoint.startswith("https://")
        assert hub.git_url("org/x").startswith("https://")


def test_hf_to_modelscope_over_https(hubs, tls_git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("tls-hf-ms")
    builder, objects = history()
    src = builder.push_to_hub(hf, f"org/{name}")

    result = mirror(hubs, tls_git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])

    url = ms.git_url(f"org/{name}")
    assert url.startswith("https://")
    judge_env = auth_env(ms.endpoint, "oauth2", ms.git_token_for(tokens["ms"]), tls_git_env)
    assert remote_refs(url, judge_env) == {"refs/heads/master": src["refs/heads/main"],
                                           "refs/heads/dev": src["refs/heads/dev"],
                                           "refs/tags/v1.0": src["refs/tags/v1.0"]}
    clone_and_check_lfs(url, judge_env, tmp_path, objects)
    assert result.verified and result.objects_moved == len(objects)


def test_modelscope_to_hf_over_https(hubs, tls_git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("tls-ms-hf")
    builder, objects = history()
    src = builder.push_to_hub(ms, f"org/{name}")  # a ModelScope history on "main"

    result = mirror(hubs, tls_git_env, tmp_path, f"ms://org/{name}", f"hf://org/{name}", tokens["ms"], tokens["hf"])

    url = hf.git_url(f"org/{name}")
    judge_env = auth_env(hf.endpoint, "alice", tokens["hf"], tls_git_env)
    refs = remote_refs(url, judge_env)
    assert refs["refs/heads/dev"] == src["refs/heads/dev"]
    assert refs["refs/tags/v1.0"] == src["refs/tags/v1.0"]
    clone_and_check_lfs(url, judge_env, tmp_path, objects)
    # the 300 kB object went multipart (threshold 150 kB): part URLs are https too
    assert hf.counters.snapshot().count("lfs-multipart-part") > 0
    assert result.verified


def test_plain_git_host_to_local_bare_over_https(hubs, tls_git_env, tmp_path, unique_name):
    plain, tokens = hubs["git"], hubs["tokens"]
    name = unique_name("tls-git-bare")
    builder, objects = history()
    src = builder.push_to_hub(plain, f"org/{name}", private=True)
    backup = tmp_path / "backup" / f"{name}.git"

    mirror(hubs, tls_git_env, tmp_path, plain.git_url(f"org/{name}"), str(backup), tokens["git"], None)

    assert remote_refs(str(backup), tls_git_env) == src
    clone_and_check_lfs(str(backup), tls_git_env, tmp_path, objects)


# -- a CA this machine does not trust: exit 9, named, never retried --------------------------------


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory):
    """The certificate of a second, unrelated CA: trusting it alone trusts none of the hubs."""
    import trustme

    path = tmp_path_factory.mktemp("wrong-ca") / "wrong-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def distrust(monkeypatch, env, wrong_ca, names=("GIT_SSL_CAINFO", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")):
    """``env`` (and os.environ, for the SDKs) with the clients of ``names`` trusting only the wrong CA."""
    for key in names:
        monkeypatch.setenv(key, wrong_ca)
    return {**env, **{key: wrong_ca for key in names}}


def seeded_plain_repo(hubs, unique_name, label):
    plain = hubs["git"]
    name = unique_name(label)
    builder, _ = history()
    builder.push_to_hub(plain, f"org/{name}", private=True)
    plain.counters.reset()
    return plain, name


def test_a_wrong_ca_stops_the_git_path_with_exit_9_once(hubs, tls_git_env, wrong_ca, tmp_path, unique_name,
                                                        monkeypatch):
    plain, name = seeded_plain_repo(hubs, unique_name, "tls-wrong-git")
    env = distrust(monkeypatch, tls_git_env, wrong_ca)
    backup = tmp_path / "backup.git"

    with pytest.raises(CertificateError) as caught:
        mirror(hubs, env, tmp_path, plain.git_url(f"org/{name}"), str(backup), hubs["tokens"]["git"], None)

    error = caught.value
    assert error.exit_code == 9 and not is_transient(error)
    assert "certificate is not trusted" in error.message and "GIT_SSL_CAINFO" in (error.hint or "")
    snap = plain.counters.snapshot()
    # git's one connection, not retried; git (GnuTLS) hangs up after the handshake, so no request
    assert snap.features.get("connection-hub") == 1, snap.features
    assert snap.total_requests() == 0
    assert not backup.exists() or remote_refs(str(backup), tls_git_env) == {}


def test_a_wrong_ca_for_gitmirror_alone_stops_its_own_client_with_exit_9_once(hubs, tls_git_env, wrong_ca, tmp_path,
                                                                             unique_name, monkeypatch):
    """git trusts the right CA, gitmirror's own HTTP client the wrong one. That client makes the
    run's first request (the source's refs are read in-process, gitmirror/refadvert.py; its LFS
    calls use the same client): it is refused at the handshake, once, and the run stops with
    exit 9 before git or LFS is asked anything."""
    plain, name = seeded_plain_repo(hubs, unique_name, "tls-wrong-lfs")
    env = distrust(monkeypatch, tls_git_env, wrong_ca, ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"))
    backup = tmp_path / "backup.git"

    with pytest.raises(CertificateError) as caught:
        mirror(hubs, env, tmp_path, plain.git_url(f"org/{name}"), str(backup), hubs["tokens"]["git"], None)

    error = caught.value
    assert error.exit_code == 9 and not is_transient(error)
    assert "certificate is not trusted" in error.message and "unable to get local issuer certificate" in error.message
    time.sleep(0.3)  # the client hangs up before the server's thread notes the refused handshake
    snap = plain.counters.snapshot()
    # One refusal: the listing's one try (retried, it would be FAST.attempts); nothing after it.
    assert snap.features.get("tls-refused-hub") == 1, snap.features
    assert snap.count("git-upload-pack") == 0 and snap.count("lfs-batch") == 0 and snap.count("lfs-download") == 0
    assert not backup.exists() or not any((backup / "refs").rglob("*"))


def test_a_wrong_ca_exits_9_from_the_command_line(hubs, tls_git_env, wrong_ca, tmp_path, unique_name):
    plain, name = seeded_plain_repo(hubs, unique_name, "tls-wrong-cli")
    env = {**tls_git_env, "GIT_SSL_CAINFO": wrong_ca, "SSL_CERT_FILE": wrong_ca, "REQUESTS_CA_BUNDLE": wrong_ca,
           "GITMIRROR_SRC_TOKEN": hubs["tokens"]["git"]}
    done = subprocess.run([sys.executable, "-m", "gitmirror", "clone-push", plain.git_url(f"org/{name}"),
                           str(tmp_path / "backup.git"), "--cache-dir", str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert "certificate is not trusted" in done.stderr
    assert hubs["tokens"]["git"] not in done.stderr + done.stdout


@pytest.mark.parametrize("stderr", [
    "fatal: unable to access 'https://hub.example/org/m.git/': SSL certificate problem: unable to get local issuer certificate",
    "fatal: unable to access 'https://hub.example/org/m.git/': server certificate verification failed. "
    "CAfile: /etc/ssl/certs/ca-certificates.crt CRLfile: none",
    "fatal: unable to access 'https://10.0.0.1/org/m.git/': SSL: no alternative certificate subject name matches "
    "target host name '10.0.0.1'",
    "batch request: Post \"https://hub.example/org/m.git/info/lfs/objects/batch\": x509: certificate signed by "
    "unknown authority",
], ids=["openssl", "gnutls", "host-name", "git-lfs"])
def test_git_certificate_failures_are_environment_problems(stderr):
    error = error_for_git(stderr, "listing refs")
    assert isinstance(error, CertificateError) and error.exit_code == 9 and not is_transient(error)


def test_user_text_never_reads_as_a_certificate_failure():
    # a repository named after the phrase, and a TLS connection cut (transient, as before)
    named = error_for_git("fatal: repository 'https://hub.example/org/ssl-certificate-problem/' not found", "fetching")
    assert not isinstance(named, CertificateError)
    cut = error_for_git("error: RPC failed; curl 56 GnuTLS recv error (-110): The TLS connection was non-properly "
                        "terminated.", "fetching")
    assert not isinstance(cut, CertificateError) and is_transient(cut)


@pytest.mark.parametrize("kind", ["hf", "ms"])
def test_a_wrong_ca_stops_the_hub_api_paths_with_exit_9(hubs, tls_git_env, wrong_ca, tmp_path, unique_name,
                                                        monkeypatch, kind):
    """git trusts the right CA, Python the wrong one, and the destination is new: the hub's API
    meets the certificate (Hugging Face: its SDK's repo_info, through httpx2; ModelScope: the login,
    through our client) and the run stops with exit 9, having created nothing."""
    hub = hubs[kind]
    name = unique_name(f"tls-wrong-{kind}")
    history()[0].push_to_hub(hub, f"org/{name}", private=True)
    env = distrust(monkeypatch, tls_git_env, wrong_ca, ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"))
    token = hubs["tokens"][kind]
    # huggingface_hub keeps one httpx2 client per process, made with the CA of its time:
    # a fresh one now reads the wrong CA, and the next test gets a fresh one again.
    from huggingface_hub import close_session

    close_session()
    try:
        with pytest.raises(CertificateError) as caught:
            mirror(hubs, env, tmp_path, f"{kind}://org/{name}", f"{kind}://org/{name}-copy", token, token)
    finally:
        close_session()

    assert caught.value.exit_code == 9 and "certificate is not trusted" in caught.value.message
    assert hub.state.get_repo(hub.key(f"org/{name}-copy")) is None


def _verification_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


def test_the_verification_failure_is_found_inside_each_librarys_wrapper():
    import httpx2
    import requests
    import urllib3

    inner = _verification_error()
    wrapped_requests = requests.exceptions.SSLError(
        urllib3.exceptions.MaxRetryError(None, "/x", reason=urllib3.exceptions.SSLError(inner)))
    try:
        try:
            raise inner
        except ssl.SSLError as exc:
            raise httpx2.ConnectError("handshake failed") from exc
    except httpx2.ConnectError as exc:
        wrapped_httpx = exc
    for wrapped in (inner, wrapped_requests, wrapped_httpx):
        assert certificate_failure(wrapped) is inner
    for other in (ConnectionResetError(), ssl.SSLEOFError(8, "EOF"), TimeoutError(), ValueError("x")):
        assert certificate_failure(other) is None
    error = certificate_error(inner, "connecting to https://hub.example")
    assert error.exit_code == 9 and "unable to get local issuer certificate" in error.message


def test_a_mirror_over_slow_tls_links_of_different_rtts(sandbox_tls, tls_git_env, tmp_path, unique_name):
    """Source 60 ms away, destination 20 ms, both over TLS: the mirror completes, judged by git
    and git-lfs, and took at least the source's unavoidable round trips."""
    src_hub = sandbox_tls.add_hub("git", rtt=0.06)
    dst_hub = sandbox_tls.add_hub("git", rtt=0.02)
    tokens = {}
    for hub in (src_hub, dst_hub):
        hub.add_user("alice", orgs=("org",))
        tokens[hub.name] = hub.issue_token("alice", scope="write")
    name = unique_name("tls-rtt")
    builder, objects = history()
    src = builder.push_to_hub(src_hub, f"org/{name}", private=True)
    dst_hub.create_repo(f"org/{name}")

    start = time.monotonic()
    api.mirror(src_hub.git_url(f"org/{name}"), dst_hub.git_url(f"org/{name}"), src_token=tokens[src_hub.name],
               dst_token=tokens[dst_hub.name], env=tls_git_env, cache_dir=tmp_path / "cache", policy=FAST)
    elapsed = time.monotonic() - start

    url = dst_hub.git_url(f"org/{name}")
    judge_env = auth_env(dst_hub.endpoint, "alice", tokens[dst_hub.name], tls_git_env)
    assert remote_refs(url, judge_env) == src
    clone_and_check_lfs(url, judge_env, tmp_path, objects)
    snap = src_hub.counters.snapshot()
    # git's requests to the source come one after another, each 60 ms, its first connection 120 ms more
    git_requests = snap.count("git-info-refs") + snap.count("git-upload-pack")
    assert git_requests >= 2 and elapsed >= 0.06 * git_requests + 0.12, (elapsed, snap.requests)
