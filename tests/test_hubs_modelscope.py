"""The ModelScope adapter against a scripted loopback server speaking the SDK's protocol.

Covers the two-token dance (SDK token -> POST /api/v1/login -> git token), private / missing /
wrong / read-only tokens, creation with Visibility 1 / 5, ``Success: false`` bodies, and that
the SDK writes nothing outside the temporary MODELSCOPE_HOME.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from hubfake import FakeHub, Reply

from gitmirror.errors import AuthError, PermissionDeniedError, ProtocolError, RepoNotFoundError
from gitmirror.hubs import open_hub
from gitmirror.hubs.modelscope import ModelScopeHub
from gitmirror.retry import FAST
from gitmirror.specs import parse_spec

ME = "/openapi/v1/users/me"
OPEN_MODEL = "/openapi/v1/models/alice/model"
LEGACY_MODEL = "/api/v1/models/alice/model"
LOGIN = "/api/v1/login"
CREATE = "/api/v1/models"


@pytest.fixture
def fake():
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, str]:
    home, ms_home = tmp_path / "home", tmp_path / "mshome"
    home.mkdir()
    ms_home.mkdir()
    return {"HOME": str(home), "MODELSCOPE_HOME": str(ms_home)}


def token(prefix: str = "ms") -> str:
    return f"{prefix}-{secrets.token_hex(16)}"


def ok(data) -> Reply:
    return Reply(200, {"success": True, "data": data})


def legacy_ok(data) -> Reply:
    return Reply(200, {"Code": 200, "Data": data, "Message": "success", "Success": True})


def missing() -> Reply:
    return Reply(404, {"Code": 404, "Message": "model not exist", "Success": False})


def hub_for(fake, homes, text="ms://alice/model", tok=None, env_extra=None) -> ModelScopeHub:
    env = {**homes, "MODELSCOPE_ENDPOINT": fake.url, **(env_extra or {})}
    hub = open_hub(parse_spec(text, "dst", env), token=tok, env=env, role="dst", policy=FAST)
    assert isinstance(hub, ModelScopeHub)
    return hub


def test_urls(fake, homes):
    hub = hub_for(fake, homes, "ms://datasets/alice/data")
    assert hub.git_url == f"{fake.url}/datasets/alice/data.git"
    assert hub.lfs_url == f"{fake.url}/datasets/alice/data.git/info/lfs"
    assert hub_for(fake, homes).git_url == f"{fake.url}/models/alice/model.git"
    assert hub.new_repo_default_branch == "master"


def test_public_source_anonymous(fake, homes):
    fake.on("GET", OPEN_MODEL, ok({"id": "alice/model", "private": False}))
    hub = hub_for(fake, homes)
    info = hub.preflight_source()
    assert info.exists and info.private is False
    assert hub.git_auth() is None
    assert all("Authorization" not in s.headers for s in fake.seen)


def test_git_token_is_obtained_by_login(fake, homes):
    sdk, git = token(), token("git")
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("GET", OPEN_MODEL, ok({"id": "alice/model", "private": True}))
    fake.on("POST", LOGIN, legacy_ok({"AccessToken": git, "Username": "alice", "Email": "a@example.org"}))
    hub = hub_for(fake, homes, tok=sdk)
    info = hub.preflight_source()
    assert info.private is True
    (login,) = fake.requests_to("POST", LOGIN)
    assert json.loads(login.body) == {"AccessToken": sdk}
    auth = hub.git_auth()
    assert (auth.username, auth.password) == ("oauth2", git)
    assert git not in hub.git_url and sdk not in hub.git_url
    assert "login" in hub.credential_source and sdk not in hub.credential_source
    # Logging in for us must not overwrite the user's stored login.
    creds = Path(homes["MODELSCOPE_HOME"]) / "credentials"
    assert not (creds / "git_token").exists() and not (creds / "cookies").exists()


def test_stored_git_token_is_used_without_login(fake, homes):
    from modelscope_hub.config import HubConfig

    sdk, git = token(), token("git")
    config = HubConfig(endpoint=fake.url, token="", config_dir=Path(homes["MODELSCOPE_HOME"]), cache_dir=Path(homes["MODELSCOPE_HOME"]) / "cache")
    config.save_token(sdk)
    config.save_git_token(git)
    hub = hub_for(fake, homes)
    assert hub.git_auth().password == git
    assert not fake.requests_to("POST", LOGIN)


def test_sdk_writes_nothing_into_the_real_home(fake, homes):
    fake.on("GET", OPEN_MODEL, ok({"id": "alice/model", "private": False}))
    hub_for(fake, homes).preflight_source()
    # Only what the SDK always makes, and only under the HOME of the environment we passed.
    home = Path(homes["HOME"])
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == [".cache", ".cache/modelscope"]
    assert not any((home / ".cache" / "modelscope").iterdir())


def test_missing_source(fake, homes):
    fake.on("GET", OPEN_MODEL, missing())
    fake.on("GET", LEGACY_MODEL, missing())
    with pytest.raises(AuthError) as err:  # anonymous: missing and private look the same
        hub_for(fake, homes).preflight_source()
    assert "MODELSCOPE_API_TOKEN" in str(err.value)
    assert len(fake.requests_to("GET", OPEN_MODEL)) == 1  # never retried
    fake.on("GET", ME, ok({"username": "alice"}))
    with pytest.raises(RepoNotFoundError):
        hub_for(fake, homes, tok=token()).preflight_source()


def test_private_source_without_token(fake, homes):
    fake.on("GET", OPEN_MODEL, Reply(401, {"success": False, "code": "InvalidAuthentication", "message": "login required"}))
    with pytest.raises(AuthError):
        hub_for(fake, homes).preflight_source()


def test_wrong_token(fake, homes):
    tok = token()
    invalid = Reply(401, {"success": False, "code": "InvalidAuthentication", "message": f"bad token {tok}"})
    fake.on("GET", ME, invalid)
    fake.on("GET", OPEN_MODEL, invalid)
    with pytest.raises(AuthError) as err:
        hub_for(fake, homes, tok=tok, env_extra=None).preflight_source()
    assert tok not in str(err.value) and "rejected" in str(err.value)
    assert not fake.requests_to("GET", ME)
    with pytest.raises(AuthError) as err:
        hub_for(fake, homes, tok=tok).ensure_destination(private=None)
    assert tok not in str(err.value) and "rejected" in str(err.value)


def test_read_only_token_refused_before_creating(fake, homes):
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, Reply(401, {"Code": 10010103009, "Message": "AccessToken is invalid", "Success": False}))
    with pytest.raises(PermissionDeniedError) as err:
        hub_for(fake, homes, tok=token()).ensure_destination(private=False)
    assert "read-only" in str(err.value)
    assert not fake.requests_to("POST", CREATE)


@pytest.mark.parametrize("private, visibility", [(True, 1), (False, 5), (None, 5)])
def test_create_with_visibility(fake, homes, private, visibility):
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, legacy_ok({"AccessToken": token("git")}))
    fake.on("GET", OPEN_MODEL, missing(), ok({"id": "alice/model", "private": bool(private)}))
    fake.on("GET", LEGACY_MODEL, missing())
    fake.on("POST", CREATE, legacy_ok({"Path": "alice", "Name": "model"}))
    info = hub_for(fake, homes, tok=token()).ensure_destination(private=private)
    assert info.created and info.default_branch == "master" and info.private is bool(private)
    (create,) = fake.requests_to("POST", CREATE)
    body = json.loads(create.body)
    assert (body["Path"], body["Name"], body["Visibility"]) == ("alice", "model", visibility)


def test_success_false_on_create_is_not_success(fake, homes):
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, legacy_ok({"AccessToken": token("git")}))
    fake.on("GET", OPEN_MODEL, missing())
    fake.on("GET", LEGACY_MODEL, missing())
    fake.on("POST", CREATE, Reply(200, {"Code": 10010100001, "Message": "no permission for namespace", "Success": False}))
    with pytest.raises(PermissionDeniedError) as err:
        hub_for(fake, homes, tok=token()).ensure_destination(private=False)
    assert "refused" in str(err.value)


def test_already_exists_answer_means_exists(fake, homes):
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, legacy_ok({"AccessToken": token("git")}))
    fake.on("GET", OPEN_MODEL, missing(), ok({"id": "alice/model", "private": True}))
    fake.on("GET", LEGACY_MODEL, missing())
    fake.on("POST", CREATE, Reply(200, {"Code": 10010101001, "Message": "already exists", "Success": False}))
    info = hub_for(fake, homes, tok=token()).ensure_destination(private=False)
    assert info.exists and not info.created and info.private is True


def test_create_forbidden(fake, homes):
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, legacy_ok({"AccessToken": token("git")}))
    fake.on("GET", OPEN_MODEL, missing())
    fake.on("GET", LEGACY_MODEL, missing())
    fake.on("POST", CREATE, Reply(403, {"Code": 403, "Message": "forbidden", "Success": False}))
    with pytest.raises(PermissionDeniedError) as err:
        hub_for(fake, homes, tok=token()).ensure_destination(private=False)
    assert "'alice'" in str(err.value)


def test_transient_then_ok(fake, homes):
    fake.on("GET", OPEN_MODEL, Reply(503, "down"), Reply(200, {"success": True, "data": {"id": "alice/model", "private": False}}))
    assert hub_for(fake, homes).preflight_source().exists
    assert len(fake.requests_to("GET", OPEN_MODEL)) == 2


def test_html_instead_of_json(fake, homes):
    fake.on("GET", OPEN_MODEL, Reply(200, "<html>captive portal</html>"))
    with pytest.raises(ProtocolError):
        hub_for(fake, homes).preflight_source()


def test_invalid_parameter_is_a_usage_error(fake, homes):
    from gitmirror.errors import UsageError

    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, legacy_ok({"AccessToken": token("git")}))
    fake.on("GET", OPEN_MODEL, missing())
    fake.on("GET", LEGACY_MODEL, missing())
    fake.on("POST", CREATE, Reply(400, {"Code": 400, "Message": "invalid parameter: Name", "Success": False}))
    with pytest.raises(UsageError):
        hub_for(fake, homes, tok=token()).ensure_destination(private=False)
    assert len(fake.requests_to("POST", CREATE)) == 1


def test_refused_login_is_asked_once_and_public_reads_stay_anonymous(fake, homes):
    fake.on("GET", ME, ok({"username": "alice"}))
    fake.on("POST", LOGIN, Reply(403, {"Code": 403, "Message": "read-only token", "Success": False}))
    fake.on("GET", OPEN_MODEL, ok({"id": "alice/model", "private": False}))
    hub = hub_for(fake, homes, tok=token())
    assert hub.preflight_source().exists
    hub.login()  # the run's explicit login step; a second call asks nothing
    hub.login()
    assert hub.git_auth() is None and hub.git_auth() is None and hub.lfs_store() is not None
    assert len(fake.requests_to("POST", LOGIN)) == 1


def test_login_refusing_a_bad_token_says_rejected(fake, homes):
    fake.on("GET", ME, Reply(401, {"success": False, "code": "InvalidAuthentication", "message": "Invalid token"}))
    fake.on("POST", LOGIN, Reply(400, {"Code": 10010103009, "Message": "AccessToken is invalid or expired", "Success": False}))
    fake.on("GET", OPEN_MODEL, ok({"id": "alice/model", "private": True}))  # a hub that shows it anyway
    with pytest.raises(AuthError) as err:
        hub_for(fake, homes, tok=token()).preflight_source()
    assert "rejected" in str(err.value) and not isinstance(err.value, PermissionDeniedError)


def test_a_stalled_api_answer_times_out_and_is_retried(fake, homes):
    from dataclasses import replace

    fake.on("GET", OPEN_MODEL, Reply(200, {"success": True, "data": {"id": "alice/model", "private": False}}, delay=2.5),
            Reply(200, {"success": True, "data": {"id": "alice/model", "private": False}}))
    env = {**homes, "MODELSCOPE_ENDPOINT": fake.url}
    retries = []
    hub = open_hub(parse_spec("ms://alice/model", "src", env), env=env, policy=replace(FAST, read_timeout=1.0),
                   on_retry=lambda what, exc: retries.append(type(exc).__name__))
    assert hub.preflight_source().exists
    assert retries == ["TransientError"]
