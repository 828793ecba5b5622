""""Verified" means the destination was seen holding every LFS object of the history it holds.

The first run for a pair (no checked cache yet) and ``--repair`` ask the destination about every
LFS object of the mirrored history, upload what it lacks, and only then report verified, even when
every ref already matches; a later run with a cache asks only about the new history's objects, and
a cron no-op makes no LFS call at all. Judged by git and git-lfs in fresh clones and by the bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitmirror import api
from gitmirror.mirrors_file import load_mirrors
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, clone_and_check_lfs, git, remote_refs

pytestmark = pytest.mark.timeout(300)


def history(name: str) -> RepoBuilder:
    """Two branches, a tag and five LFS objects spread over the history."""
    b = RepoBuilder()
    c1 = b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# v\n", "a.bin": lfs(random_bytes(30_000, f"{name}-a"))})
    b.commit({"b.bin": lfs(random_bytes(20_000, f"{name}-b"))}, message="b")
    b.tag("v1", message="one")
    b.commit({"a.bin": lfs(random_bytes(25_000, f"{name}-a2"))}, message="a changes")
    b.commit({"dev.bin": lfs(random_bytes(15_000, f"{name}-dev"))}, branch="dev", base=c1, message="dev")
    b.commit({"c.bin": lfs(random_bytes(10_000, f"{name}-c"))}, message="c")
    return b


def objects_of(builder: RepoBuilder) -> dict[str, bytes]:
    return {oid: f.data for oid, f in builder.lfs_files().items()}


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True, timeout=240)


def test_local_bare_mirror_clone_without_objects_is_filled_before_success(hub_pair, git_env, tmp_path, unique_name):
    """The issue's case: `git clone --mirror` of an LFS repository (pointers, no objects) as a local
    destination. Its refs all match the source; the first run still uploads every object."""
    hf, _ = hub_pair()
    name = unique_name("bare")
    builder = history(name)
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    backup = tmp_path / "backup.git"
    git({**git_env, "GIT_LFS_SKIP_SMUDGE": "1"}, "clone", "--quiet", "--mirror", hf.git_url(f"org/{name}"), str(backup))
    assert not list((backup / "lfs" / "objects").glob("*/*/*"))  # pointers only: the case of the issue
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "HF_TOKEN": hf.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}

    done = cli(["clone-push", "--json", f"hf://org/{name}", str(backup)], env)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected = objects_of(builder)
    assert report["lfs"]["scope"] == "history" and report["plan"]["lfs_scope"] == "history"
    assert report["lfs"]["objects_checked"] == len(expected) == report["lfs"]["objects_moved"]
    assert report["verified"] and not report["up_to_date"] and report["refs"]["unchanged"] == len(src_refs)
    assert remote_refs(str(backup), git_env) == src_refs  # no ref moved
    clone_and_check_lfs(str(backup), git_env, tmp_path, expected)  # git lfs fetch --all, fsck, the bytes

    # A plain rerun with the cache is the cheap cron no-op: no LFS call to the source either.
    hf.counters.reset()
    again = cli(["clone-push", "--json", f"hf://org/{name}", str(backup)], env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["up_to_date"] and second["lfs"]["scope"] == "new" and second["lfs"]["objects_checked"] == 0
    snap = hf.counters.snapshot()
    assert snap.total_requests() <= 2 and snap.count("lfs-batch") == 0, snap.paths


def test_summary_says_what_was_checked(hub_pair, git_env, tmp_path, unique_name):
    hf, _ = hub_pair()
    name = unique_name("summary")
    builder = history(name)
    builder.push_to_hub(hf, f"org/{name}")
    backup = tmp_path / "backup.git"
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "HF_TOKEN": hf.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache"), "COLUMNS": "300"}
    first = cli(["clone-push", "-q", f"hf://org/{name}", str(backup)], env)
    assert first.returncode == 0, first.stderr
    assert f"LFS: {len(objects_of(builder))} of the whole history checked" in first.stdout, first.stdout
    repaired = cli(["clone-push", "--repair", f"hf://org/{name}", str(backup)], env)
    assert repaired.returncode == 0, repaired.stderr
    assert f"up to date; {len(objects_of(builder))} LFS objects of the whole history checked, all there" in repaired.stdout
    dry = cli(["clone-push", "--dry-run", "--repair", f"hf://org/{name}", str(backup)], env)
    assert dry.returncode == 0 and "LFS objects to check (of the whole history): 5" in dry.stdout, dry.stdout


def test_source_lacking_an_object_fails_every_run_until_checked(hub_pair, git_env, tmp_path, unique_name):
    """A first run that could not check everything leaves the pair unchecked: the next run, with a
    cache now, still asks about the whole history instead of calling the destination up to date."""
    hf, _ = hub_pair()
    name = unique_name("lost")
    builder = history(name)
    lost = sorted(objects_of(builder))[0]
    builder.push_to_hub(hf, f"org/{name}", skip_lfs=[lost])
    backup = tmp_path / "backup.git"
    git({**git_env, "GIT_LFS_SKIP_SMUDGE": "1"}, "clone", "--quiet", "--mirror", hf.git_url(f"org/{name}"), str(backup))
    run = dict(env={**git_env, "HF_ENDPOINT": hf.endpoint}, src_token=hf.issue_token("alice"),
               cache_dir=tmp_path / "cache", policy=FAST)
    for _ in range(2):
        with pytest.raises(Exception) as info:
            api.mirror(f"hf://org/{name}", str(backup), **run)
        assert getattr(info.value, "exit_code", None) == 7 and lost in str(info.value)
    assert not (backup / "lfs" / "objects" / lost[:2] / lost[2:4] / lost).exists()


@pytest.fixture
def mirrored(hub_pair, git_env, tmp_path, unique_name):
    """An HF source mirrored once to ModelScope (with a cache), and how to run again and judge."""
    hf, ms = hub_pair()
    name = unique_name("repair")
    builder = history(name)
    builder.push_to_hub(hf, f"org/{name}")
    tokens = {"hf": hf.issue_token("alice"), "ms": ms.issue_token("alice")}
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint}

    class Mirrored:
        src_hub, dst_hub, repo = hf, ms, f"org/{name}"
        objects = objects_of(builder)

        def run(self, cache="cache", **kwargs):
            return api.mirror(f"hf://org/{name}", f"ms://org/{name}", src_token=tokens["hf"], dst_token=tokens["ms"],
                              env=env, cache_dir=tmp_path / cache, policy=FAST, **kwargs)

        def lose(self, oid: str) -> None:
            ms.lfs_object_path(self.repo, oid).unlink()
            assert not ms.has_lfs_object(self.repo, oid)

        def judge(self, where) -> None:
            judge_env = auth_env(ms.endpoint, "oauth2", ms.git_token_for(tokens["ms"]), git_env)
            clone_and_check_lfs(ms.git_url(self.repo), judge_env, where, self.objects)

    first = Mirrored().run()
    assert first.verified and first.plan.lfs_scope == "history" and first.objects_checked == len(objects_of(builder))
    return Mirrored()


def test_repair_restores_an_object_the_destination_lost(mirrored, tmp_path):
    ms, repo = mirrored.dst_hub, mirrored.repo
    victim = sorted(mirrored.objects)[1]
    refs_before = ms.refs(repo)
    mirrored.lose(victim)

    # A plain rerun (with the cache) does not check: refs match, no LFS call, as cheap as before.
    mirrored.src_hub.counters.reset()
    ms.counters.reset()
    plain = mirrored.run()
    assert plain.plan.lfs_scope == "new" and plain.objects_checked == 0 and not plain.verified
    for hub in (mirrored.src_hub, ms):
        snap = hub.counters.snapshot()
        assert snap.total_requests() <= 2 and snap.count("lfs-batch") == 0, snap.paths
    assert not ms.has_lfs_object(repo, victim)

    repaired = mirrored.run(repair=True)

    assert repaired.plan.lfs_scope == "history" and repaired.objects_checked == len(mirrored.objects)
    assert repaired.objects_moved == 1 and repaired.verified and repaired.pushed == ()
    assert ms.lfs_object_path(repo, victim).read_bytes() == mirrored.objects[victim]
    assert ms.refs(repo) == refs_before  # no ref moved
    mirrored.judge(tmp_path / "judge")
    lfs_report = repaired.to_dict()["lfs"]
    assert (lfs_report["scope"], lfs_report["objects_checked"], lfs_report["objects_moved"]) == ("history", 5, 1)


def test_first_run_of_a_new_cache_restores_a_lost_object(mirrored, tmp_path):
    victim = sorted(mirrored.objects)[2]
    mirrored.lose(victim)
    fresh = mirrored.run(cache="another-cache")  # the first run for this pair on this machine
    assert fresh.plan.lfs_scope == "history" and fresh.objects_moved == 1 and fresh.verified
    assert mirrored.dst_hub.lfs_object_path(mirrored.repo, victim).read_bytes() == mirrored.objects[victim]
    mirrored.judge(tmp_path / "judge")


def test_sync_mirrors_file_repair_key(mirrored, tmp_path, git_env):
    """`repair = true` in a mirrors file checks the whole history although the cache is checked."""
    path = tmp_path / "mirrors.toml"
    src, dst = f"hf://{mirrored.repo}", f"ms://{mirrored.repo}"
    path.write_text(f'[[mirror]]\nsrc = "{src}"\ndst = "{dst}"\nrepair = true\n')
    assert load_mirrors(path)[0].repair is True
    victim = sorted(mirrored.objects)[3]
    mirrored.lose(victim)
    env = {**git_env, "HF_ENDPOINT": mirrored.src_hub.endpoint, "MODELSCOPE_ENDPOINT": mirrored.dst_hub.endpoint,
           "HF_TOKEN": mirrored.src_hub.issue_token("alice"), "MODELSCOPE_API_TOKEN": mirrored.dst_hub.issue_token("alice")}
    report = api.sync(path, cache_dir=tmp_path / "cache", env=env, policy=FAST)  # the cache knows this pair
    outcome = report.outcomes[0]
    assert outcome.status == "updated" and outcome.objects_moved == 1, outcome
    assert mirrored.dst_hub.lfs_object_path(mirrored.repo, victim).read_bytes() == mirrored.objects[victim]


def test_scope_follows_the_cache_mark(tmp_path):
    from gitmirror.runner import lfs_scope, mark_history_checked

    assert lfs_scope(tmp_path, repair=False) == "history"  # nothing checked yet: the whole history
    mark_history_checked(tmp_path)
    assert lfs_scope(tmp_path, repair=False) == "new" and lfs_scope(tmp_path, repair=True) == "history"
    mark_history_checked(tmp_path / "gone")  # a cache that is not there (--no-cache, removed): no mark, no error
    assert not (tmp_path / "gone").exists()
