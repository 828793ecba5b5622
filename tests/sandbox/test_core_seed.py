"""The seed builder, the sample model, and the Sandbox/Hub Python API."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from gitmirror.sandbox import Sandbox
from gitmirror.sandbox.seed import (LFS_ATTRIBUTES, RepoBuilder, build_sample_model, file_bytes, lfs,
                                    seed_sample_model)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def hub(sandbox: Sandbox):
    hub = sandbox.add_hub("git")
    hub.add_user("alice")
    hub.token = hub.issue_token("alice")  # type: ignore[attr-defined]
    return hub


def test_builder_history_shapes(hub, git, tmp_path, auth_env, unique_name):
    b = RepoBuilder()
    c1 = b.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(b"weights v1"), "a.txt": "a",
                   "ünï cödé/名前 with space.txt": "non-ascii"}, message="one")
    b.commit({"dev.txt": "dev"}, branch="dev", base=c1, message="on dev")
    b.commit({"w.bin": lfs(b"weights v2")}, rename={"a.txt": "moved/a.txt"}, message="two")
    merge = b.merge("dev", message="merge dev")
    b.commit(delete=["dev.txt"], message="three")
    b.tag("v1", c1, message="annotated")
    b.tag("light", merge)
    b.ref("refs/pr/1", b.tip("dev"))
    repo_id = f"alice/{unique_name('b')}"
    refs = b.push_to_hub(hub, repo_id)

    assert set(refs) == {"refs/heads/main", "refs/heads/dev", "refs/pr/1", "refs/tags/v1", "refs/tags/light"}
    assert refs == hub.refs(repo_id)
    assert refs["refs/tags/light"] == merge.sha and refs["refs/tags/v1"] != c1.sha  # annotated: tag object
    assert hub.run_git(repo_id, "cat-file", "-t", refs["refs/tags/v1"]) == "tag"
    assert len(hub.run_git(repo_id, "rev-list", "--parents", "-n1", merge.sha or "").split()) == 3
    assert hub.lfs_objects(repo_id) == set(b.lfs_files())

    env = auth_env(hub.endpoint, hub.token, "alice")
    clone = tmp_path / "clone"
    git("clone", hub.git_url(repo_id), str(clone), env=env)
    git("lfs", "fsck", cwd=clone, env=env)
    for path, content in b.tip().files.items():
        assert (clone / path).read_bytes() == file_bytes(content)
    assert not (clone / "dev.txt").exists() and not (clone / "a.txt").exists()
    log = git("log", "--format=%s", cwd=clone).stdout.split("\n")
    assert log[:2] == ["three", "merge dev"]


def test_same_history_same_ids(hub, unique_name):
    first = build_sample_model().push_to_hub(hub, f"alice/{unique_name('s')}")
    second = build_sample_model().push_to_hub(hub, f"alice/{unique_name('s')}")
    assert first == second


def test_skip_lfs_leaves_the_store_without_objects(hub, unique_name):
    b = RepoBuilder()
    b.commit({"a.bin": lfs(b"kept"), "b.bin": lfs(b"skipped")})
    skipped = lfs(b"skipped").oid
    repo_id = f"alice/{unique_name('s')}"
    b.push_to_hub(hub, repo_id, skip_lfs=[skipped])
    assert hub.lfs_objects(repo_id) == {lfs(b"kept").oid}


def test_sample_model(sandbox, git, tmp_path, auth_env, unique_name):
    hub = sandbox.add_hub("modelscope")
    hub.add_user("alice")
    git_token = hub.git_token_for(hub.issue_token("alice"))
    repo_id = f"alice/{unique_name('sample')}"
    start = time.monotonic()
    sample = seed_sample_model(hub, repo_id)
    assert time.monotonic() - start < 2
    assert set(sample.refs) == {"refs/heads/master", "refs/tags/v1.0", "refs/tags/v1.1"}
    assert sample.head == hub.refs(repo_id)["refs/heads/master"]
    builder = sample.builder
    assert len(builder.commits) >= 4
    assert 200_000 < sum(f.size for f in builder.lfs_files().values()) < 1_000_000
    # LFS files were added, changed and deleted over time.
    assert "pytorch_model.bin" in builder.commits[2].files and "pytorch_model.bin" not in builder.tip().files
    assert builder.commits[1].files["model.safetensors"] != builder.tip().files["model.safetensors"]

    env = auth_env(hub.endpoint, git_token, "oauth2")
    clone = tmp_path / "clone"
    git("clone", hub.git_url(repo_id), str(clone), env=env)
    git("lfs", "fsck", cwd=clone, env=env)
    assert (clone / "docs" / "说明 notes.md").exists()
    assert git("describe", "--tags", "--abbrev=0", "HEAD~1", cwd=clone).stdout.strip() == "v1.0"


def test_hub_api_basics(sandbox, unique_name):
    hub = sandbox.add_hub("git", name=unique_name("named"))
    assert sandbox.hub(hub.name) is hub
    with pytest.raises(ValueError):
        sandbox.add_hub("gitlab")
    with pytest.raises(ValueError):
        sandbox.add_hub("git", name=hub.name)
    hub.add_user("alice", orgs=("acme",))
    repo = hub.create_repo("acme/tool", initial_commit=True)
    assert repo.path == hub.repo_path("acme/tool") and repo.path.is_dir()
    with pytest.raises(FileExistsError):
        hub.create_repo("acme/tool")
    for bad in ("../escape", "acme/..", "acme", "a/b/c", "acme/na me", "acme/.hidden"):
        with pytest.raises(ValueError):
            hub.create_repo(bad)
    refs = hub.refs("acme/tool")
    assert list(refs) == ["refs/heads/main"]
    assert hub.run_git("acme/tool", "log", "--format=%an|%s", "main") == "sandbox-bot|initial commit"
    assert "filter=lfs" in hub.run_git("acme/tool", "show", "main:.gitattributes")
    assert hub.create_repo("acme/data", repo_type="dataset").key.repo_type == "dataset"
    assert hub.repo_path("acme/data", "dataset") != hub.repo_path("acme/data")
    read = hub.issue_token("alice", "read")
    assert read.startswith("sbx") and hub.state.lookup_token(read).scope == "read"  # type: ignore[union-attr]
    assert hub.git_token_for(read) == read
    assert hub.lfs_url("acme/tool") == hub.git_url("acme/tool") + "/info/lfs"


def test_command_line_state_file(tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "gitmirror.sandbox", "--state-file", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        facts = json.loads(state.read_text())
        assert set(facts["env"]) == {"HF_ENDPOINT", "HF_TOKEN", "MODELSCOPE_ENDPOINT", "MODELSCOPE_API_TOKEN"}
        assert set(facts["hubs"]) == {"huggingface", "modelscope", "git"}
        assert facts["sample"]["refs"]["refs/heads/main"]
        done = subprocess.run(["git", "ls-remote", facts["sample"]["git_url"]], capture_output=True, text=True,
                              timeout=30, env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
                                               "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0"})
        assert facts["sample"]["refs"]["refs/heads/main"] in done.stdout
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=10)
    assert "export HF_ENDPOINT=" in out
    assert not state.exists()  # removed on exit
