"""Token discovery: the documented order, the stored logins under temporary homes, git helpers."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path

import pytest

from gitmirror import credentials
from gitmirror.credentials import (
    ModelScopeTokens,
    Token,
    credential_fill_input,
    explicit_token,
    find_git_credential,
    find_hf_token,
    find_ms_tokens,
    hf_token_path,
)
from gitmirror.errors import scrub


def fresh(prefix: str = "tok") -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


# --- Hugging Face ----------------------------------------------------------------------------


def test_hf_explicit_beats_env_beats_file(home: Path):
    stored, from_env, given = fresh(), fresh(), fresh()
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text(stored + "\n")
    env = {"HOME": str(home), "HF_TOKEN": from_env}

    token = find_hf_token(explicit_token(given, "--src-token"), env)
    assert token.value == given and token.source == "--src-token"
    token = find_hf_token(None, env)
    assert token.value == from_env and token.source == "environment variable HF_TOKEN"
    token = find_hf_token(None, {"HOME": str(home)})
    assert token.value == stored and "stored Hugging Face login" in token.source


def test_hf_legacy_env_name(home: Path):
    value = fresh()
    token = find_hf_token(None, {"HOME": str(home), "HUGGING_FACE_HUB_TOKEN": value})
    assert token.value == value and token.source == "environment variable HUGGING_FACE_HUB_TOKEN"
    both = find_hf_token(None, {"HOME": str(home), "HF_TOKEN": "first_" + value, "HUGGING_FACE_HUB_TOKEN": value})
    assert both.value == "first_" + value


def test_hf_token_file_follows_hf_home_and_hf_token_path(tmp_path: Path, home: Path):
    hf_home = tmp_path / "hfhome"
    hf_home.mkdir()
    value = fresh()
    (hf_home / "token").write_text(value)
    env = {"HOME": str(home), "HF_HOME": str(hf_home)}
    assert hf_token_path(env) == hf_home / "token"
    assert find_hf_token(None, env).value == value

    other = tmp_path / "elsewhere" / "tok"
    other.parent.mkdir()
    other.write_text(fresh("other"))
    env["HF_TOKEN_PATH"] = str(other)
    assert hf_token_path(env) == other
    assert find_hf_token(None, env).value.startswith("other_")

    env = {"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert hf_token_path(env) == tmp_path / "xdg" / "huggingface" / "token"


def test_hf_nothing_found_is_none(home: Path):
    assert find_hf_token(None, {"HOME": str(home)}) is None
    assert find_hf_token(None, {"HOME": str(home), "HF_TOKEN": "   "}) is None


def test_found_tokens_are_registered_and_never_shown(home: Path):
    value = fresh()
    token = find_hf_token(None, {"HOME": str(home), "HF_TOKEN": value})
    assert value not in repr(token)
    assert scrub(f"error with {value} inside") == "error with *** inside"
    assert credentials.describe(token) == "environment variable HF_TOKEN"
    assert credentials.describe(None).startswith("none")


# --- ModelScope ------------------------------------------------------------------------------


def _store_ms_login(config_dir: Path, sdk: str | None, git: str | None) -> None:
    from modelscope_hub.config import HubConfig

    config = HubConfig(endpoint="http://127.0.0.1:9", token="", config_dir=config_dir, cache_dir=config_dir / "cache")
    if sdk:
        config.save_token(sdk)
    if git:
        config.save_git_token(git)


def test_ms_order_explicit_env_stored(tmp_path: Path, home: Path):
    ms_home = tmp_path / "mshome"
    stored_sdk, stored_git, from_env, given = fresh(), fresh(), fresh(), fresh()
    _store_ms_login(ms_home, stored_sdk, stored_git)
    env = {"HOME": str(home), "MODELSCOPE_HOME": str(ms_home), "MODELSCOPE_API_TOKEN": from_env}

    tokens = find_ms_tokens(explicit_token(given, "--dst-token"), env)
    assert tokens.sdk.value == given and tokens.git is None  # the stored git token is another login's
    tokens = find_ms_tokens(None, env)
    assert tokens.sdk.value == from_env and tokens.sdk.source == "environment variable MODELSCOPE_API_TOKEN"
    assert tokens.git is None
    del env["MODELSCOPE_API_TOKEN"]
    tokens = find_ms_tokens(None, env)
    assert tokens.sdk.value == stored_sdk and "stored ModelScope login" in tokens.sdk.source
    assert tokens.git.value == stored_git and "git_token" in tokens.git.source


def test_ms_stored_login_defaults_to_home_dot_modelscope(home: Path):
    value = fresh()
    _store_ms_login(home / ".modelscope", None, value)
    tokens = find_ms_tokens(None, {"HOME": str(home)})
    assert tokens.sdk is None and tokens.git.value == value


def test_ms_nothing_found(home: Path):
    assert find_ms_tokens(None, {"HOME": str(home)}) == ModelScopeTokens()


# --- git credential helpers ------------------------------------------------------------------


def test_credential_fill_input_has_no_secret_and_keeps_port():
    text = credential_fill_input("http://127.0.0.1:3000/o/n.git")
    assert text == "protocol=http\nhost=127.0.0.1:3000\npath=o/n.git\n\n"
    assert credential_fill_input("ssh://git@host/o/n.git") is None
    assert credential_fill_input("/srv/x.git") is None


def _helper_env(tmp_path: Path, home: Path, script: str) -> dict[str, str]:
    helper = tmp_path / "helper.sh"
    helper.write_text(script)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "gitconfig"
    config.write_text(f"[credential]\n\thelper = {helper}\n")
    return {
        "HOME": str(home),
        "PATH": os.environ["PATH"],
        "GIT_CONFIG_GLOBAL": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def test_git_credential_helper_is_asked_on_stdin(tmp_path: Path, home: Path):
    password = fresh("pw")
    log = tmp_path / "helper.log"
    script = (
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'cat >> {log}\n'
        '[ "$1" = get ] || exit 0\n'
        "echo username=alice\n"
        f"echo password={password}\n"
    )
    env = _helper_env(tmp_path, home, script)
    token = find_git_credential("http://127.0.0.1:3000/o/n.git", env)
    assert token is not None
    assert token.value == password and token.username == "alice" and token.source == "git credential helper"
    seen = log.read_text()
    assert "host=127.0.0.1:3000" in seen and "protocol=http" in seen
    assert password not in seen  # the helper was asked, not told


def test_git_credential_without_helper_never_prompts(tmp_path: Path, home: Path):
    config = tmp_path / "empty-gitconfig"
    config.write_text("")
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}
    # An askpass program in the user's environment must not be run either.
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\ntouch {tmp_path / 'asked'}\necho nope\n")
    askpass.chmod(0o755)
    env["GIT_ASKPASS"] = str(askpass)
    env["SSH_ASKPASS"] = str(askpass)
    assert find_git_credential("https://example.invalid/o/n.git", env) is None
    assert not (tmp_path / "asked").exists()


def test_git_credential_fill_gets_nothing_in_argv(monkeypatch, home: Path):
    calls = []

    def fake_run(args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, stdout="username=u\npassword=" + "p" * 20 + "\n", stderr="")

    monkeypatch.setattr(credentials.subprocess, "run", fake_run)
    token = find_git_credential("https://git.example.org/o/n", {"HOME": str(home)})
    assert token == Token(value="p" * 20, source="git credential helper", username="u")
    (args, kwargs), = calls
    assert args == ["git", "credential", "fill"]
    assert "host=git.example.org" in kwargs["input"]
    assert kwargs["env"]["GIT_TERMINAL_PROMPT"] == "0" and kwargs["env"]["GIT_ASKPASS"] == ""


def test_summary_names_sources_only(tmp_path: Path, home: Path):
    hf_value, ms_value = fresh(), fresh()
    env = {"HOME": str(home), "HF_TOKEN": hf_value, "MODELSCOPE_API_TOKEN": ms_value}
    report = credentials.summary(env)
    assert report["huggingface"] == "environment variable HF_TOKEN"
    assert report["modelscope"] == "environment variable MODELSCOPE_API_TOKEN"
    assert report["modelscope git"] == "by login with the ModelScope token"
    assert hf_value not in str(report) and ms_value not in str(report)
    assert credentials.summary({"HOME": str(home)})["huggingface"].startswith("none")
