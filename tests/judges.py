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
