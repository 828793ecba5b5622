"""clone-push end to end on the sandbox hubs, judged by real git and git-lfs and by the bytes."""

from __future__ import annotations

import hashlib

import pytest

from gitmirror import api, runner
from gitmirror.errors import DivergedError
from gitmirror.plan import RefAction
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, clone_and_check_lfs, git, judge_sdk_download, remote_refs

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hubs(sandbox):
    """One hub of each kind for this module, with a user "alice" in org "org" and her tokens."""
    hf = sandbox.add_hub("huggingface", multipart_threshold=150 * 1024)
    ms = sandbox.add_hub("modelscope")
    plain = sandbox.add_hub("git")
    tokens = {}
    for name, hub in (("hf", hf), ("ms", ms), ("git", plain)):
        hub.add_user("alice", orgs=("org",))
        tokens[name] = hub.issue_token("alice", scope="write")
    return {"hf": hf, "ms": ms, "git": plain, "tokens": tokens}


def rich_history() -> RepoBuilder:
    """Branches, merges, lightweight and annotated tags, LFS files added/changed/renamed/deleted,
    the same content under two paths, non-ASCII paths, a non-LFS binary and a PR ref."""
    b = RepoBuilder()
    shared = lfs(random_bytes(40_000, "shared"))
    c1 = b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# model\n", "weights.bin": shared})
    b.tag("v0.1", c1)  # lightweight
    b.commit({"weights.bin": lfs(random_bytes(50_000, "w2")), "copy/same.bin": shared,
              "模型/权重.safetensors": lfs(random_bytes(30_000, "cjk")), "logo.png": random_bytes(5_000, "png")},
             message="Change weights, add copies, a non-ASCII path and a plain binary")
    b.commit(rename={"weights.bin": "renamed/weights.bin"}, message="Rename weights")
    b.commit(delete=["copy/same.bin"], message="Delete a copy")
    b.commit({"dev.bin": lfs(random_bytes(20_000, "dev"))}, branch="dev", base=c1, message="Dev work")
    b.commit({"notes.txt": "dev notes\n"}, branch="dev")
    b.merge("dev", message="Merge dev")
    b.commit({"big.safetensors": lfs(random_bytes(200_000, "big"))}, message="A larger file")
    b.tag("v1.0", message="Release 1.0")  # annotated
    b.commit({"feature.bin": lfs(random_bytes(10_000, "feature"))}, branch="feature/x", base=c1)
    b.commit({"pr-only.bin": lfs(random_bytes(12_000, "pr-only"))}, branch="refs/pr/1", base=c1, message="PR")
    return b


def objects_of(builder: RepoBuilder, *, exclude_paths=("pr-only.bin",)) -> dict[str, bytes]:
    found = {}
    for commit in builder.commits:
        for path, content in commit.files.items():
            if hasattr(content, "data") and path not in exclude_paths:
                found[hashlib.sha256(content.data).hexdigest()] = content.data
    return found


def env_for(hubs, git_env) -> dict[str, str]:
    return {**git_env, "HF_ENDPOINT": hubs["hf"].endpoint, "MODELSCOPE_ENDPOINT": hubs["ms"].endpoint}


def run_mirror(hubs, git_env, tmp_path, src, dst, src_token, dst_token, **kwargs):
    return api.mirror(src, dst, src_token=src_token, dst_token=dst_token, env=env_for(hubs, git_env),
                      cache_dir=tmp_path / "cache", policy=FAST, **kwargs)


def test_hf_to_modelscope_full_history(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("rich")
    builder = rich_history()
    src_refs = builder.push_to_hub(hf, f"org/{name}")

    result = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])

    expected = {
        "refs/heads/master": src_refs["refs/heads/main"],  # HF main lands on ModelScope master
        "refs/heads/dev": src_refs["refs/heads/dev"],
        "refs/heads/feature/x": src_refs["refs/heads/feature/x"],
        "refs/tags/v0.1": src_refs["refs/tags/v0.1"],
        "refs/tags/v1.0": src_refs["refs/tags/v1.0"],  # the annotated tag object itself
    }
    judge_env = auth_env(ms.endpoint, "oauth2", ms.git_token_for(tokens["ms"]), git_env)
    url = ms.git_url(f"org/{name}")
    assert remote_refs(url, judge_env) == expected
    clone_and_check_lfs(url, judge_env, tmp_path, objects_of(builder))
    # refs/pr/* is not mirrored by default, and neither is the object only it points to.
    pr_oid = hashlib.sha256(random_bytes(12_000, "pr-only")).hexdigest()
    assert not ms.has_lfs_object(f"org/{name}", pr_oid)
    assert result.refs_created == len(expected) and result.verified
    assert result.objects_moved == len(objects_of(builder))

    # A second run moves nothing: two ls-remote requests, no fetch, no LFS call, no push.
    hf.counters.reset()
    ms.counters.reset()
    again = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])
    assert again.plan.is_noop and again.bytes_moved == 0
    for hub in (hf, ms):
        snap = hub.counters.snapshot()
        assert snap.total_requests() <= 2, snap.paths
        assert snap.count("git-upload-pack") == snap.count("git-receive-pack") == snap.count("lfs-batch") == 0
    # ModelScope's own SDK downloads the source's trees from the mirror, byte for byte.
    judge_sdk_download("modelscope", ms, f"org/{name}", tokens["ms"], tmp_path / "sdk", builder,
                       {"master": "main", "v1.0": "v1.0"})


def test_pr_refs_on_request_and_incremental_update(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("pr")
    builder = rich_history()
    builder.push_to_hub(hf, f"org/{name}")
    run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"],
               refs=["refs/pr/*"])
    pr_oid = hashlib.sha256(random_bytes(12_000, "pr-only")).hexdigest()
    assert ms.has_lfs_object(f"org/{name}", pr_oid)
    assert "refs/pr/1" in ms.refs(f"org/{name}")

    # One new commit with one new LFS object: only that object's bytes move.
    new_data = random_bytes(33_000, "incremental")
    builder.commit({"new.bin": lfs(new_data)}, message="New weights")
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    ms.counters.reset()
    result = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"],
                        refs=["refs/pr/*"])
    assert result.objects_moved == 1 and result.bytes_moved == len(new_data)
    assert ms.counters.snapshot().bytes_in.get("lfs-upload", 0) == len(new_data)
    assert ms.refs(f"org/{name}")["refs/heads/master"] == src_refs["refs/heads/main"]
    assert [u.action for u in result.pushed] == [RefAction.FAST_FORWARD]


def test_modelscope_to_hf_multipart_over_server_initial_commit(hubs, git_env, tmp_path, unique_name):
    """The HF destination is created by gitmirror (the hub adds its own initial commit, which is
    replaced without --force), and the large object goes through the multipart transfer."""
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("ms2hf")
    builder = RepoBuilder(default_branch="master")
    big = random_bytes(400_000, "multipart")
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "model.safetensors": lfs(big), "small.bin": lfs(b"tiny" * 100)})
    builder.tag("v1", message="one")
    src_refs = builder.push_to_hub(ms, f"org/{name}")
    hf.counters.reset()

    result = run_mirror(hubs, git_env, tmp_path, f"ms://org/{name}", f"hf://org/{name}", tokens["ms"], tokens["hf"])

    assert {u.action for u in result.pushed} == {RefAction.REPLACE_INITIAL, RefAction.CREATE}
    assert hf.counters.snapshot().count("lfs-multipart-complete") >= 1
    judge_env = auth_env(hf.endpoint, "user", tokens["hf"], git_env)
    url = hf.git_url(f"org/{name}")
    refs = remote_refs(url, judge_env)
    assert refs["refs/heads/main"] == src_refs["refs/heads/master"]
    assert refs["refs/tags/v1"] == src_refs["refs/tags/v1"]
    clone_and_check_lfs(url, judge_env, tmp_path, objects_of(builder))
    judge_sdk_download("huggingface", hf, f"org/{name}", tokens["hf"], tmp_path / "sdk", builder,
                       {"main": "master", "v1": "v1"})


def test_hf_to_local_bare_backup(hubs, git_env, tmp_path, unique_name):
    hf, tokens = hubs["hf"], hubs["tokens"]
    name = unique_name("local")
    builder = rich_history()
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    backup = tmp_path / "backups" / f"{name}.git"

    run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", str(backup), tokens["hf"], None)

    refs = remote_refs(str(backup), git_env)
    assert refs["refs/heads/main"] == src_refs["refs/heads/main"]
    assert refs["refs/tags/v1.0"] == src_refs["refs/tags/v1.0"]
    clone_and_check_lfs(str(backup), git_env, tmp_path, objects_of(builder))
    assert (backup / "lfs" / "objects").is_dir()


def test_hf_to_plain_git_host(hubs, git_env, tmp_path, unique_name):
    hf, plain, tokens = hubs["hf"], hubs["git"], hubs["tokens"]
    name = unique_name("plain")
    builder = rich_history()
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    plain.create_repo(f"org/{name}")
    url = plain.git_url(f"org/{name}")

    run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", url, tokens["hf"], tokens["git"])

    judge_env = auth_env(plain.endpoint, "alice", tokens["git"], git_env)
    refs = remote_refs(url, judge_env)
    assert refs["refs/heads/main"] == src_refs["refs/heads/main"]
    assert refs["refs/heads/dev"] == src_refs["refs/heads/dev"]
    clone_and_check_lfs(url, judge_env, tmp_path, objects_of(builder))


@pytest.mark.parametrize("initial_commit", [False, True], ids=["empty", "server-initial-commit"])
def test_modelscope_destination_empty_or_with_server_commit(hub_pair, git_env, tmp_path, unique_name, initial_commit):
    hf, ms = hub_pair(ms={"initial_commit": initial_commit})
    hubs = {"hf": hf, "ms": ms}
    tokens = {"hf": hf.issue_token("alice"), "ms": ms.issue_token("alice")}
    name = unique_name("dst")
    builder = rich_history()
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    ms.create_repo(f"org/{name}")  # exists before the run, empty or with the hub's own commit

    run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])

    assert ms.refs(f"org/{name}")["refs/heads/master"] == src_refs["refs/heads/main"]
    judge_sdk_download("modelscope", ms, f"org/{name}", tokens["ms"], tmp_path / "sdk", builder, {"master": "main"})


def test_diverged_destination_fails_without_force_and_changes_nothing(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("diverged")
    builder = rich_history()
    builder.push_to_hub(hf, f"org/{name}")
    run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])

    # Someone commits on the destination; the source moves on too.
    other = RepoBuilder(default_branch="master")
    other.commit({"local-edit.txt": "made on the destination\n"}, message="Edit on the mirror")
    other_refs = other.write(ms.repo_path(f"org/{name}"))
    builder.commit({"next.bin": lfs(random_bytes(9_000, "next"))}, message="Upstream moves on")
    src_refs = builder.push_to_hub(hf, f"org/{name}")
    before = ms.refs(f"org/{name}")
    assert before["refs/heads/master"] == other_refs["refs/heads/master"]
    ms.counters.reset()

    with pytest.raises(DivergedError) as info:
        run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])
    assert "refs/heads/master" in str(info.value) and info.value.exit_code == 6
    assert ms.refs(f"org/{name}") == before
    snap = ms.counters.snapshot()
    assert snap.count("git-receive-pack", "POST") == 0 and snap.count("lfs-upload") == 0

    result = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"],
                        force=True)
    assert ms.refs(f"org/{name}")["refs/heads/master"] == src_refs["refs/heads/main"]
    assert RefAction.FORCE in {u.action for u in result.pushed}


def test_dry_run_moves_nothing(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("dry")
    rich_history().push_to_hub(hf, f"org/{name}")
    ms.create_repo(f"org/{name}")
    ms.counters.reset()
    result = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"],
                        dry_run=True)
    assert result.dry_run and len(result.plan.moving) == 5 and len(result.plan.lfs_objects) >= 6
    assert ms.refs(f"org/{name}") == {}
    snap = ms.counters.snapshot()
    assert snap.count("git-receive-pack") == 0 and snap.count("lfs-batch") == 0 and snap.count("lfs-upload") == 0


def test_verify_reports_missing_refs_and_objects(hubs, git_env, tmp_path, unique_name):
    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    name = unique_name("verify")
    builder = rich_history()
    builder.push_to_hub(hf, f"org/{name}")
    env = env_for(hubs, git_env)
    run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])
    ok = api.verify(f"hf://org/{name}", f"ms://org/{name}", src_token=tokens["hf"], dst_token=tokens["ms"], env=env,
                    cache_dir=tmp_path / "cache", policy=FAST)
    assert ok.in_sync and ok.objects_checked == len(objects_of(builder))

    victim = sorted(objects_of(builder))[0]
    ms.remove_lfs_object(f"org/{name}", victim)
    builder.commit({"extra.txt": "x"}, message="not mirrored yet")
    builder.push_to_hub(hf, f"org/{name}")
    bad = api.verify(f"hf://org/{name}", f"ms://org/{name}", src_token=tokens["hf"], dst_token=tokens["ms"], env=env,
                     cache_dir=tmp_path / "cache", policy=FAST)
    assert not bad.in_sync
    assert [d["ref"] for d in bad.ref_differences] == ["refs/heads/master"]
    assert [o.oid for o in bad.missing_objects] == [victim]


def test_first_run_fetches_the_source_once_while_the_destination_is_created(hubs, git_env, tmp_path, unique_name,
                                                                           monkeypatch):
    """The source fetch of a first run overlaps the hub calls that create the destination; planning
    then finds the refs in the cache and does not fetch them again."""
    from gitmirror.remote import Remote

    tokens = hubs["tokens"]
    name = unique_name("early")
    rich_history().push_to_hub(hubs["hf"], f"org/{name}")
    fetches = []
    real_fetch = Remote.fetch

    def recording_fetch(self, repo_dir, refs, **kwargs):
        import threading

        fetches.append((threading.current_thread().name, sorted(refs)))
        return real_fetch(self, repo_dir, refs, **kwargs)

    monkeypatch.setattr(Remote, "fetch", recording_fetch)
    result = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])
    assert result.verified and result.refs_created == 5
    assert len(fetches) == 1, fetches
    thread, refs = fetches[0]
    assert thread.startswith("gitmirror-warm")
    assert refs == ["refs/heads/dev", "refs/heads/feature/x", "refs/heads/main", "refs/tags/v0.1", "refs/tags/v1.0"]


def test_a_failed_early_fetch_is_left_to_planning(hubs, git_env, tmp_path, unique_name, monkeypatch):
    from gitmirror.errors import TransientError

    tokens = hubs["tokens"]
    name = unique_name("earlyfail")
    src_refs = rich_history().push_to_hub(hubs["hf"], f"org/{name}")

    def failing(ctx, options):
        raise TransientError("the early fetch was cut")

    monkeypatch.setattr(runner, "prefetch_for_new_destination", failing)
    result = run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])
    assert result.verified
    assert hubs["ms"].refs(f"org/{name}")["refs/heads/master"] == src_refs["refs/heads/main"]


def test_missing_source_is_reported_first_and_no_destination_is_created(hubs, git_env, tmp_path, unique_name):
    from gitmirror.errors import AuthError, RepoNotFoundError

    tokens = hubs["tokens"]
    name = unique_name("nosrc")
    with pytest.raises((RepoNotFoundError, AuthError)) as err:
        run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"],
                   private=False)
    print(err.value)
    assert f"hf://org/{name}" in str(err.value)
    try:
        created = hubs["ms"].repo_path(f"org/{name}").exists()
    except KeyError:
        created = False
    assert not created


def test_a_new_destination_is_as_visible_as_its_source(hubs, git_env, tmp_path, unique_name, monkeypatch):
    from urllib.parse import urlsplit

    hf, ms, tokens = hubs["hf"], hubs["ms"], hubs["tokens"]
    # Credentials for the source's host lie around (a .netrc, which git would use): asked with
    # them, "may anyone clone this?" would make a private source look public.
    home = tmp_path / "netrc-home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine {urlsplit(hf.endpoint).hostname} login alice password {tokens['hf']}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    for private in (False, True):
        name = unique_name("visible")
        builder = RepoBuilder()
        builder.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(3_000, f"vis-{private}"))})
        builder.push_to_hub(hf, f"org/{name}", private=private)
        hf.counters.reset()

        run_mirror(hubs, git_env, tmp_path, f"hf://org/{name}", f"ms://org/{name}", tokens["hf"], tokens["ms"])

        assert ms.repo(f"org/{name}").private is private
        # A public source is known as such from one anonymous request; a private one from the API.
        assert hf.counters.snapshot().count("api") == (1 if private else 0)
