"""People arriving from the old scripts (issue 13, section 7).

The old scripts took ``<hf_model> <ms_model> [hf_token]`` positionally, or ``--hf-model``,
``--ms-model``, ``--hf-token`` and ``--verify-only``, with actions ``transfer``, ``setup`` and
``test``. Each habit gets a one-line pointer to the new form and exit 2, and no argument is ever
echoed (any may be a token). A destination those scripts filled is "diverged", and the error
says both ways out, each of which works.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(240)

TOKEN = "hf_" + secrets.token_hex(16)  # what a user would paste: must never be shown back


def gitmirror(args, env=None, timeout=120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_secret_nowhere(done: subprocess.CompletedProcess[str]) -> None:
    assert TOKEN not in done.stdout and TOKEN not in done.stderr, done.stderr
    assert TOKEN[3:] not in done.stdout + done.stderr  # not even in part


@pytest.mark.parametrize(
    "args",
    [
        ["clone-push", "org/model", "org/model", TOKEN],
        ["clone-push", "hf://org/model", "ms://org/model", TOKEN, "--dry-run"],
        ["clone-push", "org/model", "org/model", TOKEN, "again-" + TOKEN],
        ["verify", "hf://org/model", "ms://org/model", TOKEN],
    ],
    ids=["third-positional", "with-an-option-after", "two-extra", "verify"],
)
def test_a_token_as_an_extra_argument_is_never_echoed(args, git_env):
    done = gitmirror(args, git_env)
    assert done.returncode == 2, done.stderr
    assert_secret_nowhere(done)
    assert "unexpected extra argument (not shown: it may be a token)" in done.stderr
    assert "GITMIRROR_SRC_TOKEN" in done.stderr and "HF_TOKEN" in done.stderr


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_token_on_a_plain_mirrors_file_line_is_never_echoed(json_flag, git_env, tmp_path):
    """The old scripts' list lines were `SRC DST TOKEN`: a sync of such a file refuses the line
    (exit 2) and shows none of its words."""
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"org/model org/model {TOKEN}\n")
    done = gitmirror(["sync", str(mirrors), "--cache-dir", str(tmp_path / "cache"), *json_flag], env=git_env)
    assert done.returncode == 2, done.stderr
    assert "mirrors.txt:1" in done.stderr and "3 words" in done.stderr
    assert_secret_nowhere(done)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--hf-model", "org/model", "--ms-model", "org/model"], ["gitmirror clone-push hf://"]),
        (["clone-push", "--hf-model", "org/model", "--ms-model", "org/model"], ["gitmirror clone-push hf://"]),
        (["--hf-token", TOKEN], ["HF_TOKEN", "GITMIRROR_SRC_TOKEN", "not shown"]),
        ([f"--hf-token={TOKEN}"], ["HF_TOKEN"]),
        (["clone-push", "org/model", "org/model", "--hf-token", TOKEN], ["HF_TOKEN"]),
        (["--verify-only", "--hf-model", "org/model", "--ms-model", "org/model"], ["gitmirror verify SRC DST"]),
        (["transfer", "--hf-model", "org/model", "--ms-model", "org/model", "--hf-token", TOKEN],
         ["gitmirror clone-push SRC DST", "HF_TOKEN"]),
        (["transfer"], ["gitmirror clone-push SRC DST"]),
        (["setup"], ["gitmirror doctor"]),
        (["test"], ["gitmirror doctor"]),
    ],
    ids=["models", "models-after-command", "token", "token-equals", "token-after-command", "verify-only",
         "transfer-with-all", "transfer", "setup", "test"],
)
def test_old_flags_and_actions_get_a_pointer(args, words, git_env):
    done = gitmirror(args, git_env)
    assert done.returncode == 2, done.stderr
    assert_secret_nowhere(done)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert done.stdout == ""


def test_the_new_forms_still_work(git_env, tmp_path):
    """The pointers never catch the commands they point to."""
    assert gitmirror(["doctor", "--help"], git_env).returncode == 0
    assert gitmirror(["verify", "--help"], git_env).returncode == 0
    done = gitmirror(["clone-push", "--help"], git_env)
    assert done.returncode == 0 and "--snapshot" in done.stdout


# --- a destination the old scripts filled -------------------------------------------------------------

@pytest.fixture
def filled(hub_pair, git_env, tmp_path, unique_name):
    """A source with history, and a destination filled by an uploader: unrelated history of its own."""
    hf, ms = hub_pair()
    name = unique_name("oldfill")
    src = RepoBuilder()
    src.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# model\n",
                "w.bin": lfs(random_bytes(40_000, name))}, message="upstream 1")
    src.commit({"config.json": "{}\n"}, message="upstream 2")
    src_refs = src.push_to_hub(hf, f"org/{name}")
    old = RepoBuilder(default_branch="master")
    old.commit({"configuration.json": '{"framework": "pytorch"}\n'}, message="Upload configuration.json")
    old.commit({"README.md": "# uploaded by a script\n"}, message="Upload README.md")
    old_refs = old.push_to_hub(ms, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}

    class Filled:
        hub_src, hub_dst, repo = hf, ms, f"org/{name}"
        src_spec, dst_spec = f"hf://org/{name}", f"ms://org/{name}"
        src_main, dst_master = src_refs["refs/heads/main"], old_refs["refs/heads/master"]
        environ = env

    return Filled()


def test_a_destination_filled_by_the_old_scripts_is_diverged_and_says_what_to_do(filled):
    done = gitmirror(["clone-push", "-q", filled.src_spec, filled.dst_spec], filled.environ)
    assert done.returncode == 6, done.stderr
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("gitmirror: error: ")][0]
    assert "diverged" in line and "--force" in line and "--snapshot" in line
    assert "replace" in line and "new commit" in line
    assert filled.hub_dst.refs(filled.repo)["refs/heads/master"] == filled.dst_master, "nothing may change"


def test_the_force_way_out_replaces_the_history(filled):
    done = gitmirror(["clone-push", "-q", "--force", filled.src_spec, filled.dst_spec], filled.environ)
    assert done.returncode == 0, done.stderr
    assert filled.hub_dst.refs(filled.repo)["refs/heads/master"] == filled.src_main


def test_the_snapshot_way_out_adds_one_commit_on_top(filled):
    done = gitmirror(["clone-push", "-q", "--snapshot", filled.src_spec, filled.dst_spec], filled.environ)
    assert done.returncode == 0, done.stderr
    tip = filled.hub_dst.refs(filled.repo)["refs/heads/master"]
    parents = filled.hub_dst.run_git(filled.repo, "rev-list", "--parents", "-n1", tip).split()[1:]
    assert parents == [filled.dst_master], "the snapshot commit sits on the uploaded history"
    assert filled.hub_dst.run_git(filled.repo, "rev-parse", f"{tip}^{{tree}}") == \
        filled.hub_src.run_git(filled.repo, "rev-parse", "main^{tree}")
