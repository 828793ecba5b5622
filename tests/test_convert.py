"""``--convert`` end to end against the sandbox hubs (issue 17, "Done when", first bullet).

A ModelScope model whose history holds a 2 MB binary committed without LFS (deleted later) cannot
go to Hugging Face as it is (exit 7; the sandbox hub's pre-receive refuses it too, see
tests/sandbox/test_hf_refusals.py); with --convert it goes, is what huggingface_hub downloads,
reruns as a no-op, fast-forwards after a new source commit, and again from an empty cache. Toward
ModelScope, a card kept in LFS arrives as a plain README.md.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from gitmirror import api
from gitmirror.errors import EXIT_INTEGRITY, DivergedError
from gitmirror.plan import RefAction
from gitmirror.retry import FAST
from gitmirror.rules import MB, DestinationRulesError
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import assert_same_files, auth_env, builder_tree, clone_and_check_lfs, git, hf_snapshot, ms_snapshot, remote_refs

pytestmark = pytest.mark.timeout(600)

BINARY = b"\0" + random_bytes(2 * MB, "convert-e2e")
LINE = b"/voice.wav filter=lfs diff=lfs merge=lfs -text\n"


def source_history() -> RepoBuilder:
    b = RepoBuilder(default_branch="master")
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# model\n",
              "weights.safetensors": lfs(random_bytes(30_000, "convert-weights"))})
    b.commit({"voice.wav": BINARY}, message="Add a sample, without LFS")
    b.tag("v1", message="with the sample")
    b.commit(delete=["voice.wav"], message="Remove the sample")
    return b


@pytest.fixture()
def hubs(hub_pair, git_env):
    hf, ms = hub_pair()
    tokens = {"hf": hf.issue_token("alice"), "ms": ms.issue_token("alice")}
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint}
    return hf, ms, tokens, env


def ms_to_hf(hubs, tmp_path, name: str, dst: str | None = None, cache: str = "cache", **kwargs):
    hf, ms, tokens, env = hubs
    return api.mirror(f"ms://org/{name}", dst or f"hf://org/{name}", src_token=tokens["ms"], dst_token=tokens["hf"],
                      env=env, cache_dir=tmp_path / cache, policy=FAST, **kwargs)


def hf_refs(hubs, repo: str, git_env) -> dict[str, str]:
    hf, _, tokens, _ = hubs
    return remote_refs(hf.git_url(repo), auth_env(hf.endpoint, "user", tokens["hf"], git_env))


def test_modelscope_to_hugging_face_with_a_binary_outside_lfs(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens, env = hubs
    name = unique_name("convert")
    builder = source_history()
    builder.push_to_hub(ms, f"org/{name}")

    with pytest.raises(DestinationRulesError) as refused:
        ms_to_hf(hubs, tmp_path, name)
    assert refused.value.exit_code == EXIT_INTEGRITY and "--convert" in (refused.value.hint or "")

    dry = ms_to_hf(hubs, tmp_path, name, convert=True, dry_run=True)
    assert dry.plan.exit_code == 0 and dry.plan.violations == ()
    assert [(f.path, f.size, f.to_lfs) for f in dry.plan.conversion.files] == [("voice.wav", len(BINARY), True)]
    assert dry.plan.conversion.commits == 2
    # Neither the refused run nor the dry run created the destination, let alone pushed to it.
    with pytest.raises(KeyError):
        hf.repo(f"org/{name}")

    result = ms_to_hf(hubs, tmp_path, name, convert=True)
    rewritten = dict((ref, new) for ref, _, new in result.plan.conversion.refs)
    on_hub = hf_refs(hubs, f"org/{name}", git_env)
    assert on_hub == {"refs/heads/main": rewritten["refs/heads/master"], "refs/tags/v1": rewritten["refs/tags/v1"]}
    assert rewritten["refs/heads/master"] != builder.tip().sha
    # The destination has the sample in LFS, at the tag, byte for byte; the tip is the source's tree.
    judge_env = auth_env(hf.endpoint, "user", tokens["hf"], git_env)
    clone = clone_and_check_lfs(hf.git_url(f"org/{name}"), judge_env, tmp_path,
                                {hashlib.sha256(BINARY).hexdigest(): BINARY})
    message = git(judge_env, "log", "--format=%an <%ae> %ad%n%cn <%ce> %cd%n%B", "v1^{commit}", cwd=clone)
    expected = subprocess.run(["git", "--git-dir", str(ms.repo_path(ms.key(f"org/{name}"))), "log",
                               "--format=%an <%ae> %ad%n%cn <%ce> %cd%n%B", "v1^{commit}"],
                              capture_output=True, text=True, check=True).stdout
    assert message == expected
    tag = git(judge_env, "cat-file", "tag", "v1", cwd=clone)
    assert tag.split("\n", 1)[1] == subprocess.run(
        ["git", "--git-dir", str(ms.repo_path(ms.key(f"org/{name}"))), "cat-file", "tag", "v1"],
        capture_output=True, text=True, check=True).stdout.split("\n", 1)[1]  # tagger, date, message
    at_tag = hf_snapshot(hf, f"org/{name}", "v1", tokens["hf"], tmp_path / "sdk-v1")
    expected_tree = builder_tree(builder, "v1")
    expected_tree[".gitattributes"] += LINE
    assert_same_files(at_tag, expected_tree, "huggingface_hub's download at v1")
    at_main = hf_snapshot(hf, f"org/{name}", "main", tokens["hf"], tmp_path / "sdk-main")
    assert_same_files(at_main, builder_tree(builder, "master"), "huggingface_hub's download at main")

    # A rerun is a no-op: nothing pushed, nothing uploaded.
    hf.counters.reset()
    again = ms_to_hf(hubs, tmp_path, name, convert=True)
    assert again.pushed == () and again.objects_moved == 0
    assert hf.counters.snapshot().count("git-receive-pack") == 0

    # A new source commit: a fast-forward of the rewritten history.
    old_tip = on_hub["refs/heads/main"]
    builder.commit({"notes.txt": "more\n", "clip.bin": b"\0" + random_bytes(MB, "clip")}, message="More")
    builder.push_to_hub(ms, f"org/{name}")
    forward = ms_to_hf(hubs, tmp_path, name, convert=True)
    assert [(u.dst_ref, u.action) for u in forward.pushed] == [("refs/heads/main", RefAction.FAST_FORWARD)]
    assert forward.plan.conversion.commits == 1
    new_tip = hf_refs(hubs, f"org/{name}", git_env)["refs/heads/main"]
    assert new_tip != old_tip
    git(judge_env, "fetch", "--quiet", "origin", cwd=clone)
    git(judge_env, "merge-base", "--is-ancestor", old_tip, new_tip, cwd=clone)

    # The cache lost: the rewrite is recomputed, and the next commit is a fast-forward again.
    shutil.rmtree(tmp_path / "cache")
    builder.commit({"notes.txt": "even more\n"}, message="Even more")
    builder.push_to_hub(ms, f"org/{name}")
    rebuilt = ms_to_hf(hubs, tmp_path, name, convert=True)
    assert [(u.dst_ref, u.action) for u in rebuilt.pushed] == [("refs/heads/main", RefAction.FAST_FORWARD)]
    newest = hf_refs(hubs, f"org/{name}", git_env)["refs/heads/main"]
    git(judge_env, "fetch", "--quiet", "origin", cwd=clone)
    git(judge_env, "merge-base", "--is-ancestor", new_tip, newest, cwd=clone)
    assert_same_files(hf_snapshot(hf, f"org/{name}", "main", tokens["hf"], tmp_path / "sdk-last"),
                      {**builder_tree(builder, "master"), ".gitattributes": LFS_ATTRIBUTES.encode()
                       + b"/clip.bin filter=lfs diff=lfs merge=lfs -text\n"},
                      "huggingface_hub's download after the rebuild")

    # verify compares through the map; without it, the rewritten refs differ from the source's.
    assert api.verify(f"ms://org/{name}", f"hf://org/{name}", src_token=tokens["ms"], dst_token=tokens["hf"], env=env,
                      cache_dir=tmp_path / "cache", policy=FAST, convert=True).in_sync
    plain = api.verify(f"ms://org/{name}", f"hf://org/{name}", src_token=tokens["ms"], dst_token=tokens["hf"], env=env,
                       cache_dir=tmp_path / "verify-cache", policy=FAST)
    assert {d["ref"] for d in plain.ref_differences} == {"refs/heads/main", "refs/tags/v1"}

    # A second mirror of the same source, with its own cache, gets the same commits.
    twin = ms_to_hf(hubs, tmp_path, name, dst=f"hf://org/{name}-twin", cache="cache-twin", convert=True)
    assert twin.verified
    assert hf_refs(hubs, f"org/{name}-twin", git_env) == hf_refs(hubs, f"org/{name}", git_env)


def test_a_conversion_under_other_rules_stops_as_diverged_instead_of_rewriting_the_destination(
        hubs, git_env, tmp_path, unique_name, monkeypatch):
    hf, ms, tokens, env = hubs
    name = unique_name("convert-rules")
    builder = source_history()
    builder.push_to_hub(ms, f"org/{name}")
    ms_to_hf(hubs, tmp_path, name, convert=True)
    before = hf_refs(hubs, f"org/{name}", git_env)

    # The hub's rules change between runs (here: binaries allowed up to 3 MB), the cache is lost:
    # the recomputed history differs from the destination's, and the run says so (exit 6).
    from gitmirror.hubs.huggingface import HuggingFaceHub
    from gitmirror.rules import DestinationRules

    monkeypatch.setattr(HuggingFaceHub, "rules", lambda self: DestinationRules(max_binary_plain_blob=3 * MB))
    shutil.rmtree(tmp_path / "cache")
    builder.commit({"notes.txt": "new\n"}, message="New")
    builder.push_to_hub(ms, f"org/{name}")
    with pytest.raises(DivergedError):
        ms_to_hf(hubs, tmp_path, name, convert=True)
    assert hf_refs(hubs, f"org/{name}", git_env) == before


def test_toward_modelscope_a_card_in_lfs_becomes_a_plain_readme(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens, env = hubs
    name = unique_name("convert-card")
    card = b"---\nlicense: apache-2.0\n---\n# A card Hugging Face keeps in LFS\n"
    builder = RepoBuilder()
    builder.commit({".gitattributes": "*.md filter=lfs diff=lfs merge=lfs -text\n" + LFS_ATTRIBUTES,
                    "README.md": lfs(card), "model.safetensors": lfs(random_bytes(8_000, "card-model"))})
    builder.push_to_hub(hf, f"org/{name}")

    result = api.mirror(f"hf://org/{name}", f"ms://org/{name}", src_token=tokens["hf"], dst_token=tokens["ms"],
                        env=env, cache_dir=tmp_path / "cache", policy=FAST, convert=True)
    assert result.plan.warnings == ()  # no metadata-in-lfs warning: the card is converted
    assert [(f.path, f.to_lfs) for f in result.plan.conversion.files] == [("README.md", False)]
    on_hub = subprocess.run(["git", "--git-dir", str(ms.repo_path(f"org/{name}")), "cat-file", "blob",
                             "refs/heads/master:README.md"], capture_output=True, check=True).stdout
    assert on_hub == card  # a plain blob on the hub, not a pointer
    # The exemption in .gitattributes keeps git-lfs content: fsck finds no file that should be a pointer.
    clone_and_check_lfs(ms.git_url(f"org/{name}"), auth_env(ms.endpoint, "oauth2", ms.git_token_for(tokens["ms"]), git_env),
                        tmp_path, {})
    got = ms_snapshot(ms, f"org/{name}", "master", tokens["ms"], tmp_path / "sdk")
    assert got["README.md"] == card
    assert got["model.safetensors"] == builder_tree(builder, "main")["model.safetensors"]


def test_the_cli_takes_convert_and_prints_the_conversion(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens, env = hubs
    name = unique_name("convert-cli")
    source_history().push_to_hub(ms, f"org/{name}")
    cli_env = {**env, "MODELSCOPE_API_TOKEN": tokens["ms"], "HF_TOKEN": tokens["hf"]}
    args = [sys.executable, "-m", "gitmirror", "clone-push", f"ms://org/{name}", f"hf://org/{name}",
            "--cache-dir", str(tmp_path / "cache")]
    refused = subprocess.run(args + ["--dry-run"], env=cli_env, capture_output=True, text=True, timeout=240)
    assert refused.returncode == EXIT_INTEGRITY and "--convert" in refused.stderr
    dry = subprocess.run(args + ["--dry-run", "--convert", "--json"], env=cli_env, capture_output=True, text=True,
                         timeout=240)
    assert dry.returncode == 0, dry.stderr
    conversion = json.loads(dry.stdout)["plan"]["conversion"]
    assert conversion["commits_rewritten"] == 2
    assert conversion["files"] == [{"path": "voice.wav", "size": len(BINARY), "oid": hashlib.sha256(BINARY).hexdigest(),
                                    "to_lfs": True}]
    text = subprocess.run(args + ["--dry-run", "--convert"], env=cli_env, capture_output=True, text=True, timeout=240)
    assert text.returncode == 0 and "voice.wav" in text.stdout + text.stderr


def test_a_mirrors_file_says_convert_true(hubs, git_env, tmp_path, unique_name):
    from gitmirror.mirrors_file import load_mirrors

    hf, ms, tokens, env = hubs
    name = unique_name("convert-sync")
    builder = source_history()
    builder.push_to_hub(ms, f"org/{name}")
    mirrors = tmp_path / "mirrors.toml"
    mirrors.write_text(f'[[mirror]]\nsrc = "ms://org/{name}"\ndst = "hf://org/{name}"\nconvert = true\n'
                       f'src_token_env = "T_MS"\ndst_token_env = "T_HF"\n\n'
                       f'[[mirror]]\nsrc = "ms://org/{name}"\ndst = "hf://org/{name}-plain"\n'
                       f'src_token_env = "T_MS"\ndst_token_env = "T_HF"\n')
    assert [e.convert for e in load_mirrors(mirrors)] == [True, False]
    report = api.sync(mirrors, cache_dir=tmp_path / "cache", env={**env, "T_MS": tokens["ms"], "T_HF": tokens["hf"]},
                      policy=FAST)
    assert [(o.status, o.exit_code) for o in report.outcomes] == [("updated", 0), ("failed", EXIT_INTEGRITY)]
    # What sync pushed is what clone-push --convert computes for the same source.
    dry = ms_to_hf(hubs, tmp_path, name, convert=True, dry_run=True, cache="cache-api")
    assert hf_refs(hubs, f"org/{name}", git_env) == {"refs/heads/main": dict((r, n) for r, _, n in dry.plan.conversion.refs)["refs/heads/master"],
                                                     "refs/tags/v1": dict((r, n) for r, _, n in dry.plan.conversion.refs)["refs/tags/v1"]}
