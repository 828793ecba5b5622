"""Real git + git-lfs against every hub kind: push, clone, pull, fsck; protocol v0/v2;
chunked and gzip request bodies; the pre-receive LFS check; default-branch protection."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gitmirror.sandbox import Hub, Sandbox
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes, seed_sample_model

pytestmark = pytest.mark.timeout(120)

KINDS = ("git", "huggingface", "modelscope")


def _git_user(hub: Hub) -> str:
    return "oauth2" if hub.kind.name == "modelscope" else "alice"


def _setup(sandbox: Sandbox, kind: str, auth_env, unique_name, create: bool = True, **hub_options):
    hub = sandbox.add_hub(kind, **hub_options)
    hub.add_user("alice")
    token = hub.issue_token("alice", "write")
    repo_id = f"alice/{unique_name('m')}"
    if create:
        hub.create_repo(repo_id)
    env = auth_env(hub.endpoint, hub.git_token_for(token), _git_user(hub))
    return hub, repo_id, env


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", KINDS)
def test_push_clone_pull_fsck_roundtrip(sandbox, git, tmp_path, auth_env, unique_name, kind):
    hub, repo_id, env = _setup(sandbox, kind, auth_env, unique_name)
    url = hub.git_url(repo_id)
    work = tmp_path / "work"
    git("clone", url, str(work), env=env)  # empty, or the hub's initial commit
    git("checkout", "-B", hub.kind.default_branch, cwd=work)
    (work / ".gitattributes").write_text(LFS_ATTRIBUTES)
    (work / "weights.bin").write_bytes(random_bytes(200_000, "w"))
    (work / "sub").mkdir()
    (work / "sub" / "more.safetensors").write_bytes(random_bytes(50_000, "s"))
    (work / "README.md").write_text("hello\n")
    git("add", ".", cwd=work)
    git("commit", "-m", "add weights", cwd=work)
    git("push", "origin", f"HEAD:{hub.kind.default_branch}", cwd=work, env=env)

    stored = hub.lfs_objects(repo_id)
    assert _digest(work / "weights.bin") in stored and _digest(work / "sub" / "more.safetensors") in stored
    snap = hub.counters.snapshot()
    assert snap.count("lfs-upload", "PUT") == 2 and snap.bytes_in["lfs-upload"] == 250_000

    clone = tmp_path / "clone"
    git("clone", url, str(clone), env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    assert (clone / "weights.bin").stat().st_size < 200  # a pointer until pulled
    git("lfs", "pull", cwd=clone, env=env)
    git("lfs", "fsck", cwd=clone, env=env)
    for name in ("weights.bin", "sub/more.safetensors", "README.md"):
        assert _digest(clone / name) == _digest(work / name)
    assert hub.counters.snapshot().bytes_out["lfs-download"] == 250_000
    assert hub.token_leaks == 0  # git-lfs sent its credentials to the hub only, never to storage


@pytest.mark.parametrize("version", ["0", "2"])
def test_clone_protocol_versions(sandbox, git, tmp_path, auth_env, unique_name, version):
    hub, repo_id, env = _setup(sandbox, "git", auth_env, unique_name, create=False)
    seeded = seed_sample_model(hub, repo_id)
    hub.counters.reset()
    clone = tmp_path / "clone"
    git("-c", f"protocol.version={version}", "clone", hub.git_url(repo_id), str(clone), env=env)
    git("lfs", "fsck", cwd=clone, env=env)
    snap = hub.counters.snapshot()
    if version == "2":
        assert snap.features.get("protocol-v2", 0) >= 2
        assert snap.count("git-upload-pack", "POST") >= 2  # ls-refs, then fetch
    else:
        assert "protocol-v2" not in snap.features
        assert snap.count("git-upload-pack", "POST") == 1
    heads = git("ls-remote", hub.git_url(repo_id), env=env).stdout
    for ref, sha in seeded.refs.items():
        assert f"{sha}\t{ref}" in heads
    assert (clone / "model.safetensors").read_bytes() == \
        seeded.builder.tip().files["model.safetensors"].data  # type: ignore[union-attr]


def test_chunked_and_gzip_request_bodies(sandbox, git, tmp_path, auth_env, unique_name):
    hub, repo_id, env = _setup(sandbox, "git", auth_env, unique_name)
    work = tmp_path / "work"
    git("init", "-b", "main", str(work))
    (work / "big.txt").write_bytes(random_bytes(300_000, "plain"))  # a pack bigger than postBuffer
    git("add", ".", cwd=work)
    git("commit", "-m", "big", cwd=work)
    for n in range(40):  # many refs: the fetch request grows past 1 KiB, so git gzips it
        git("branch", f"b{n:02d}", cwd=work)
        (work / "f.txt").write_text(str(n))
        git("commit", "-qam", f"c{n}", "--allow-empty", cwd=work)
    git("-c", "http.postBuffer=65536", "push", hub.git_url(repo_id), "--all", cwd=work, env=env)
    assert hub.counters.snapshot().features.get("chunked-request", 0) >= 1

    clone = tmp_path / "clone"
    git("-c", "protocol.version=0", "clone", "--mirror", hub.git_url(repo_id), str(clone), env=env)
    git("-c", "protocol.version=0", "fetch", "origin", cwd=clone, env=env)
    assert hub.counters.snapshot().features.get("gzip-request", 0) >= 1
    assert len(git("for-each-ref", cwd=clone).stdout.splitlines()) == 41


def test_push_with_missing_lfs_objects_is_rejected(sandbox, git, tmp_path, auth_env, unique_name):
    hub, repo_id, env = _setup(sandbox, "git", auth_env, unique_name)
    source = tmp_path / "source.git"
    git("init", "--bare", "-b", "main", str(source))
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(b"never uploaded")})
    builder.write(source)  # a bare repo without LFS hooks: pushes refs, never objects
    done = git("push", hub.git_url(repo_id), "main", cwd=source, env=env, check=False)
    assert done.returncode != 0
    assert "LFS objects are missing" in done.stderr
    assert hub.refs(repo_id) == {}

    hub.put_lfs_object(repo_id, b"never uploaded")  # once the object is there, the push passes
    git("push", hub.git_url(repo_id), "main", cwd=source, env=env)
    assert hub.refs(repo_id)["refs/heads/main"] == builder.tip().sha


@pytest.mark.parametrize("kind,refused", [("git", False), ("huggingface", True), ("modelscope", True)])
def test_deleting_the_default_branch(sandbox, git, tmp_path, auth_env, unique_name, kind, refused):
    hub, repo_id, env = _setup(sandbox, kind, auth_env, unique_name, create=False)
    builder = RepoBuilder(default_branch=hub.kind.default_branch)
    builder.commit({"a.txt": "a"})
    builder.commit({"b.txt": "b"}, branch="other")
    builder.push_to_hub(hub, repo_id)
    branch = hub.kind.default_branch
    local = tmp_path / "local"
    git("init", "-q", str(local))
    done = git("push", hub.git_url(repo_id), f":refs/heads/{branch}", cwd=local, env=env, check=False)
    assert (done.returncode != 0) == refused, done.stderr
    assert (f"refs/heads/{branch}" in hub.refs(repo_id)) == refused
    git("push", hub.git_url(repo_id), ":refs/heads/other", cwd=local, env=env)  # others may go


def test_anonymous_push_is_challenged_and_read_token_cannot_push(sandbox, git, tmp_path, auth_env, unique_name):
    hub, repo_id, env = _setup(sandbox, "git", auth_env, unique_name)
    work = tmp_path / "work"
    git("init", "-b", "main", str(work))
    git("commit", "--allow-empty", "-m", "x", cwd=work)
    anonymous = git("push", hub.git_url(repo_id), "main", cwd=work, check=False)
    assert anonymous.returncode != 0
    assert hub.counters.snapshot().status_count("git-info-refs", 401) == 1
    read_env = auth_env(hub.endpoint, hub.issue_token("alice", "read"), "alice")
    reader = git("push", hub.git_url(repo_id), "main", cwd=work, env=read_env, check=False)
    assert reader.returncode != 0
    assert hub.counters.snapshot().status_count("git-info-refs", 403) == 1
    git("push", hub.git_url(repo_id), "main", cwd=work, env=env)


def test_push_policy_messages_are_the_kinds_words(sandbox, git, tmp_path, auth_env, unique_name, monkeypatch):
    from gitmirror.sandbox.kinds import GitKind, PushPolicy

    hub, repo_id, env = _setup(sandbox, "git", auth_env, unique_name)
    policy = PushPolicy(protected_branches=("main",), messages={"lfs_missing": "Hub says: {count} missing ({oid})"})
    monkeypatch.setattr(GitKind, "push_policy", lambda self, hub, key: policy)
    source = tmp_path / "source.git"
    git("init", "--bare", "-b", "main", str(source))
    builder = RepoBuilder()
    builder.commit({"w.bin": lfs(b"absent")})
    builder.write(source)
    done = git("push", hub.git_url(repo_id), "main", cwd=source, env=env, check=False)
    assert f"Hub says: 1 missing ({lfs(b'absent').oid})" in done.stderr


def test_storage_on_another_host_name(sandbox, git, tmp_path, auth_env, unique_name):
    hub, repo_id, env = _setup(sandbox, "git", auth_env, unique_name, storage_host="localhost")
    assert hub.storage_endpoint.startswith("http://localhost:")
    work = tmp_path / "work"
    git("init", "-b", "main", str(work))
    (work / ".gitattributes").write_text(LFS_ATTRIBUTES)
    (work / "w.bin").write_bytes(random_bytes(10_000, "host"))
    git("add", ".", cwd=work)
    git("commit", "-m", "w", cwd=work)
    git("push", hub.git_url(repo_id), "main", cwd=work, env=env)
    clone = tmp_path / "clone"
    git("clone", hub.git_url(repo_id), str(clone), env=env)
    assert (clone / "w.bin").read_bytes() == (work / "w.bin").read_bytes()
    assert hub.token_leaks == 0
