"""Independent judges of a mirror: the real git and git-lfs clients, and the bytes themselves.

Nothing here uses gitmirror's code: a destination is cloned fresh with git, its LFS objects are
fetched with git-lfs, and each object's bytes are hashed and compared with what the source holds.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

GIT_TIMEOUT = 180


def auth_env(url: str, user: str | None, token: str | None, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus credentials for ``url`` passed through git's environment (never argv)."""
    env = dict(base)
    if token is None or not url.startswith("http"):
        return env
    header = "Authorization: Basic " + base64.b64encode(f"{user or 'user'}:{token}".encode()).decode()
    index = int(env.get("GIT_CONFIG_COUNT", "0"))
    env["GIT_CONFIG_COUNT"] = str(index + 1)
    # Keyed on the origin so that git-lfs sends it to the LFS endpoint too (HF's is "<url>.git/info/lfs"),
    # but never to the storage host, which has another port.
    parts = urlsplit(url)
    env[f"GIT_CONFIG_KEY_{index}"] = f"http.{parts.scheme}://{parts.netloc}/.extraHeader"
    env[f"GIT_CONFIG_VALUE_{index}"] = header
    return env


def git(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def remote_refs(url: str, env: dict[str, str]) -> dict[str, str]:
    """Refs of a remote as git ls-remote shows them (peeled entries left out)."""
    out = git(env, "ls-remote", url)
    refs = {}
    for line in out.splitlines():
        sha, name = line.split("\t")
        if name != "HEAD" and not name.endswith("^{}"):
            refs[name] = sha
    return refs


def clone_and_check_lfs(url: str, env: dict[str, str], workdir: Path, expected: dict[str, bytes]) -> Path:
    """Clone ``url`` fresh, fetch every LFS object of every ref with git-lfs, run ``git lfs fsck``,
    and check that each expected object (oid -> bytes) is there with exactly those bytes."""
    clone = workdir / "judge-clone"
    git(env, "clone", "--quiet", url, str(clone))
    git(env, "lfs", "fetch", "--all", cwd=clone)
    fsck = git(env, "lfs", "fsck", cwd=clone)
    assert "fsck OK" in fsck, fsck
    store = clone / ".git" / "lfs" / "objects"
    for oid, data in expected.items():
        path = store / oid[:2] / oid[2:4] / oid
        assert path.exists(), f"LFS object {oid} was not fetched from the mirror"
        got = path.read_bytes()
        assert hashlib.sha256(got).hexdigest() == oid and got == data
    return clone


def lfs_oids_reachable(git_dir: Path, tips: list[str], env: dict[str, str] | None = None) -> set[str]:
    """Every LFS object id that the history of ``tips`` points to, read with git plumbing alone."""
    if not tips:
        return set()
    run_env = dict(env or {})
    run_env.setdefault("PATH", "/usr/bin:/bin")
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "rev-list", "--objects", *tips],
                             capture_output=True, text=True, check=True, env=run_env, timeout=GIT_TIMEOUT).stdout
    shas = "\n".join(line.split(" ", 1)[0] for line in listing.splitlines()) + "\n"
    check = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch-check"], input=shas,
                           capture_output=True, text=True, check=True, env=run_env, timeout=GIT_TIMEOUT).stdout
    small = [line.split()[0] for line in check.splitlines() if line.split()[1] == "blob" and int(line.split()[2]) < 1024]
    oids = set()
    for sha in small:
        body = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "blob", sha], capture_output=True,
                              check=True, env=run_env, timeout=GIT_TIMEOUT).stdout
        if body.startswith(b"version https://git-lfs.github.com/spec/v1\n"):
            for line in body.decode().splitlines():
                if line.startswith("oid sha256:"):
                    oids.add(line.removeprefix("oid sha256:"))
    return oids


def modelscope_view(src_refs: dict[str, str]) -> dict[str, str]:
    """What a mirror from Hugging Face to ModelScope must leave there: the source's branches and tags,
    its default branch ``main`` as ModelScope's ``master``, and no ``refs/pr/*``."""
    mapped = {("refs/heads/master" if ref == "refs/heads/main" else ref): sha for ref, sha in src_refs.items()}
    return {ref: sha for ref, sha in mapped.items() if ref.startswith(("refs/heads/", "refs/tags/"))}


# --------------------------------------------------------------------------------------------
# The hubs' own download clients (huggingface_hub, modelscope), run as their users run them
# --------------------------------------------------------------------------------------------
SDK_TIMEOUT = 180  # seconds for one SDK process (its imports and every download it makes)

# The SDKs run in a child process of their own: huggingface_hub reads HF_ENDPOINT and
# HF_HUB_OFFLINE when it is imported, and modelscope writes under MODELSCOPE_HOME as it starts,
# so each gets a fresh interpreter with exactly the environment below. Arguments (the token
# among them) arrive as JSON on stdin, never in argv.
_SDK_SCRIPT = r"""
import json, sys
job = json.load(sys.stdin)
if job["sdk"] == "huggingface":
    from huggingface_hub import snapshot_download
    for repo_id, revision, dest in job["downloads"]:
        snapshot_download(repo_id, repo_type=job["repo_type"], revision=revision, local_dir=dest,
                          endpoint=job["endpoint"], token=job["token"] or False, max_workers=2)
else:
    from modelscope import snapshot_download
    from modelscope.hub.snapshot_download import dataset_snapshot_download
    for repo_id, revision, dest in job["downloads"]:
        if job["repo_type"] == "dataset":
            dataset_snapshot_download(repo_id, revision=revision, local_dir=dest, token=job["token"],
                                      endpoint=job["endpoint"], max_workers=2)
        else:
            snapshot_download(repo_id, revision=revision, local_dir=dest, token=job["token"],
                              endpoint=job["endpoint"], max_workers=2)
"""

#: What each SDK leaves in ``local_dir`` besides the repository's files (its own bookkeeping).
SDK_METADATA = {"huggingface": (".cache/huggingface/",), "modelscope": ()}


def sdk_env(sdk: str, endpoint: str, home: Path) -> dict[str, str]:
    """A clean environment for one SDK process: its caches and settings under ``home``, no proxy
    for loopback, nothing inherited from the tester's own configuration."""
    import os

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    # A proxy and CA bundle of the tester's network, for the live probes of the real hubs.
    env.update({k: v for k, v in os.environ.items()
                if k in ("HTTPS_PROXY", "https_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")})
    if sdk == "huggingface":
        env.update({"HF_ENDPOINT": endpoint, "HF_HOME": str(home / "hf"), "HF_HUB_CACHE": str(home / "hf" / "hub"),
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    else:
        env.update({"MODELSCOPE_ENDPOINT": endpoint, "MODELSCOPE_HOME": str(home / "ms"),
                    "MODELSCOPE_CACHE": str(home / "ms-cache")})
    return env


def sdk_download(sdk: str, endpoint: str, repo_id: str, revisions: list[str], token: str | None, dest: Path,
                 repo_type: str = "model") -> dict[str, dict[str, bytes]]:
    """Download ``repo_id`` at each revision with the real SDK (``"huggingface"``: huggingface_hub's
    ``snapshot_download``; ``"modelscope"``: modelscope's) into an empty directory each, in one child
    process. Returns {revision: {path: bytes}}, the SDK's own bookkeeping files left out."""
    import json
    import sys

    home = dest / f"{sdk}-home"
    home.mkdir(parents=True, exist_ok=True)
    targets = {revision: dest / f"{sdk}-{index}" for index, revision in enumerate(revisions)}
    job = {"sdk": sdk, "endpoint": endpoint, "token": token, "repo_type": repo_type,
           "downloads": [[repo_id, revision, str(path)] for revision, path in targets.items()]}
    done = subprocess.run([sys.executable, "-c", _SDK_SCRIPT], input=json.dumps(job), text=True,
                          env=sdk_env(sdk, endpoint, home), capture_output=True, timeout=SDK_TIMEOUT)
    if done.returncode != 0:
        raise AssertionError(f"{sdk} snapshot_download of {repo_id} failed:\n{done.stderr[-4000:]}")
    return {revision: read_tree(path, SDK_METADATA[sdk]) for revision, path in targets.items()}


def read_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path (``/``-separated), except those under ``skip``."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(skip):
            found[rel] = path.read_bytes()
    return found


def hf_snapshot(hub, repo_id: str, revision: str, token: str | None, dest: Path, repo_type: str = "model") -> dict[str, bytes]:
    """huggingface_hub's ``snapshot_download`` of one revision from ``hub``: {path: bytes}."""
    return sdk_download("huggingface", hub.endpoint, repo_id, [revision], token, dest, repo_type)[revision]


def ms_snapshot(hub, repo_id: str, revision: str, token: str | None, dest: Path, repo_type: str = "model") -> dict[str, bytes]:
    """modelscope's ``snapshot_download`` of one revision from ``hub``: {path: bytes}."""
    return sdk_download("modelscope", hub.endpoint, repo_id, [revision], token, dest, repo_type)[revision]


def assert_same_files(got: dict[str, bytes], expected: dict[str, bytes], what: str) -> None:
    """Byte for byte, with a readable account of what differs."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    changed = sorted(p for p in set(got) & set(expected) if got[p] != expected[p])
    assert not (missing or extra or changed), f"{what}: missing {missing}, unexpected {extra}, different {changed}"


def builder_tree(builder, revision: str) -> dict[str, bytes]:
    """The source tree a RepoBuilder recorded at a branch or tag: what a checkout (after
    ``git lfs pull``) holds, path -> bytes."""
    from gitmirror.sandbox.seed import file_bytes

    commit = builder.tags[revision].target if revision in builder.tags else builder.tip(revision)
    return {path: file_bytes(content) for path, content in commit.files.items()}


def judge_sdk_download(sdk: str, hub, repo_id: str, token: str | None, dest: Path, builder,
                       revisions: dict[str, str], repo_type: str = "model") -> None:
    """The destination, downloaded by its hub's own SDK at each destination revision, holds exactly
    the source tree at the matching source revision ({destination revision: source branch or tag})."""
    got = sdk_download(sdk, hub.endpoint, repo_id, list(revisions), token, dest, repo_type)
    for dst_revision, src_revision in revisions.items():
        assert_same_files(got[dst_revision], builder_tree(builder, src_revision),
                          f"{sdk} download of {repo_id}@{dst_revision}")
