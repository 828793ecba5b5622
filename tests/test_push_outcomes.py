"""What a failed push says: a ref the destination refused by its rules is named with the server's
own words (exit 7), a ref the destination moved since it was read is a lost race (exit 6); neither
is retried and neither touches the destination. Judged by git ls-remote and the hub's counters.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from gitmirror import api
from gitmirror.errors import DivergedError, IntegrityError, PushRefusedError
from gitmirror.mirrors_file import MirrorEntry
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, remote_refs

pytestmark = pytest.mark.timeout(300)

#: The destination hub here is stricter than gitmirror knows (files outside LFS over 2 MiB, where
#: gitmirror checks Hugging Face's 10 MiB before anything moves: tests/test_hub_rules.py). A hub that
#: changes its rules must still be answered in its own words; a text file, so that the 1 MB binary
#: rule gitmirror checks does not catch it first.
HUB_LIMIT = 2 * 2**20
BIG_TEXT = 3 * 1000 * 1000


def big_text(size: int) -> bytes:
    """Hex text: no NUL (git and the hub call it text) and hard to compress, so the pack stays over
    git's 1 MiB http.postBuffer and goes as one chunked body (see assert_refused_untouched...)."""
    return random_bytes(size // 2 + 1, "big text").hex().encode()[:size]


def hub_env(hf, ms, git_env) -> dict[str, str]:
    return {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
            "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}


def seed_big_plain_file(ms, repo: str) -> dict[str, str]:
    """A ModelScope source (no size limit) whose history, not only its tip, has a 3 MB file
    outside LFS, next to LFS files: what the stricter Hugging Face destination refuses."""
    builder = RepoBuilder(default_branch="master")
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# m\n", "w.bin": lfs(random_bytes(40_000, repo))})
    builder.commit({"data/big.bin": big_text(BIG_TEXT)}, message="a 3 MB file outside LFS")
    builder.commit({"notes.txt": "later\n"}, delete=["data/big.bin"], message="deleted again: history still has it")
    return builder.push_to_hub(ms, repo)


@pytest.fixture
def refusing_pair(hub_pair, git_env):
    """An HF destination ``org/m`` (as the hub creates it) and a source whose history it refuses."""
    hf, ms = hub_pair(hf={"max_plain_blob_size": HUB_LIMIT})
    seed_big_plain_file(ms, "org/m")
    hf.create_repo("org/m")
    judge = auth_env(hf.endpoint, "user", hf.issue_token("alice"), git_env)
    before = remote_refs(hf.git_url("org/m"), judge)
    assert set(before) == {"refs/heads/main"}  # the hub's own initial commit
    hf.counters.reset()
    return hf, ms, judge, before


def assert_refused_untouched_and_not_retried(hf, judge, before) -> None:
    assert remote_refs(hf.git_url("org/m"), judge) == before, "a refused push moved a destination ref"
    # A pack over git's http.postBuffer (1 MiB) goes as one chunked body after a small probe POST:
    # one push is one chunked body (and two POSTs); a retry would send another.
    snap = hf.counters.snapshot()
    assert snap.features.get("chunked-request") == 1, "a refusal was retried"
    assert snap.count("git-receive-pack", "POST") == 2


def test_cli_exits_7_naming_the_ref_and_the_hubs_reason(refusing_pair, git_env, tmp_path):
    hf, ms, judge, before = refusing_pair
    done = subprocess.run([sys.executable, "-m", "gitmirror", "clone-push", "ms://org/m", "hf://org/m",
                           "--cache-dir", str(tmp_path / "cache")],
                          env=hub_env(hf, ms, git_env), capture_output=True, text=True, timeout=240)
    assert done.returncode == 7, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("gitmirror: error:")]
    assert len(errors) == 1, done.stderr
    line = errors[0]
    assert "refs/heads/main" in line and "pre-receive hook declined" in line
    assert "Your push was rejected because it contains files larger than 2 MiB" in line
    assert "Offending files: - data/big.bin (ref: refs/heads/main)" in line
    assert_refused_untouched_and_not_retried(hf, judge, before)


def test_api_raises_push_refused_with_the_refs(refusing_pair, git_env, tmp_path):
    hf, ms, judge, before = refusing_pair
    retried = []
    with pytest.raises(PushRefusedError) as caught:
        api.mirror("ms://org/m", "hf://org/m", env=hub_env(hf, ms, git_env), cache_dir=tmp_path / "cache", policy=FAST,
                   on_retry=lambda what, exc: retried.append(exc))
    assert retried == []
    error = caught.value
    assert isinstance(error, IntegrityError) and error.exit_code == 7 and not error.transient
    assert error.refs == ("refs/heads/main",)
    assert "\n" not in str(error) and len(str(error)) < 1200
    assert_refused_untouched_and_not_retried(hf, judge, before)


def test_sync_reports_the_same_reason_and_code(refusing_pair, git_env, tmp_path):
    hf, ms, judge, before = refusing_pair
    report = api.sync([MirrorEntry(src="ms://org/m", dst="hf://org/m")], cache_dir=tmp_path / "cache",
                      env=hub_env(hf, ms, git_env), policy=FAST)
    (outcome,) = report.outcomes
    assert outcome.status == "failed" and outcome.exit_code == 7
    assert "refs/heads/main" in outcome.reason and "files larger than 2 MiB" in outcome.reason
    assert "data/big.bin" in outcome.reason
    assert report.exit_code == 11
    assert_refused_untouched_and_not_retried(hf, judge, before)


# --- a lost race: the destination moved between the plan and the push --------------------------

@pytest.fixture
def racing_pair(hub_pair, git_env, tmp_path):
    """A mirror hf://org/r -> ms://org/r done once; then the source moves on. ``run(force=...)``
    mirrors again while ``racer`` (a function) moves the destination's master at the chosen moment."""
    hf, ms = hub_pair()
    source = RepoBuilder()
    source.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(20_000, "r1"))})
    source.push_to_hub(hf, "org/r")
    env = hub_env(hf, ms, git_env)

    class Pair:
        def run(self, **kwargs):
            return api.mirror("hf://org/r", "ms://org/r", env=env, cache_dir=tmp_path / "cache", policy=FAST, **kwargs)

        @staticmethod
        def rewrite_destination(seed: str) -> str:
            """Another writer replaces the destination's master with a commit we have never seen."""
            other = RepoBuilder(default_branch="master")
            other.commit({"other.txt": f"pushed by someone else: {seed}\n"})
            return other.write(ms.repo_path("org/r"))["refs/heads/master"]

    pair = Pair()
    pair.run()
    source.commit({"w2.bin": lfs(random_bytes(20_000, "r2"))}, message="the source moves on")
    pair.src_refs = source.push_to_hub(hf, "org/r")
    pair.hf, pair.ms = hf, ms
    return pair


def race_before_push(monkeypatch, move) -> None:
    """Run ``move`` after the plan, just before the push (the destination's refs were read)."""
    from gitmirror.execute import Executor

    original = Executor.push

    def push(self, plan):
        move()
        return original(self, plan)

    monkeypatch.setattr(Executor, "push", push)


def assert_lost_race(pair, error, racer_tip, retried) -> None:
    assert type(error) is DivergedError and error.exit_code == 6 and not error.transient
    assert "refs/heads/master" in str(error) and "\n" not in str(error)
    assert retried == [], "a lost race was retried"
    assert pair.ms.refs("org/r")["refs/heads/master"] == racer_tip, "the other writer's push was overwritten"


def test_a_fast_forward_that_lost_a_race_exits_6(racing_pair, monkeypatch):
    """git 2.39 over HTTP with --atomic rejects the ref itself ("fetch first") and then prints
    "protocol error: bad line length": a lost race, not a network fault."""
    moved = {}
    race_before_push(monkeypatch, lambda: moved.setdefault("tip", racing_pair.rewrite_destination("ff")))
    retried = []
    with pytest.raises(DivergedError) as caught:
        racing_pair.run(on_retry=lambda what, exc: retried.append(exc))
    assert "fetch first" in str(caught.value)
    assert_lost_race(racing_pair, caught.value, moved["tip"], retried)


def test_a_forced_push_keeps_its_lease_and_never_overwrites_a_racer(racing_pair, monkeypatch):
    """--force pushes with --force-with-lease on the tip it planned over; another writer's newer tip
    stays (git must not be given a "+" refspec, which overrides the lease)."""
    racing_pair.rewrite_destination("diverged")
    moved = {}
    race_before_push(monkeypatch, lambda: moved.setdefault("tip", racing_pair.rewrite_destination("racer")))
    retried = []
    with pytest.raises(DivergedError) as caught:
        racing_pair.run(force=True, on_retry=lambda what, exc: retried.append(exc))
    assert "stale info" in str(caught.value)
    assert_lost_race(racing_pair, caught.value, moved["tip"], retried)


def test_a_ref_moved_on_the_server_during_the_push_exits_6(racing_pair, monkeypatch):
    """The destination moves after git read its refs, while the push is on the wire: receive-pack
    cannot lock the ref ("atomic transaction failed")."""
    ms = racing_pair.ms
    ms.faults.stall(route="git-receive-pack", method="POST", seconds=3, times=1)
    moved = {}

    def move_when_the_push_arrives():
        deadline = time.monotonic() + 30
        while ms.counters.snapshot().count("git-receive-pack", "POST") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        moved["tip"] = racing_pair.rewrite_destination("server-side")

    racer = threading.Thread(target=move_when_the_push_arrives)
    race_before_push(monkeypatch, racer.start)
    ms.counters.reset()
    retried = []
    try:
        with pytest.raises(DivergedError) as caught:
            racing_pair.run(on_retry=lambda what, exc: retried.append(exc))
    finally:
        racer.join()
        ms.faults.clear()
    assert "atomic transaction failed" in str(caught.value)
    assert_lost_race(racing_pair, caught.value, moved["tip"], retried)


def test_a_ref_name_the_destination_does_not_accept_exits_7_with_its_words(hub_pair, git_env, tmp_path):
    hf, ms = hub_pair()
    source = RepoBuilder(default_branch="master")
    tip = source.commit({"README.md": "# n\n"})
    source.ref("refs/convert/parquet", tip)
    source.push_to_hub(ms, "org/n")
    hf.create_repo("org/n")
    before = hf.refs("org/n")
    retried = []
    with pytest.raises(PushRefusedError) as caught:
        api.mirror("ms://org/n", "hf://org/n", refs=["refs/convert/*"], env=hub_env(hf, ms, git_env),
                   cache_dir=tmp_path / "cache", policy=FAST, on_retry=lambda what, exc: retried.append(exc))
    error = caught.value
    assert error.exit_code == 7 and "refs/convert/parquet" in error.refs and retried == []
    assert "refs/convert/parquet" in str(error) and "does not accept that ref name" in str(error)
    assert hf.refs("org/n") == before
