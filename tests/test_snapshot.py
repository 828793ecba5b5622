"""--snapshot on the sandbox hubs: one new commit holding the source's tree, judged by git and git-lfs
(tree ids, parents, a fresh clone's `git lfs fsck`) and by the hubs' counters (which bytes moved)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gitmirror import api
from gitmirror.errors import UsageError
from gitmirror.plan import RefAction
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, clone_and_check_lfs, git

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hubs(hub_pair):
    hf, ms = hub_pair()
    return {"hf": hf, "ms": ms, "tokens": {"hf": hf.issue_token("alice"), "ms": ms.issue_token("alice")}}


def history() -> RepoBuilder:
    """Three commits: LFS objects that only the old history has, and a tag at the middle one."""
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# m\n", "old.bin": lfs(random_bytes(30_000, "old"))})
    b.commit({"weights.bin": lfs(random_bytes(40_000, "w1")), "config.json": "{}\n"}, message="weights v1")
    b.tag("v1", message="one")
    b.commit({"weights.bin": lfs(random_bytes(45_000, "w2")), "extra.bin": lfs(random_bytes(20_000, "extra"))},
             delete=["old.bin"], message="weights v2")
    return b


def tree_lfs(builder: RepoBuilder, commit_index: int = -1) -> dict[str, bytes]:
    """oid -> bytes of the LFS files in one commit's tree (not its history)."""
    files = builder.commits[commit_index].files  # the builder keeps each commit's whole tree
    return {hashlib.sha256(c.data).hexdigest(): c.data for c in files.values() if hasattr(c, "data")}


def env_for(hubs, git_env):
    return {**git_env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint}


def snap(hubs, git_env, tmp_path, src, dst, **kwargs):
    t = hubs["tokens"]
    src_token, dst_token = (t["hf"], t["ms"]) if src.startswith("hf://") else (t["ms"], t["hf"])
    return api.snapshot(src, dst, src_token=src_token, dst_token=dst_token, env=env_for(hubs, git_env),
                        cache_dir=tmp_path / "cache", policy=FAST, **kwargs)


def ms_judge(hubs, git_env):
    ms = hubs["ms"]
    return auth_env(ms.endpoint, "oauth2", ms.git_token_for(hubs["tokens"]["ms"]), git_env)


def commit_facts(clone: Path, env, rev: str = "HEAD") -> tuple[str, list[str], str, str]:
    """(tree id, parent ids, author "name <email>", full message) of a commit, as git says."""
    tree = git(env, "rev-parse", f"{rev}^{{tree}}", cwd=clone).strip()
    parents = git(env, "rev-list", "--parents", "-n", "1", rev, cwd=clone).split()[1:]
    author = git(env, "log", "-1", "--format=%an <%ae>", rev, cwd=clone).strip()
    message = git(env, "log", "-1", "--format=%B", rev, cwd=clone)
    return tree, parents, author, message


def test_snapshot_to_an_empty_destination_then_unchanged_then_changed(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    name = unique_name("snap")
    builder = history()
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    src_tree = hf.run_git(f"org/{name}", "rev-parse", "main^{tree}")
    ms.counters.reset()

    result = snap(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}")

    expected = tree_lfs(builder)
    assert len(expected) == 2  # weights v2 and extra; old.bin and weights v1 are only in the history
    judge = ms_judge(hubs, git_env)
    clone = clone_and_check_lfs(ms.git_url(f"org/{name}"), judge, tmp_path / "first", expected)
    tree, parents, author, message = commit_facts(clone, judge)
    assert tree == src_tree and parents == []
    assert git(judge, "rev-list", "--count", "HEAD", cwd=clone).strip() == "1"
    assert author == "Sandbox Tester <tester@sandbox.invalid>"  # git's configured identity
    assert f"hf://org/{name}" in message and src_refs["refs/heads/main"] in message
    # Only that tree's LFS objects moved: on the hub, and by the bytes received.
    assert ms.lfs_objects(f"org/{name}") == set(expected)
    assert ms.counters.snapshot().bytes_in.get("lfs-upload", 0) == sum(len(d) for d in expected.values())
    assert list(ms.refs(f"org/{name}")) == ["refs/heads/master"]  # no tags, no other branches
    assert result.verified and [u.action for u in result.pushed] == [RefAction.CREATE]
    assert result.plan.snapshot.tree == src_tree and result.plan.snapshot.parent is None
    first = ms.refs(f"org/{name}")["refs/heads/master"]

    # Unchanged source: no new commit, no fetch, no push, no LFS call.
    ms.counters.reset()
    hf.counters.reset()
    again = snap(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}")
    assert again.plan.is_noop and again.plan.snapshot.commit is None
    assert ms.refs(f"org/{name}")["refs/heads/master"] == first
    for hub in (hf, ms):
        counts = hub.counters.snapshot()
        assert counts.count("git-upload-pack", "POST") == counts.count("git-receive-pack", "POST") == 0
        assert counts.count("lfs-batch") == 0

    # The source changes one LFS file: a new commit on top of the first snapshot, one object moves.
    new_data = random_bytes(25_000, "w3")
    builder.commit({"weights.bin": lfs(new_data)}, message="weights v3")
    builder.push_to_hub(hf, f"org/{name}")
    ms.counters.reset()
    third = snap(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", message="Update to v3")
    assert third.objects_moved == 1 and ms.counters.snapshot().bytes_in.get("lfs-upload", 0) == len(new_data)
    clone = clone_and_check_lfs(ms.git_url(f"org/{name}"), judge, tmp_path / "third", tree_lfs(builder))
    tree, parents, _, message = commit_facts(clone, judge)
    assert tree == hf.run_git(f"org/{name}", "rev-parse", "main^{tree}") and parents == [first]
    assert message.strip() == "Update to v3"
    assert [u.action for u in third.pushed] == [RefAction.FAST_FORWARD]


def test_snapshot_replaces_the_hubs_initial_commit_and_takes_a_tag(hubs, git_env, tmp_path, unique_name):
    """ModelScope -> Hugging Face: the HF repo is created with the hub's own initial commit, which the
    snapshot replaces (no parent); --revision picks a tag; GIT_AUTHOR_* names the author."""
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("snaptag")
    builder = RepoBuilder(default_branch="master")
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "a.bin": lfs(random_bytes(10_000, "a1"))})
    builder.commit({"a.bin": lfs(random_bytes(11_000, "a2"))}, message="a2")
    builder.tag("v1", target=builder.commits[0], message="first")
    builder.push_to_hub(ms, f"org/{name}")
    tag_tree = ms.run_git(f"org/{name}", "rev-parse", "v1^{tree}")
    hf.create_repo(f"org/{name}")  # the hub makes its initial commit
    initial = hf.refs(f"org/{name}")["refs/heads/main"]

    env = {**git_env, "GIT_AUTHOR_NAME": "Mirror Bot", "GIT_AUTHOR_EMAIL": "bot@example.invalid"}
    result = api.snapshot(f"ms://org/{name}", f"hf://org/{name}", revision="v1", src_token=tokens["ms"],
                          dst_token=tokens["hf"], env={**env_for(hubs, git_env), **env},
                          cache_dir=tmp_path / "cache", policy=FAST)

    assert [u.action for u in result.pushed] == [RefAction.REPLACE_INITIAL]
    judge = auth_env(hf.endpoint, "user", tokens["hf"], git_env)
    clone = clone_and_check_lfs(hf.git_url(f"org/{name}"), judge, tmp_path, tree_lfs(builder, 0))
    tree, parents, author, _ = commit_facts(clone, judge)
    assert tree == tag_tree and parents == [] and initial not in git(judge, "rev-list", "--all", cwd=clone)
    assert author == "Mirror Bot <bot@example.invalid>"


def test_snapshot_builds_on_the_destinations_own_history(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    name = unique_name("snapon")
    builder = history()
    builder.push_to_hub(hf, f"org/{name}")
    theirs = RepoBuilder(default_branch="master")
    theirs.commit({"NOTES.md": "kept on the destination\n"}, message="dst 1")
    theirs.commit({"NOTES.md": "still kept\n"}, message="dst 2")
    dst_refs = theirs.push_to_hub(ms, f"org/{name}")

    result = snap(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}")

    judge = ms_judge(hubs, git_env)
    clone = clone_and_check_lfs(ms.git_url(f"org/{name}"), judge, tmp_path, tree_lfs(builder))
    tree, parents, _, _ = commit_facts(clone, judge)
    assert tree == hf.run_git(f"org/{name}", "rev-parse", "main^{tree}")
    assert parents == [dst_refs["refs/heads/master"]]
    assert not (clone / "NOTES.md").exists()  # the tree is the source's, exactly
    assert [u.action for u in result.pushed] == [RefAction.FAST_FORWARD]


def test_unknown_revision_is_a_usage_error(hubs, git_env, tmp_path, unique_name):
    name = unique_name("snaprev")
    history().push_to_hub(hubs["hf"], f"org/{name}")
    with pytest.raises(UsageError) as info:
        snap(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", revision="no-such-branch")
    assert info.value.exit_code == 2 and "no-such-branch" in str(info.value)


def gitmirror_cli(args, env):
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True, timeout=240)


def test_cli_dry_run_json_and_option_errors(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("snapcli")
    history().push_to_hub(hf, f"org/{name}")
    env = {**env_for(hubs, git_env), "HF_TOKEN": tokens["hf"], "MODELSCOPE_API_TOKEN": tokens["ms"],
           "GITMIRROR_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    src, dst = f"hf://org/{name}", f"ms://org/{name}"

    dry = gitmirror_cli(["clone-push", "--snapshot", "--dry-run", src, dst], env)
    assert dry.returncode == 0, dry.stderr
    assert "Snapshot: commit" in dry.stdout and "no parent" in dry.stdout
    with pytest.raises(KeyError):  # a dry run creates nothing: no repository, so no refs, no objects
        ms.repo(f"org/{name}")

    done = gitmirror_cli(["clone-push", "--snapshot", "--json", "--commit-message", "files of today", src, dst], env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] and report["plan"]["snapshot"]["message"] == "files of today"
    assert ms.refs(f"org/{name}")["refs/heads/master"] == report["plan"]["snapshot"]["commit"]

    for args in (["--snapshot", "--prune"], ["--revision", "main"], ["--snapshot", "--refs", "refs/pr/*"]):
        bad = gitmirror_cli(["clone-push", *args, src, dst], env)
        assert bad.returncode == 2 and bad.stderr.startswith("gitmirror: error:"), bad.stderr


def test_snapshot_into_a_local_bare_backup(hubs, git_env, tmp_path, unique_name):
    hf, tokens = hubs["hf"], hubs["tokens"]
    name = unique_name("snaplocal")
    builder = history()
    builder.push_to_hub(hf, f"org/{name}")
    backup = tmp_path / "backups" / f"{name}.git"

    api.snapshot(f"hf://org/{name}", str(backup), src_token=tokens["hf"], env=env_for(hubs, git_env),
                 cache_dir=tmp_path / "cache", policy=FAST)

    clone = clone_and_check_lfs(str(backup), git_env, tmp_path, tree_lfs(builder))
    tree, parents, _, _ = commit_facts(clone, git_env)
    assert tree == hf.run_git(f"org/{name}", "rev-parse", "main^{tree}") and parents == []
    stored = {p.name for p in (backup / "lfs" / "objects").rglob("*") if p.is_file()}
    assert stored == set(tree_lfs(builder))


def test_resolve_revision_names_refs_and_tip_ids():
    from gitmirror.remote import RemoteRefs
    from gitmirror.snapshot import resolve_revision

    main, dev, tag_obj, tag_commit, pr = "a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40
    refs = RemoteRefs(refs={"refs/heads/main": main, "refs/heads/dev": dev, "refs/tags/v1": tag_obj,
                            "refs/pr/1": pr}, head="refs/heads/main", peeled={"refs/tags/v1": tag_commit})
    assert resolve_revision(refs, None) == "refs/heads/main"
    assert resolve_revision(refs, "dev") == "refs/heads/dev"
    assert resolve_revision(refs, "v1") == "refs/tags/v1"
    assert resolve_revision(refs, "refs/pr/1") == "refs/pr/1"
    assert resolve_revision(refs, "bbbbbbbb") == "refs/heads/dev"  # an abbreviated tip id
    assert resolve_revision(refs, tag_commit) == "refs/tags/v1"  # the commit an annotated tag points at
    no_head = RemoteRefs(refs={"refs/heads/master": main})
    assert resolve_revision(no_head, None) == "refs/heads/master"
    for bad in ("nope", "f" * 40, "refs/heads/nope"):
        with pytest.raises(UsageError):
            resolve_revision(refs, bad)
    with pytest.raises(UsageError):
        resolve_revision(RemoteRefs(refs={}), None)
