"""Any other git host, a file:// URL or a local path.

Local repositories keep their LFS objects where git-lfs itself looks (``<git dir>/lfs/objects``:
``<repo>/lfs/objects`` for a bare repository, ``.git/lfs/objects`` for a working copy), so
``git lfs fetch`` / ``git lfs fsck`` work on a mirror made here. A missing local destination is
created with ``git init --bare``. Remote hosts cannot be created through git: they must exist.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from gitmirror.credentials import Token, describe, find_git_credential, token_from
from gitmirror.errors import AuthError, RepoNotFoundError, UsageError
from gitmirror.gitrepo import local_git_dir, local_head_branch
from gitmirror.hubs._support import CallOptions, probe_lfs_write
from gitmirror.hubs.base import GitAuth, Hub, RepoInfo
from gitmirror.specs import strip_userinfo

if TYPE_CHECKING:
    from gitmirror.remote import RemoteRefs
    from gitmirror.lfs import LfsStore
    from gitmirror.specs import RepoSpec

log = logging.getLogger("gitmirror.hubs.git")

#: User name sent with an explicit token: GitLab requires "oauth2" for OAuth tokens and
#: accepts any name with a personal token; GitHub and Gitea accept any name.
TOKEN_USERNAME = "oauth2"
_UNSET = object()


def lfs_url_for(url: str) -> str:
    """git-lfs's default LFS endpoint of a remote URL (ssh remotes map to https on the same host)."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = _ssh_to_https(base)
    return f"{base}/info/lfs" if base.endswith(".git") else f"{base}.git/info/lfs"


def _ssh_to_https(url: str) -> str:
    if "://" in url:
        parts = urlsplit(url)
        return f"https://{parts.hostname}{parts.path}"
    user_host, _, path = url.partition(":")  # scp-like: [user@]host:path
    return f"https://{user_host.rsplit('@', 1)[-1]}/{path.lstrip('/')}"


class PlainGit(Hub):
    """A repository on any plain git host, reached with git alone: a local path, file://, http(s) or ssh.

    Unlike the hub adapters it has no API: it cannot create a remote repository, and it learns
    everything (existence, default branch) from git itself.
    """

    new_repo_default_branch = "main"

    def __init__(
        self,
        spec: "RepoSpec",
        token: Token | None = None,
        env: Mapping[str, str] | None = None,
        opts: CallOptions | None = None,
    ) -> None:
        if spec.host != "git":
            raise ValueError(f"not a plain git spec: {spec.display}")
        self.spec = spec
        self._env = os.environ if env is None else env
        self._opts = opts or CallOptions()
        self._url, url_token = _split_credentials(spec.url) if spec.url else (None, None)
        # Explicit token first, then one written into the URL; helpers are asked lazily.
        self._token: Token | None | object = token or url_token or _UNSET

    # --- where it is -------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        return self.spec.path.expanduser().absolute() if self.spec.path is not None else None

    @property
    def git_url(self) -> str:
        if self.path is not None:
            return str(self.path)
        assert self._url is not None
        return self._url

    @property
    def is_http(self) -> bool:
        return self.path is None and self.git_url.startswith(("http://", "https://"))

    @property
    def lfs_url(self) -> str | None:
        return None if self.path is not None else lfs_url_for(self.git_url)

    # --- credentials -------------------------------------------------------------------------

    def _credential(self) -> Token | None:
        if self._token is _UNSET:
            self._token = find_git_credential(self.git_url, self._env) if self.is_http else None
        return self._token  # type: ignore[return-value]

    @property
    def credential_source(self) -> str:
        if self.path is not None:
            return "none (local repository)"
        return describe(self._credential())

    def git_auth(self) -> GitAuth | None:
        if not self.is_http:
            return None  # local: no auth; ssh: the user's ssh agent and keys
        token = self._credential()
        if token is None:
            return None
        return GitAuth(token.username or TOKEN_USERNAME, token.value)

    def lfs_store(self) -> "LfsStore":
        from gitmirror.lfs import LocalLfsStore

        if self.path is not None and self.lfs_endpoint is None:
            return LocalLfsStore(self._lfs_objects_dir())
        return self._http_lfs_store(self.lfs_url, self.git_auth() or self._ssh_lfs_auth())

    def _ssh_lfs_auth(self) -> GitAuth | None:
        # git talks ssh (keys), but LFS of an ssh remote is https on the same host; an explicit
        # token is the only credential we can send there (git-lfs-authenticate is not used).
        token = self._token if isinstance(self._token, Token) else None
        return GitAuth(token.username or TOKEN_USERNAME, token.value) if token and not self.is_http else None

    def _lfs_objects_dir(self) -> Path:
        assert self.path is not None
        git_dir = local_git_dir(self.path)
        return (git_dir or self.path) / "lfs" / "objects"

    # --- preflight ---------------------------------------------------------------------------

    def preflight_source(self) -> RepoInfo:
        if self.path is not None:
            if local_git_dir(self.path) is None:
                raise RepoNotFoundError(
                    f"there is no git repository at {self.path}", hint="check the path (a bare repository or a working copy)"
                )
            return RepoInfo(exists=True, default_branch=local_head_branch(self.path))
        refs = self._ls_remote()
        return RepoInfo(exists=True, default_branch=_branch_name(refs.head))

    def ensure_destination(self, private: bool | None) -> RepoInfo:
        # ``private`` means nothing to a path or a plain git host; it is ignored on purpose.
        if self.path is not None:
            return self._ensure_local()
        try:
            refs = self._ls_remote()
        except RepoNotFoundError as exc:
            raise RepoNotFoundError(
                f"{self.display_name()} does not exist and cannot be created over git",
                hint="create the repository on its host first (or mirror to hf://, ms:// or a local path)",
            ) from exc
        if self.is_http:
            probe_lfs_write(self.lfs_store(), self.display_name(), f"the credentials from {self.credential_source}")
        return RepoInfo(exists=True, default_branch=_branch_name(refs.head))

    def _ensure_local(self) -> RepoInfo:
        from gitmirror.gitrepo import init_bare

        path = self.path
        assert path is not None
        if local_git_dir(path) is not None:
            return RepoInfo(exists=True, default_branch=local_head_branch(path))
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(
                f"{path} exists and is not a git repository",
                hint="give a new path (it will be created as a bare repository) or an existing repository",
            )
        init_bare(path, self.new_repo_default_branch)
        log.info("created bare repository %s", path)
        return RepoInfo(exists=True, default_branch=self.new_repo_default_branch, created=True)

    def _ls_remote(self) -> "RemoteRefs":
        try:
            return self.remote().ls_remote()
        except AuthError as exc:
            if self.is_http and self._credential() is None:
                raise AuthError(
                    f"{self.display_name()} needs credentials and none were found",
                    hint="set GITMIRROR_SRC_TOKEN / GITMIRROR_DST_TOKEN, or store them with a git credential helper",
                ) from exc
            raise


def _split_credentials(url: str) -> tuple[str, Token | None]:
    """Take a password out of ``https://user:secret@host/...``: it goes to git by header, never in a URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.password is None:
        return url, None
    token = token_from(unquote(parts.password), "user-info of the repository URL", username=unquote(parts.username or "") or None)
    return strip_userinfo(url), token


def _branch_name(ref: str | None) -> str | None:
    if ref and ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    return None
