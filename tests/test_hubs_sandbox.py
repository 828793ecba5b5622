"""The adapters against the project's sandbox hubs (real git, real huggingface_hub / modelscope SDKs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitmirror.errors import AuthError, GatedRepoError, PermissionDeniedError, RepoNotFoundError
from gitmirror.hubs import open_hub
from gitmirror.retry import FAST
from gitmirror.sandbox import Sandbox
from gitmirror.specs import parse_spec


@pytest.fixture(scope="module")
def hf(sandbox: Sandbox):
    hub = sandbox.add_hub("huggingface", name="hf-adapters")
    hub.add_user("alice")
    hub.add_user("bob")
    hub.add_org("acme", members=["alice"])
    return hub


@pytest.fixture(scope="module")
def plain(sandbox: Sandbox):
    hub = sandbox.add_hub("git", name="git-adapters")
    hub.add_user("carol")
    return hub


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"), "MODELSCOPE_HOME": str(home / ".ms"), **extra}


def hf_hub(hf, tmp_path: Path, text: str, token: str | None = None, role: str = "src"):
    env = env_for(tmp_path, HF_ENDPOINT=hf.endpoint)
    return open_hub(parse_spec(text, role, env), token=token, env=env, role=role, policy=FAST)  # type: ignore[arg-type]


# --- Hugging Face ------------------------------------------------------------------------------


def test_hf_public_source(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('pub')}"
    hf.create_repo(name)
    hub = hf_hub(hf, tmp_path, f"hf://{name}")
    info = hub.preflight_source()
    assert info.exists and info.private is False
    assert hub.git_url == hf.git_url(name) and hub.lfs_url == hf.lfs_url(name)


def test_hf_missing_source(hf, tmp_path, unique_name):
    with pytest.raises(RepoNotFoundError):
        hf_hub(hf, tmp_path, f"hf://alice/{unique_name('nope')}", hf.issue_token("alice", "read")).preflight_source()


def test_hf_private_source(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('priv')}"
    hf.create_repo(name, private=True)
    with pytest.raises(AuthError) as err:
        hf_hub(hf, tmp_path, f"hf://{name}").preflight_source()
    assert "HF_TOKEN" in str(err.value)
    with pytest.raises(RepoNotFoundError):  # another account cannot see it
        hf_hub(hf, tmp_path, f"hf://{name}", hf.issue_token("bob", "read")).preflight_source()
    info = hf_hub(hf, tmp_path, f"hf://{name}", hf.issue_token("alice", "read")).preflight_source()
    assert info.private is True


def test_hf_private_source_token_from_hf_home(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('stored')}"
    hf.create_repo(name, private=True)
    hf_home = tmp_path / "hfhome"
    hf_home.mkdir()
    (hf_home / "token").write_text(hf.issue_token("alice", "read"))
    env = env_for(tmp_path, HF_ENDPOINT=hf.endpoint, HF_HOME=str(hf_home))
    hub = open_hub(parse_spec(f"hf://{name}", "src", env), env=env, policy=FAST)
    assert hub.preflight_source().private is True
    assert "stored Hugging Face login" in hub.credential_source


def test_hf_wrong_token(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('pub')}"
    hf.create_repo(name)
    bogus = "sbxhf_" + "0" * 30
    with pytest.raises(AuthError) as err:
        hf_hub(hf, tmp_path, f"hf://{name}", bogus).preflight_source()
    assert "rejected" in str(err.value) and bogus not in str(err.value)


@pytest.mark.parametrize("gated", ["auto", "manual"])
def test_hf_gated(hf, tmp_path, unique_name, gated):
    name = f"acme/{unique_name('gated')}"
    hf.create_repo(name, gated=gated)
    bob = hf.issue_token("bob", "read")
    with pytest.raises(GatedRepoError):
        hf_hub(hf, tmp_path, f"hf://{name}", bob).preflight_source()
    with pytest.raises(GatedRepoError):
        hf_hub(hf, tmp_path, f"hf://{name}").preflight_source()
    hf.repo(name).accepted.add("bob")
    assert hf_hub(hf, tmp_path, f"hf://{name}", bob).preflight_source().exists


def test_hf_disabled(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('off')}"
    hf.create_repo(name, disabled=True)
    with pytest.raises(PermissionDeniedError):
        hf_hub(hf, tmp_path, f"hf://{name}").preflight_source()


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
@pytest.mark.parametrize("private", [True, False])
def test_hf_create_with_visibility(hf, tmp_path, unique_name, repo_type, private):
    name = f"acme/{unique_name('new')}"
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    hub = hf_hub(hf, tmp_path, f"hf://{prefix}{name}", hf.issue_token("alice", "write"), role="dst")
    info = hub.ensure_destination(private=private)
    assert info.created and info.private is private
    assert hf.repo(name, repo_type).private is private
    again = hf_hub(hf, tmp_path, f"hf://{prefix}{name}", hf.issue_token("alice", "write"), role="dst")
    info = again.ensure_destination(private=not private)
    assert info.exists and not info.created and info.private is private


def test_hf_read_only_token_for_destination(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('ro')}"
    with pytest.raises(PermissionDeniedError) as err:
        hf_hub(hf, tmp_path, f"hf://{name}", hf.issue_token("alice", "read"), role="dst").ensure_destination(None)
    assert "read-only" in str(err.value)
    with pytest.raises(KeyError):
        hf.repo(name)  # nothing was created


def test_hf_destination_owner_not_yours(hf, tmp_path, unique_name):
    with pytest.raises(PermissionDeniedError) as err:
        hf_hub(hf, tmp_path, f"hf://acme/{unique_name('x')}", hf.issue_token("bob", "write"), role="dst").ensure_destination(None)
    assert "'acme'" in str(err.value)


def test_hf_existing_destination_of_someone_else(hf, tmp_path, unique_name):
    name = f"alice/{unique_name('theirs')}"
    hf.create_repo(name)
    with pytest.raises(PermissionDeniedError):
        hf_hub(hf, tmp_path, f"hf://{name}", hf.issue_token("bob", "write"), role="dst").ensure_destination(None)


def test_hf_git_auth_works_with_git(hf, tmp_path, unique_name):
    from gitmirror.remote import Remote

    name = f"alice/{unique_name('priv')}"
    hf.create_repo(name, private=True)
    hub = hf_hub(hf, tmp_path, f"hf://{name}", hf.issue_token("alice", "read"))
    refs = Remote(hub.git_url, hub.git_auth(), FAST).ls_remote()
    assert "refs/heads/main" in refs.refs


# --- plain git host ----------------------------------------------------------------------------


def git_hub(plain, tmp_path: Path, url: str, token: str | None = None, role: str = "dst"):
    env = env_for(tmp_path)
    return open_hub(parse_spec(url, role, env), token=token, env=env, role=role, policy=FAST)  # type: ignore[arg-type]


def test_git_host_private_repo(plain, tmp_path, unique_name):
    name = f"carol/{unique_name('g')}"
    plain.create_repo(name, private=True)
    url = plain.git_url(name)
    with pytest.raises(AuthError) as err:
        git_hub(plain, tmp_path, url, role="src").preflight_source()
    assert "credential helper" in str(err.value)
    hub = git_hub(plain, tmp_path, url, plain.issue_token("carol", "write"))
    assert hub.ensure_destination(private=None).exists
    assert hub.lfs_url == plain.lfs_url(name)


def test_git_host_missing_repo_is_not_created(plain, tmp_path, unique_name):
    url = plain.git_url(f"carol/{unique_name('missing')}")
    with pytest.raises(RepoNotFoundError) as err:
        git_hub(plain, tmp_path, url, plain.issue_token("carol", "write")).ensure_destination(private=None)
    assert "create the repository" in str(err.value)


def test_git_host_credentials_from_helper(plain, tmp_path, unique_name):
    name = f"carol/{unique_name('helper')}"
    plain.create_repo(name, private=True)
    token = plain.issue_token("carol", "read")
    helper = tmp_path / "helper.sh"
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 0\necho username=carol\necho password={token}\n")
    helper.chmod(0o755)
    (tmp_path / "gitconfig").write_text(f"[credential]\n\thelper = {helper}\n")
    hub = git_hub(plain, tmp_path, plain.git_url(name), role="src")
    assert hub.preflight_source().exists
    assert hub.credential_source == "git credential helper"


# --- ModelScope ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ms(sandbox: Sandbox):
    hub = sandbox.add_hub("modelscope", name="ms-adapters")
    hub.add_user("dora")
    hub.add_user("eve")
    hub.add_org("mirrors", members=["dora"])
    return hub


def ms_hub(ms, tmp_path: Path, text: str, token: str | None = None, role: str = "dst", **extra: str):
    env = env_for(tmp_path, MODELSCOPE_ENDPOINT=ms.endpoint, **extra)
    return open_hub(parse_spec(text, role, env), token=token, env=env, role=role, policy=FAST)  # type: ignore[arg-type]


def test_ms_public_source_anonymous(ms, tmp_path, unique_name):
    name = f"dora/{unique_name('pub')}"
    ms.create_repo(name)
    hub = ms_hub(ms, tmp_path, f"ms://{name}", role="src")
    info = hub.preflight_source()
    assert info.exists and info.private is False
    assert hub.git_url == ms.git_url(name) and hub.git_auth() is None


def test_ms_missing_and_private_source(ms, tmp_path, unique_name):
    with pytest.raises(RepoNotFoundError):
        ms_hub(ms, tmp_path, f"ms://dora/{unique_name('nope')}", ms.issue_token("dora", "read"), role="src").preflight_source()
    name = f"dora/{unique_name('priv')}"
    ms.create_repo(name, private=True)
    with pytest.raises(AuthError) as err:
        ms_hub(ms, tmp_path, f"ms://{name}", role="src").preflight_source()
    assert "MODELSCOPE_API_TOKEN" in str(err.value)
    with pytest.raises(RepoNotFoundError):
        ms_hub(ms, tmp_path, f"ms://{name}", ms.issue_token("eve", "write"), role="src").preflight_source()


def test_ms_private_source_git_token_by_login(ms, tmp_path, unique_name):
    from gitmirror.remote import Remote

    name = f"dora/{unique_name('priv')}"
    ms.create_repo(name, private=True, initial_commit=True)
    sdk = ms.issue_token("dora", "write")
    hub = ms_hub(ms, tmp_path, f"ms://{name}", sdk, role="src")
    assert hub.preflight_source().private is True
    auth = hub.git_auth()
    assert auth.username == "oauth2" and auth.password == ms.git_token_for(sdk) != sdk
    assert "refs/heads/master" in Remote(hub.git_url, auth, FAST).ls_remote().refs
    # The SDK token itself is refused by git: the adapter must not have used it.
    from gitmirror.hubs.base import GitAuth

    with pytest.raises(AuthError):
        Remote(hub.git_url, GitAuth("oauth2", sdk), FAST).ls_remote()


def test_ms_wrong_token(ms, tmp_path, unique_name):
    name = f"dora/{unique_name('pub')}"
    ms.create_repo(name)
    bogus = "sbxms_" + "0" * 30
    with pytest.raises(AuthError) as err:
        ms_hub(ms, tmp_path, f"ms://{name}", bogus, role="src").preflight_source()
    assert bogus not in str(err.value)


def test_ms_git_token_given_instead_of_sdk_token(ms, tmp_path, unique_name):
    git_token = ms.git_token_for(ms.issue_token("dora", "write"))
    with pytest.raises(AuthError) as err:
        ms_hub(ms, tmp_path, f"ms://dora/{unique_name('x')}", git_token).ensure_destination(private=None)
    assert "git token" in str(err.value)


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
@pytest.mark.parametrize("private", [True, False])
def test_ms_create_with_visibility(ms, tmp_path, unique_name, repo_type, private):
    name = f"mirrors/{unique_name('new')}"
    prefix = "datasets/" if repo_type == "dataset" else ""
    hub = ms_hub(ms, tmp_path, f"ms://{prefix}{name}", ms.issue_token("dora", "write"))
    info = hub.ensure_destination(private=private)
    assert info.created and info.private is private and info.default_branch == "master"
    assert ms.repo(name, repo_type).private is private
    again = ms_hub(ms, tmp_path, f"ms://{prefix}{name}", ms.issue_token("dora", "write")).ensure_destination(None)
    assert again.exists and not again.created and again.private is private
    assert hub.git_auth().password == ms.git_token_for(ms.issue_token("dora", "write"))


def test_ms_read_only_token_for_destination(ms, tmp_path, unique_name):
    name = f"dora/{unique_name('ro')}"
    with pytest.raises(PermissionDeniedError) as err:
        ms_hub(ms, tmp_path, f"ms://{name}", ms.issue_token("dora", "read")).ensure_destination(private=False)
    assert "read-only" in str(err.value)
    with pytest.raises(KeyError):
        ms.repo(name)


def test_ms_destination_owner_not_yours(ms, tmp_path, unique_name):
    with pytest.raises(PermissionDeniedError) as err:
        ms_hub(ms, tmp_path, f"ms://mirrors/{unique_name('x')}", ms.issue_token("eve", "write")).ensure_destination(None)
    assert "'mirrors'" in str(err.value)


def test_ms_stored_login(ms, tmp_path, unique_name):
    from modelscope_hub.config import HubConfig

    name = f"dora/{unique_name('stored')}"
    ms.create_repo(name, private=True)
    sdk = ms.issue_token("dora", "write")
    ms_home = tmp_path / "stored-ms"
    config = HubConfig(endpoint=ms.endpoint, token="", config_dir=ms_home, cache_dir=ms_home / "cache")
    config.save_token(sdk)
    config.save_git_token(ms.git_token_for(sdk))
    hub = ms_hub(ms, tmp_path, f"ms://{name}", role="src", MODELSCOPE_HOME=str(ms_home))
    assert hub.preflight_source().private is True
    assert "stored ModelScope login" in hub.credential_source
    assert hub.git_auth().password == ms.git_token_for(sdk)


def test_ms_sdk_leaves_the_home_alone(ms, tmp_path, unique_name):
    name = f"dora/{unique_name('pub')}"
    ms.create_repo(name)
    ms_hub(ms, tmp_path, f"ms://{name}", ms.issue_token("dora", "write"), role="src").preflight_source()
    home = tmp_path / "home"
    assert {p.name for p in home.iterdir()} <= {".ms", ".cache"}  # MODELSCOPE_HOME, and the SDK's empty cache dir
    creds = home / ".ms" / "credentials"
    assert not (creds / "git_token").exists() and not (creds / "cookies").exists()


# --- the LFS stores the adapters hand out ------------------------------------------------------


def _seeded(hub, name: str, repo_type: str = "model"):
    import os

    from gitmirror.lfs import LfsObject

    oid, size = hub.put_lfs_object(name, os.urandom(2048), repo_type)
    return LfsObject(oid, size)


def test_lfs_stores_authenticate_to_private_repos(hf, ms, tmp_path, unique_name):
    from gitmirror.httpclient import HttpClient

    hf_name, ms_name = f"alice/{unique_name('lfs')}", f"dora/{unique_name('lfs')}"
    hf.create_repo(hf_name, private=True)
    ms.create_repo(ms_name, private=True)
    hf_obj, ms_obj = _seeded(hf, hf_name), _seeded(ms, ms_name)
    with HttpClient() as session:
        store = hf_hub(hf, tmp_path, f"hf://{hf_name}", hf.issue_token("alice", "read")).lfs_store()
        assert store.lacking([hf_obj], session) == []
        source = ms_hub(ms, tmp_path, f"ms://{ms_name}", ms.issue_token("dora", "write"), role="src")
        source.login()  # the git token that LFS takes comes from ModelScope's login
        store = source.lfs_store()
        assert store.lacking([ms_obj], session) == []
        # Anonymous stores see nothing of a private repository.
        anonymous = hf_hub(hf, tmp_path, f"hf://{hf_name}").lfs_store()
        with pytest.raises((AuthError, RepoNotFoundError)):
            anonymous.lacking([hf_obj], session)


def test_local_lfs_store_is_where_git_lfs_looks(tmp_path):
    import subprocess

    target = tmp_path / "backup.git"
    hub = open_hub(parse_spec(str(target), "dst", {}), env=env_for(tmp_path))
    hub.ensure_destination(private=None)
    lfs_dir = subprocess.run(["git", "-C", str(target), "lfs", "env"], capture_output=True, text=True).stdout
    assert f"LocalMediaDir={target / 'lfs' / 'objects'}" in lfs_dir
    assert hub.lfs_store().objects_dir == target / "lfs" / "objects"


def test_write_access_is_checked_before_pushing(ms, plain, tmp_path, unique_name):
    ms_name, git_name = f"dora/{unique_name('theirs')}", f"carol/{unique_name('theirs')}"
    ms.create_repo(ms_name)
    plain.create_repo(git_name)
    plain.add_user("mallory")
    with pytest.raises(PermissionDeniedError):
        ms_hub(ms, tmp_path, f"ms://{ms_name}", ms.issue_token("eve", "write")).ensure_destination(None)
    with pytest.raises(PermissionDeniedError):
        git_hub(plain, tmp_path, plain.git_url(git_name), plain.issue_token("mallory", "write")).ensure_destination(None)
    # The owners pass the same check.
    assert ms_hub(ms, tmp_path, f"ms://{ms_name}", ms.issue_token("dora", "write")).ensure_destination(None).exists
    assert git_hub(plain, tmp_path, plain.git_url(git_name), plain.issue_token("carol", "write")).ensure_destination(None).exists


# --- transient faults on the REST side ----------------------------------------------------------


def test_api_faults_are_retried_and_counted(hf, ms, tmp_path, unique_name):
    hf_name, ms_name = f"acme/{unique_name('flaky')}", f"mirrors/{unique_name('flaky')}"
    retries: list[str] = []

    def count(what, exc):
        retries.append(what)

    hf.faults.fail(path=r"^/api/(whoami-v2|repos/create)", status=503, times=2)
    hf.faults.fail(path=r"^/api/models/", status=429, retry_after=0, times=1)
    env = env_for(tmp_path, HF_ENDPOINT=hf.endpoint, MODELSCOPE_ENDPOINT=ms.endpoint)
    try:
        hub = open_hub(parse_spec(f"hf://{hf_name}", "dst", env), token=hf.issue_token("alice", "write"), env=env,
                       role="dst", policy=FAST, on_retry=count)
        assert hub.ensure_destination(private=False).created
    finally:
        hf.faults.clear()
    assert len(retries) == 3

    retries.clear()
    ms.faults.fail(path=r"^/api/v1/(login|models)", status=502, times=2)
    ms.faults.fail(path=r"^/openapi/v1/users/me", status=500, times=1)
    try:
        hub = open_hub(parse_spec(f"ms://{ms_name}", "dst", env), token=ms.issue_token("dora", "write"), env=env,
                       role="dst", policy=FAST, on_retry=count)
        assert hub.ensure_destination(private=True).created
    finally:
        ms.faults.clear()
    assert len(retries) == 3


def test_api_refusals_are_not_retried(hf, tmp_path, unique_name):
    retries: list[str] = []
    env = env_for(tmp_path, HF_ENDPOINT=hf.endpoint)
    hub = open_hub(parse_spec(f"hf://alice/{unique_name('gone')}", "src", env), env=env, policy=FAST,
                   on_retry=lambda what, exc: retries.append(what))
    with pytest.raises(AuthError):
        hub.preflight_source()
    assert retries == []


#: ``python -m gitmirror`` with short default timeouts (the command has no option for them).
_CLI_WITH_SHORT_TIMEOUTS = """
import dataclasses, runpy, sys
from gitmirror import retry
short = dataclasses.replace(retry.FAST, connect_timeout=5.0, read_timeout=2.0)
retry.RetryPolicy.__init__.__defaults__ = tuple(getattr(short, f.name) for f in dataclasses.fields(short))
sys.argv[0] = "gitmirror"
runpy.run_module("gitmirror", run_name="__main__")
"""


def test_cli_cuts_stalled_hf_api_calls_and_retries_them(hf, git_env, tmp_path, unique_name):
    """whoami and create take no timeout in huggingface_hub; the command's client gives them one."""
    import json
    import subprocess
    import sys
    import time

    src, dst = f"alice/{unique_name('src')}", f"alice/{unique_name('dst')}"
    hf.create_repo(src)
    stall = 20.0
    rules = [hf.faults.stall("GET", r"^/api/whoami-v2", route="api", seconds=stall),
             hf.faults.stall("POST", r"^/api/repos/create", route="api", seconds=stall)]
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "HF_TOKEN": hf.issue_token("alice", "write"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", _CLI_WITH_SHORT_TIMEOUTS, "clone-push", "--json",
                               f"hf://{src}", f"hf://{dst}"], env=env, capture_output=True, text=True, timeout=180)
    finally:
        hf.faults.clear()
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert [rule.fired for rule in rules] == [1, 1]
    assert elapsed < stall, f"a stalled call was waited out ({elapsed:.1f} s)"
    assert json.loads(done.stdout)["retries"] >= 2
    assert hf.repo(dst).private is False


def test_doctor_timeout_bounds_a_stalled_whoami(hf, git_env, tmp_path):
    """Inside the command's client, each adapter call keeps its own policy: doctor's --timeout."""
    import json
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    stall = 20.0
    rule = hf.faults.stall("GET", r"^/api/whoami-v2", route="api", seconds=stall)
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "HF_TOKEN": hf.issue_token("alice", "write"),
           "MODELSCOPE_ENDPOINT": closed, "GITMIRROR_CACHE": str(tmp_path / "cache")}
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "gitmirror", "doctor", "--json", "--timeout", "2"], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        hf.faults.clear()
    elapsed = time.monotonic() - started
    rows = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert rule.fired == 1
    assert rows["Hugging Face token"]["status"] == "fail", rows["Hugging Face token"]
    assert elapsed < stall, f"doctor waited the stall out ({elapsed:.1f} s)"


def test_the_command_client_keeps_huggingface_hub_defaults():
    from huggingface_hub.utils._http import default_client_factory

    from gitmirror.hubs.huggingface import _client_with_timeouts
    from gitmirror.retry import RetryPolicy

    default = default_client_factory()
    client = _client_with_timeouts(RetryPolicy(connect_timeout=3.0, read_timeout=7.0))
    try:
        assert client.timeout.connect == 3.0 and client.timeout.read == 7.0
        assert client.follow_redirects is True
        assert client.event_hooks["request"][: len(default.event_hooks["request"])] == default.event_hooks["request"]
    finally:
        client.close()
        default.close()


# --- token hygiene ------------------------------------------------------------------------------


def test_no_token_in_any_log_record_or_error(hf, ms, plain, tmp_path, unique_name, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    hf_tok, ms_tok = hf.issue_token("alice", "write"), ms.issue_token("dora", "write")
    git_tok = plain.issue_token("carol", "write")
    secrets_ = [hf_tok, ms_tok, ms.git_token_for(ms_tok), git_tok]
    errors: list[str] = []
    hf_name, ms_name, g_name = f"acme/{unique_name('h')}", f"mirrors/{unique_name('h')}", f"carol/{unique_name('h')}"
    plain.create_repo(g_name, private=True)
    hubs = [
        hf_hub(hf, tmp_path, f"hf://{hf_name}", hf_tok, role="dst"),
        ms_hub(ms, tmp_path, f"ms://{ms_name}", ms_tok),
        git_hub(plain, tmp_path, plain.git_url(g_name), git_tok),
    ]
    for hub in hubs:
        hub.ensure_destination(private=True)
        hub.preflight_source()
        hub.git_auth()
        hub.lfs_store()
        errors.append(hub.credential_source + repr(hub.git_auth()))
    # Failure paths: the same tokens on repositories they cannot read or write.
    for action in (
        lambda: hf_hub(hf, tmp_path, f"hf://bob/{unique_name('x')}", hf_tok, role="dst").ensure_destination(None),
        lambda: ms_hub(ms, tmp_path, f"ms://eve/{unique_name('x')}", ms_tok).ensure_destination(None),
        lambda: ms_hub(ms, tmp_path, f"ms://dora/{unique_name('x')}", ms.git_token_for(ms_tok)).ensure_destination(None),
    ):
        with pytest.raises(Exception) as err:
            action()
        errors.append(str(err.value) + repr(err.value))
    text = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(errors)
    assert text  # something was logged and said
    for secret in secrets_:
        assert secret not in text
