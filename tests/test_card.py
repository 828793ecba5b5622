"""``--modelscope-card``: the card commit on top of a Hugging Face -> ModelScope mirror.

Judged on the destination: its refs, the card commit's parent and files read with git from the
hub's own repository, and ``configuration.json`` as ModelScope's SDK downloads it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitmirror import api
from gitmirror.card import CONFIGURATION, FRAMEWORKS, TASKS, TRAILER, card_files
from gitmirror.errors import DivergedError, UsageError
from gitmirror.plan import RefAction
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import ms_snapshot

pytestmark = pytest.mark.timeout(300)

CARD = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
language:
- en
---

# Tiny model

Words of the source card.
"""


def source(card: str = CARD) -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": card, "config.json": '{"model_type": "llama"}\n',
              "model.safetensors": lfs(random_bytes(8_000, "card-w1"))})
    return b


def run(hubs, git_env, tmp_path, src, dst, tokens, **kwargs):
    env = {**git_env, "HF_ENDPOINT": hubs[0].endpoint, "MODELSCOPE_ENDPOINT": hubs[1].endpoint}
    return api.mirror(src, dst, src_token=tokens[0], dst_token=tokens[1], env=env, cache_dir=tmp_path / "cache",
                      policy=FAST, **kwargs)


def commit_parents(hub, repo_id: str, sha: str) -> list[str]:
    return hub.run_git(repo_id, "rev-list", "--parents", "-n", "1", sha).split()[1:]


def history_of(hub, repo_id: str, sha: str) -> set[str]:
    return set(hub.run_git(repo_id, "rev-list", sha).split())


# --- the card's files ---------------------------------------------------------------------------


def test_every_mapped_name_is_one_the_modelscope_package_defines():
    from modelscope.utils.constant import Frameworks, Tasks

    tasks = {getattr(Tasks, k) for k in dir(Tasks) if not k.startswith("_") and isinstance(getattr(Tasks, k), str)}
    frameworks = {v for k, v in vars(Frameworks).items() if not k.startswith("_")}
    assert set(TASKS.values()) <= tasks, set(TASKS.values()) - tasks
    assert set(FRAMEWORKS.values()) <= frameworks
    assert TASKS["text-generation"] == "text-generation" and FRAMEWORKS["transformers"] == "pytorch"


def test_the_card_keeps_the_source_text_and_adds_tasks_and_configuration():
    card = card_files(CARD.encode(), has_configuration=False)
    assert json.loads(card.files[CONFIGURATION]) == {"framework": "pytorch", "task": "text-generation"}
    readme = card.files["README.md"].decode()
    assert readme == CARD.replace("- en\n---", "- en\ntasks:\n- text-generation\n---")
    assert (card.task, card.framework, card.license) == ("text-generation", "pytorch", "apache-2.0")
    assert card.warnings == ()


def test_a_source_configuration_is_kept_and_a_card_without_front_matter_gets_one():
    card = card_files(b"# no front matter\n", has_configuration=True)
    assert card.files == {}  # nothing known: nothing invented
    assert [w.code for w in card.warnings] == ["card-unmapped"]
    assert card.warnings[0].paths == ("pipeline_tag: (none)", "library_name: (none)")
    tagged = card_files(b"---\npipeline_tag: summarization\n---\nbody\n", has_configuration=True)
    assert set(tagged.files) == {"README.md"}
    assert tagged.files["README.md"] == b"---\npipeline_tag: summarization\ntasks:\n- text-summarization\n---\nbody\n"


def test_an_unknown_tag_is_left_out_and_said():
    card = card_files(b"---\npipeline_tag: any-to-any\nlibrary_name: transformers\n---\n", has_configuration=False)
    assert json.loads(card.files[CONFIGURATION]) == {"framework": "pytorch"}
    assert "README.md" not in card.files
    [warning] = card.warnings
    assert warning.code == "card-unmapped" and warning.paths == ("pipeline_tag: any-to-any",)


def test_a_card_gitmirror_cannot_read_is_left_alone_and_said():
    for readme in (b"---\nkey: [unclosed\n---\n# x\n", b"---\n- a list\n---\n", "# caf\u00e9\n".encode("latin-1")):
        card = card_files(readme, has_configuration=False)
        assert card.files == {} and [w.code for w in card.warnings] == ["card-skipped"], readme


# --- mirrors with the card --------------------------------------------------------------------


def test_hf_to_modelscope_card_is_read_by_the_sdk_and_rebuilt_on_each_sync(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    name = unique_name("card")
    repo = f"org/{name}"
    builder = source()
    first_tip = builder.push_to_hub(hf, repo)["refs/heads/main"]
    src, dst = f"hf://{repo}", f"ms://{repo}"

    result = run((hf, ms), git_env, tmp_path, src, dst, tokens, modelscope_card=True)
    card = result.plan.card
    assert card is not None and card.parent == first_tip and card.files == ("README.md", CONFIGURATION)
    head = ms.refs(repo)["refs/heads/master"]
    assert head == card.commit and commit_parents(ms, repo, head) == [first_tip]
    assert TRAILER in ms.run_git(repo, "log", "-1", "--format=%B", head)
    assert ms.run_git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", head).split() == ["README.md", CONFIGURATION]

    files = ms_snapshot(ms, repo, "master", tokens[1], tmp_path / "sdk1")
    assert json.loads(files[CONFIGURATION]) == {"framework": "pytorch", "task": "text-generation"}
    assert files["README.md"].decode().endswith("# Tiny model\n\nWords of the source card.\n")
    assert "tasks:\n- text-generation\n" in files["README.md"].decode()
    assert files["model.safetensors"] == random_bytes(8_000, "card-w1")

    # The source did not move: the same card commit, nothing fetched or pushed.
    ms.counters.reset()
    again = run((hf, ms), git_env, tmp_path, src, dst, tokens, modelscope_card=True)
    assert not again.pushed and again.plan.is_noop
    assert ms.refs(repo)["refs/heads/master"] == head
    assert ms.counters.snapshot().count("git-receive-pack") == ms.counters.snapshot().count("git-upload-pack") == 0

    # A new source commit: until the next sync, verify sees a card on an older tip, a real difference.
    builder.commit({"notes.txt": "second\n"}, message="second")
    new_tip = builder.push_to_hub(hf, repo)["refs/heads/main"]
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint}
    stale = api.verify(src, dst, src_token=tokens[0], dst_token=tokens[1], env=env, cache_dir=tmp_path / "cache2")
    assert not stale.in_sync and stale.cards == []
    assert stale.ref_differences == [{"ref": "refs/heads/master", "source_ref": "refs/heads/main", "source": new_tip,
                                      "destination": head}]

    # The sync makes the card again on the new tip, leased on the old card commit.
    later = run((hf, ms), git_env, tmp_path, src, dst, tokens, modelscope_card=True)
    assert [u.action for u in later.pushed] == [RefAction.REBUILD_CARD]
    rebuilt = ms.refs(repo)["refs/heads/master"]
    assert rebuilt == later.plan.card.commit and later.plan.card.replaces == head
    assert commit_parents(ms, repo, rebuilt) == [new_tip]
    assert head not in history_of(ms, repo, rebuilt) and first_tip in history_of(ms, repo, rebuilt)
    assert json.loads(ms.run_git(repo, "show", f"{rebuilt}:{CONFIGURATION}"))["task"] == "text-generation"

    # verify knows the card commit and why: in sync.
    checked = api.verify(src, dst, src_token=tokens[0], dst_token=tokens[1], env=env, cache_dir=tmp_path / "cache2")
    assert checked.in_sync, checked.to_dict()
    assert checked.cards == [{"ref": "refs/heads/master", "card": rebuilt, "source": new_tip,
                              "files": ["README.md", CONFIGURATION]}]


def test_the_same_tip_gives_the_same_card_commit_from_an_empty_cache(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    repo = f"org/{unique_name('card-det')}"
    source().push_to_hub(hf, repo)
    first = run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens, modelscope_card=True)
    again = run((hf, ms), git_env, tmp_path / "other", f"hf://{repo}", f"ms://{repo}", tokens, modelscope_card=True)
    assert not again.pushed and again.plan.card.commit == first.plan.card.commit


def test_the_card_goes_on_top_of_an_existing_plain_mirror_as_a_fast_forward(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    repo = f"org/{unique_name('card-later')}"
    tip = source().push_to_hub(hf, repo)["refs/heads/main"]
    run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens)
    assert ms.refs(repo)["refs/heads/master"] == tip
    with_card = run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens, modelscope_card=True)
    assert [u.action for u in with_card.pushed] == [RefAction.FAST_FORWARD]
    head = ms.refs(repo)["refs/heads/master"]
    assert head == with_card.plan.card.commit and commit_parents(ms, repo, head) == [tip]
    # Without the option again, the card commit is one the source lacks: diverged, nothing changed.
    with pytest.raises(DivergedError):
        run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens)
    assert ms.refs(repo)["refs/heads/master"] == head


def test_a_readme_in_lfs_is_not_read_and_no_card_is_made(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    repo = f"org/{unique_name('card-lfs')}"
    b = RepoBuilder()
    b.commit({".gitattributes": "*.md filter=lfs diff=lfs merge=lfs -text\n", "README.md": lfs(CARD)})
    tip = b.push_to_hub(hf, repo)["refs/heads/main"]
    result = run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens, modelscope_card=True)
    assert result.plan.card is None
    assert "card-skipped" in [w.code for w in result.plan.warnings]
    assert ms.refs(repo)["refs/heads/master"] == tip  # the plain mirror, nothing added


def carded_mirror(hub_pair, git_env, tmp_path, name: str):
    """A Hugging Face source mirrored to ModelScope with the card: (hf, ms, tokens, repo id, builder)."""
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    builder = source()
    builder.push_to_hub(hf, f"org/{name}")
    run((hf, ms), git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens, modelscope_card=True)
    return hf, ms, tokens, f"org/{name}", builder


def test_a_destination_that_is_neither_the_source_nor_its_card_is_still_diverged(hub_pair, git_env, tmp_path, unique_name):
    hf, ms, tokens, repo, builder = carded_mirror(hub_pair, git_env, tmp_path, unique_name("card-div"))
    theirs = RepoBuilder(default_branch="master")
    theirs.commit({"README.md": "# someone else's\n", "model.py": "x = 1\n"})
    before = theirs.push_to_hub(ms, repo, create=False)  # overwrites master with unrelated history
    builder.commit({"notes.txt": "more\n"})
    builder.push_to_hub(hf, repo)
    with pytest.raises(DivergedError):
        run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens, modelscope_card=True)
    assert ms.refs(repo) == before


def test_the_card_is_refused_for_destinations_that_are_not_modelscope_models(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    repo = f"org/{unique_name('card-no')}"
    source().push_to_hub(ms, repo)
    with pytest.raises(UsageError, match="ModelScope model"):
        run((hf, ms), git_env, tmp_path, f"ms://{repo}", f"hf://{repo}", tokens[::-1], modelscope_card=True)
    with pytest.raises(UsageError, match="ModelScope model"):
        run((hf, ms), git_env, tmp_path, f"ms://{repo}", f"ms://datasets/{repo}", (tokens[1], tokens[1]),
            modelscope_card=True)
    with pytest.raises(KeyError):  # refused before anything was created
        hf.repo(repo)


def test_dry_run_shows_the_card_in_text_and_json(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    repo = f"org/{unique_name('card-cli')}"
    source().push_to_hub(hf, repo)
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint, "COLUMNS": "200",
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gitmirror", "clone-push", "--modelscope-card", *args,
                               f"hf://{repo}", f"ms://{repo}"], env=env, capture_output=True, text=True, timeout=240)

    text = cli("--dry-run")
    assert text.returncode == 0, text.stderr
    assert "ModelScope card: commit" in text.stdout and "task text-generation, framework pytorch" in text.stdout
    as_json = json.loads(cli("--dry-run", "--json").stdout)
    assert as_json["plan"]["card"]["task"] == "text-generation"
    assert as_json["plan"]["updates"][0]["new"] == as_json["plan"]["card"]["commit"]
    with pytest.raises(KeyError):  # a dry run creates nothing
        ms.repo(repo)
    refused = cli("--snapshot")
    assert refused.returncode == 2 and "--modelscope-card cannot be used with --snapshot" in refused.stderr


def test_the_rebuilt_card_is_leased_on_the_old_card_commit(hub_pair, git_env, tmp_path, unique_name, monkeypatch):
    from gitmirror.execute import Executor

    hf, ms, tokens, repo, builder = carded_mirror(hub_pair, git_env, tmp_path, unique_name("card-lease"))
    builder.commit({"notes.txt": "new\n"})
    builder.push_to_hub(hf, repo)
    # Another writer moves the destination after the plan was made, just before the push.
    theirs = RepoBuilder(default_branch="master")
    theirs.commit({"README.md": "# theirs\n"})
    real_push = Executor.push

    def push_after_them(self, plan):
        assert [u.action for u in plan.moving] == [RefAction.REBUILD_CARD]
        theirs.push_to_hub(ms, repo, create=False)
        return real_push(self, plan)

    monkeypatch.setattr(Executor, "push", push_after_them)
    with pytest.raises(DivergedError):
        run((hf, ms), git_env, tmp_path, f"hf://{repo}", f"ms://{repo}", tokens, modelscope_card=True)
    head = ms.refs(repo)["refs/heads/master"]  # their commit stays: the lease refused the push
    assert ms.run_git(repo, "log", "-1", "--format=%s", head).strip() == theirs.tip().message
