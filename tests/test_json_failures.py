"""`--json` on failure: one JSON object on stdout (``{"error": {...}}``), the one line on stderr.

Each command with ``--json`` (clone-push, verify, sync's whole-run failures) is run as a user
would, as a subprocess; stdout must parse as JSON naming the exit code the process really
exited with, and the destination must be untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(240)


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True, timeout=200)


@pytest.fixture
def setup(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    name = unique_name("jsonfail")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(20_000, name))})
    builder.push_to_hub(hf, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}
    return hf, ms, name, env


def failure(done: subprocess.CompletedProcess, code: int, cls: str) -> dict:
    """The failure's JSON, checked against the real exit code and the one stderr line."""
    assert done.returncode == code, (done.stdout, done.stderr)
    error = json.loads(done.stdout)["error"]
    assert error["exit_code"] == code and error["class"] == cls, error
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == f"gitmirror: error: {error['message']}", done.stderr
    return error


def test_clone_push_missing_source(setup):
    hf, ms, name, env = setup
    done = cli(["clone-push", "--json", f"hf://org/{name}-absent", f"ms://org/{name}"], env)
    error = failure(done, 3, "RepoNotFoundError")
    assert "ref" not in error
    assert error["status"] in (401, 404), error  # what the hub answered, as Hugging Face answers a missing repo
    assert ms.state.get_repo(ms.key(f"org/{name}")) is None  # nothing was created


def test_clone_push_bad_option(setup):
    _, _, name, env = setup
    failure(cli(["clone-push", "--json", "--map", "nocolon", f"hf://org/{name}", f"ms://org/{name}"], env), 2, "UsageError")


def test_clone_push_diverged_names_the_refs(setup):
    hf, ms, name, env = setup
    first = cli(["clone-push", "--json", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert first.returncode == 0 and "error" not in json.loads(first.stdout)
    other = RepoBuilder(default_branch="master")
    other.commit({"local.txt": "made on the destination\n"})
    before = other.write(ms.repo_path(f"org/{name}"))
    error = failure(cli(["clone-push", "--json", f"hf://org/{name}", f"ms://org/{name}"], env), 6, "DivergedError")
    assert error["ref"] == "refs/heads/master" and error["refs"] == ["refs/heads/master"]
    assert ms.refs(f"org/{name}")["refs/heads/master"] == before["refs/heads/master"]


def test_verify_missing_source(setup):
    _, _, name, env = setup
    error = failure(cli(["verify", "--json", f"hf://org/{name}-absent", f"ms://org/{name}"], env), 3, "RepoNotFoundError")
    assert error["status"] in (401, 404), error


def test_sync_whole_run_failure(setup, tmp_path):
    _, _, name, env = setup
    mirrors = tmp_path / "mirrors.toml"
    mirrors.write_text(f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{name}"\nsrc_token_env = "NOT_SET_ANYWHERE"\n')
    error = failure(cli(["sync", "--json", str(mirrors)], env), 2, "UsageError")
    assert "NOT_SET_ANYWHERE" in error["message"]
    mirrors.write_text("[[mirror]]\nsrc = 1\n")
    failure(cli(["sync", "--json", str(mirrors)], env), 2, "UsageError")


def test_without_json_stdout_stays_empty(setup):
    _, _, name, env = setup
    done = cli(["clone-push", f"hf://org/{name}-absent", f"ms://org/{name}"], env)
    assert done.returncode == 3 and done.stdout == "" and done.stderr.startswith("gitmirror: error:")


@pytest.mark.parametrize("args", [["clone-push", "--json", "--no-such-option", "a/b", "c/d"], ["verify", "--json", "only-one"],
                                  ["sync", "--json", "/nonexistent/mirrors.toml"]], ids=["unknown-option", "missing-arg", "bad-path"])
def test_click_usage_errors(setup, args):
    """Command lines click rejects before gitmirror runs: exit 2, the usage error on stderr, JSON on stdout."""
    _, _, _, env = setup
    done = cli(args, env)
    assert done.returncode == 2 and "Error:" in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["exit_code"] == 2 and error["class"] in ("NoSuchOption", "MissingParameter", "BadParameter"), error
    assert error["message"] in done.stderr
