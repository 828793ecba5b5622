"""Opt-in live probes of the real hubs: settle what no document says (docs/hubs.md, "Live probes").

``pytest -m live tests/test_live.py`` with, per hub, a token and a scratch namespace it may
create private repositories in:

* ``GITMIRROR_LIVE_HF_TOKEN``, ``GITMIRROR_LIVE_HF_NAMESPACE`` (``GITMIRROR_LIVE_HF_ENDPOINT``,
  default https://huggingface.co);
* ``GITMIRROR_LIVE_MS_TOKEN``, ``GITMIRROR_LIVE_MS_NAMESPACE`` (``GITMIRROR_LIVE_MS_ENDPOINT``,
  default https://www.modelscope.cn);
* ``GITMIRROR_LIVE_REPORT``: the directory of the JSON records (default: the current one).

Each probe creates a private scratch repository with the hub's SDK, records its first commit,
asks the LFS batch API for upload actions (a small and a declared-huge object, never uploaded),
mirrors a tiny LFS history into it with gitmirror, downloads it with the hub's own SDK, pushes
what the hub is said to refuse, writes ``gitmirror-live-<hub>.json`` and deletes the repository.
Without the variables the live tests are skipped; the same probe runs against the sandbox hubs
(endpoints overridden) in the ordinary suite, so its code paths stay working.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from gitmirror import api
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, judge_sdk_download

HTTP_TIMEOUT = 60  # seconds per probe request
DEFAULT_ENDPOINTS = {"huggingface": "https://huggingface.co", "modelscope": "https://www.modelscope.cn"}
ENV_PREFIX = {"huggingface": "GITMIRROR_LIVE_HF", "modelscope": "GITMIRROR_LIVE_MS"}
HUGE = 6 * 1024 ** 3  # a declared size above HF's multipart threshold (5 GB); nothing is uploaded


@dataclass(frozen=True)
class LiveHub:
    """One hub to probe: ``kind`` ("huggingface" | "modelscope"), its endpoint, an API token
    (ModelScope: the SDK token) and a namespace the token may create repositories in."""

    kind: str
    endpoint: str
    token: str
    namespace: str

    @property
    def default_branch(self) -> str:
        return "main" if self.kind == "huggingface" else "master"

    def spec(self, repo_id: str) -> str:
        return f"{'hf' if self.kind == 'huggingface' else 'ms'}://{repo_id}"

    def git_url(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}" if self.kind == "huggingface" else f"{self.endpoint}/models/{repo_id}.git"

    def lfs_batch_url(self, repo_id: str) -> str:
        url = self.git_url(repo_id)
        return (url if url.endswith(".git") else url + ".git") + "/info/lfs/objects/batch"


def live_hub_from_env(kind: str, env: dict[str, str]) -> LiveHub | None:
    """The hub named by the environment, or None when its token or namespace is missing."""
    prefix = ENV_PREFIX[kind]
    token, namespace = env.get(f"{prefix}_TOKEN"), env.get(f"{prefix}_NAMESPACE")
    if not token or not namespace:
        return None
    return LiveHub(kind, env.get(f"{prefix}_ENDPOINT", DEFAULT_ENDPOINTS[kind]).rstrip("/"), token, namespace)


# --------------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------------
class Probe:
    """One probe of one hub: every step records what the hub did, and no step's failure stops
    the others (an unknown is still worth recording next to a failure). Records hold no token."""

    def __init__(self, hub: LiveHub, workdir: Path, git_env: dict[str, str]) -> None:
        self.hub = hub
        self.workdir = workdir
        self.git_env = git_env
        self.repo_id = f"{hub.namespace}/gitmirror-live-{uuid.uuid4().hex[:8]}"
        self.record: dict[str, Any] = {"hub": hub.kind, "endpoint": hub.endpoint, "repo": self.repo_id}
        self._git_token: str | None = None

    # -- credentials --------------------------------------------------------------------
    def git_token(self) -> str:
        """HF: the token itself; ModelScope: the git token its login hands out."""
        if self._git_token is None:
            if self.hub.kind == "huggingface":
                self._git_token = self.hub.token
            else:
                answer = requests.post(f"{self.hub.endpoint}/api/v1/login", json={"AccessToken": self.hub.token},
                                       timeout=HTTP_TIMEOUT)
                answer.raise_for_status()
                self._git_token = answer.json()["Data"]["AccessToken"]
        return self._git_token

    def git_auth_env(self) -> dict[str, str]:
        user = "user" if self.hub.kind == "huggingface" else "oauth2"
        return auth_env(self.hub.git_url(self.repo_id), user, self.git_token(), self.git_env)

    def scrub(self, text: str) -> str:
        for secret in filter(None, (self.hub.token, self._git_token)):
            text = text.replace(secret, "<token>")
        return text

    def step(self, name: str, action: Any) -> Any:
        try:
            self.record[name] = action()
        except Exception as exc:  # recorded, and the probe goes on
            self.record[name] = {"error": self.scrub(f"{type(exc).__name__}: {exc}")[:2000]}
        return self.record[name]

    # -- steps ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        created = self.step("create", self.create)
        if isinstance(created, dict) and "error" in created:
            return self.record
        try:
            self.step("initial_commit", self.initial_commit)
            self.step("upload_actions", self.upload_actions)
            self.step("mirror", self.mirror)
            self.step("sdk_download", self.sdk_download)
            self.step("refusals", self.refusals)
        finally:
            self.step("deleted", self.delete)
        return self.record

    def create(self) -> dict[str, Any]:
        if self.hub.kind == "huggingface":
            from huggingface_hub import HfApi

            HfApi(endpoint=self.hub.endpoint, token=self.hub.token).create_repo(self.repo_id, private=True)
        else:
            from modelscope_hub.api import HubApi

            HubApi(endpoint=self.hub.endpoint, token=self.hub.token).create_repo(self.repo_id, "model", visibility=1)
        return {"private": True}

    def delete(self) -> bool:
        if self.hub.kind == "huggingface":
            from huggingface_hub import HfApi

            HfApi(endpoint=self.hub.endpoint, token=self.hub.token).delete_repo(self.repo_id)
        else:
            from modelscope_hub.api import HubApi

            HubApi(endpoint=self.hub.endpoint, token=self.hub.token).delete_repo(self.repo_id, "model")
        return True

    def initial_commit(self) -> dict[str, Any]:
        """Unknown on ModelScope: is a new repository empty, or what does its first commit hold?"""
        env, url = self.git_auth_env(), self.hub.git_url(self.repo_id)
        refs = _ls_remote(url, env)
        files: list[str] = []
        if refs:
            clone = self.workdir / "initial"
            _git(env, "clone", "--quiet", "--no-checkout", url, str(clone))
            files = _git(env, "-C", str(clone), "ls-tree", "-r", "--name-only", "HEAD").split("\n")
        return {"refs": sorted(refs), "files": sorted(f for f in files if f)}

    def upload_actions(self) -> dict[str, Any]:
        """Unknowns: where upload hrefs live and how they authenticate, ``verify``, multipart keys,
        and whether multipart is decided per object (one small and one declared-huge object)."""
        small, huge = (hashlib.sha256(f"gitmirror-live-{tag}-{uuid.uuid4()}".encode()).hexdigest() for tag in "ab")
        body = {"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
                "objects": [{"oid": small, "size": 1234}, {"oid": huge, "size": HUGE}]}
        raw = base64.b64encode(f"{'user' if self.hub.kind == 'huggingface' else 'oauth2'}:{self.git_token()}".encode())
        answer = requests.post(self.hub.lfs_batch_url(self.repo_id), json=body, timeout=HTTP_TIMEOUT,
                               headers={"Accept": "application/vnd.git-lfs+json",
                                        "Content-Type": "application/vnd.git-lfs+json",
                                        "Authorization": "Basic " + raw.decode()})
        result: dict[str, Any] = {"status": answer.status_code}
        if answer.ok:
            payload = answer.json()
            objects = {o.get("oid"): o for o in payload.get("objects", [])}
            result["transfer"] = payload.get("transfer")
            result["small"] = describe_object(objects.get(small, {}), self.hub.endpoint)
            result["huge"] = describe_object(objects.get(huge, {}), self.hub.endpoint)
        return result

    def mirror(self) -> dict[str, Any]:
        builder = tiny_history()
        source = self.workdir / "source.git"
        _git(self.git_env, "init", "--quiet", "--bare", "--initial-branch=main", str(source))
        builder.write(source, source / "lfs" / "objects")
        self._builder = builder
        env = {**self.git_env, "HF_ENDPOINT": self.hub.endpoint, "MODELSCOPE_ENDPOINT": self.hub.endpoint}
        result = api.mirror(str(source), self.hub.spec(self.repo_id), dst_token=self.hub.token, env=env,
                            cache_dir=self.workdir / "cache", policy=FAST)
        return {"actions": {u.dst_ref: u.action.value for u in result.plan.updates},
                "objects_moved": result.objects_moved, "verified": result.verified,
                "warnings": [w.code for w in result.plan.warnings]}

    def sdk_download(self) -> dict[str, Any]:
        judge_sdk_download(self.hub.kind, self.hub, self.repo_id, self.hub.token, self.workdir / "sdk",
                           self._builder, {self.hub.default_branch: "main", "v1": "v1"})
        return {"identical": True}

    def refusals(self) -> dict[str, Any]:
        """The hubs' wording (and whether they refuse at all): a 1.1 MB binary file outside LFS,
        and a branch named HEAD (GitLab's rule, so likely ModelScope's)."""
        source = self.workdir / "source.git"
        blob = _git(self.git_env, "--git-dir", str(source), "hash-object", "-w", "--stdin",
                    stdin=b"\0" + random_bytes(1_100_000, "live-binary")).strip()
        tree = _git(self.git_env, "--git-dir", str(source), "mktree",
                    stdin=f"100644 blob {blob}\tbinary.bin\n".encode()).strip()
        identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                    for what, value in (("NAME", "gitmirror probe"), ("EMAIL", "probe@gitmirror.invalid"))}
        commit = _git({**self.git_env, **identity}, "--git-dir", str(source), "commit-tree", tree, "-p", "main",
                      "-m", "probe: a binary file outside LFS").strip()
        main = _git(self.git_env, "--git-dir", str(source), "rev-parse", "main").strip()
        return {"binary_1mb": self.push(source, f"{commit}:refs/heads/gitmirror-probe-binary"),
                "branch_named_HEAD": self.push(source, f"{main}:refs/heads/HEAD")}

    def push(self, source: Path, refspec: str) -> dict[str, Any]:
        done = subprocess.run(["git", "--git-dir", str(source), "push", "--porcelain",
                               self.hub.git_url(self.repo_id), refspec], env=self.git_auth_env(),
                              capture_output=True, text=True, timeout=300)
        lines = [self.scrub(line) for line in (done.stderr + done.stdout).splitlines()
                 if line.startswith(("remote:", "!", "error:")) or "rejected" in line]
        return {"refused": done.returncode != 0, "lines": lines[:40]}


def describe_object(obj: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """What a batch answer says about one object, without any secret: action names, whether
    each href is on the hub's own origin, header *names*, multipart part-key widths."""
    origin = _origin(endpoint)
    described: dict[str, Any] = {"authenticated": obj.get("authenticated"), "error": obj.get("error")}
    for name, action in (obj.get("actions") or {}).items():
        header = action.get("header") or {}
        part_keys = sorted(k for k in header if k.isdigit())
        described[name] = {
            "href_on_hub_origin": _origin(action.get("href", "")) == origin,
            "href_has_query": "?" in action.get("href", ""),
            "header_names": sorted(k for k in header if not k.isdigit()),
            "part_keys": {"count": len(part_keys), "widths": sorted({len(k) for k in part_keys}),
                          "first": part_keys[0] if part_keys else None},
            "expires_in": action.get("expires_in"),
        }
    return described


def tiny_history() -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "---\nlicense: apache-2.0\n---\n# probe\n",
              "weights.bin": lfs(random_bytes(4_000, "live-1"))})
    b.tag("v1", message="probe")
    b.commit({"weights.bin": lfs(random_bytes(5_000, "live-2")), "notes.txt": "probe\n"})
    return b


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _git(env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], env=env, input=stdin, capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.decode(errors='replace')[-1000:]}")
    return done.stdout.decode()


def _ls_remote(url: str, env: dict[str, str]) -> dict[str, str]:
    out = _git(env, "ls-remote", url)
    return {name: sha for sha, name in (line.split("\t") for line in out.splitlines()) if name != "HEAD"}


def write_record(record: dict[str, Any], directory: Path) -> Path:
    path = directory / f"gitmirror-live-{record['hub']}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# The live tests (opt-in) and the same probe against the sandbox
# --------------------------------------------------------------------------------------------
@pytest.mark.live
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", ["huggingface", "modelscope"])
def test_live_probe(kind, git_env, tmp_path):
    hub = live_hub_from_env(kind, dict(os.environ) | _saved_live_env)
    if hub is None:
        pytest.skip(f"set {ENV_PREFIX[kind]}_TOKEN and {ENV_PREFIX[kind]}_NAMESPACE to probe {kind} (docs/hubs.md)")
    record = Probe(hub, tmp_path, git_env).run()
    path = write_record(record, Path(os.environ.get("GITMIRROR_LIVE_REPORT") or _saved_live_env.get(
        "GITMIRROR_LIVE_REPORT", ".")))
    print(f"live record: {path}")
    assert hub.token not in path.read_text(encoding="utf-8")
    assert record.get("deleted") is True, f"scratch repository {record['repo']} may be left over: {record}"
    assert record["mirror"].get("verified") is True and record["sdk_download"] == {"identical": True}, record


# The git_env fixture clears the environment of everything but its own variables; the live
# settings are read once at import, before any fixture runs.
_saved_live_env = {k: v for k, v in os.environ.items() if k.startswith("GITMIRROR_LIVE_")}


@pytest.mark.parametrize("kind", ["huggingface", "modelscope"])
def test_the_live_probe_runs_against_the_sandbox(kind, sandbox, git_env, tmp_path):
    """Same code, sandbox endpoints: every step completes and the record holds no token."""
    hub = sandbox.add_hub(kind, multipart_chunk_size=1024 ** 3)  # a declared 6 GB object: 6 part URLs
    hub.add_user("alice", orgs=("org",))
    token = hub.issue_token("alice")
    live = live_hub_from_env(kind, {f"{ENV_PREFIX[kind]}_TOKEN": token, f"{ENV_PREFIX[kind]}_NAMESPACE": "org",
                                    f"{ENV_PREFIX[kind]}_ENDPOINT": hub.endpoint})
    assert live is not None and live.endpoint == hub.endpoint

    record = Probe(live, tmp_path, git_env).run()
    path = write_record(record, tmp_path)

    text = path.read_text(encoding="utf-8")
    assert token not in text and hub.git_token_for(token) not in text
    assert record["create"] == {"private": True}, record
    assert record["mirror"]["verified"] is True and record["sdk_download"] == {"identical": True}, record
    expected_initial = [".gitattributes"] if kind == "huggingface" else []
    assert record["initial_commit"]["files"] == expected_initial
    actions = record["upload_actions"]
    assert actions["status"] == 200 and "upload" in actions["small"], actions
    assert actions["small"]["upload"]["href_on_hub_origin"] is False  # the sandbox's storage port
    assert set(record["refusals"]) == {"binary_1mb", "branch_named_HEAD"}
    assert all("error" not in value for value in record.values() if isinstance(value, dict)), record
    assert record["deleted"] is True and hub.state.get_repo(hub.key(record["repo"])) is None
