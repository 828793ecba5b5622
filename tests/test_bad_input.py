"""Bad input and hostile answers: each gets one line that says what to do, and its documented exit code.

Every case runs the real CLI in a subprocess, as a user (or cron) would.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes, seed_sample_model

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hubs(hub_pair):
    hf, ms = hub_pair()
    for hub in (hf, ms):
        hub.add_user("bob")
    return {"hf": hf, "ms": ms}


def base_env(hubs, git_env, tmp_path, **extra) -> dict[str, str]:
    return {**git_env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint,
            "GITMIRROR_CACHE": str(tmp_path / "cache"), **extra}


def gitmirror(args, env, timeout=240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_error(done, code: int, *words: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    # Progress lines ("gitmirror: LFS ...") may precede it; the error itself is one line.
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("gitmirror: LFS ")]
    assert len(lines) == 1, done.stderr
    line = lines[0]
    print(f"[exit {done.returncode}] {line}")
    assert line.startswith("gitmirror: error: ")
    for word in words:
        assert word.lower() in line.lower(), line
    return line


def test_gated_source_whose_terms_were_not_accepted(hubs, git_env, tmp_path, unique_name):
    name = unique_name("gated")
    seed_sample_model(hubs["hf"], f"alice/{name}", gated=True)
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("bob"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice"))
    assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 4, "gated")


def test_wrong_token(hubs, git_env, tmp_path, unique_name):
    name = unique_name("wrongtok")
    seed_sample_model(hubs["hf"], f"alice/{name}", private=True)
    wrong = "sbxhf_" + secrets.token_hex(20)
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=wrong, MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice"))
    line = assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 4, "token")
    assert wrong not in line


def test_read_only_token_for_the_destination_changes_nothing(hubs, git_env, tmp_path, unique_name):
    name = unique_name("readonly")
    seed_sample_model(hubs["hf"], f"alice/{name}")
    hubs["ms"].create_repo(f"org/{name}")
    hubs["ms"].counters.reset()
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("alice"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice", scope="read"))
    assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 5)
    assert hubs["ms"].refs(f"org/{name}") == {}
    assert hubs["ms"].lfs_objects(f"org/{name}") == set()


def test_destination_owner_you_cannot_create_in(hubs, git_env, tmp_path, unique_name):
    name = unique_name("noowner")
    seed_sample_model(hubs["hf"], f"alice/{name}")
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("alice"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("bob"))
    assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 5, "org")


def test_non_fast_forward_without_force(hubs, git_env, tmp_path, unique_name):
    name = unique_name("nonff")
    sample = seed_sample_model(hubs["hf"], f"alice/{name}")
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("alice"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice"))
    assert gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env).returncode == 0
    other = RepoBuilder(default_branch="master")
    other.commit({"x.txt": "diverged"})
    other.write(hubs["ms"].repo_path(f"org/{name}"))
    sample.builder.commit({"y.txt": "upstream"})
    sample.builder.push_to_hub(hubs["hf"], f"alice/{name}")
    assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 6, "--force")


def test_pointer_whose_object_the_source_lacks_is_reported_not_skipped(hubs, git_env, tmp_path, unique_name):
    name = unique_name("nolfs")
    builder = RepoBuilder()
    lost = lfs(random_bytes(10_000, name + "lost"))
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "kept.bin": lfs(random_bytes(10_000, name)), "lost.bin": lost})
    builder.push_to_hub(hubs["hf"], f"alice/{name}", skip_lfs=[lost.oid])
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("alice"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice"))
    assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 7, lost.oid[:12])
    assert hubs["ms"].refs(f"org/{name}") == {}, "no ref may be pushed over missing content"


@pytest.mark.parametrize("body,status", [("<html><body>502 Bad Gateway</body></html>", 502),
                                         ("{not json", 200),
                                         ("<!DOCTYPE html><title>Sign in</title>", 200)])
def test_server_answering_malformed_json_or_html(hubs, git_env, tmp_path, unique_name, body, status):
    name = unique_name("html")
    seed_sample_model(hubs["hf"], f"alice/{name}")
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("alice"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice"))
    rule = hubs["ms"].faults.fail("POST", path=f"{name}.git/info/lfs/objects/batch", status=status, body=body,
                                  times=None)
    try:
        line = assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 8)
    finally:
        hubs["ms"].faults.clear()
    assert "<html" not in line.lower() and rule.fired >= 1
    assert hubs["ms"].refs(f"org/{name}") == {}


def test_git_missing_or_too_old(hubs, git_env, tmp_path):
    env = base_env(hubs, git_env, tmp_path, PATH=str(tmp_path / "empty-bin"))
    (tmp_path / "empty-bin").mkdir()
    assert_one_line_error(gitmirror(["clone-push", "hf://alice/x", "ms://org/x"], env), 9, "git")

    old = tmp_path / "old-bin"
    old.mkdir()
    fake = old / "git"
    fake.write_text("#!/bin/sh\necho 'git version 2.20.1'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = base_env(hubs, git_env, tmp_path, PATH=f"{old}{os.pathsep}{git_env['PATH']}")
    assert_one_line_error(gitmirror(["clone-push", "hf://alice/x", "ms://org/x"], env), 9, "too old")


def test_full_disk_in_the_cache(hubs, git_env, tmp_path, unique_name, tiny_disk):
    name = unique_name("full")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(20_000, name)),
                    "plain.dat": random_bytes(600_000, name + "plain")})  # the pack does not fit in 200 KB
    builder.push_to_hub(hubs["hf"], f"alice/{name}")
    env = base_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf"].issue_token("alice"),
                   MODELSCOPE_API_TOKEN=hubs["ms"].issue_token("alice"), GITMIRROR_CACHE=str(tiny_disk))
    assert_one_line_error(gitmirror(["clone-push", f"hf://alice/{name}", f"ms://org/{name}"], env), 9, "space")
