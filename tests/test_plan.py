"""Ref selection and classification: pure functions, no git needed."""

import pytest

from gitmirror.errors import UsageError
from gitmirror.remote import RemoteRefs, parse_ls_remote
from gitmirror.plan import MirrorOptions, RefAction
from gitmirror.planner import classify, parse_map, select_refs

SRC = RemoteRefs(
    refs={
        "refs/heads/main": "a" * 40,
        "refs/heads/dev": "b" * 40,
        "refs/tags/v1": "c" * 40,
        "refs/pr/1": "d" * 40,
        "refs/convert/parquet": "e" * 40,
    },
    head="refs/heads/main",
)


def test_default_selection_is_branches_and_tags_with_default_branch_mapped():
    chosen, skipped = select_refs(SRC, MirrorOptions(), SRC.head, "master")
    assert chosen == {
        "refs/heads/master": "refs/heads/main",
        "refs/heads/dev": "refs/heads/dev",
        "refs/tags/v1": "refs/tags/v1",
    }
    assert skipped == []


def test_extra_patterns_exclude_and_map():
    options = MirrorOptions(refs=("refs/pr/*",), exclude=("dev",), map=parse_map(["refs/tags/v1:refs/tags/v1-mirror"]))
    chosen, _ = select_refs(SRC, options, SRC.head, "main")
    assert chosen == {
        "refs/heads/main": "refs/heads/main",
        "refs/pr/1": "refs/pr/1",
        "refs/tags/v1-mirror": "refs/tags/v1",
    }


def test_map_of_a_missing_ref_is_a_usage_error():
    with pytest.raises(UsageError):
        select_refs(SRC, MirrorOptions(map=parse_map(["nope:other"])), SRC.head, "main")


@pytest.mark.parametrize("bad", ["nocolon", ":x", "x:"])
def test_bad_map(bad):
    with pytest.raises(UsageError):
        parse_map([bad])


def test_source_branch_clashing_with_mapped_default_is_skipped_not_overwritten():
    src = RemoteRefs(refs={"refs/heads/main": "a" * 40, "refs/heads/master": "f" * 40}, head="refs/heads/main")
    chosen, skipped = select_refs(src, MirrorOptions(), src.head, "master")
    assert chosen == {"refs/heads/master": "refs/heads/main"}
    assert len(skipped) == 1 and "refs/heads/master" in skipped[0]


def _classify(dst_refs, options=MirrorOptions(), ancestors=(), initial=()):
    chosen, _ = select_refs(SRC, options, SRC.head, "main")
    dst = RemoteRefs(refs=dst_refs, head="refs/heads/main")
    updates = classify(chosen, SRC, dst, options, lambda o, n: (o, n) in ancestors, lambda s: s in initial)
    return {u.dst_ref: u.action for u in updates}


def test_classification():
    old = "9" * 40
    actions = _classify({"refs/heads/main": old, "refs/heads/dev": "b" * 40, "refs/heads/gone": "7" * 40},
                        ancestors={(old, "a" * 40)})
    assert actions == {
        "refs/heads/main": RefAction.FAST_FORWARD,
        "refs/heads/dev": RefAction.UP_TO_DATE,
        "refs/tags/v1": RefAction.CREATE,
        "refs/heads/gone": RefAction.KEEP,
    }


def test_diverged_blocks_without_force_and_forces_with_it():
    dst = {"refs/heads/main": "9" * 40, "refs/tags/v1": "8" * 40}
    assert _classify(dst)["refs/heads/main"] is RefAction.DIVERGED
    assert _classify(dst)["refs/tags/v1"] is RefAction.DIVERGED  # tags never fast-forward
    forced = _classify(dst, MirrorOptions(force=True))
    assert forced["refs/heads/main"] is RefAction.FORCE and forced["refs/tags/v1"] is RefAction.FORCE


def test_hub_initial_commit_is_replaced_without_force():
    assert _classify({"refs/heads/main": "9" * 40}, initial={"9" * 40})["refs/heads/main"] is RefAction.REPLACE_INITIAL


def test_prune_deletes_destination_only_refs_but_never_head():
    actions = _classify({"refs/heads/gone": "7" * 40, "refs/pr/9": "6" * 40}, MirrorOptions(prune=True))
    assert actions["refs/heads/gone"] is RefAction.DELETE
    assert "refs/pr/9" not in actions  # not selected, so not touched


def test_parse_ls_remote_symref_and_peeled_tags():
    text = "ref: refs/heads/master\tHEAD\n" + "1" * 40 + "\tHEAD\n" + "1" * 40 + "\trefs/heads/master\n" \
        + "2" * 40 + "\trefs/tags/v1\n" + "1" * 40 + "\trefs/tags/v1^{}\n"
    refs = parse_ls_remote(text)
    assert refs.head == "refs/heads/master"
    assert refs.refs == {"refs/heads/master": "1" * 40, "refs/tags/v1": "2" * 40}
    assert refs.peeled == {"refs/tags/v1": "1" * 40}
