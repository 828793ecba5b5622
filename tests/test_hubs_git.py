"""The plain-git adapter: local paths (bare, created when missing), file://, http(s) and ssh URLs."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from gitmirror.errors import AuthError, RepoNotFoundError, UsageError
from gitmirror.remote import Remote, RemoteRefs
from gitmirror.hubs import git as github_mod
from gitmirror.hubs import open_hub
from gitmirror.hubs.git import PlainGit, lfs_url_for
from gitmirror.specs import parse_spec


def open_git(text: str, tmp_path: Path, token: str | None = None) -> PlainGit:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": str(tmp_path / "no-gitconfig")}
    hub = open_hub(parse_spec(text, "dst", env), token=token, env=env, role="dst")
    assert isinstance(hub, PlainGit)
    return hub


@pytest.mark.parametrize(
    "url, lfs",
    [
        ("https://h.example/o/n", "https://h.example/o/n.git/info/lfs"),
        ("https://h.example/o/n.git", "https://h.example/o/n.git/info/lfs"),
        ("https://h.example/o/n/", "https://h.example/o/n.git/info/lfs"),
        ("ssh://git@h.example/o/n.git", "https://h.example/o/n.git/info/lfs"),
        ("git@h.example:o/n.git", "https://h.example/o/n.git/info/lfs"),
    ],
)
def test_lfs_endpoint(url, lfs):
    assert lfs_url_for(url) == lfs


def test_missing_local_destination_is_created_bare(tmp_path: Path):
    target = tmp_path / "mirrors" / "x.git"
    hub = open_git(str(target), tmp_path)
    info = hub.ensure_destination(private=True)
    assert info.created and info.exists and info.default_branch == "main"
    bare = subprocess.run(["git", "-C", str(target), "rev-parse", "--is-bare-repository"], capture_output=True, text=True)
    assert bare.stdout.strip() == "true"
    assert hub.lfs_store().objects_dir == target / "lfs" / "objects"
    assert hub.git_auth() is None and hub.git_url == str(target)
    again = open_git(str(target), tmp_path).ensure_destination(private=None)
    assert again.exists and not again.created


def test_file_url_is_a_local_path(tmp_path: Path):
    target = tmp_path / "f.git"
    hub = open_git(f"file://{target}", tmp_path)
    assert hub.ensure_destination(private=None).created
    assert hub.preflight_source().exists


def test_destination_that_is_not_a_repository(tmp_path: Path):
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(UsageError):
        open_git(str(target), tmp_path).ensure_destination(private=None)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert open_git(str(empty), tmp_path).ensure_destination(private=None).created


def test_local_source(tmp_path: Path):
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(work)], check=True)
    hub = open_git(str(work), tmp_path)
    info = hub.preflight_source()
    assert info.exists and info.default_branch == "trunk"
    assert hub.lfs_store().objects_dir == work / ".git" / "lfs" / "objects"
    with pytest.raises(RepoNotFoundError):
        open_git(str(tmp_path / "nowhere.git"), tmp_path).preflight_source()


def test_password_in_url_leaves_the_url(tmp_path: Path):
    secret = secrets.token_hex(12)
    hub = open_git(f"https://bob:{secret}@git.example.org/o/n.git", tmp_path)
    assert secret not in hub.git_url and "bob" not in hub.git_url
    auth = hub.git_auth()
    assert (auth.username, auth.password) == ("bob", secret)
    assert secret not in hub.credential_source


def test_explicit_token_for_http(tmp_path: Path):
    tok = secrets.token_hex(12)
    hub = open_git("https://git.example.org/o/n.git", tmp_path, token=tok)
    auth = hub.git_auth()
    assert auth.password == tok and auth.username == "oauth2"
    store = hub.lfs_store()
    assert hub.lfs_url == "https://git.example.org/o/n.git/info/lfs"
    assert store is not None
    assert hub.credential_source == "--dst-token"


def test_ssh_uses_no_http_auth_for_git_but_a_token_for_lfs(tmp_path: Path):
    tok = secrets.token_hex(8)
    hub = open_git("ssh://git@git.example.org/o/n.git", tmp_path, token=tok)
    assert hub.git_auth() is None
    store = hub.lfs_store()
    assert store.endpoint == "https://git.example.org/o/n.git/info/lfs"
    assert store._auth["Authorization"].startswith("Basic ")
    assert open_git("git@git.example.org:o/n.git", tmp_path).lfs_store()._auth == {}


def test_http_preflight_uses_ls_remote(monkeypatch, tmp_path: Path):
    seen = []

    def fake_ls_remote(self):
        seen.append((self.url, self.auth))
        return RemoteRefs(refs={"refs/heads/main": "a" * 40}, head="refs/heads/main")

    monkeypatch.setattr(Remote, "ls_remote", fake_ls_remote)
    tok = secrets.token_hex(10)
    hub = open_git("https://git.example.org/o/n.git", tmp_path, token=tok)
    info = hub.preflight_source()
    assert info.default_branch == "main"
    assert seen[0][0] == "https://git.example.org/o/n.git" and seen[0][1].password == tok


def test_http_destination_must_exist(monkeypatch, tmp_path: Path):
    def missing(self):
        raise RepoNotFoundError("repository not found")

    monkeypatch.setattr(Remote, "ls_remote", missing)
    with pytest.raises(RepoNotFoundError) as err:
        open_git("https://git.example.org/o/n.git", tmp_path, token="t" * 12).ensure_destination(private=None)
    assert "create the repository" in str(err.value)


def test_http_auth_failure_without_credentials_says_how(monkeypatch, tmp_path: Path):
    def denied(self):
        raise AuthError("authentication failed")

    monkeypatch.setattr(Remote, "ls_remote", denied)
    monkeypatch.setattr(github_mod, "find_git_credential", lambda url, env: None)
    with pytest.raises(AuthError) as err:
        open_git("https://git.example.org/o/n.git", tmp_path).preflight_source()
    assert "credential helper" in str(err.value)
