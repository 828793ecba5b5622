"""The ModelScope kind against the real clients: modelscope's HubApi, git and git-lfs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from gitmirror.sandbox.seed import RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def ms(sandbox: Any) -> Any:
    hub = sandbox.add_hub("modelscope", name="ms-kind-tests")
    hub.add_user("alice", orgs=["acme"])
    hub.add_user("bob")
    return hub


@pytest.fixture(scope="module")
def tokens(ms: Any) -> dict[str, str]:
    return {"alice": ms.issue_token("alice"), "alice_read": ms.issue_token("alice", "read"),
            "bob": ms.issue_token("bob")}


@pytest.fixture
def sdk_home(git_env: dict[str, str], ms: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private MODELSCOPE_HOME (the SDK writes credentials there) and a fresh SDK config."""
    from modelscope_hub.config import set_default_config

    home = Path(git_env["MODELSCOPE_HOME"])
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", ms.endpoint)
    monkeypatch.delenv("MODELSCOPE_DOMAIN", raising=False)
    monkeypatch.delenv("MODELSCOPE_API_TOKEN", raising=False)
    set_default_config(None)  # the SDK caches its config (home, endpoint) per process
    yield home
    set_default_config(None)


def hub_api(ms: Any, token: str | None = None) -> Any:
    from modelscope.hub.api import HubApi

    return HubApi(endpoint=ms.endpoint, token=token)


# ------------------------------------------------------------------------------------------
# login and whoami
# ------------------------------------------------------------------------------------------
def test_login_hands_out_a_separate_git_token(ms: Any, tokens: dict[str, str], sdk_home: Path) -> None:
    git_token, cookies = hub_api(ms).login(tokens["alice"])
    assert git_token and git_token != tokens["alice"]
    assert git_token == ms.git_token_for(tokens["alice"])  # the same one on every login
    assert cookies.get("m_session_id") == tokens["alice"]
    assert (sdk_home / "credentials" / "git_token").read_text().strip() == git_token
    assert hub_api(ms, tokens["alice"]).whoami().username == "alice"


def test_login_refuses_unknown_tokens_and_git_tokens(ms: Any, tokens: dict[str, str], sdk_home: Path) -> None:
    from modelscope_hub.errors import AuthenticationError

    with pytest.raises(AuthenticationError) as unknown:
        hub_api(ms).login("sbxms_" + "0" * 40)
    assert unknown.value.status_code == 400
    with pytest.raises(AuthenticationError):
        hub_api(ms).login(ms.git_token_for(tokens["alice"]))
    with pytest.raises(AuthenticationError):
        hub_api(ms, "sbxms_" + "0" * 40).whoami()


def test_read_token_login_gives_no_git_token(ms: Any, tokens: dict[str, str], sdk_home: Path) -> None:
    response = requests.post(f"{ms.endpoint}/api/v1/login", json={"AccessToken": tokens["alice_read"]}, timeout=10)
    assert response.status_code == 403 and response.json()["Success"] is False
    # The SDK then checks the token on /users/me and completes a reduced login.
    hub_api(ms).login(tokens["alice_read"])
    assert not (sdk_home / "credentials" / "git_token").exists()


# ------------------------------------------------------------------------------------------
# create, get, exists
# ------------------------------------------------------------------------------------------
def test_create_model_and_dataset_with_visibility(ms: Any, tokens: dict[str, str], unique_name: Callable,
                                                  sdk_home: Path) -> None:
    from modelscope_hub.errors import AlreadyExistsError, PermissionDeniedError

    api = hub_api(ms, tokens["alice"])
    private, public, dataset = unique_name("priv"), unique_name("pub"), unique_name("ds")
    api.create_repo(f"alice/{private}", repo_type="model", visibility=1)
    url = api.create_model(f"acme/{public}", visibility=5, license="MIT")
    assert url == f"{ms.endpoint}/models/acme/{public}"
    assert api.create_dataset(dataset, "acme", visibility=1) == f"{ms.endpoint}/datasets/acme/{dataset}"

    assert ms.repo(f"alice/{private}").private is True
    assert ms.repo(f"acme/{public}").extra["license"] == "MIT"
    assert ms.repo(f"acme/{dataset}", "dataset").extra["visibility"] == 1
    assert ms.refs(f"alice/{private}") == {}  # default: a new repository is empty

    with pytest.raises(AlreadyExistsError) as model_exists:
        api.create_repo(f"alice/{private}", repo_type="model")
    assert model_exists.value.response_body["Code"] == 10010101001
    assert api.create_repo(f"alice/{private}", repo_type="model", exist_ok=True) is None
    with pytest.raises(AlreadyExistsError) as dataset_exists:
        api.create_dataset(dataset, "acme")
    assert dataset_exists.value.response_body["Code"] == 10020101001

    with pytest.raises(PermissionDeniedError):
        hub_api(ms, tokens["bob"]).create_repo(f"alice/{unique_name('x')}", repo_type="model")
    with pytest.raises(PermissionDeniedError):
        hub_api(ms, tokens["alice_read"]).create_repo(f"alice/{unique_name('x')}", repo_type="model")
    bad = requests.post(f"{ms.endpoint}/api/v1/models", timeout=10,
                        json={"Path": "alice", "Name": unique_name("v"), "Visibility": 2},
                        headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert bad.status_code == 400 and bad.json()["Success"] is False
    anonymous = requests.post(f"{ms.endpoint}/api/v1/models", json={"Path": "alice", "Name": "n"}, timeout=10)
    assert anonymous.status_code == 401


def test_get_model_and_repo_exists_follow_visibility(ms: Any, tokens: dict[str, str], unique_name: Callable,
                                                     sdk_home: Path) -> None:
    private, internal, public = (f"alice/{unique_name(n)}" for n in ("priv", "int", "pub"))
    ms.create_repo(private, private=True)
    ms.create_repo(internal, visibility=3)
    ms.create_repo(public)
    owner, bob, anonymous = hub_api(ms, tokens["alice"]), hub_api(ms, tokens["bob"]), hub_api(ms, "")

    info = owner.get_model(private)
    assert info["Owner"] == "alice" and int(info["Visibility"]) == 1
    assert owner.repo_exists(private) and owner.repo_exists(internal) and owner.repo_exists(public)
    assert not bob.repo_exists(private) and bob.repo_exists(internal) and bob.repo_exists(public)
    assert not anonymous.repo_exists(private) and not anonymous.repo_exists(internal)
    assert anonymous.repo_exists(public)
    assert not owner.repo_exists(f"alice/{unique_name('missing')}")
    assert owner.get_repo(public, "model").visibility == 5

    legacy = requests.get(f"{ms.endpoint}/api/v1/models/{private}", timeout=10,
                          cookies={"m_session_id": tokens["alice"]})
    body = legacy.json()
    assert legacy.status_code == 200 and body["Success"] is True and body["Data"]["Visibility"] == 1
    assert requests.get(f"{ms.endpoint}/api/v1/models/{private}", timeout=10).status_code == 404


def test_get_dataset(ms: Any, tokens: dict[str, str], unique_name: Callable, sdk_home: Path) -> None:
    name = f"acme/{unique_name('ds')}"
    hub_api(ms, tokens["alice"]).create_repo(name, repo_type="dataset", visibility=5)
    info = hub_api(ms, "").get_repo(name, "dataset")
    assert info.repo_id == name and info.visibility == 5
    assert not hub_api(ms, "").repo_exists(name)  # a model of that name does not exist
    assert hub_api(ms, "").repo_exists(name, repo_type="dataset")


def test_revisions_list_branches_and_tags(ms: Any, tokens: dict[str, str], unique_name: Callable,
                                          sdk_home: Path) -> None:
    repo = f"alice/{unique_name('rev')}"
    builder = RepoBuilder(default_branch="master")
    first = builder.commit({"README.md": "one"})
    builder.commit({"README.md": "two"})
    builder.branch("dev", first)
    builder.tag("v1.0", first, message="release")
    builder.tag("v0.9", first)
    builder.push_to_hub(ms, repo)

    branches, tags = hub_api(ms, tokens["alice"]).get_model_branches_and_tags_details(repo)
    assert sorted(b["Revision"] for b in branches) == ["dev", "master"]
    assert sorted(t["Revision"] for t in tags) == ["v0.9", "v1.0"]
    assert all(isinstance(item["CreatedAt"], int) and item["CreatedAt"] > 0 for item in branches + tags)
    assert hub_api(ms, tokens["alice"]).get_valid_revision(repo, revision="v1.0") == "v1.0"


def test_initial_commit_is_a_per_hub_switch(sandbox: Any, unique_name: Callable, sdk_home: Path) -> None:
    hub = sandbox.add_hub("modelscope", name=unique_name("ms-init"), initial_commit=True)
    hub.add_user("carol")
    token = hub.issue_token("carol")
    from modelscope.hub.api import HubApi

    HubApi(endpoint=hub.endpoint, token=token).create_repo("carol/started", repo_type="model")
    assert list(hub.refs("carol/started")) == ["refs/heads/master"]
    assert "filter=lfs" in hub.run_git("carol/started", "show", "master:.gitattributes")


# ------------------------------------------------------------------------------------------
# git and git-lfs
# ------------------------------------------------------------------------------------------
def helper_env(token: str, user: str = "oauth2") -> dict[str, str]:
    """A credential helper answering ``user``/``token``, so git reports the server's refusal."""
    script = f"!f() {{ echo username={user}; echo password={token}; }}; f"
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": script}


def _init_lfs_repo(git: Callable, work: Path, payload: bytes) -> str:
    git("init", "-q", "-b", "master", str(work))
    git("lfs", "track", "*.bin", cwd=work)
    (work / "model.bin").write_bytes(payload)
    (work / "configuration.json").write_text('{"framework": "pytorch"}\n')
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "weights", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_git_lfs_push_clone_fsck_with_the_git_token(ms: Any, tokens: dict[str, str], unique_name: Callable,
                                                    git: Callable, auth_env: Callable, tmp_path: Path,
                                                    sdk_home: Path) -> None:
    repo = f"alice/{unique_name('git')}"
    hub_api(ms, tokens["alice"]).create_repo(repo, repo_type="model", visibility=1)
    git_token = ms.git_token_for(tokens["alice"])
    env = auth_env(ms.endpoint, git_token, user="oauth2")
    payload = random_bytes(200_000, seed="ms-push")

    work = tmp_path / "work"
    head = _init_lfs_repo(git, work, payload)
    url = ms.git_url(repo)
    assert url == f"{ms.endpoint}/models/{repo}.git"
    git("push", "-q", url, "master", cwd=work, env=env)  # into an empty repository
    assert ms.refs(repo) == {"refs/heads/master": head}
    assert ms.has_lfs_object(repo, hashlib.sha256(payload).hexdigest())

    for index, clone_url in enumerate((url, f"{ms.endpoint}/{repo}.git")):  # current and older URL form
        back = tmp_path / f"back{index}"
        git("clone", "-q", clone_url, str(back), env=env)
        assert (back / "model.bin").read_bytes() == payload
        git("lfs", "fsck", cwd=back, env=env)


def test_dataset_git_url(ms: Any, tokens: dict[str, str], unique_name: Callable, git: Callable,
                         auth_env: Callable, tmp_path: Path, sdk_home: Path) -> None:
    name = unique_name("ds")
    hub_api(ms, tokens["alice"]).create_dataset(name, "acme", visibility=1)
    url = ms.git_url(f"acme/{name}", "dataset")
    assert url == f"{ms.endpoint}/datasets/acme/{name}.git"
    env = auth_env(ms.endpoint, ms.git_token_for(tokens["alice"]), user="oauth2")
    work = tmp_path / "w"
    head = _init_lfs_repo(git, work, b"dataset bytes")
    git("push", "-q", url, "master", cwd=work, env=env)
    assert ms.refs(f"acme/{name}", "dataset") == {"refs/heads/master": head}


def test_git_refuses_the_sdk_token_and_others_with_gitlab_wording(ms: Any, tokens: dict[str, str],
                                                                  unique_name: Callable, git: Callable,
                                                                  auth_env: Callable, tmp_path: Path) -> None:
    repo = f"alice/{unique_name('deny')}"
    builder = RepoBuilder(default_branch="master")
    builder.commit({"README.md": "x", "w.bin": lfs(b"w")})
    builder.push_to_hub(ms, repo, private=True)
    url = ms.git_url(repo)

    sdk = git("ls-remote", url, check=False, env=helper_env(tokens["alice"]))
    assert sdk.returncode != 0 and "remote: HTTP Basic: Access denied" in sdk.stderr
    assert git("ls-remote", url, check=False, env=auth_env(ms.endpoint, tokens["alice"], user="oauth2")).returncode != 0
    bearer = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{ms.endpoint}/.extraHeader",
              "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {ms.git_token_for(tokens['alice'])}"}
    assert git("ls-remote", url, check=False, env=bearer).returncode != 0
    wrong_user = auth_env(ms.endpoint, ms.git_token_for(tokens["alice"]), user="alice")
    assert git("ls-remote", url, check=False, env=wrong_user).returncode != 0

    bob = git("ls-remote", url, check=False, env=auth_env(ms.endpoint, ms.git_token_for(tokens["bob"]), user="oauth2"))
    assert bob.returncode != 0 and "could not be found or you don't have permission" in bob.stderr

    read_env = auth_env(ms.endpoint, ms.git_token_for(tokens["alice_read"]), user="oauth2")
    work = tmp_path / "w"
    git("clone", "-q", url, str(work), env=read_env)
    (work / "more.txt").write_text("more\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "more", cwd=work)
    push = git("push", "origin", "master", check=False, cwd=work, env=read_env)
    assert push.returncode != 0 and "You are not allowed to push code to this project." in push.stderr

    # The LFS batch endpoint follows the same rules.
    batch = requests.post(f"{ms.lfs_url(repo)}/objects/batch", auth=("oauth2", tokens["alice"]), timeout=10,
                          headers={"Content-Type": "application/vnd.git-lfs+json"},
                          json={"operation": "download", "objects": [{"oid": "a" * 64, "size": 1}]})
    assert batch.status_code == 401


def test_master_cannot_be_deleted(ms: Any, tokens: dict[str, str], unique_name: Callable, git: Callable,
                                  auth_env: Callable, tmp_path: Path) -> None:
    repo = f"alice/{unique_name('prot')}"
    builder = RepoBuilder(default_branch="master")
    builder.commit({"README.md": "x"})
    builder.push_to_hub(ms, repo)
    env = auth_env(ms.endpoint, ms.git_token_for(tokens["alice"]), user="oauth2")
    work = tmp_path / "w"
    git("clone", "-q", ms.git_url(repo), str(work), env=env)
    git("push", "-q", "origin", "master:refs/heads/dev", cwd=work, env=env)
    assert git("push", "origin", ":master", check=False, cwd=work, env=env).returncode != 0
    git("push", "-q", "origin", ":dev", cwd=work, env=env)
    assert list(ms.refs(repo)) == ["refs/heads/master"]


# ------------------------------------------------------------------------------------------
# options and the SDK's own batch URL
# ------------------------------------------------------------------------------------------
def test_business_failures_can_come_as_200_with_success_false(sandbox: Any, unique_name: Callable) -> None:
    hub = sandbox.add_hub("modelscope", name=unique_name("ms-200"), legacy_errors_as_200=True)
    hub.add_user("dave")
    token = hub.issue_token("dave")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"Path": "dave", "Name": "twice", "Visibility": 5}
    first = requests.post(f"{hub.endpoint}/api/v1/models", json=body, headers=headers, timeout=10)
    assert first.status_code == 200 and first.json()["Success"] is True
    again = requests.post(f"{hub.endpoint}/api/v1/models", json=body, headers=headers, timeout=10)
    assert again.status_code == 200
    assert again.json()["Success"] is False and again.json()["Code"] == 10010101001
    # Authentication failures keep their status.
    assert requests.post(f"{hub.endpoint}/api/v1/models", json=body, timeout=10).status_code == 401


def test_sdk_batch_url_takes_the_sdk_token(ms: Any, tokens: dict[str, str], unique_name: Callable,
                                           sdk_home: Path) -> None:
    repo = f"alice/{unique_name('sdkbatch')}"
    builder = RepoBuilder(default_branch="master")
    stored = lfs(b"already there")
    builder.commit({"w.bin": stored})
    builder.push_to_hub(ms, repo)
    new = hashlib.sha256(b"new").hexdigest()

    legacy = hub_api(ms, tokens["alice"])._api.legacy
    answer = legacy.validate_blobs(repo, "model", [{"oid": stored.oid, "size": stored.size}, {"oid": new, "size": 3}])
    assert answer[stored.oid] is None and answer[new]

    from modelscope_hub.errors import AuthenticationError, PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        hub_api(ms, tokens["bob"])._api.legacy.validate_blobs(repo, "model", [{"oid": new, "size": 3}])
    with pytest.raises(AuthenticationError):
        hub_api(ms, ms.git_token_for(tokens["alice"]))._api.legacy.validate_blobs(
            repo, "model", [{"oid": new, "size": 3}])
