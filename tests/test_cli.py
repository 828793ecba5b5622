"""The command line as a user runs it: exit codes, one-line errors, --json, no token anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gitmirror.sandbox.seed import seed_sample_model

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hubs(hub_pair):
    hf, ms = hub_pair()
    return {"hf": hf, "ms": ms, "hf_token": hf.issue_token("alice"), "ms_token": ms.issue_token("alice")}


def gitmirror(args, env, timeout=240):
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def cli_env(hubs, git_env, tmp_path, **extra):
    env = {**git_env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint,
           "GITMIRROR_CACHE": str(tmp_path / "cache"), **extra}
    return env


def test_help_and_version():
    out = subprocess.run([sys.executable, "-m", "gitmirror", "--help"], capture_output=True, text=True, check=True).stdout
    assert "clone-push" in out and "verify" in out and "Exit codes" in out
    version = subprocess.run([sys.executable, "-m", "gitmirror", "--version"], capture_output=True, text=True, check=True)
    assert "gitmirror" in version.stdout


@pytest.mark.parametrize(
    ("src", "dst", "code", "words"),
    [
        ("hf://only-one-part", "ms://org/x", 2, "malformed"),
        ("gitlab2://org/x", "ms://org/x", 2, "unknown hub"),
        ("hf://org/does-not-exist", "ms://org/x", 3, "not"),
    ],
)
def test_bad_input_exit_codes(hubs, git_env, tmp_path, src, dst, code, words):
    # With a token the hub can say "missing"; without one it only says "missing or private" (exit 4).
    done = gitmirror(["clone-push", src, dst], cli_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf_token"]))
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error:") and words in lines[0].lower()


def test_private_source_without_token_is_an_auth_error(hubs, git_env, tmp_path, unique_name):
    name = unique_name("private")
    seed_sample_model(hubs["hf"], f"org/{name}", private=True)
    done = gitmirror(["clone-push", f"hf://org/{name}", f"ms://org/{name}"],
                     cli_env(hubs, git_env, tmp_path, MODELSCOPE_API_TOKEN=hubs["ms_token"]))
    assert done.returncode == 4, done.stderr
    assert "token" in done.stderr.lower()


def test_mirror_json_verify_and_no_token_leaks(hubs, git_env, tmp_path, unique_name, argv_log):
    bindir, log = argv_log
    name = unique_name("cli")
    seed_sample_model(hubs["hf"], f"org/{name}", private=True)
    env = cli_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf_token"], MODELSCOPE_API_TOKEN=hubs["ms_token"],
                  PATH=f"{bindir}{os.pathsep}{git_env['PATH']}")
    first = gitmirror(["clone-push", "--json", "--log-level", "DEBUG", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["refs"]["created"] == 3 and report["lfs"]["objects_moved"] == 4 and report["verified"]

    ok = gitmirror(["verify", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert ok.returncode == 0 and "in sync" in ok.stdout

    hubs["ms"].remove_lfs_object(f"org/{name}", sorted(hubs["ms"].lfs_objects(f"org/{name}"))[0])
    bad = gitmirror(["verify", "--json", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert bad.returncode == 10 and json.loads(bad.stdout)["in_sync"] is False

    git_token = hubs["ms"].git_token_for(hubs["ms_token"])
    secrets = [hubs["hf_token"], hubs["ms_token"], git_token]
    texts = [first.stdout, first.stderr, ok.stdout, ok.stderr, bad.stdout, bad.stderr, log.read_text()]
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000:
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    assert log.read_text().strip(), "the git wrapper saw no calls"
    for secret in secrets:
        assert all(secret not in text for text in texts)


def test_version_names_gitmirror_git_and_git_lfs(tmp_path):
    import gitmirror

    done = subprocess.run([sys.executable, "-m", "gitmirror", "--version"], capture_output=True, text=True, check=True)
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.split()[2]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"gitmirror {gitmirror.__version__} (Python ")
    assert lines[1] == f"git {git_version}"
    assert lines[2].startswith("git-lfs 3.") or lines[2].startswith("git-lfs 2."), lines
    # A PATH with git but without git-lfs.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "git").symlink_to(subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip())
    no_lfs = subprocess.run([sys.executable, "-m", "gitmirror", "--version"], capture_output=True, text=True, check=True,
                            env={**os.environ, "PATH": str(bindir)})
    assert no_lfs.stdout.splitlines()[1:] == [f"git {git_version}", "git-lfs not installed"]


def test_version_loads_no_heavy_module():
    code = ("import sys; from gitmirror.cli import version_text; print(version_text()); "
            "print(sorted(m for m in ('rich', 'requests', 'git', 'huggingface_hub', 'modelscope') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


def test_sandbox_help_answers_to_h():
    for argv in (["-m", "gitmirror", "sandbox", "-h"], ["-m", "gitmirror.sandbox", "-h"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "--state-file" in done.stdout


def _dst_refs(hubs, git_env, name):
    from judges import auth_env, remote_refs

    ms = hubs["ms"]
    return remote_refs(ms.git_url(f"org/{name}"), auth_env(ms.endpoint, "oauth2", ms.git_token_for(hubs["ms_token"]), git_env))


def test_tokens_from_gitmirror_src_and_dst_token_variables(hubs, git_env, tmp_path, unique_name):
    """GITMIRROR_SRC_TOKEN / GITMIRROR_DST_TOKEN do what --src-token / --dst-token do, out of `ps`."""
    from judges import modelscope_view

    name = unique_name("envtok")
    seeded = seed_sample_model(hubs["hf"], f"org/{name}", private=True)
    env = cli_env(hubs, git_env, tmp_path, GITMIRROR_SRC_TOKEN=hubs["hf_token"], GITMIRROR_DST_TOKEN=hubs["ms_token"])
    done = gitmirror(["clone-push", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert done.returncode == 0, done.stderr
    assert _dst_refs(hubs, git_env, name) == modelscope_view(seeded.refs)


def test_a_refused_token_is_named_by_where_it_came_from(hubs, git_env, tmp_path, unique_name):
    """A rejected token from GITMIRROR_SRC_TOKEN is named as that variable (never as --src-token,
    which was not given), and it wins over HF_TOKEN; in sync, a mirror's token variable is named."""
    name = unique_name("badenv")
    seed_sample_model(hubs["hf"], f"org/{name}", private=True)
    bogus = "hf_" + "0" * 34
    env = cli_env(hubs, git_env, tmp_path, GITMIRROR_SRC_TOKEN=bogus, HF_TOKEN=hubs["hf_token"],
                  MODELSCOPE_API_TOKEN=hubs["ms_token"])
    done = gitmirror(["clone-push", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert done.returncode == 4, done.stderr
    assert "environment variable GITMIRROR_SRC_TOKEN" in done.stderr and "--src-token" not in done.stderr
    assert bogus not in done.stderr + done.stdout
    mirrors = tmp_path / "mirrors.toml"
    mirrors.write_text(f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{name}"\nsrc_token_env = "MY_HF_TOK"\n')
    done = gitmirror(["sync", str(mirrors), "--report", str(tmp_path / "report.json")],
                     {**cli_env(hubs, git_env, tmp_path, MODELSCOPE_API_TOKEN=hubs["ms_token"]), "MY_HF_TOK": bogus})
    assert done.returncode == 11, done.stderr
    reason = json.loads((tmp_path / "report.json").read_text())["mirrors"][0]["reason"]
    assert "environment variable MY_HF_TOK" in reason and "--src-token" not in reason


def test_quiet_prints_one_line_and_no_table(hubs, git_env, tmp_path, unique_name):
    from judges import modelscope_view

    name = unique_name("quiet")
    seeded = seed_sample_model(hubs["hf"], f"org/{name}")
    env = cli_env(hubs, git_env, tmp_path, HF_TOKEN=hubs["hf_token"], MODELSCOPE_API_TOKEN=hubs["ms_token"])
    done = gitmirror(["clone-push", "-q", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert done.returncode == 0, done.stderr
    assert _dst_refs(hubs, git_env, name) == modelscope_view(seeded.refs)
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hf://org/{name} -> ms://org/{name}: refs: 3 created"), done.stdout
    assert done.stderr == ""

