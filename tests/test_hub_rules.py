"""The client holds a plan against the destination's rules before anything moves (issue 14, section 3).

Each rule breaks a plan: Hugging Face's 10 MiB and 1 MB-binary file rules over the whole new
history, its pull-request refs, GitLab's (ModelScope's) branch names. Such a run stops with exit 7,
lists what breaks which rule, sends no LFS request and leaves the destination's refs as they were;
the same history with the files in LFS mirrors. tests/sandbox/test_hf_refusals.py pushes the same
histories with plain git to show the hub refuses them too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitmirror import api
from gitmirror.errors import EXIT_INTEGRITY, IntegrityError
from gitmirror.retry import FAST
from gitmirror.rules import (
    LISTED,
    MB,
    MIB,
    DestinationRules,
    DestinationRulesError,
    PushedRef,
    RefNames,
    Rule,
    RuleViolation,
    check_history,
    gitlab_branch_problem,
)
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import remote_refs

pytestmark = pytest.mark.timeout(300)

HF_RULES = DestinationRules(max_plain_blob=10 * MIB, max_binary_plain_blob=MB, can_create_pr_refs=False)


def binary(size: int, seed: str) -> bytes:
    return b"\0" + random_bytes(size - 1, seed)


def text(size: int) -> bytes:
    line = b"a line of plain text that git reads as text\n"
    return (line * (size // len(line) + 1))[:size]


def history(files: dict, delete_later: bool = False, branch: str = "main") -> RepoBuilder:
    """An LFS file first (so a run that got as far as LFS would send a batch request), then
    ``files``, then (``delete_later``) a commit deleting ``files`` again."""
    b = RepoBuilder(default_branch=branch)
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# model\n",
              "weights.safetensors": lfs(random_bytes(30_000, "weights"))})
    b.commit(files, message="Add files")
    if delete_later:
        b.commit(delete=list(files), message="Delete them again")
    return b


@pytest.fixture(scope="module")
def hubs(sandbox):
    hf, ms = sandbox.add_hub("huggingface"), sandbox.add_hub("modelscope")
    for hub in (hf, ms):
        hub.add_user("alice", orgs=("org",))
    return {"hf": hf, "ms": ms, "hf_token": hf.issue_token("alice"), "ms_token": ms.issue_token("alice")}


def local_source(builder: RepoBuilder, path: Path) -> Path:
    """The history as a local bare repository with its LFS objects (a plain-git source)."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    builder.write(path, path / "lfs" / "objects")
    subprocess.run(["git", "--git-dir", str(path), "symbolic-ref", "HEAD", f"refs/heads/{builder.default_branch}"],
                   check=True)
    return path


def env_of(hubs, git_env) -> dict[str, str]:
    return {**git_env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint}


def mirror(hubs, git_env, tmp_path, src: Path, dst: str, **kwargs):
    token = hubs["hf_token"] if dst.startswith("hf://") else hubs["ms_token"]
    return api.mirror(str(src), dst, dst_token=token, env=env_of(hubs, git_env), cache_dir=tmp_path / "cache",
                      policy=FAST, **kwargs)


def destination(hubs, kind: str, name: str) -> tuple[object, str, str]:
    """A destination repository made beforehand (HF: with its initial commit) -> (hub, spec, git URL)."""
    hub = hubs[kind]
    hub.create_repo(f"org/{name}")
    scheme = "hf" if kind == "hf" else "ms"
    hub.counters.reset()
    return hub, f"{scheme}://org/{name}", hub.git_url(f"org/{name}")


def judge_refs(hubs, kind: str, url: str, git_env) -> dict[str, str]:
    from judges import auth_env

    token = hubs["hf_token"] if kind == "hf" else hubs["ms"].git_token_for(hubs["ms_token"])
    return remote_refs(url, auth_env(url, "oauth2" if kind == "ms" else "user", token, git_env))


def assert_nothing_moved(hub, refs_before, refs_after) -> None:
    snap = hub.counters.snapshot()
    lfs_requests = {route: n for route, n in snap.requests.items() if route.startswith("lfs")}
    assert lfs_requests == {}, snap.paths
    assert snap.count("git-receive-pack") == 0
    assert refs_after == refs_before


# --- end to end: each rule breaks a plan ------------------------------------------------------------


def test_hf_large_text_file_stops_the_run_before_any_lfs_request(hubs, git_env, tmp_path, unique_name):
    builder = history({"vocab.txt": text(11 * MB)})
    src = local_source(builder, tmp_path / "src.git")
    hub, dst, url = destination(hubs, "hf", unique_name("large"))
    before = judge_refs(hubs, "hf", url, git_env)
    with pytest.raises(DestinationRulesError) as caught:
        mirror(hubs, git_env, tmp_path, src, dst)
    assert caught.value.exit_code == EXIT_INTEGRITY and isinstance(caught.value, IntegrityError)
    assert caught.value.violations == (
        RuleViolation(Rule.LARGE_FILE, "refs/heads/main", path="vocab.txt", commit=builder.commits[1].sha,
                      size=11 * MB),)
    assert_nothing_moved(hub, before, judge_refs(hubs, "hf", url, git_env))


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True,
                          timeout=240)


@pytest.mark.parametrize("dry_run", [False, True])
def test_hf_binary_file_deleted_later_exit_7_with_the_listing(hubs, git_env, tmp_path, unique_name, dry_run):
    builder = history({"media/clip.mp4": binary(2 * MB, "clip")}, delete_later=True)
    src = local_source(builder, tmp_path / "src.git")
    hub, dst, url = destination(hubs, "hf", unique_name("binary"))
    before = judge_refs(hubs, "hf", url, git_env)
    env = {**env_of(hubs, git_env), "GITMIRROR_DST_TOKEN": hubs["hf_token"], "GITMIRROR_CACHE": str(tmp_path / "c")}
    done = run_cli(["clone-push", str(src), dst, "-q", *(["--dry-run"] if dry_run else [])], env)
    assert done.returncode == 7, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error:"), done.stderr
    added = builder.commits[1].sha
    assert f"media/clip.mp4 (binary file of 2.00 MB, not in LFS) in commit {added[:12]} on refs/heads/main" in lines[0]
    assert "Git LFS" in lines[0] and "nothing was sent" in lines[0]
    assert hubs["hf_token"] not in done.stderr
    assert_nothing_moved(hub, before, judge_refs(hubs, "hf", url, git_env))


def test_the_same_history_with_the_files_in_lfs_mirrors(hubs, git_env, tmp_path, unique_name):
    clip = binary(2 * MB, "clip")
    builder = history({"media/clip.mp4": lfs(clip), "vocab.txt": lfs(text(11 * MB))}, delete_later=True)
    src = local_source(builder, tmp_path / "src.git")
    hub, dst, url = destination(hubs, "hf", unique_name("in-lfs"))
    result = mirror(hubs, git_env, tmp_path, src, dst)
    assert result.verified and not result.plan.violations
    assert judge_refs(hubs, "hf", url, git_env) == {"refs/heads/main": builder.tip().sha}
    assert hub.has_lfs_object(dst.removeprefix("hf://"), lfs(clip).oid)


def test_modelscope_branch_named_head_is_refused_before_anything_moves(hubs, git_env, tmp_path, unique_name):
    builder = history({"notes.txt": "notes\n"}, branch="master")
    builder.ref("refs/heads/HEAD", builder.tip())
    src = local_source(builder, tmp_path / "src.git")
    hub, dst, url = destination(hubs, "ms", unique_name("head"))
    before = judge_refs(hubs, "ms", url, git_env)
    with pytest.raises(DestinationRulesError) as caught:
        mirror(hubs, git_env, tmp_path, src, dst)
    assert [(v.rule, v.ref) for v in caught.value.violations] == [(Rule.BRANCH_NAME, "refs/heads/HEAD")]
    assert "--exclude" in str(caught.value)
    assert_nothing_moved(hub, before, judge_refs(hubs, "ms", url, git_env))
    # Leaving it out is the way through.
    result = mirror(hubs, git_env, tmp_path, src, dst, exclude=["refs/heads/HEAD"])
    assert judge_refs(hubs, "ms", url, git_env) == {"refs/heads/master": builder.tip().sha} and result.verified


def test_pr_refs_toward_hf_say_so_before_anything_moves(hubs, git_env, tmp_path, unique_name):
    builder = history({"notes.txt": "notes\n"})
    builder.commit({"pr.txt": "pr\n"}, branch="refs/pr/1", base="main")
    src = local_source(builder, tmp_path / "src.git")
    hub, dst, url = destination(hubs, "hf", unique_name("pr"))
    before = judge_refs(hubs, "hf", url, git_env)
    with pytest.raises(DestinationRulesError) as caught:
        mirror(hubs, git_env, tmp_path, src, dst, refs=["refs/pr/*"])
    assert [(v.rule, v.ref) for v in caught.value.violations] == [(Rule.PR_REF, "refs/pr/1")]
    assert "pull request" in str(caught.value)
    assert_nothing_moved(hub, before, judge_refs(hubs, "hf", url, git_env))


# --- the check on its own -----------------------------------------------------------------------------


def test_binary_boundary_and_text_files(tmp_path):
    """1.67 MB binary refused, 0.9 MB binary and 2 MB text accepted, 11 MB text refused; a file
    only an earlier commit of the history holds counts; what the destination has does not."""
    b = RepoBuilder()
    base = b.commit({"old.bin": binary(3 * MB, "old")})  # the destination has this commit
    b.commit({"a.mp4": binary(1_670_000, "a"), "b.wav": binary(900_000, "b"), "c.txt": text(2 * MB),
              "d.txt": text(11 * MB)})
    b.commit(delete=["a.mp4", "d.txt"])
    repo = local_source(b, tmp_path / "repo.git")
    found = check_history(repo, [PushedRef("refs/heads/main", b.tip().sha, creates=False)], [base.sha], HF_RULES)
    assert [(v.path, v.rule, v.commit) for v in found] == [
        ("a.mp4", Rule.BINARY_FILE, b.commits[1].sha), ("d.txt", Rule.LARGE_FILE, b.commits[1].sha)]
    assert check_history(repo, [PushedRef("refs/heads/main", b.tip().sha, creates=False)], [base.sha],
                         DestinationRules()) == ()


def test_listing_names_the_first_20_then_counts():
    violations = [RuleViolation(Rule.BINARY_FILE, "refs/heads/main", path=f"f{i:02d}.bin", commit="a" * 40,
                                size=2 * MB) for i in range(LISTED + 5)]
    message = str(DestinationRulesError("hf://org/m", violations))
    assert "f19.bin" in message and "f20.bin" not in message and "and 5 more" in message
    assert message.startswith("hf://org/m would refuse this push (25 problems)")


@pytest.mark.parametrize(("ref", "refused"), [
    ("refs/heads/HEAD", True), ("refs/heads/-x", True), ("refs/heads/refs/heads/x", True),
    ("refs/heads/0123456789abcdef0123456789abcdef01234567", True),
    ("refs/heads/0123456789abcdef0123456789abcdef01234567/x", True),
    ("refs/heads/x..y", True), ("refs/heads/main", False), ("refs/heads/feature/HEAD-ish", False),
])
def test_gitlab_branch_names(ref, refused):
    assert (gitlab_branch_problem(ref) is not None) is refused
    rules = DestinationRules(ref_name_check=RefNames.GITLAB)
    from gitmirror.rules import ref_violations

    assert bool(ref_violations([PushedRef(ref, "a" * 40, creates=True)], rules)) is refused


def test_a_snapshot_meets_the_same_rules_before_anything_moves(hubs, git_env, tmp_path, unique_name):
    """--snapshot plans its own commit: its tree is held against the destination's rules too."""
    builder = history({"vocab.txt": text(11 * MB)})
    src = local_source(builder, tmp_path / "src.git")
    hub, dst, url = destination(hubs, "hf", unique_name("snaplarge"))
    before = judge_refs(hubs, "hf", url, git_env)
    with pytest.raises(DestinationRulesError) as caught:
        api.snapshot(str(src), dst, dst_token=hubs["hf_token"], env=env_of(hubs, git_env),
                     cache_dir=tmp_path / "cache", policy=FAST)
    assert caught.value.exit_code == EXIT_INTEGRITY
    assert [(v.rule, v.path, v.size) for v in caught.value.violations] == [(Rule.LARGE_FILE, "vocab.txt", 11 * MB)]
    assert_nothing_moved(hub, before, judge_refs(hubs, "hf", url, git_env))


def test_the_error_names_its_refs_for_json():
    from gitmirror.report import error_dict

    violations = [RuleViolation(Rule.LARGE_FILE, "refs/heads/main", path="a.bin", commit="c" * 40, size=11 * MB),
                  RuleViolation(Rule.LARGE_FILE, "refs/heads/dev", path="b.bin", commit="d" * 40, size=11 * MB),
                  RuleViolation(Rule.LARGE_FILE, "refs/heads/main", path="c.bin", commit="e" * 40, size=11 * MB)]
    error = DestinationRulesError("hf://org/m", violations)
    assert error.refs == ("refs/heads/main", "refs/heads/dev")
    shown = error_dict(error, error.exit_code, str(error))
    assert shown["class"] == "DestinationRulesError" and shown["exit_code"] == 7
    assert shown["refs"] == ["refs/heads/main", "refs/heads/dev"] and shown["ref"] == "refs/heads/main"


@pytest.mark.parametrize("kind", ["hf", "ms"])
def test_a_refused_plan_creates_no_destination(hubs, git_env, tmp_path, unique_name, kind):
    # A missing destination whose rules refuse the history is not created: no empty repository is
    # left behind by a run that stops with exit 7 (and the way out, --convert or --exclude, starts clean).
    if kind == "hf":
        builder = history({"media/clip.mp4": binary(2 * MB, "clip")}, delete_later=True)
    else:
        builder = history({"notes.txt": "notes\n"}, branch="master")
        builder.ref("refs/heads/HEAD", builder.tip())
    src = local_source(builder, tmp_path / "src.git")
    name = unique_name("refused-new")
    hub = hubs[kind]
    with pytest.raises(DestinationRulesError):
        mirror(hubs, git_env, tmp_path, src, f"{kind}://org/{name}")
    assert not hub.repo_path(f"org/{name}").exists()
    with pytest.raises(KeyError):
        hub.repo(f"org/{name}")
