"""Every form specs.py documents, and bad input refused with a UsageError (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitmirror.errors import EXIT_USAGE, UsageError
from gitmirror.specs import parse_spec

HF = "https://huggingface.co"
MS = "https://modelscope.cn"


@pytest.mark.parametrize(
    "text, role, host, repo_type, repo_id, endpoint",
    [
        ("hf://owner/name", "src", "huggingface", "model", "owner/name", HF),
        ("hf://datasets/owner/name", "src", "huggingface", "dataset", "owner/name", HF),
        ("hf://spaces/owner/name", "dst", "huggingface", "space", "owner/name", HF),
        ("hf://owner/name.git", "src", "huggingface", "model", "owner/name", HF),
        ("ms://owner/name", "dst", "modelscope", "model", "owner/name", MS),
        ("ms://datasets/owner/name", "dst", "modelscope", "dataset", "owner/name", MS),
        ("https://huggingface.co/owner/name", "src", "huggingface", "model", "owner/name", HF),
        ("https://huggingface.co/datasets/owner/name", "src", "huggingface", "dataset", "owner/name", HF),
        ("https://huggingface.co/spaces/owner/name", "src", "huggingface", "space", "owner/name", HF),
        ("https://huggingface.co/owner/name/tree/main", "src", "huggingface", "model", "owner/name", HF),
        ("https://huggingface.co/owner/name.git", "src", "huggingface", "model", "owner/name", HF),
        ("https://modelscope.cn/models/owner/name.git", "src", "modelscope", "model", "owner/name", MS),
        ("https://modelscope.cn/datasets/owner/name.git", "src", "modelscope", "dataset", "owner/name", MS),
        ("https://www.modelscope.cn/owner/name.git", "src", "modelscope", "model", "owner/name", "https://www.modelscope.cn"),
        ("owner/name", "src", "huggingface", "model", "owner/name", HF),
        ("owner/name", "dst", "modelscope", "model", "owner/name", MS),
        ("  hf://owner/name  ", "src", "huggingface", "model", "owner/name", HF),
    ],
)
def test_hub_forms(text, role, host, repo_type, repo_id, endpoint):
    spec = parse_spec(text, role, {})
    assert (spec.host, spec.repo_type, spec.repo_id, spec.endpoint) == (host, repo_type, repo_id, endpoint)
    assert not spec.is_local


def test_endpoints_come_from_the_environment():
    env = {"HF_ENDPOINT": "http://127.0.0.1:8001/", "MODELSCOPE_ENDPOINT": "http://127.0.0.1:8002"}
    assert parse_spec("hf://o/n", "src", env).endpoint == "http://127.0.0.1:8001"
    assert parse_spec("ms://o/n", "dst", env).endpoint == "http://127.0.0.1:8002"
    # A URL on the configured endpoint is recognised as that hub, not as a plain git host.
    spec = parse_spec("http://127.0.0.1:8001/datasets/o/n", "src", env)
    assert (spec.host, spec.repo_type, spec.repo_id) == ("huggingface", "dataset", "o/n")
    spec = parse_spec("http://127.0.0.1:8002/models/o/n.git", "src", env)
    assert (spec.host, spec.repo_id) == ("modelscope", "o/n")


@pytest.mark.parametrize(
    "text, url",
    [
        ("https://gitea.example.org/o/n.git", "https://gitea.example.org/o/n.git"),
        ("http://127.0.0.1:3000/o/n", "http://127.0.0.1:3000/o/n"),
        ("ssh://git@example.org/o/n.git", "ssh://git@example.org/o/n.git"),
        ("git@github.com:o/n.git", "git@github.com:o/n.git"),
    ],
)
def test_other_git_urls(text, url):
    spec = parse_spec(text, "dst", {})
    assert spec.host == "git" and spec.url == url and spec.path is None


@pytest.mark.parametrize(
    "text, path",
    [
        ("./backup.git", Path("backup.git")),
        ("../x/backup.git", Path("../x/backup.git")),
        ("/srv/mirrors/x.git", Path("/srv/mirrors/x.git")),
        ("file:///srv/mirrors/x.git", Path("/srv/mirrors/x.git")),
        ("backup.git", Path("backup.git")),
    ],
)
def test_local_paths(text, path):
    spec = parse_spec(text, "dst", {})
    assert spec.host == "git" and spec.path == path and spec.is_local


def test_home_relative_path_is_expanded():
    spec = parse_spec("~/mirrors/x.git", "dst", {})
    assert spec.is_local and "~" not in str(spec.path)


def test_display_never_shows_url_userinfo():
    spec = parse_spec("https://user:s3cretpassw0rd@gitea.example.org/o/n.git", "dst", {})
    assert "s3cret" not in spec.display


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hf://",
        "hf://owner",
        "hf://owner/name/extra",
        "hf://models/owner",
        "ms://spaces/owner/name",
        "ms://owner",
        "foo://owner/name",
        "s3://bucket/key",
        "a/b/c",
        "justaname",
        "hf://owner/..",
        "hf://-owner/name",
        "hf://own er/name",
        "hf://owner/na$me",
    ],
)
def test_bad_specs_are_usage_errors(text):
    with pytest.raises(UsageError) as info:
        parse_spec(text, "src", {})
    err = info.value
    assert err.exit_code == EXIT_USAGE
    assert "\n" not in str(err) and str(err)
