"""``--convert`` and ``--modelscope-card`` together (issue 17): the card commit sits on the rewritten
tip, so a Hugging Face card kept in LFS at the source becomes a plain README.md that the card then
reads; reruns are no-ops and a new source commit rebuilds the card on the new rewritten tip."""

from __future__ import annotations

import json

from gitmirror.card import CONFIGURATION
from gitmirror.plan import RefAction
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import ms_snapshot
from test_card import CARD, commit_parents, history_of, run


def test_the_card_goes_on_the_converted_tip(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    repo = f"org/{unique_name('convert-card')}"
    builder = RepoBuilder()
    builder.commit({".gitattributes": "*.md filter=lfs diff=lfs merge=lfs -text\n" + LFS_ATTRIBUTES,
                    "README.md": lfs(CARD), "model.safetensors": lfs(random_bytes(8_000, "cc-w1"))})
    source_tip = builder.push_to_hub(hf, repo)["refs/heads/main"]
    src, dst = f"hf://{repo}", f"ms://{repo}"

    first = run((hf, ms), git_env, tmp_path, src, dst, tokens, modelscope_card=True, convert=True)
    rewritten = dict((ref, new) for ref, _, new in first.plan.conversion.refs)["refs/heads/main"]
    assert rewritten != source_tip  # README.md came out of LFS
    card = first.plan.card
    assert card is not None and card.parent == rewritten
    head = ms.refs(repo)["refs/heads/master"]
    assert head == card.commit and commit_parents(ms, repo, head) == [rewritten]
    files = ms_snapshot(ms, repo, "master", tokens[1], tmp_path / "sdk")
    assert json.loads(files[CONFIGURATION]) == {"framework": "pytorch", "task": "text-generation"}
    assert "tasks:\n- text-generation\n" in files["README.md"].decode()  # a plain card the card step could read
    assert files["model.safetensors"] == random_bytes(8_000, "cc-w1")

    ms.counters.reset()
    again = run((hf, ms), git_env, tmp_path, src, dst, tokens, modelscope_card=True, convert=True)
    assert again.plan.is_noop and not again.pushed
    assert ms.counters.snapshot().count("git-receive-pack") == 0
    assert ms.refs(repo)["refs/heads/master"] == head

    builder.commit({"notes.txt": "second\n"}, message="second")
    builder.push_to_hub(hf, repo)
    later = run((hf, ms), git_env, tmp_path, src, dst, tokens, modelscope_card=True, convert=True)
    assert [u.action for u in later.pushed] == [RefAction.REBUILD_CARD]
    rebuilt = ms.refs(repo)["refs/heads/master"]
    new_rewritten = dict((ref, new) for ref, _, new in later.plan.conversion.refs)["refs/heads/main"]
    assert commit_parents(ms, repo, rebuilt) == [new_rewritten]
    assert head not in history_of(ms, repo, rebuilt) and rewritten in history_of(ms, repo, rebuilt)
