"""One sandbox hub: its state, its bare repositories on disk, and its two ports.

The hub port serves git smart HTTP, the LFS batch API, the kind's REST API and the control
endpoint (``/_sandbox/...``); the storage port serves LFS object hrefs. Both share the hub's
faults and counters.

:class:`Hub` is what kinds, ``lfs.py`` and ``server.py`` receive as ``hub``, typed there by
what each uses of it (``kinds.HubView`` < ``lfs.LfsHubView`` < ``server.ServedHubView``), so
that none of them imports this module: it sits at the top of the sandbox's imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from gitmirror.sandbox.counters import Counters
from gitmirror.sandbox.faults import Faults
from gitmirror.sandbox.http import Request, Response
from gitmirror.sandbox.kinds import HubKind, load_kind
from gitmirror.sandbox.lfs import Signer, handle_batch, object_path
from gitmirror.sandbox.server import HubServer
from gitmirror.sandbox.state import REPO_TYPES, HubState, Principal, RepoKey, RepoRecord, User

# Options every hub understands; a kind may add its own (see its ``default_options``).
CORE_DEFAULTS: Mapping[str, Any] = {
    "href_ttl": 3600,  # seconds an LFS object href stays valid
    "max_batch_objects": 100,  # more objects in one batch request -> 413
    "multipart_enabled": False,  # offer the multipart transfer (the HF kind turns it on)
    "multipart_threshold": 64 * 1024,  # uploads above this many bytes go multipart
    "multipart_chunk_size": 32 * 1024,  # part size of a multipart upload
    # Host name in object hrefs. The storage port always differs from the hub port; naming
    # another host too (e.g. "localhost") also catches clients that scope credentials by
    # host name alone, as the real hubs' storage lives on other hosts.
    "storage_host": None,
    # The link's round-trip time in seconds: every request waits one before its answer, a new
    # connection one more (two with TLS), on both ports. 0: loopback as it is.
    "rtt": 0,
}

HOOK_MODULE = Path(__file__).with_name("prereceive.py")
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def git_env(home: Path) -> dict[str, str]:
    """An environment for the server-side git: no user or system config leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }


class Hub:
    """A hub of one kind. Create with :meth:`gitmirror.sandbox.Sandbox.add_hub`."""

    def __init__(self, kind_name: str, name: str, root: Path, options: Mapping[str, Any]) -> None:
        kind_cls = load_kind(kind_name)
        self.kind: HubKind = kind_cls({**CORE_DEFAULTS, **kind_cls.default_options, **options})
        self.options: dict[str, Any] = self.kind.options
        self.name = name
        self.root = root
        self.repos_root = root / "repos"
        self._repo_paths: dict[RepoKey, Path] = {}
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.state = HubState()
        self.faults = Faults()
        self.counters = Counters()
        self.signer = Signer()
        self.token_leaks = 0  # storage requests refused because they carried a hub token
        self.last_git_error = ""  # stderr of the last failed git http-backend, for debugging
        self.env = git_env(root)
        self.endpoint = ""
        self.storage_endpoint = ""
        self._servers: list[HubServer] = []

    def __repr__(self) -> str:
        return f"<Hub {self.name} kind={self.kind.name} {self.endpoint}>"

    # -- lifecycle (called by Sandbox) ---------------------------------------------------
    def start(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        """Serve on ``host`` (two new ports); with ``tls`` (a server-side context holding a
        certificate for ``host`` and the storage host) both ports speak HTTPS only."""
        main = HubServer(self, "hub", host, tls)
        storage = HubServer(self, "storage", host, tls)
        self._servers = [main, storage]
        self.endpoint = main.url
        storage_host = self.options.get("storage_host") or host
        scheme = "https" if tls else "http"
        self.storage_endpoint = f"{scheme}://{storage_host}:{storage.server_address[1]}"
        for server in self._servers:
            server.start()

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers = []

    # -- users and tokens ----------------------------------------------------------------
    def add_user(self, name: str, orgs: tuple[str, ...] | list[str] = (), email: str | None = None) -> User:
        return self.state.add_user(name, orgs, email)

    def add_org(self, name: str, members: tuple[str, ...] | list[str] = ()) -> None:
        self.state.add_org(name, members)

    def issue_token(self, user: str, scope: str = "write") -> str:
        """A new API token (for ModelScope: the SDK token; see :meth:`git_token_for`)."""
        return self.kind.issue_token(self, user, scope)

    def git_token_for(self, api_token: str) -> str:
        """The token git must use, as the hub's login would hand it out."""
        return self.kind.git_token_for(self, api_token)

    # -- repositories --------------------------------------------------------------------
    def key(self, repo: str | RepoKey, repo_type: str = "model") -> RepoKey:
        if isinstance(repo, RepoKey):
            return repo
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}")
        return RepoKey(repo_type, repo.strip("/"))

    def repo(self, repo: str | RepoKey, repo_type: str = "model") -> RepoRecord:
        record = self.state.get_repo(self.key(repo, repo_type))
        if record is None:
            raise KeyError(f"no repository {repo} ({repo_type}) on hub {self.name}")
        return record

    def repo_path(self, repo: str | RepoKey, repo_type: str = "model") -> Path:
        key = self.key(repo, repo_type)
        path = self._repo_paths.get(key)
        if path is None:  # asked on every LFS request; a Path costs more to build than to find
            path = self._repo_paths[key] = self.repos_root / f"{key.repo_type}s" / f"{key.repo_id}.git"
        return path

    def git_url(self, repo: str | RepoKey, repo_type: str = "model") -> str:
        return self.kind.git_url(self, self.key(repo, repo_type))

    def lfs_url(self, repo: str | RepoKey, repo_type: str = "model") -> str:
        """The standard LFS endpoint: ``<url>.git/info/lfs`` (``<url>/info/lfs`` if it ends in .git)."""
        url = self.git_url(repo, repo_type)
        return (url if url.endswith(".git") else url + ".git") + "/info/lfs"

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False,
                    gated: str | bool = False, initial_commit: bool | None = None,
                    **extra: Any) -> RepoRecord:
        """Create a bare repository (raises ``FileExistsError`` if it exists).

        ``initial_commit=None`` lets the kind decide (HF: yes; ModelScope: per-hub option;
        git: no); a server-made first commit holds ``.gitattributes`` on the default branch.
        """
        key = self.key(repo_id, repo_type)
        parts = key.repo_id.split("/")
        if len(parts) != 2 or not all(REPO_NAME.fullmatch(part) for part in parts):
            # Also keeps every repository inside the hub's directory (no "..", no absolute paths).
            raise ValueError(f"repo_id must be owner/name of letters, digits, '.', '_' or '-': {repo_id!r}")
        if gated is True:
            gated = "auto"
        path = self.repo_path(key)
        record = RepoRecord(key=key, path=path, private=private, gated=gated, extra=dict(extra))
        self.state.register_repo(record)  # first, so concurrent creators get FileExistsError
        try:
            self._init_bare(path)
            if initial_commit is None:
                initial_commit = self.kind.new_repo_initial_commit(self, key)
            if initial_commit:
                self._initial_commit(key, path)
        except BaseException:
            with self.state.lock:
                self.state.repos.pop(key, None)
            raise
        return record

    def _init_bare(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        branch = self.kind.default_branch
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(path)],
                       check=True, env=self.env, capture_output=True)
        # Written directly: one process per repository instead of one per setting.
        with open(path / "config", "a", encoding="utf-8") as config:
            config.write("[http]\n\treceivepack = true\n"
                         "[uploadpack]\n\tallowFilter = true\n\tallowAnySHA1InWant = true\n"
                         "[receive]\n\tadvertisePushOptions = true\n"
                         # deletions of the default branch are the kind's call (PushPolicy)
                         "\tdenyDeleteCurrent = ignore\n")
        hook = path / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' -I -S '{HOOK_MODULE}'\n", encoding="utf-8")
        hook.chmod(0o755)
        (path / "lfs" / "objects").mkdir(parents=True, exist_ok=True)

    def _initial_commit(self, key: RepoKey, path: Path) -> None:
        files = self.kind.initial_commit_files(self, key)
        entries = []
        for name, data in sorted(files.items()):
            sha = self._git(path, "hash-object", "-w", "--stdin", stdin=data)
            entries.append(f"100644 blob {sha}\t{name}\n")
        tree = self._git(path, "mktree", stdin="".join(entries).encode())
        env = {"GIT_AUTHOR_NAME": self.kind.bot_name, "GIT_AUTHOR_EMAIL": self.kind.bot_email,
               "GIT_COMMITTER_NAME": self.kind.bot_name, "GIT_COMMITTER_EMAIL": self.kind.bot_email}
        commit = self._git(path, "commit-tree", tree, "-m", "initial commit", extra_env=env)
        self._git(path, "update-ref", f"refs/heads/{self.kind.default_branch}", commit)

    def _git(self, path: Path, *args: str, stdin: bytes | None = None,
             extra_env: Mapping[str, str] | None = None) -> str:
        env = {**self.env, **(extra_env or {})}
        done = subprocess.run(["git", "--git-dir", str(path), *args], input=stdin, env=env,
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode("utf-8", "replace").strip()

    def run_git(self, repo: str | RepoKey, *args: str, repo_type: str = "model") -> str:
        """Run git in a repository's bare directory and return its stdout (stripped)."""
        return self._git(self.repo_path(repo, repo_type), *args)

    def refs(self, repo: str | RepoKey, repo_type: str = "model") -> dict[str, str]:
        """All refs of a repository: ``{"refs/heads/main": sha, ...}`` (tags not peeled)."""
        out = self.run_git(repo, "for-each-ref", "--format=%(refname) %(objectname)", repo_type=repo_type)
        pairs = (line.split(" ", 1) for line in out.splitlines() if line)
        return {name: sha for name, sha in pairs}

    # -- LFS store -----------------------------------------------------------------------
    def lfs_object_path(self, repo: str | RepoKey, oid: str, repo_type: str = "model") -> Path:
        return object_path(self.repo_path(repo, repo_type), oid)

    def has_lfs_object(self, repo: str | RepoKey, oid: str, repo_type: str = "model") -> bool:
        return self.lfs_object_path(repo, oid, repo_type).is_file()

    def lfs_objects(self, repo: str | RepoKey, repo_type: str = "model") -> set[str]:
        store = self.repo_path(repo, repo_type) / "lfs" / "objects"
        return {p.name for p in store.glob("*/*/*") if p.is_file()}

    def put_lfs_object(self, repo: str | RepoKey, data: bytes, repo_type: str = "model") -> tuple[str, int]:
        """Place an object straight into the store (for seeding); returns ``(oid, size)``."""
        oid = hashlib.sha256(data).hexdigest()
        target = self.lfs_object_path(repo, oid, repo_type)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return oid, len(data)

    def remove_lfs_object(self, repo: str | RepoKey, oid: str, repo_type: str = "model") -> None:
        self.lfs_object_path(repo, oid, repo_type).unlink(missing_ok=True)

    def lfs_batch(self, request: Request, key: RepoKey, principal: Principal | None) -> Response:
        """The standard batch handler, for kinds that expose extra batch URLs."""
        return handle_batch(self, key, request, principal)

    # -- control endpoint ----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.name, "endpoint": self.endpoint,
                "storage_endpoint": self.storage_endpoint,
                "default_branch": self.kind.default_branch,
                "options": {k: v for k, v in self.options.items() if _jsonable(v)}}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False
