"""Mirrors judged by the destination hub's own SDK, and what a ModelScope destination starts with.

* HF -> a local bare repository -> HF again (the second hop read from the local repository),
  downloaded at the end by huggingface_hub's ``snapshot_download``.
* Each variant of a new ModelScope repository's server-made first commit is the hub's own and
  is replaced without --force; ModelScope's SDK then downloads exactly the source's tree.
* The files ModelScope parses only as plain blobs make the plan warn when the source keeps them
  in LFS (``MirrorPlan.warnings``, ``to_dict()``, the CLI's --dry-run and summary).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitmirror import api
from gitmirror.errors import DivergedError
from gitmirror.plan import RefAction
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, clone_and_check_lfs, judge_sdk_download, modelscope_view, remote_refs

pytestmark = pytest.mark.timeout(300)


def history() -> RepoBuilder:
    b = RepoBuilder()
    c1 = b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# model\n",
                   "weights.bin": lfs(random_bytes(20_000, "judge-w1"))})
    b.tag("v1", c1, message="first")
    b.commit({"weights.bin": lfs(random_bytes(25_000, "judge-w2")), "sub/extra.safetensors": lfs(random_bytes(9_000, "x")),
              "notes.txt": "plain\n"}, message="second")
    b.commit({"tool.bin": lfs(random_bytes(4_000, "dev"))}, branch="dev", base=c1)
    return b


def lfs_oids(builder: RepoBuilder) -> dict[str, bytes]:
    return {oid: f.data for oid, f in builder.lfs_files().items()}


def mirror(hubs, git_env, tmp_path, src, dst, src_token, dst_token, **kwargs):
    env = {**git_env, "HF_ENDPOINT": hubs[0].endpoint, "MODELSCOPE_ENDPOINT": hubs[1].endpoint}
    return api.mirror(src, dst, src_token=src_token, dst_token=dst_token, env=env, cache_dir=tmp_path / "cache",
                      policy=FAST, **kwargs)


def test_hf_to_local_bare_to_hf_is_what_huggingface_hub_downloads(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    token = hf.issue_token("alice")
    name = unique_name("hop")
    builder = history()
    src_refs = builder.push_to_hub(hf, f"org/{name}", private=True)
    backup = tmp_path / "backups" / f"{name}.git"

    mirror((hf, ms), git_env, tmp_path, f"hf://org/{name}", str(backup), token, None)
    second = mirror((hf, ms), git_env, tmp_path, str(backup), f"hf://org/{name}-again", None, token, private=True)

    # The second hop replaced the hub's own initial commit, created the rest, and nothing else.
    assert {u.action for u in second.pushed} == {RefAction.REPLACE_INITIAL, RefAction.CREATE}
    url = hf.git_url(f"org/{name}-again")
    judge_env = auth_env(hf.endpoint, "user", token, git_env)
    assert remote_refs(url, judge_env) == src_refs
    clone_and_check_lfs(url, judge_env, tmp_path, lfs_oids(builder))
    judge_sdk_download("huggingface", hf, f"org/{name}-again", token, tmp_path / "sdk", builder,
                       {"main": "main", "v1": "v1", "dev": "dev"})


VARIANTS = {"gitattributes": [".gitattributes"], "readme": [".gitattributes", "README.md"],
            "configuration": [".gitattributes", "README.md", "configuration.json"]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_modelscope_initial_commit_is_replaced(hub_pair, git_env, tmp_path, unique_name, variant):
    hf, ms = hub_pair(ms={"initial_commit": variant})
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    name = unique_name(f"init-{variant}")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "model.safetensors": lfs(random_bytes(6_000, variant))})
    builder.tag("v1")
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    ms.create_repo(f"org/{name}")
    initial = ms.refs(f"org/{name}")["refs/heads/master"]
    assert ms.run_git(f"org/{name}", "ls-tree", "--name-only", initial).splitlines() == VARIANTS[variant]

    result = mirror((hf, ms), git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", *tokens)

    assert [u.action for u in result.pushed if u.dst_ref == "refs/heads/master"] == [RefAction.REPLACE_INITIAL]
    judge_env = auth_env(ms.endpoint, "oauth2", ms.git_token_for(tokens[1]), git_env)
    assert remote_refs(ms.git_url(f"org/{name}"), judge_env) == modelscope_view(src_refs)
    # The SDK gets the source's files and none of the hub's (no README.md, no configuration.json).
    judge_sdk_download("modelscope", ms, f"org/{name}", tokens[1], tmp_path / "sdk", builder,
                       {"master": "main", "v1": "v1"})


def test_a_first_commit_with_more_than_hub_files_is_not_the_hubs(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    name = unique_name("notinit")
    src = RepoBuilder()
    src.commit({"README.md": "# src\n"})
    src.push_to_hub(hf, f"org/{name}")
    theirs = RepoBuilder(default_branch="master")
    theirs.commit({"configuration.json": "{}\n", "model.py": "print('mine')\n"})
    before = theirs.push_to_hub(ms, f"org/{name}")

    with pytest.raises(DivergedError):
        mirror((hf, ms), git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", *tokens)
    assert ms.refs(f"org/{name}") == before


def metadata_in_lfs() -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": "*.md filter=lfs diff=lfs merge=lfs -text\n*.json filter=lfs diff=lfs merge=lfs -text\n",
              "README.md": lfs("# card kept in LFS\n"), "config.json": lfs('{"a": 1}\n'),
              "docs/README.md": lfs("# not read by the hub\n"), "tokenizer.json": lfs("{}\n")})
    return b


def test_metadata_files_in_lfs_make_the_plan_warn(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    name = unique_name("meta")
    metadata_in_lfs().push_to_hub(hf, f"org/{name}")

    dry = mirror((hf, ms), git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", *tokens, dry_run=True)
    [warning] = dry.plan.warnings
    assert warning.code == "metadata-in-lfs"
    assert warning.paths == ("README.md (refs/heads/master)", "config.json (refs/heads/master)")
    assert dry.plan.to_dict()["warnings"][0]["paths"] == list(warning.paths)

    # Toward Hugging Face, which reads its model card either way, nothing to warn about; and a
    # source with plain metadata files gives no warning toward ModelScope either.
    other = unique_name("meta-hf")
    metadata_in_lfs().push_to_hub(ms, f"org/{other}")
    assert mirror((hf, ms), git_env, tmp_path, f"ms://org/{other}", f"hf://org/{other}", tokens[1], tokens[0],
                  dry_run=True).plan.warnings == ()
    plain = unique_name("meta-plain")
    clean = RepoBuilder()
    clean.commit({"README.md": "# plain\n", "config.json": "{}\n"})
    clean.push_to_hub(hf, f"org/{plain}")
    assert mirror((hf, ms), git_env, tmp_path, f"hf://org/{plain}", f"ms://org/{plain}", *tokens,
                  dry_run=True).plan.warnings == ()


def test_the_cli_prints_plan_warnings_in_dry_run_json_and_summary(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    name = unique_name("metacli")
    metadata_in_lfs().push_to_hub(hf, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint, "COLUMNS": "200",
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}
    src, dst = f"hf://org/{name}", f"ms://org/{name}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gitmirror", "clone-push", *args, src, dst], env=env,
                              capture_output=True, text=True, timeout=240)

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "warning (metadata-in-lfs)" in dry.stdout and "  README.md (refs/heads/master)" in dry.stdout
    with pytest.raises(KeyError):  # a dry run creates no repository, so it has no refs
        ms.repo(f"org/{name}")
    as_json = cli("--dry-run", "--json")
    assert json.loads(as_json.stdout)["plan"]["warnings"][0]["code"] == "metadata-in-lfs"
    done = cli()
    assert done.returncode == 0, done.stderr
    assert "warning (metadata-in-lfs)" in done.stdout and "  config.json (refs/heads/master)" in done.stdout
    assert ms.refs(f"org/{name}")["refs/heads/master"]  # a warning, not a refusal


def test_warning_lines_show_twenty_paths_then_a_count():
    from gitmirror.plan import MirrorPlan, PlanWarning
    from gitmirror.report import warning_lines

    paths = tuple(f"f{i}.json (refs/heads/master)" for i in range(25))
    plan = MirrorPlan("a", "b", (), warnings=(PlanWarning("metadata-in-lfs", "read only as plain blobs", paths),))
    lines = warning_lines(plan)
    assert lines[0] == "warning (metadata-in-lfs): read only as plain blobs"
    assert lines[1:21] == [f"  {p}" for p in paths[:20]] and lines[21] == "  ... and 5 more"
    assert plan.to_dict()["warnings"] == [{"code": "metadata-in-lfs", "message": "read only as plain blobs",
                                           "paths": list(paths)}]
