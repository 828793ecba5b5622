"""open_hub: the right adapter, credentials labelled by where they came from, and lazy imports."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from gitmirror.errors import UsageError, scrub
from gitmirror.hubs import open_hub
from gitmirror.hubs.git import PlainGit
from gitmirror.hubs.huggingface import HuggingFaceHub
from gitmirror.hubs.modelscope import ModelScopeHub
from gitmirror.specs import RepoSpec, parse_spec


@pytest.mark.parametrize(
    "text, role, cls",
    [
        ("hf://o/n", "src", HuggingFaceHub),
        ("o/n", "src", HuggingFaceHub),
        ("o/n", "dst", ModelScopeHub),
        ("ms://datasets/o/n", "dst", ModelScopeHub),
        ("https://git.example.org/o/n.git", "dst", PlainGit),
        ("./x.git", "dst", PlainGit),
    ],
)
def test_adapter_per_spec(text, role, cls, tmp_path):
    env = {"HOME": str(tmp_path)}
    assert type(open_hub(parse_spec(text, role, env), env=env)) is cls


def test_unknown_host_is_a_usage_error(tmp_path):
    spec = RepoSpec(host="svn", text="svn://x")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        open_hub(spec, env={"HOME": str(tmp_path)})


@pytest.mark.parametrize("role, label", [("src", "--src-token"), ("dst", "--dst-token"), (None, "explicit token")])
def test_explicit_token_wins_and_is_registered(tmp_path, role, label):
    given = "tok_" + secrets.token_hex(12)
    env = {"HOME": str(tmp_path), "HF_TOKEN": "env_" + secrets.token_hex(12)}
    hub = open_hub(parse_spec("hf://o/n", "src", env), token=given, env=env, role=role)
    assert hub.credential_source == label
    assert hub.git_auth().password == given
    assert given not in scrub(f"failed with {given}")


def test_anonymous_hubs_say_so(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert open_hub(parse_spec("hf://o/n", "src", env), env=env).credential_source == "none (anonymous)"
    assert open_hub(parse_spec("ms://o/n", "src", env), env=env).credential_source == "none (anonymous)"


def test_hub_libraries_are_imported_lazily():
    code = (
        "import sys, gitmirror.hubs, gitmirror.credentials, gitmirror.cli\n"
        "heavy = [m for m in ('huggingface_hub', 'modelscope', 'modelscope_hub', 'httpx2') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
