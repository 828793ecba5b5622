"""Mirrors files: ``snapshot = true`` (the ``--snapshot`` mode of clone-push, from ``sync``) and
``card = true`` (``--modelscope-card``), judged on the destination's refs, trees and commits."""

from __future__ import annotations

import json

import pytest

from gitmirror import api
from gitmirror.errors import EXIT_USAGE, UsageError
from gitmirror.mirrors_file import load_mirrors
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(300)


def history(seed: str) -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(8_000, seed)), "README.md": "# first\n"})
    b.tag("v1", message="one")
    b.commit({"w.bin": lfs(random_bytes(9_000, seed + "-2")), "README.md": "# second\n"}, message="second")
    return b


def hub_env(hf, ms, git_env) -> dict[str, str]:
    return {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
            "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}


def sync(path, env, tmp_path):
    return api.sync(path, cache_dir=tmp_path / "cache", env=env, policy=FAST)


def rev_list(hub, repo: str, ref: str) -> list[str]:
    return hub.run_git(repo, "rev-list", ref).split()


def tree(hub, repo: str, rev: str) -> str:
    return hub.run_git(repo, "rev-parse", f"{rev}^{{tree}}").strip()


def test_a_snapshot_entry_makes_one_commit_and_a_second_sync_is_a_noop(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    env = hub_env(hf, ms, git_env)
    name, tagged = unique_name("snap"), unique_name("snap-v1")
    builder = history(name)
    builder.push_to_hub(hf, f"org/{name}")
    mirrors = tmp_path / "mirrors.toml"
    mirrors.write_text(f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{name}"\nsnapshot = true\n\n'
                       f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{tagged}"\nsnapshot = true\n'
                       f'revision = "v1"\ncommit_message = "files of v1"\n')

    first = sync(mirrors, env, tmp_path)
    assert [o.status for o in first.outcomes] == ["updated", "updated"], [o.reason for o in first.outcomes]
    # One commit each, holding the source's tree at the revision asked for (its LFS objects there too).
    assert len(rev_list(ms, f"org/{name}", "master")) == 1
    assert tree(ms, f"org/{name}", "master") == tree(hf, f"org/{name}", "main")
    assert len(rev_list(ms, f"org/{tagged}", "master")) == 1
    assert tree(ms, f"org/{tagged}", "master") == tree(hf, f"org/{name}", "v1")
    assert ms.run_git(f"org/{tagged}", "log", "-1", "--format=%s", "master").strip() == "files of v1"
    w_bin = builder.tip().files["w.bin"]
    assert (ms.repo_path(ms.key(f"org/{name}", "model")) / "lfs" / "objects" / w_bin.oid[:2] / w_bin.oid[2:4]
            / w_bin.oid).read_bytes() == random_bytes(9_000, name + "-2")
    before = {repo: ms.refs(repo) for repo in (f"org/{name}", f"org/{tagged}")}

    ms.counters.reset()
    again = sync(mirrors, env, tmp_path)
    assert [o.status for o in again.outcomes] == ["up-to-date", "up-to-date"]
    assert {repo: ms.refs(repo) for repo in before} == before
    assert ms.counters.snapshot().count("git-receive-pack") == 0

    # The source moves: the next sync adds one snapshot commit on top of the last one.
    builder.commit({"notes.txt": "third\n"}, message="third")
    builder.push_to_hub(hf, f"org/{name}")
    later = sync(mirrors, env, tmp_path)
    assert [o.status for o in later.outcomes] == ["updated", "up-to-date"]
    commits = rev_list(ms, f"org/{name}", "master")
    assert len(commits) == 2 and commits[1] == before[f"org/{name}"]["refs/heads/master"]
    assert tree(ms, f"org/{name}", "master") == tree(hf, f"org/{name}", "main")


def test_snapshot_options_in_a_mirrors_file_follow_clone_pushs_rules(tmp_path):
    cases = {
        'revision = "v1"\n': "revision go with snapshot = true",
        'commit_message = "x"\n': "commit_message go with snapshot = true",
        'snapshot = true\nrefs = ["refs/pr/*"]\nprune = true\n': "refs, prune cannot be used with snapshot = true",
        'snapshot = true\ncard = true\n': "card cannot be used with snapshot = true",
        'snapshot = "yes"\n': "snapshot must be a bool",
    }
    for extra, message in cases.items():
        path = tmp_path / "m.toml"
        path.write_text(f'[[mirror]]\nsrc = "hf://o/n"\ndst = "ms://o/n"\n{extra}')
        with pytest.raises(UsageError, match=message):
            load_mirrors(path)
    path.write_text('[defaults]\ncard = true\n\n[[mirror]]\nsrc = "hf://o/n"\ndst = "ms://o/n"\n\n'
                    '[[mirror]]\nsrc = "hf://o/m"\ndst = "ms://o/m"\nsnapshot = true\ncard = false\nrevision = "dev"\n')
    card, snap = load_mirrors(path)
    assert (card.card, card.snapshot) == (True, False)
    assert (snap.card, snap.snapshot, snap.revision) == (False, True, "dev")


def test_a_card_entry_puts_the_modelscope_card_on_and_refuses_other_destinations(hub_pair, git_env, tmp_path,
                                                                                 unique_name):
    hf, ms = hub_pair()
    env = hub_env(hf, ms, git_env)
    name = unique_name("sync-card")
    b = RepoBuilder()
    b.commit({"README.md": "---\npipeline_tag: text-generation\nlibrary_name: transformers\n---\n# m\n"})
    tip = b.push_to_hub(hf, f"org/{name}")["refs/heads/main"]
    mirrors = tmp_path / "mirrors.toml"
    mirrors.write_text(f'[defaults]\ncard = true\n\n[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{name}"\n\n'
                       f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "hf://org/{name}-copy"\n')

    report = sync(mirrors, env, tmp_path)
    assert [o.status for o in report.outcomes] == ["updated", "failed"]
    assert report.outcomes[1].exit_code == EXIT_USAGE and "ModelScope model" in report.outcomes[1].reason
    head = ms.refs(f"org/{name}")["refs/heads/master"]
    assert ms.run_git(f"org/{name}", "rev-parse", f"{head}^").strip() == tip
    config = json.loads(ms.run_git(f"org/{name}", "show", f"{head}:configuration.json"))
    assert config == {"framework": "pytorch", "task": "text-generation"}
    again = sync(mirrors, env, tmp_path)
    assert again.outcomes[0].status == "up-to-date" and ms.refs(f"org/{name}")["refs/heads/master"] == head
