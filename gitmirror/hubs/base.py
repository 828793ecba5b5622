"""What every hub adapter offers the planner and the executor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmirror.hubs._support import CallOptions
from gitmirror.remote import GitAuth, Remote
from gitmirror.rules import DestinationRules

if TYPE_CHECKING:
    from gitmirror.lfs import HttpLfsStore, LfsStore
    from gitmirror.specs import RepoSpec

__all__ = ["GitAuth", "HUB_INITIAL_FILES", "Hub", "LfsEndpoint", "RepoInfo"]

#: Files any hub may put into the commit it makes when it creates a repository (Hugging Face:
#: ``.gitattributes``; hosts that offer "initialize with a README": ``README.md``).
HUB_INITIAL_FILES = frozenset({".gitattributes", "README.md"})


@dataclass(frozen=True)
class LfsEndpoint:
    """An LFS endpoint other than the hub's own (``url``, http or https, the batch API's base:
    ``<url>/objects/batch``), and ``reason``, where it came from, for logs and messages
    (``"--src-lfs-url"``, ``"lfs.url in .lfsconfig at refs/heads/main"``)."""

    url: str
    reason: str


@dataclass(frozen=True)
class RepoInfo:
    """What a hub says about a repository. ``None`` means the hub does not tell."""

    exists: bool
    private: bool | None = None
    default_branch: str | None = None
    created: bool = False  # True when ensure_destination() just created it


class Hub(ABC):
    """One repository on one host, with the credentials to reach it.

    A run calls :meth:`login` once before any git or LFS traffic (a no-op except where the hub
    trades its API token for git credentials), then uses :meth:`remote` for git and
    :meth:`lfs_store` for LFS. ``_opts`` says how the adapter retries and whom it tells.
    """

    spec: "RepoSpec"
    _opts: CallOptions = CallOptions()
    #: Branch a brand-new repository of this host starts on ("main" on HF, "master" on ModelScope).
    new_repo_default_branch: str = "main"
    #: Files this host may put into the first commit of a new repository: a destination whose one
    #: ref is a root commit holding nothing else is the hub's own, replaced without --force.
    initial_files: frozenset[str] = HUB_INITIAL_FILES
    #: Files this host parses and reads only as plain blobs; the plan warns when the source has
    #: them as LFS pointers (see ``plan.metadata_warnings``).
    metadata_files: frozenset[str] = frozenset()
    #: Where :meth:`lfs_store` reads and writes instead of the hub's own LFS endpoint (None: there).
    lfs_endpoint: LfsEndpoint | None = None

    def login(self) -> None:
        """Obtain the credentials git and LFS need, where that takes a request (ModelScope's login).

        Never raises for a refused token: the refusal is kept and raised by the step that needs
        write access (``ensure_destination``), so that a public source still reads anonymously.
        """

    def remote(self) -> Remote:
        """This repository's git remote: its URL, :meth:`git_auth`, and the adapter's retry policy
        and retry listener (``sync`` backs a host off through the listener)."""
        return Remote(self.git_url, self.git_auth(), self._opts.policy, self._opts.on_retry)

    @property
    @abstractmethod
    def git_url(self) -> str:
        """The git remote URL, without credentials (a path for local repositories)."""

    @abstractmethod
    def git_auth(self) -> GitAuth | None:
        """Credentials git should send to ``git_url``, or None for anonymous/local (after :meth:`login`)."""

    @abstractmethod
    def lfs_store(self) -> "LfsStore":
        """Where this repository's LFS objects live (batch API, or a local lfs/objects dir);
        :attr:`lfs_endpoint` when one is set (:meth:`use_lfs_endpoint`)."""

    def use_lfs_endpoint(self, endpoint: LfsEndpoint | None) -> None:
        """Send this hub's LFS traffic to ``endpoint`` from now on (None: the hub's own again).

        The hub's credentials go there only when it has the origin (scheme, host, port) of the
        hub's own LFS endpoint: a token for one host is never sent to another.
        """
        self.lfs_endpoint = endpoint

    def _http_lfs_store(self, own_url: str | None, auth: GitAuth | None, *, multipart: bool = False) -> "HttpLfsStore":
        """An :class:`~gitmirror.lfs.HttpLfsStore` at the hub's own LFS endpoint ``own_url`` with
        ``auth``, or at :attr:`lfs_endpoint`, which gets ``auth`` only on ``own_url``'s origin."""
        from gitmirror.lfs import HttpLfsStore
        from gitmirror.lfs.failures import public, same_origin

        override = self.lfs_endpoint
        url = override.url if override is not None else own_url or ""
        foreign = override is not None and not (own_url and same_origin(url, own_url))
        if foreign:
            auth = None
        headers = {"Authorization": auth.basic_header()} if auth else {}
        store = HttpLfsStore(url, headers, policy=self._opts.policy, multipart=multipart)
        if override is not None:
            # Every message about this store then says why it is asked at all, and how.
            how = "; asked without credentials: another host than the source's" if foreign else ""
            store.label = store.batch.label = f"LFS endpoint {public(url)} ({override.reason}{how})"
        return store

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

    def rules(self) -> DestinationRules:
        """What this host refuses on push, checked against a plan before anything moves
        (:mod:`gitmirror.rules`). The default: only what git itself refuses."""
        return DestinationRules()
