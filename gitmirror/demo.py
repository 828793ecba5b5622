"""The end-to-end demo behind ``./scripts/demo.sh``.

Starts the sandbox hubs in this process, then runs the real ``gitmirror`` command as a user
would: mirror the sample model from the Hugging Face kind to the ModelScope kind, verify it, run
it again (nothing moves), and let git + git-lfs clone the result and check it with ``git lfs fsck``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

SAMPLE = "sandbox-org/tiny-model"
DEST = "mirror-org/tiny-model"


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    completed = subprocess.run(cmd, env=env, cwd=cwd)
    if completed.returncode != 0:
        sys.exit(f"demo: the command above failed with exit code {completed.returncode}")


def main() -> None:
    from gitmirror.sandbox import Sandbox
    from gitmirror.sandbox.seed import seed_sample_model

    with tempfile.TemporaryDirectory(prefix="gitmirror-demo-") as tmp, Sandbox(root=Path(tmp) / "hubs") as sandbox:
        tmp_path = Path(tmp)
        hf = sandbox.add_hub("huggingface", name="hf")
        ms = sandbox.add_hub("modelscope", name="ms")
        for hub, org in ((hf, "sandbox-org"), (ms, "mirror-org")):
            hub.add_user("demo", orgs=(org,))
        seed_sample_model(hf, SAMPLE)
        home = tmp_path / "home"
        home.mkdir()
        env = {
            **os.environ,
            "HOME": str(home),
            "MODELSCOPE_HOME": str(home / ".modelscope"),
            "HF_HOME": str(home / ".hf"),
            "HF_ENDPOINT": hf.endpoint,
            "HF_TOKEN": hf.issue_token("demo", scope="read"),
            "MODELSCOPE_ENDPOINT": ms.endpoint,
            "MODELSCOPE_API_TOKEN": ms.issue_token("demo", scope="write"),
            "GITMIRROR_CACHE": str(tmp_path / "cache"),
        }
        env.pop("HF_HUB_OFFLINE", None)
        print(f"Sandbox Hugging Face hub: {hf.endpoint}   sandbox ModelScope hub: {ms.endpoint}")
        print(f"Source: hf://{SAMPLE} (seeded with history, tags and LFS files)")
        gitmirror = [sys.executable, "-m", "gitmirror"]
        _run([*gitmirror, "clone-push", "--dry-run", f"hf://{SAMPLE}", f"ms://{DEST}"], env)
        _run([*gitmirror, "clone-push", f"hf://{SAMPLE}", f"ms://{DEST}"], env)
        _run([*gitmirror, "verify", f"hf://{SAMPLE}", f"ms://{DEST}"], env)
        print("\nA second run has nothing to move:")
        _run([*gitmirror, "clone-push", f"hf://{SAMPLE}", f"ms://{DEST}"], env)

        print("\nAnd git + git-lfs, as independent judges, clone the mirror and check every object:")
        git_token = ms.git_token_for(env["MODELSCOPE_API_TOKEN"])
        clone = tmp_path / "clone"
        judge_env = {**env, "GIT_TERMINAL_PROMPT": "0"}
        _run(["git", "lfs", "install", "--skip-repo"], judge_env)
        _git_with_auth(["clone", "--quiet", ms.git_url(DEST), str(clone)], git_token, judge_env, ms.endpoint)
        _git_with_auth(["lfs", "fetch", "--all"], git_token, judge_env, ms.endpoint, cwd=clone)
        _run(["git", "lfs", "fsck"], judge_env, cwd=clone)
        _run(["git", "log", "--oneline", "--graph", "--decorate", "--all"], judge_env, cwd=clone)
        print("\nDemo finished: history, tags and every LFS object are on the ModelScope sandbox hub.")


def _git_with_auth(args: list[str], git_token: str, env: dict[str, str], endpoint: str, cwd: Path | None = None) -> None:
    """Run git with ModelScope's oauth2 git credentials passed through the environment, not argv."""
    from gitmirror.hubs.base import GitAuth

    header = "Authorization: " + GitAuth("oauth2", git_token).basic_header()
    auth_env = {**env, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{endpoint}/.extraHeader", "GIT_CONFIG_VALUE_0": header}
    print(f"\n$ git {shlex.join(args)}", flush=True)
    completed = subprocess.run(["git", *args], env=auth_env, cwd=cwd)
    if completed.returncode != 0:
        sys.exit(f"demo: git {args[0]} failed with exit code {completed.returncode}")


if __name__ == "__main__":
    main()
