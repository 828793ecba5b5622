"""Hub kinds: what makes a sandbox hub behave like Hugging Face, ModelScope or plain git.

The core (``server.py``, ``lfs.py``, ``hub.py``) speaks git smart HTTP, the LFS batch API and
object storage for every hub. A *kind* decides everything that differs between real hubs:
URL layout, tokens and authentication, who may read and write, the REST API, whether a new
repository gets a server-made first commit, and which pushes are refused.

Contract (kept small and stable; the HF and ModelScope kinds build on it)
-------------------------------------------------------------------------
A kind module (``gitmirror.sandbox.huggingface`` / ``.modelscope``) defines ``KIND``, a
subclass of :class:`HubKind`. The core makes one instance per hub: ``KIND(options)`` where
``options`` are the keyword arguments of ``Sandbox.add_hub`` merged over
``KIND.default_options``. Every method gets the ``hub`` as first argument: the
:class:`gitmirror.sandbox.hub.Hub`, typed as :class:`HubView`, which lists what a kind may
use of it (kinds do not import ``hub.py``):

* ``hub.state`` (:class:`~gitmirror.sandbox.state.HubState`: users, orgs, tokens, repos),
  ``hub.options`` (same dict as ``self.options``), ``hub.endpoint``, ``hub.storage_endpoint``;
* ``hub.create_repo(repo_id, repo_type=..., private=..., gated=..., initial_commit=None)``
  -> ``RepoRecord`` (raises ``FileExistsError`` when it exists);
* ``hub.git_url(repo_id, repo_type)``, ``hub.refs(key) -> {refname: sha}``,
  ``hub.run_git(key, *args) -> str`` (git in the bare repository, for commit dates etc.;
  raises ``RuntimeError`` when git exits non-zero);
* ``hub.lfs_batch(request, key, principal) -> Response`` (the standard batch handler, for
  extra batch URLs such as ModelScope's ``/api/v1/repos/.../info/lfs/objects/batch``).

Request flow on the hub port: control paths (``/_sandbox/...``) -> ``handle_api`` (a kind
returns ``None`` for paths that are not its API) -> ``parse_repo_path`` for git and LFS
(``authenticate``, ``can_read``/``can_write``, then the core serves it) -> 404.
Refusals are :class:`~gitmirror.sandbox.http.HttpError` carrying the hub's real response.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol

from gitmirror.sandbox.http import HttpError, Request, Response, json_response
# RepoKey and Principal are defined in state.py (which imports no sandbox module); importing
# them from here keeps working.
from gitmirror.sandbox.state import HubState, Principal, RepoKey, RepoRecord

# The git and LFS tails the core serves, after the repository part of a URL path.
GIT_TAILS = ("/info/refs", "/git-upload-pack", "/git-receive-pack", "/HEAD")
LFS_TAIL_PREFIX = "/info/lfs"

# The .gitattributes a hub writes into a new repository's first commit (HF's default list).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
        "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
        "*.zst", "*tfevents*",
    )
)


@dataclass(frozen=True)
class PushPolicy:
    """What the pre-receive check enforces besides "LFS objects must be in the store".

    ``protected_branches``: branch names (without ``refs/heads/``) that may not be deleted.
    ``allowed_refs``: a regex every updated ref name must match (None = any ref).
    ``max_plain_blob_size``: non-pointer blobs above this many bytes are refused (None = any).
    ``messages``: the hub's own wording of refusals, by key: ``protected_branch`` (``{ref}``),
    ``ref_not_allowed`` (``{ref}``), ``plain_blob_too_large`` (``{oid}``, ``{size}``, ``{limit}``),
    ``lfs_missing`` (``{oid}``, ``{count}``); missing keys keep the default texts.
    """

    protected_branches: tuple[str, ...] = ()
    allowed_refs: str | None = None
    max_plain_blob_size: int | None = None
    require_lfs_objects: bool = True
    messages: Mapping[str, str] = field(default_factory=dict)


class HubView(Protocol):
    """What a kind may use of the hub it is given (see the module docstring); the one
    implementation is :class:`gitmirror.sandbox.hub.Hub`."""

    state: HubState
    options: dict[str, Any]
    endpoint: str
    storage_endpoint: str

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False,
                    gated: str | bool = False, initial_commit: bool | None = None,
                    **extra: Any) -> RepoRecord: ...

    def git_url(self, repo: str | RepoKey, repo_type: str = "model") -> str: ...

    def refs(self, repo: str | RepoKey, repo_type: str = "model") -> dict[str, str]: ...

    def run_git(self, repo: str | RepoKey, *args: str, repo_type: str = "model") -> str: ...

    def lfs_batch(self, request: Request, key: RepoKey, principal: Principal | None) -> Response: ...


def split_git_path(path: str) -> tuple[str, str] | None:
    """Split ``/a/b.git/info/refs`` into (``/a/b``, ``/info/refs``); None if no git/LFS tail.

    The ``.git`` suffix is optional, as on the real hubs.
    """
    for tail in GIT_TAILS:
        if path.endswith(tail) and len(path) > len(tail):
            prefix = path[: -len(tail)]
            return _strip_git(prefix), tail
    index = path.find(LFS_TAIL_PREFIX + "/")
    if index > 0:
        return _strip_git(path[:index]), path[index:]
    return None


def _strip_git(prefix: str) -> str:
    return prefix[:-4] if prefix.endswith(".git") else prefix


class HubKind:
    """Base class. Its defaults are the plain git kind: public repos readable by anyone,
    private ones by their owner and the owner's orgs, writes by a write-scoped token of the
    owner or an org member; tokens as the Basic password (any user name) or Bearer."""

    name: ClassVar[str] = "git"
    default_branch: ClassVar[str] = "main"
    token_prefix: ClassVar[str] = "sbxgit_"
    bot_name: ClassVar[str] = "sandbox-bot"
    bot_email: ClassVar[str] = "bot@sandbox.invalid"
    # How object hrefs authenticate at the storage port: "query" = presigned URL, no header
    # (HF, S3-like); "header" = a per-object Authorization in the action's `header` (GitLab).
    object_auth: ClassVar[str] = "header"
    default_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = {**self.default_options, **(options or {})}

    # -- URLs -----------------------------------------------------------------------------
    def parse_repo_path(self, path: str) -> tuple[RepoKey, str] | None:
        """Map a URL path to (repository, git/LFS tail) or None. Plain git: ``/owner/name.git``."""
        split = split_git_path(path)
        if split is None:
            return None
        prefix, tail = split
        parts = [p for p in prefix.split("/") if p]
        if len(parts) != 2:
            return None
        return RepoKey("model", "/".join(parts)), tail

    def git_url(self, hub: HubView, key: RepoKey) -> str:
        return f"{hub.endpoint}/{key.repo_id}.git"

    # -- tokens and auth ------------------------------------------------------------------
    def issue_token(self, hub: HubView, user: str, scope: str) -> str:
        return hub.state.new_token(user, scope, purpose="api", prefix=self.token_prefix)

    def git_token_for(self, hub: HubView, api_token: str) -> str:
        """The token git should use, given the user's API token (same one, except ModelScope)."""
        if hub.state.lookup_token(api_token) is None:
            raise KeyError("unknown token")
        return api_token

    def presented_token(self, request: Request) -> str | None:
        """The token a request carries: Bearer, or the password of Basic auth."""
        bearer = request.bearer_token()
        if bearer:
            return bearer
        basic = request.basic_auth()
        return basic[1] if basic else None

    def authenticate(self, hub: HubView, request: Request) -> Principal | None:
        """None for an anonymous request; raise the hub's 401 for a token it does not know."""
        token = self.presented_token(request)
        if token is None:
            return None
        record = hub.state.lookup_token(token)
        if record is None:
            raise HttpError(json_response(401, {"error": "Invalid credentials"}))
        return Principal(user=record.user, scope=record.scope, purpose=record.purpose)

    def can_read(self, hub: HubView, principal: Principal | None, key: RepoKey,
                 repo: RepoRecord | None) -> RepoRecord:
        """Return the repository if ``principal`` may read it, else raise the hub's answer."""
        if repo is None or (repo.private and not self._is_member(hub, principal, repo)):
            if principal is None:
                raise HttpError(json_response(401, {"error": "Authentication required"}))
            raise HttpError(json_response(404, {"error": "Repository not found"}))
        return repo

    def can_write(self, hub: HubView, principal: Principal | None, key: RepoKey,
                  repo: RepoRecord | None) -> RepoRecord:
        """Return the repository if ``principal`` may push to it, else raise the hub's answer."""
        if principal is None:
            raise HttpError(json_response(401, {"error": "Authentication required"}))
        repo = self.can_read(hub, principal, key, repo)
        if not principal.can_write or not self._is_member(hub, principal, repo):
            raise HttpError(json_response(403, {"error": "You are not allowed to push"}))
        return repo

    @staticmethod
    def _is_member(hub: HubView, principal: Principal | None, repo: RepoRecord) -> bool:
        return principal is not None and hub.state.is_member(principal.user, repo.owner)

    # -- REST -----------------------------------------------------------------------------
    def handle_api(self, hub: HubView, request: Request) -> Response | None:
        """Answer a REST request, or None when ``request.path`` is not this kind's API."""
        return None

    # -- repositories ---------------------------------------------------------------------
    def new_repo_initial_commit(self, hub: HubView, key: RepoKey) -> bool:
        """Whether ``create_repo(initial_commit=None)`` makes a server-side first commit."""
        return False

    def initial_commit_files(self, hub: HubView, key: RepoKey) -> dict[str, bytes]:
        return {".gitattributes": DEFAULT_GITATTRIBUTES.encode()}

    def push_policy(self, hub: HubView, key: RepoKey) -> PushPolicy:
        return PushPolicy()

    # -- LFS ------------------------------------------------------------------------------
    def choose_transfer(self, hub: HubView, offered: list[str], operation: str, size: int) -> str:
        """The transfer adapter for one object: "basic", or "multipart" for big uploads when
        the hub option ``multipart_enabled`` is set (HF) and the client offers it."""
        if (operation == "upload" and "multipart" in offered and self.options.get("multipart_enabled")
                and size > int(self.options.get("multipart_threshold", 0))):
            return "multipart"
        return "basic"


class GitKind(HubKind):
    """Plain git + LFS host, no REST (GitLab/Gitea-like)."""


# Kinds written in their own modules; each defines ``KIND``.
_KIND_MODULES = {
    "huggingface": "gitmirror.sandbox.huggingface",
    "modelscope": "gitmirror.sandbox.modelscope",
}


def load_kind(name: str) -> type[HubKind]:
    """The kind class for ``"huggingface"``, ``"modelscope"`` or ``"git"``."""
    if name == "git":
        return GitKind
    module_name = _KIND_MODULES.get(name)
    if module_name is None:
        raise ValueError(f"unknown hub kind {name!r}; expected huggingface, modelscope or git")
    return importlib.import_module(module_name).KIND
