"""What every hub adapter offers the planner and the executor."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitmirror.lfs import LfsStore
    from gitmirror.specs import RepoSpec


@dataclass(frozen=True)
class GitAuth:
    """Credentials for git over HTTP(S). ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class RepoInfo:
    """What a hub says about a repository. ``None`` means the hub does not tell."""

    exists: bool
    private: bool | None = None
    default_branch: str | None = None
    created: bool = False  # True when ensure_destination() just created it


class Hub(ABC):
    """One repository on one host, with the credentials to reach it."""

    spec: "RepoSpec"
    #: Branch a brand-new repository of this host starts on ("main" on HF, "master" on ModelScope).
    new_repo_default_branch: str = "main"

    @property
    @abstractmethod
    def git_url(self) -> str:
        """The git remote URL, without credentials (a path for local repositories)."""

    @abstractmethod
    def git_auth(self) -> GitAuth | None:
        """Credentials git should send to ``git_url``, or None for anonymous/local."""

    @abstractmethod
    def lfs_store(self) -> "LfsStore":
        """Where this repository's LFS objects live (batch API, or a local lfs/objects dir)."""

    @abstractmethod
    def preflight_source(self) -> RepoInfo:
        """Check the repository can be read. Raises RepoNotFoundError, AuthError, GatedRepoError."""

    @abstractmethod
    def ensure_destination(self, private: bool | None) -> RepoInfo:
        """Make sure the repository exists and can be written, creating it when missing.

        ``private=None`` means "the host's default"; the caller passes the source's visibility.
        Raises AuthError, PermissionDeniedError.
        """

    def warm_up(self) -> None:
        """Load what this hub's API calls need (imports), without making any request."""

    @property
    def credential_source(self) -> str:
        """Where this hub's token came from (never the token itself), for messages and ``doctor``."""
        return "none (anonymous)"

    def display_name(self) -> str:
        return self.spec.display
