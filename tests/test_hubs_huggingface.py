"""The Hugging Face adapter against a scripted loopback server speaking huggingface_hub's protocol.

The answers follow docs/hubs.md: errors are told by X-Error-Code, an anonymous request for a
private or missing repository gets 401, whoami-v2 names the token's role.
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from hubfake import FakeHub, Reply

from gitmirror.errors import (
    AuthError,
    GatedRepoError,
    PermissionDeniedError,
    ProtocolError,
    RepoNotFoundError,
)
from gitmirror.hubs import open_hub
from gitmirror.hubs.huggingface import HuggingFaceHub
from gitmirror.retry import FAST
from gitmirror.specs import parse_spec

REPO = "/api/models/alice/model"
WHOAMI = "/api/whoami-v2"


@pytest.fixture
def fake():
    hub = FakeHub().start()
    yield hub
    hub.stop()


def token() -> str:
    return "hf_" + secrets.token_hex(16)


def who(role: str = "write") -> Reply:
    return Reply(200, {"type": "user", "name": "alice", "auth": {"type": "access_token", "accessToken": {"role": role}}})


def not_found(status: int = 404) -> Reply:
    return Reply(status, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})


def hub_for(fake: FakeHub, tmp_path, text: str = "hf://alice/model", tok: str | None = None, retries=None) -> HuggingFaceHub:
    env = {"HOME": str(tmp_path), "HF_ENDPOINT": fake.url}
    hub = open_hub(parse_spec(text, "src", env), token=tok, env=env, role="src", policy=FAST, on_retry=retries)
    assert isinstance(hub, HuggingFaceHub)
    return hub


def test_urls_and_auth(fake, tmp_path):
    tok = token()
    hub = hub_for(fake, tmp_path, "hf://datasets/alice/data", tok)
    assert hub.git_url == f"{fake.url}/datasets/alice/data"
    assert hub.lfs_url == f"{fake.url}/datasets/alice/data.git/info/lfs"
    auth = hub.git_auth()
    assert auth.password == tok and tok not in repr(auth)
    assert base64.b64decode(auth.basic_header().split()[1]).decode().endswith(":" + tok)
    assert hub.credential_source == "--src-token"
    assert hub_for(fake, tmp_path, "hf://spaces/alice/app").git_url == f"{fake.url}/spaces/alice/app"
    assert hub_for(fake, tmp_path).git_auth() is None


def test_public_source(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", token())  # huggingface_hub's own token lookup is not used
    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": False, "sha": "a" * 40}))
    info = hub_for(fake, tmp_path).preflight_source()
    assert info.exists and info.private is False
    assert "authorization" not in {k.lower() for k in fake.seen[0].headers}  # anonymous really is anonymous


def test_private_source_without_token_is_an_auth_error(fake, tmp_path):
    fake.on("GET", REPO, not_found(401))
    with pytest.raises(AuthError) as err:
        hub_for(fake, tmp_path).preflight_source()
    assert "HF_TOKEN" in str(err.value)
    assert len(fake.requests_to("GET", REPO)) == 1  # 401 is never retried


def test_missing_source_with_token(fake, tmp_path):
    fake.on("GET", WHOAMI, who())
    fake.on("GET", REPO, not_found(404))
    tok = token()
    with pytest.raises(RepoNotFoundError) as err:
        hub_for(fake, tmp_path, tok=tok).preflight_source()
    assert "does not exist" in str(err.value)
    (seen,) = fake.requests_to("GET", REPO)
    assert {k.lower(): v for k, v in seen.headers.items()}["authorization"] == f"Bearer {tok}"


def test_wrong_token(fake, tmp_path):
    tok = token()
    invalid = Reply(401, {"error": "Invalid credentials in Authorization header"},
                    {"X-Error-Message": "Invalid credentials in Authorization header"})
    fake.on("GET", WHOAMI, invalid)
    fake.on("GET", REPO, invalid)
    with pytest.raises(AuthError) as err:
        hub_for(fake, tmp_path, tok=tok).preflight_source()
    assert "rejected" in str(err.value) and tok not in str(err.value)
    assert len(fake.requests_to("GET", REPO)) == 1 and not fake.requests_to("GET", WHOAMI)
    with pytest.raises(AuthError) as err:
        hub_for(fake, tmp_path, tok=tok).ensure_destination(private=None)
    assert "rejected" in str(err.value)


def test_gated_not_accepted(fake, tmp_path):
    fake.on("GET", WHOAMI, who("read"))
    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": False, "gated": "manual"}))
    fake.on("GET", REPO + "/auth-check", Reply(403, {"error": "gated"}, {"X-Error-Code": "GatedRepo"}))
    with pytest.raises(GatedRepoError) as err:
        hub_for(fake, tmp_path, tok=token()).preflight_source()
    assert "accept" in str(err.value)


def test_gated_without_token(fake, tmp_path):
    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": False, "gated": "auto"}))
    with pytest.raises(GatedRepoError):
        hub_for(fake, tmp_path).preflight_source()


def test_gated_accepted(fake, tmp_path):
    fake.on("GET", WHOAMI, who("read"))
    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": False, "gated": "manual"}))
    fake.on("GET", REPO + "/auth-check", Reply(200, {}))
    assert hub_for(fake, tmp_path, tok=token()).preflight_source().exists


def test_disabled(fake, tmp_path):
    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": False, "disabled": True}))
    with pytest.raises(PermissionDeniedError):
        hub_for(fake, tmp_path).preflight_source()


def test_transient_faults_are_retried_and_counted(fake, tmp_path):
    fake.on("GET", REPO, Reply(503, "busy"), Reply(429, {"error": "slow down"}, {"Retry-After": "0"}),
            Reply(200, {"id": "alice/model", "private": True}))
    retries = []
    info = hub_for(fake, tmp_path, retries=lambda what, exc: retries.append(type(exc).__name__)).preflight_source()
    assert info.private is True
    assert retries == ["TransientError", "TransientError"]


def test_html_instead_of_json(fake, tmp_path):
    fake.on("GET", REPO, Reply(200, "<html><body>proxy error</body></html>"))
    with pytest.raises(ProtocolError):
        hub_for(fake, tmp_path).preflight_source()


def test_destination_needs_a_token(fake, tmp_path):
    with pytest.raises(AuthError) as err:
        hub_for(fake, tmp_path).ensure_destination(private=None)
    assert "--dst-token" in str(err.value)


def test_read_only_token_refused_before_anything(fake, tmp_path):
    fake.on("GET", WHOAMI, who("read"))
    with pytest.raises(PermissionDeniedError) as err:
        hub_for(fake, tmp_path, tok=token()).ensure_destination(private=True)
    assert "read-only" in str(err.value)
    assert [s.path for s in fake.seen] == [WHOAMI]


@pytest.mark.parametrize("private", [True, False])
def test_create_with_visibility(fake, tmp_path, private):
    fake.on("GET", WHOAMI, who())
    fake.on("GET", REPO, not_found(404))
    fake.on("POST", "/api/repos/create", Reply(200, {"url": f"{fake.url}/alice/model"}))
    info = hub_for(fake, tmp_path, tok=token()).ensure_destination(private=private)
    assert info.created and info.private is private and info.default_branch == "main"
    (create,) = fake.requests_to("POST", "/api/repos/create")
    payload = json.loads(create.body)
    assert payload["name"] == "model" and payload["organization"] == "alice"
    assert payload["visibility"] == ("private" if private else "public")


def test_create_forbidden(fake, tmp_path):
    fake.on("GET", WHOAMI, who())
    fake.on("GET", REPO, not_found(404))
    fake.on("POST", "/api/repos/create", Reply(403, {"error": "You don't have the rights to create a model under the namespace"}))
    with pytest.raises(PermissionDeniedError) as err:
        hub_for(fake, tmp_path, tok=token()).ensure_destination(private=False)
    assert "'alice'" in str(err.value)
    assert len(fake.requests_to("POST", "/api/repos/create")) == 1


def test_existing_destination_checks_write_access(fake, tmp_path):
    fake.on("GET", WHOAMI, who("fineGrained"))
    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": True}))
    fake.on("GET", REPO + "/auth-check/write", not_found(404))
    with pytest.raises(PermissionDeniedError):
        hub_for(fake, tmp_path, tok=token()).ensure_destination(private=None)
    fake.on("GET", REPO + "/auth-check/write", Reply(200, {}))
    info = hub_for(fake, tmp_path, tok=token()).ensure_destination(private=None)
    assert info.exists and not info.created and info.private is True


def test_name_the_library_refuses_is_a_usage_error(fake, tmp_path):
    from gitmirror.errors import UsageError

    with pytest.raises(UsageError):
        hub_for(fake, tmp_path, "hf://alice/bad--name").preflight_source()
    assert not fake.seen


def test_a_stalled_api_answer_times_out_and_is_retried(fake, tmp_path):
    from dataclasses import replace

    fake.on("GET", REPO, Reply(200, {"id": "alice/model", "private": False}, delay=2.0),
            Reply(200, {"id": "alice/model", "private": False}))
    env = {"HOME": str(tmp_path), "HF_ENDPOINT": fake.url, "HF_HUB_OFFLINE": "1"}  # not ours to honour
    retries = []
    hub = open_hub(parse_spec("hf://alice/model", "src", env), env=env, policy=replace(FAST, read_timeout=0.3),
                   on_retry=lambda what, exc: retries.append(type(exc).__name__))
    assert hub.preflight_source().exists
    assert retries == ["TransientError"]


def test_create_conflict_with_an_invisible_repo(fake, tmp_path):
    fake.on("GET", WHOAMI, who())
    fake.on("GET", REPO, not_found(404))
    fake.on("POST", "/api/repos/create", Reply(409, {"error": "You already created this model repo"}))
    with pytest.raises(PermissionDeniedError) as err:
        hub_for(fake, tmp_path, tok=token()).ensure_destination(private=False)
    assert "cannot see it" in str(err.value)


def test_create_race_with_another_run(fake, tmp_path):
    fake.on("GET", WHOAMI, who())
    fake.on("GET", REPO, not_found(404), Reply(200, {"id": "alice/model", "private": False}))
    fake.on("POST", "/api/repos/create", Reply(409, {"error": "You already created this model repo"}))
    fake.on("GET", REPO + "/auth-check/write", Reply(200, {}))
    info = hub_for(fake, tmp_path, tok=token()).ensure_destination(private=True)
    assert info.exists and not info.created and info.private is False


def test_huggingface_hub_offline_mode_is_named(fake, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from gitmirror.errors import EnvironmentProblem

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    retries = []
    with pytest.raises(EnvironmentProblem) as err:
        hub_for(fake, tmp_path, retries=lambda what, exc: retries.append(what)).preflight_source()
    assert "HF_HUB_OFFLINE" in str(err.value)
    assert not fake.seen and not retries
