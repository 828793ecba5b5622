"""SIGKILL a mirror at seeded random moments: the destination never shows a commit whose LFS
content is missing, and a rerun finishes the job. The source never changes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import lfs_oids_reachable

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

KILLS = 30
DESTINATIONS = 10
SEED = 20261128


def large_history(name: str) -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# large\n"})
    for i in range(8):
        b.commit({f"shard-{i}.safetensors": lfs(random_bytes(350_000, f"{name}-{i}")),
                  "config.json": f'{{"step": {i}}}\n'}, message=f"step {i}")
        if i == 3:
            b.tag("v0.4", message="mid")
    b.commit({"dev.bin": lfs(random_bytes(300_000, f"{name}-dev"))}, branch="dev", base="main")
    b.tag("v1.0")
    return b


def test_sigkill_at_random_moments_then_resume(hub_pair, git_env, tmp_path, unique_name):
    # A lax destination that accepts refs without their LFS objects: only gitmirror's ordering
    # can keep the invariant here.
    hf, ms = hub_pair(ms={"require_lfs_objects": False})
    name = unique_name("large")
    builder = large_history(name)
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    ms.faults.bandwidth(up=750_000)  # ~4 s of LFS upload: kills land in every phase (faster runs since the no-op and small-object speedups)
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "gitmirror", "clone-push", "--quiet", f"hf://org/{name}"]
    rng = random.Random(SEED)
    kills_that_hit = 0
    for i in range(KILLS):
        dst = f"org/{name}-dst{i % DESTINATIONS}"
        proc = subprocess.Popen([*command, f"ms://{dst}"], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.2, 4.0))
        if proc.poll() is None:
            kills_that_hit += 1
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it finished before the kill: the invariant must hold all the same
        proc.wait(timeout=30)
        assert_destination_invariant(ms, dst)
    assert kills_that_hit >= KILLS // 2, "most kills should land while the mirror is running"
    assert hf.refs(f"org/{name}") == src_refs, "the source never changes"

    ms.faults.clear()
    for d in range(DESTINATIONS):
        dst = f"org/{name}-dst{d}"
        done = subprocess.run([*command, f"ms://{dst}"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        refs = ms.refs(dst)
        assert refs["refs/heads/master"] == src_refs["refs/heads/main"]
        assert {k: v for k, v in refs.items() if k != "refs/heads/master"} == \
            {k: v for k, v in src_refs.items() if k != "refs/heads/main"}
        for content in builder.lfs_files().values():
            assert ms.lfs_object_path(dst, content.oid).read_bytes() == content.data


def assert_destination_invariant(hub, repo_id: str) -> None:
    """Every ref on the destination points to history whose LFS objects are all there."""
    if hub.state.get_repo(hub.key(repo_id)) is None or not (hub.repo_path(repo_id) / "HEAD").exists():
        return  # killed before the repository was created (or while the hub is still making it)
    refs = hub.refs(repo_id)
    needed = lfs_oids_reachable(hub.repo_path(repo_id), sorted(set(refs.values())))
    missing = [oid for oid in needed if not hub.has_lfs_object(repo_id, oid)]
    assert not missing, f"{repo_id}: refs {sorted(refs)} point to history with missing LFS objects {missing[:3]}"
