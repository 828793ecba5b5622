"""Faults on the wire: every run either completes, or fails clearly and a rerun completes.

Faults come from the sandbox's injection (failures, 429s, cut bodies, stalls, expiring hrefs);
the judge is the destination's real state (refs and LFS bytes), not our own report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import pytest

from gitmirror import api
from gitmirror.errors import GitMirrorError
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def pair(hub_pair, git_env, tmp_path, unique_name):
    """A fresh HF source with history and LFS objects, and a fresh ModelScope destination hub."""
    hf, ms = hub_pair()
    name = unique_name("fault")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# faults\n"})
    for i in range(6):
        builder.commit({f"w{i}.bin": lfs(random_bytes(120_000 + i * 1000, f"{name}-{i}")),
                        f"notes{i}.txt": random_bytes(3000, f"n{i}").hex()}, message=f"step {i}")
    builder.tag("v1", message="release")
    builder.push_to_hub(hf, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}

    class Pair:
        src_hub, dst_hub, repo = hf, ms, f"org/{name}"
        src, dst = f"hf://org/{name}", f"ms://org/{name}"
        objects = {hashlib.sha256(f.data).hexdigest(): f.data for f in builder.lfs_files().values()}

        def run(self, policy=FAST, **kwargs):
            return api.mirror(self.src, self.dst, env=env, cache_dir=tmp_path / "cache", policy=policy, **kwargs)

        def assert_mirrored(self):
            assert ms.refs(self.repo)["refs/heads/master"] == hf.refs(self.repo)["refs/heads/main"]
            assert ms.refs(self.repo)["refs/tags/v1"] == hf.refs(self.repo)["refs/tags/v1"]
            for oid, data in self.objects.items():
                assert ms.lfs_object_path(self.repo, oid).read_bytes() == data

    return Pair()


def run_until_done(pair, attempts=2, **kwargs):
    """Run; if a fault outlasts the retries, the error must be clear and a rerun must finish."""
    for attempt in range(attempts):
        try:
            return pair.run(**kwargs)
        except GitMirrorError as exc:
            assert attempt + 1 < attempts, f"rerun did not complete: {exc}"
            assert "\n" not in str(exc) and exc.exit_code in (7, 8)


@pytest.mark.parametrize(
    ("hub", "fault", "kwargs"),
    [
        ("src", "cut", dict(route="lfs-download", after_bytes=30_000, times=2)),
        ("dst", "cut", dict(route="lfs-upload", after_bytes=30_000, direction="request", times=2)),
        # curl silently retries a request whose reused connection died once, so git faults come
        # in threes to reach gitmirror's own retries.
        ("src", "cut", dict(route="git-upload-pack", after_bytes=2_000, times=3)),
        ("dst", "cut", dict(route="git-receive-pack", after_bytes=500, direction="request", times=3)),
        ("dst", "cut", dict(route="git-receive-pack", after_bytes=0, direction="response", times=3)),
        ("src", "fail", dict(route="lfs-batch", status=503, times=3)),
        ("src", "fail", dict(route="lfs-download", status=500, times=2)),
        ("dst", "fail", dict(route="lfs-upload", status=502, times=2)),
        ("dst", "fail", dict(route="lfs-verify", status=503, times=2)),
        ("src", "fail", dict(route="git-upload-pack", status=502, times=2)),
        ("dst", "fail", dict(route="git-receive-pack", status=503, times=1)),
        ("dst", "fail", dict(route="git-info-refs", status=500, times=2)),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_fault_is_survived(pair, hub, fault, kwargs):
    target = pair.src_hub if hub == "src" else pair.dst_hub
    rule = getattr(target.faults, fault)(**kwargs)
    result = pair.run()
    pair.assert_mirrored()
    assert rule.fired == kwargs["times"], "the fault did not fire as configured"
    assert result.retries >= 1, "the summary counts the retries"


def test_429_with_retry_after_is_honoured(pair):
    pair.dst_hub.faults.fail(route="lfs-batch", status=429, retry_after=0.6, times=2)
    started = time.monotonic()
    result = pair.run()
    assert time.monotonic() - started >= 1.2, "two Retry-After: 0.6 pauses were not waited out"
    assert result.retries >= 2 and pair.dst_hub.counters.snapshot().status_count("lfs-batch", 429) == 2
    pair.assert_mirrored()


def test_lfs_retries_reach_the_runs_retry_listener_once_each(pair):
    """sync backs a hub off through the run's retry listener: an LFS 429 must reach it (with its
    status and Retry-After), and the run's count must not count it twice."""
    heard = []
    pair.dst_hub.faults.fail(route="lfs-batch", status=429, retry_after=0.2, times=2)
    result = pair.run(on_retry=lambda what, exc: heard.append(exc))
    pair.assert_mirrored()
    assert pair.dst_hub.counters.snapshot().status_count("lfs-batch", 429) == 2
    rate_limited = [exc for exc in heard if getattr(exc, "status", None) == 429]
    assert len(rate_limited) == 2 and all(exc.retry_after == pytest.approx(0.2) for exc in rate_limited)
    assert result.retries == len(heard)


def test_stall_longer_than_the_read_timeout(pair):
    policy = dataclasses.replace(FAST, read_timeout=1.0)
    pair.src_hub.faults.stall(route="lfs-download", seconds=4, times=1)
    result = pair.run(policy=policy)
    assert result.retries >= 1
    pair.assert_mirrored()


def test_git_stall_is_cut_and_retried(pair):
    policy = dataclasses.replace(FAST, read_timeout=1.0)
    pair.src_hub.faults.stall(route="git-upload-pack", seconds=5, times=1)
    result = run_until_done(pair, policy=policy)
    pair.assert_mirrored()
    assert result.retries >= 1


def test_hrefs_that_expire_mid_run_are_asked_for_again(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair(ms={"href_ttl": 1})
    name = unique_name("expire")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, **{f"f{i}.bin": lfs(random_bytes(150_000, f"{name}{i}"))
                                                        for i in range(6)}})
    builder.push_to_hub(hf, f"org/{name}")
    ms.faults.bandwidth(up=400_000)  # one object takes ~0.4 s: later hrefs go stale before use
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}
    try:
        api.mirror(f"hf://org/{name}", f"ms://org/{name}", env=env, cache_dir=tmp_path / "cache", policy=FAST, jobs=1)
    finally:
        ms.faults.clear()
    snap = ms.counters.snapshot()
    assert snap.count("lfs-batch") >= 3, "stale upload hrefs were not asked for again"
    for content in builder.lfs_files().values():
        assert ms.has_lfs_object(f"org/{name}", content.oid)
    assert ms.refs(f"org/{name}")["refs/heads/master"] == hf.refs(f"org/{name}")["refs/heads/main"]


def test_fault_that_outlasts_the_retries_fails_clearly_and_a_rerun_completes(pair):
    pair.dst_hub.faults.fail(route="lfs-upload", status=503, times=None)
    with pytest.raises(GitMirrorError) as info:
        pair.run()
    assert info.value.exit_code == 8 and "\n" not in str(info.value)
    assert "refs/heads/master" not in pair.dst_hub.refs(pair.repo), "no ref may move before its objects"
    pair.dst_hub.faults.clear()
    pair.run()
    pair.assert_mirrored()
