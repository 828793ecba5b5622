"""The ModelScope kind of sandbox hub.

What it reproduces (sources: modelscope 1.40.2 / modelscope_hub 0.5.1 -- ``compat/hub_api.py``,
``api.py``, ``_legacy_api.py``, ``_openapi.py``, ``errors.py`` -- and the project's reference
notes on the hubs):

* Two kinds of token. The SDK (API) token authenticates REST calls, as ``Authorization:
  Bearer`` and/or the ``m_session_id`` cookie. ``POST /api/v1/login {"AccessToken": sdk}``
  hands out a *separate* git token (``Data.AccessToken``). Git and LFS accept only the git
  token, as the Basic password of user ``oauth2`` (GitLab's rule for OAuth tokens, which the
  SDK follows); the SDK token there is a 401, which is the usual mix-up.
* Git URLs ``/models/{owner}/{name}.git`` and the older ``/{owner}/{name}.git`` (both in use),
  ``/datasets/{owner}/{name}.git``; default branch ``master``; whether a new repository holds a
  server-made first commit is a per-hub option (``initial_commit``), since it is undocumented.
* Git refusals worded like GitLab's, which the real git server is based on; GitLab's branch-name
  rules on push (a branch named ``HEAD`` is refused; option ``gitlab_branch_names``).
* REST: login; ``/openapi/v1/users/me``; create model (JSON) and dataset (multipart form) with
  visibility 1 private / 3 internal / 5 public; get through ``/openapi/v1/{type}s/{o}/{n}``
  (OpenAPI envelope ``{success, data}`` / ``{success: false, code, message}``) and the legacy
  ``/api/v1/{type}s/{o}/{n}`` (envelope ``{Code, Data, Message, Success}``); revisions.
  "Already exists" is a 4xx with the business code the SDK maps (10010101001 models,
  10020101001 datasets); an unknown token at login is HTTP 400 with code 10010103009.
  Option ``legacy_errors_as_200`` answers such business failures with HTTP 200 and
  ``Success: false`` instead (the envelope allows it; the SDK then takes them for success).
* The SDK's own LFS batch URL ``/api/v1/repos/{type}s/{id}/info/lfs/objects/batch``, with the
  SDK token, answered by the standard batch handler.
* Downloads, as ``modelscope.snapshot_download`` makes them (modelscope_hub ``_download.py``
  ``DownloadManager.download_repo`` / ``_download_file``; ``_legacy_api.py`` ``list_repo_files``,
  ``list_dataset_files_paginated``, ``get_download_url``, ``download_stream``): the model file
  list ``GET /api/v1/models/{id}/repo/files?Revision=&Recursive=&Root=`` (one answer; the SDK
  walks by ``Root`` past 3000 entries), the dataset tree ``GET /api/v1/datasets/{id}/repo/tree``
  paged by ``PageNumber``/``PageSize`` (the SDK stops at a short page), entries
  ``{Name, Path, Type: blob|tree, Size, Sha256, IsLFS, Revision, Mode, Id}`` where ``Size`` and
  ``Sha256`` are the file's real ones (the SDK checks the bytes it gets against both), and each
  file from ``GET /api/v1/{type}s/{id}/repo?Revision=&FilePath=``: a plain blob as is, an LFS
  file as a 302 to a presigned storage href. ``master`` is the default revision.
* A new repository's server-made first commit (option ``initial_commit``) is undocumented, so
  each plausible variant can be chosen: ``True``/``"gitattributes"`` (``.gitattributes``),
  ``"readme"`` (plus ``README.md``), ``"configuration"`` (plus ``configuration.json``, which the
  old SDK's ``create_repo`` pushed by default).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from gitmirror.sandbox.files import (Entry, download_href, file_entry, list_tree, read_blob, remove_repository,
                                     resolve_commit)
from gitmirror.sandbox.http import HttpError, Request, Response, json_response, text_response
from gitmirror.sandbox.kinds import DEFAULT_GITATTRIBUTES, HubKind, HubView, PushPolicy, split_git_path
from gitmirror.sandbox.state import Principal, RepoKey

if TYPE_CHECKING:
    from gitmirror.sandbox.state import RepoRecord, TokenRecord

PRIVATE, INTERNAL, PUBLIC = 1, 3, 5
VISIBILITIES = (PRIVATE, INTERNAL, PUBLIC)
SEGMENT_TYPES = {"models": "model", "datasets": "dataset"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Top-level words that are never an owner in the older /{owner}/{name}.git form.
RESERVED_OWNERS = {"api", "openapi", "models", "datasets", "_sandbox"}

# Business codes the SDK maps (modelscope_hub.errors._BUSINESS_CODE_MAP).
CODE_OK = 200
CODE_MODEL_EXISTS = 10010101001
CODE_DATASET_EXISTS = 10020101001
CODE_TOKEN_INVALID = 10010103009
NAME_TAKEN = "该名称已被注册使用，请重新命名"  # the server's own words; the SDK translates them

# GitLab's answers on git over HTTP.
GITLAB_DENIED = ("HTTP Basic: Access denied. If a password was provided for Git authentication, the "
                 "password was incorrect or you're required to use a token instead of a password. If a "
                 "token was provided, it was either incorrect, expired, or improperly scoped.")
GITLAB_NOT_FOUND = ("The project you were looking for could not be found or you don't have permission "
                    "to view it.")
GITLAB_NO_PUSH = "You are not allowed to push code to this project."
GIT_USER = "oauth2"

# What a server-made first commit holds, per ``initial_commit`` variant (contents undocumented:
# the README is the card template's shape, the configuration the old SDK's default).
INITIAL_README = "---\nlicense: Apache License 2.0\n---\n# Model card\n"
INITIAL_CONFIGURATION = '{"framework": "pytorch", "task": "other", "allow_remote": true}\n'
INITIAL_VARIANTS: dict[str, tuple[str, ...]] = {
    "gitattributes": (".gitattributes",),
    "readme": (".gitattributes", "README.md"),
    "configuration": (".gitattributes", "README.md", "configuration.json"),
}
INITIAL_CONTENTS = {".gitattributes": DEFAULT_GITATTRIBUTES, "README.md": INITIAL_README,
                    "configuration.json": INITIAL_CONFIGURATION}
DATASET_PAGE_SIZE = 200  # the SDK's default PageSize for the dataset tree


# --------------------------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------------------------
def _request_id() -> str:
    return uuid.uuid4().hex


def legacy_ok(data: Any) -> Response:
    return json_response(200, {"Code": CODE_OK, "Data": data, "Message": "success", "Success": True,
                               "RequestId": _request_id()})


def legacy_error(status: int, code: int, message: str) -> HttpError:
    return HttpError(json_response(status, {"Code": code, "Data": None, "Message": message,
                                            "Success": False, "RequestId": _request_id()}))


def openapi_ok(data: Any) -> Response:
    return json_response(200, {"success": True, "request_id": _request_id(), "data": data})


def openapi_error(status: int, code: str, message: str) -> HttpError:
    return HttpError(json_response(status, {"success": False, "request_id": _request_id(),
                                            "code": code, "message": message}))


def git_error(status: int, message: str) -> HttpError:
    """Plain text, which git prints as ``remote: <message>``."""
    return HttpError(text_response(status, message + "\n"))


# --------------------------------------------------------------------------------------------
# Visibility and access
# --------------------------------------------------------------------------------------------
def visibility_of(repo: "RepoRecord") -> int:
    value = repo.extra.get("visibility")
    if value in VISIBILITIES:
        return int(value)
    return PRIVATE if repo.private else PUBLIC


def can_see(hub: HubView, user: str | None, repo: "RepoRecord | None") -> bool:
    """Public: anyone; internal: any signed-in account; private: the owner and its orgs."""
    if repo is None:
        return False
    visibility = visibility_of(repo)
    if visibility == PUBLIC:
        return True
    if visibility == INTERNAL and user is not None:
        return True
    return hub.state.is_member(user, repo.owner)


@dataclass(frozen=True)
class MsPushPolicy(PushPolicy):
    """The core policy plus ``gitlab_branch_names``: refuse the branch names GitLab refuses
    (``prereceive.gitlab_branch_errors``; GitLab's GitRefValidator and Checks::BranchCheck)."""

    gitlab_branch_names: bool = False


# --------------------------------------------------------------------------------------------
# The kind
# --------------------------------------------------------------------------------------------
class ModelScopeKind(HubKind):
    """ModelScope: see the module docstring for what is reproduced."""

    name: ClassVar[str] = "modelscope"
    default_branch: ClassVar[str] = "master"
    token_prefix: ClassVar[str] = "sbxms_"
    git_token_prefix: ClassVar[str] = "sbxmsgit_"
    bot_name: ClassVar[str] = "ModelScope"
    bot_email: ClassVar[str] = "modelscope@sandbox.invalid"
    object_auth: ClassVar[str] = "header"  # GitLab-style: a per-object Authorization header
    default_options: ClassVar[Mapping[str, Any]] = {
        # Undocumented on the real hub, so tests choose: False = a new repo is empty.
        "initial_commit": False,
        "allowed_refs": None,
        "max_plain_blob_size": None,
        # False: accept pushes whose LFS objects are missing, as a lax server would; tests use it
        # to prove that gitmirror's own ordering, not the server, keeps a mirror complete.
        "require_lfs_objects": True,
        # Answer business failures of the /api/v1 surface (exists, not found, no permission) with
        # HTTP 200 and ``Success: false``, as some server versions do; 401/429/5xx keep their status.
        "legacy_errors_as_200": False,
        # GitLab's branch-name rules on push (a branch named HEAD is refused); False = git's only.
        "gitlab_branch_names": True,
        # Where LFS upload hrefs live is undocumented (the SDK sends its hub token to them, so they
        # may be the hub's own service): True puts them on the hub's port; with
        # upload_requires_hub_auth they want the hub's git credentials and carry neither a
        # signature nor a header (see gitmirror.sandbox.lfs).
        "upload_href_on_hub_origin": False,
        "upload_requires_hub_auth": False,
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._git_lock = threading.Lock()  # one git token per (user, scope), issued once

    # -- URLs -----------------------------------------------------------------------------
    def parse_repo_path(self, path: str) -> tuple[RepoKey, str] | None:
        split = split_git_path(path)
        if split is None:
            return None
        prefix, tail = split
        parts = [p for p in prefix.split("/") if p]
        if len(parts) == 3 and parts[0] in SEGMENT_TYPES:
            return RepoKey(SEGMENT_TYPES[parts[0]], f"{parts[1]}/{parts[2]}"), tail
        if len(parts) == 2 and parts[0] not in RESERVED_OWNERS:
            return RepoKey("model", f"{parts[0]}/{parts[1]}"), tail  # the older URL form
        return None

    def git_url(self, hub: HubView, key: RepoKey) -> str:
        return f"{hub.endpoint}/{key.repo_type}s/{key.repo_id}.git"

    # -- tokens ---------------------------------------------------------------------------
    def git_token_for(self, hub: HubView, api_token: str) -> str:
        """The git token login hands out for ``api_token`` (the same one on every login)."""
        record = hub.state.lookup_token(api_token)
        if record is None or record.purpose != "api":
            raise KeyError("not an SDK token of this hub")
        return self.git_token_of(hub, record)

    def git_token_of(self, hub: HubView, record: "TokenRecord") -> str:
        with self._git_lock:
            for value in hub.state.all_token_values():
                found = hub.state.lookup_token(value)
                if found and found.purpose == "git" and found.user == record.user and found.scope == record.scope:
                    return value
            return hub.state.new_token(record.user, record.scope, purpose="git", prefix=self.git_token_prefix)

    def api_principal(self, hub: HubView, request: Request) -> Principal | None:
        """An SDK token from Bearer or the ``m_session_id`` cookie; git tokens are not API tokens."""
        token = request.bearer_token() or request.cookies().get("m_session_id")
        if not token:
            return None
        record = hub.state.lookup_token(token)
        if record is None or record.purpose != "api":
            raise HttpError(json_response(401, {"Code": 401, "Message": "Invalid token", "Success": False,
                                                "success": False, "code": "InvalidAuthentication",
                                                "message": "Invalid token", "RequestId": _request_id()}))
        return Principal(user=record.user, scope=record.scope, purpose=record.purpose)

    # -- git and LFS auth -----------------------------------------------------------------
    def authenticate(self, hub: HubView, request: Request) -> Principal | None:
        """git/LFS: Basic ``oauth2:<git token>``. Nothing else gets in."""
        if request.header("authorization") is None:
            return None
        basic = request.basic_auth()
        record = hub.state.lookup_token(basic[1]) if basic else None
        if basic is None or record is None or record.purpose != "git" or basic[0] != GIT_USER:
            raise git_error(401, GITLAB_DENIED)
        return Principal(user=record.user, scope=record.scope, purpose=record.purpose)

    def can_read(self, hub: HubView, principal: Principal | None, key: RepoKey,
                 repo: "RepoRecord | None") -> "RepoRecord":
        if repo is None or not can_see(hub, principal.user if principal else None, repo):
            # Anonymous: 401 so git asks for credentials; signed in: GitLab's 404.
            raise git_error(401, GITLAB_DENIED) if principal is None else git_error(404, GITLAB_NOT_FOUND)
        return repo

    def can_write(self, hub: HubView, principal: Principal | None, key: RepoKey,
                  repo: "RepoRecord | None") -> "RepoRecord":
        if principal is None:
            raise git_error(401, GITLAB_DENIED)
        repo = self.can_read(hub, principal, key, repo)
        if not principal.can_write or not hub.state.is_member(principal.user, repo.owner):
            raise git_error(403, GITLAB_NO_PUSH)
        return repo

    # -- repositories and pushes ----------------------------------------------------------
    def new_repo_initial_commit(self, hub: HubView, key: RepoKey) -> bool:
        return bool(self.options.get("initial_commit"))

    def initial_commit_files(self, hub: HubView, key: RepoKey) -> dict[str, bytes]:
        """The files of the chosen ``initial_commit`` variant (``True`` = ``"gitattributes"``)."""
        variant = self.options.get("initial_commit")
        names = INITIAL_VARIANTS.get(variant if isinstance(variant, str) else "gitattributes")
        if names is None:
            raise ValueError(f"initial_commit must be a bool or one of {sorted(INITIAL_VARIANTS)}: {variant!r}")
        return {name: INITIAL_CONTENTS[name].encode() for name in names}

    def push_policy(self, hub: HubView, key: RepoKey) -> PushPolicy:
        return MsPushPolicy(
            protected_branches=(self.default_branch,),
            allowed_refs=self.options.get("allowed_refs"),
            max_plain_blob_size=self.options.get("max_plain_blob_size"),
            require_lfs_objects=bool(self.options.get("require_lfs_objects", True)),
            gitlab_branch_names=bool(self.options.get("gitlab_branch_names")),
        )

    # -- REST -----------------------------------------------------------------------------
    def handle_api(self, hub: HubView, request: Request) -> Response | None:
        if not request.path.startswith(("/api/v1/", "/openapi/v1/")):
            return None
        return MsApiHandler(self, hub, request).dispatch()


# --------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateRequest:
    owner: str
    name: str
    visibility: int
    license: str
    chinese_name: str


class MsApiHandler:
    """One REST request; each route is a small method."""

    def __init__(self, kind: ModelScopeKind, hub: HubView, request: Request) -> None:
        self.kind = kind
        self.hub = hub
        self.request = request

    def dispatch(self) -> Response:
        method, path = self.request.method.upper(), self.request.path.rstrip("/")
        parts = path.split("/")[1:]  # ["api", "v1", ...] or ["openapi", "v1", ...]
        surface, rest = parts[0], parts[2:]
        if surface == "openapi":
            return self.openapi_route(method, rest)
        try:
            return self.legacy_route(method, rest)
        except HttpError as refusal:
            if self.kind.options.get("legacy_errors_as_200") and refusal.response.status in (400, 403, 404, 409):
                refusal.response.status = 200
            raise

    def openapi_route(self, method: str, rest: list[str]) -> Response:
        if method == "GET" and rest == ["users", "me"]:
            return self.users_me()
        if method == "GET" and len(rest) == 3 and rest[0] in SEGMENT_TYPES:
            return self.openapi_get(RepoKey(SEGMENT_TYPES[rest[0]], f"{rest[1]}/{rest[2]}"))
        raise openapi_error(404, "ResourceNotFound", "no such API")

    def legacy_route(self, method: str, rest: list[str]) -> Response:
        if method == "POST" and rest == ["login"]:
            return self.login()
        if method == "POST" and len(rest) == 1 and rest[0] in SEGMENT_TYPES:
            return self.create(SEGMENT_TYPES[rest[0]])
        if method == "POST" and len(rest) == 8 and rest[0] == "repos" and rest[1] in SEGMENT_TYPES \
                and rest[4:] == ["info", "lfs", "objects", "batch"]:
            return self.sdk_lfs_batch(RepoKey(SEGMENT_TYPES[rest[1]], f"{rest[2]}/{rest[3]}"))
        if method == "DELETE" and len(rest) == 3 and rest[0] in SEGMENT_TYPES:
            return self.delete(RepoKey(SEGMENT_TYPES[rest[0]], f"{rest[1]}/{rest[2]}"))
        if method in ("GET", "HEAD") and len(rest) in (4, 5) and rest[0] in SEGMENT_TYPES and rest[3] == "repo":
            return self.repo_files(RepoKey(SEGMENT_TYPES[rest[0]], f"{rest[1]}/{rest[2]}"), rest[4:])
        if method == "GET" and len(rest) in (3, 4) and rest[0] in SEGMENT_TYPES:
            key = RepoKey(SEGMENT_TYPES[rest[0]], f"{rest[1]}/{rest[2]}")
            if len(rest) == 3:
                return self.legacy_get(key)
            if rest[3] == "revisions":
                return self.revisions(key)
        raise legacy_error(404, 404, "no such API")

    # -- auth -----------------------------------------------------------------------------
    def principal(self) -> Principal | None:
        return self.kind.api_principal(self.hub, self.request)

    def signed_in(self) -> Principal:
        principal = self.principal()
        if principal is None:
            raise legacy_error(401, 401, "user not logged in")
        return principal

    # -- login and user -------------------------------------------------------------------
    def login(self) -> Response:
        body = self.request.json()
        token = body.get("AccessToken") if isinstance(body, dict) else None
        record = self.hub.state.lookup_token(token) if isinstance(token, str) else None
        if record is None or record.purpose != "api":
            raise legacy_error(400, CODE_TOKEN_INVALID, "AccessToken is invalid or expired")
        if record.scope != "write":
            # A read-only token authenticates, but is not given git credentials.
            raise legacy_error(403, 403, "the token's permission does not allow login for git")
        user = self.hub.state.users[record.user]
        data = {"AccessToken": self.kind.git_token_of(self.hub, record), "Username": user.name,
                "Email": user.email, "Nickname": user.fullname or user.name}
        response = legacy_ok(data)
        response.headers["Set-Cookie"] = f"m_session_id={token}; Path=/; HttpOnly"
        return response

    def users_me(self) -> Response:
        principal = self.principal()
        if principal is None:
            raise openapi_error(401, "InvalidAuthentication", "Missing authentication token")
        user = self.hub.state.users[principal.user]
        return openapi_ok({"id": _stable_int("user", user.name), "username": user.name, "name": user.name,
                           "email": user.email, "avatar_url": "", "description": ""})

    # -- create ---------------------------------------------------------------------------
    def create(self, repo_type: str) -> Response:
        principal = self.signed_in()
        fields = self.request.form() if repo_type == "dataset" else self.request.json()
        request = parse_create(fields)
        key = RepoKey(repo_type, f"{request.owner}/{request.name}")
        if not principal.can_write or not self.hub.state.is_member(principal.user, request.owner):
            raise legacy_error(403, 403, f"no permission to create a {repo_type} under {request.owner}")
        try:
            self.hub.create_repo(key.repo_id, repo_type=repo_type, private=request.visibility == PRIVATE,
                                 visibility=request.visibility, license=request.license,
                                 chinese_name=request.chinese_name)
        except FileExistsError:
            code = CODE_DATASET_EXISTS if repo_type == "dataset" else CODE_MODEL_EXISTS
            raise legacy_error(400, code, NAME_TAKEN)
        return legacy_ok(legacy_repo_data(self.hub, self.hub.state.get_repo(key)))

    # -- the SDK's own LFS batch ----------------------------------------------------------
    def sdk_lfs_batch(self, key: RepoKey) -> Response:
        """``/api/v1/repos/{type}s/{id}/info/lfs/objects/batch``: the SDK's upload check, with
        the SDK token (not the git token); the standard batch handler answers it."""
        body = self.request.json()
        if isinstance(body, dict) and isinstance(body.get("Data"), dict):
            body = body["Data"]  # some SDK versions wrap the request too
        inner = Request(self.request.method, self.request.path, self.request.query_string,
                        dict(self.request.headers), json.dumps(body).encode(), self.request.client)
        return self.hub.lfs_batch(inner, key, self.principal())

    # -- read -----------------------------------------------------------------------------
    def visible(self, key: RepoKey, principal: Principal | None) -> "RepoRecord | None":
        repo = self.hub.state.get_repo(key)
        return repo if can_see(self.hub, principal.user if principal else None, repo) else None

    def openapi_get(self, key: RepoKey) -> Response:
        try:
            principal = self.principal()
        except HttpError:
            raise openapi_error(401, "InvalidAuthentication", "Invalid token")
        repo = self.visible(key, principal)
        if repo is None:
            raise openapi_error(404, "ResourceNotFound", f"{key.repo_type} {key.repo_id} not found")
        return openapi_ok(openapi_repo_data(self.hub, repo))

    def legacy_get(self, key: RepoKey) -> Response:
        repo = self.visible(key, self.principal())
        if repo is None:
            raise legacy_error(404, 404, _missing(key))
        return legacy_ok(legacy_repo_data(self.hub, repo))

    def revisions(self, key: RepoKey) -> Response:
        repo = self.visible(key, self.principal())
        if repo is None:
            raise legacy_error(404, 404, _missing(key))
        return legacy_ok({"RevisionMap": revision_map(self.hub, key, self.request.query_value("EndTime"))})


    def delete(self, key: RepoKey) -> Response:
        """``DELETE /api/v1/{type}s/{id}`` (modelscope_hub ``_legacy_api.py`` ``delete_repo``)."""
        principal = self.signed_in()
        if self.visible(key, principal) is None:
            raise legacy_error(404, 404, _missing(key))
        if not principal.can_write or not self.hub.state.is_member(principal.user, key.owner):
            raise legacy_error(403, 403, f"no permission to delete {key.repo_id}")
        remove_repository(self.hub, key)
        return legacy_ok(None)

    # -- downloads ------------------------------------------------------------------------
    def repo_files(self, key: RepoKey, rest: list[str]) -> Response:
        """``repo/files`` (models), ``repo/tree`` (datasets, paged) and ``repo?FilePath=`` (one file)."""
        if rest not in ([], ["files"], ["tree"]):
            raise legacy_error(404, 404, "no such API")
        repo = self.visible(key, self.principal())
        if repo is None:
            raise legacy_error(404, 404, _missing(key))
        revision = self.request.query_value("Revision") or self.kind.default_branch
        commit = resolve_commit(self.hub, key, revision)
        if commit is None:
            if rest and not self.hub.refs(key):
                return legacy_ok({"Files": [], "IsVisual": 0})  # an empty repository lists nothing
            raise legacy_error(404, 404, f"revision {revision} not found")
        if not rest:
            return self.one_file(key, commit)
        recursive = (self.request.query_value("Recursive") or "false").lower() == "true"
        entries = list_tree(self.hub, key, commit, self.request.query_value("Root") or "", recursive)
        if entries is None:
            raise legacy_error(404, 404, f"path {self.request.query_value('Root')} not found")
        items = [file_item(e, commit) for e in entries]
        if rest == ["tree"]:
            items = self.page(items)
        return legacy_ok({"Files": items, "IsVisual": 0})

    def page(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        number, size = self.request.query_value("PageNumber") or "1", self.request.query_value("PageSize") or ""
        page_size = int(size) if size.isdigit() and int(size) > 0 else DATASET_PAGE_SIZE
        start = (int(number) - 1) * page_size if number.isdigit() and int(number) > 0 else 0
        return items[start:start + page_size]

    def one_file(self, key: RepoKey, commit: str) -> Response:
        path = self.request.query_value("FilePath") or ""
        entry = file_entry(self.hub, key, commit, path)
        if entry is None:
            raise legacy_error(404, 404, f"file not found: {path}")
        if entry.lfs is not None:
            return Response(302, b"", {"Location": download_href(self.hub, key, entry.lfs)})
        return Response(200, read_blob(self.hub, key, entry.oid), {"Content-Type": "application/octet-stream"})


def file_item(entry: Entry, commit: str) -> dict[str, Any]:
    """One entry of the file list, as ``download_repo`` reads it (Path, Type, Sha256, Size)."""
    return {"Name": entry.name, "Path": entry.path, "Type": entry.kind, "Size": entry.file_size,
            "Sha256": entry.sha256 or "", "IsLFS": entry.lfs is not None, "Revision": commit,
            "Mode": entry.mode, "Id": entry.oid}


def _stable_int(*parts: str) -> int:
    """A numeric id that stays the same across runs (the hub's ids are integers)."""
    return int(hashlib.sha1("\0".join(parts).encode()).hexdigest()[:7], 16)


def _missing(key: RepoKey) -> str:
    return "数据集不存在" if key.repo_type == "dataset" else "模型不存在"  # translated by the SDK


def parse_create(fields: Any) -> CreateRequest:
    """Model: JSON ``{Path, Name, Visibility, License, ...}``; dataset: the same as form fields
    (the current SDK sends the owner of a dataset as ``Owner``, older ones as ``Path``)."""
    if not isinstance(fields, dict):
        raise legacy_error(400, 400, "invalid request body")
    owner = fields.get("Path") or fields.get("Owner")
    name = fields.get("Name")
    if not isinstance(owner, str) or not isinstance(name, str) or not NAME_RE.match(owner) \
            or not NAME_RE.match(name):
        raise legacy_error(400, 400, "invalid parameter: Path/Owner and Name are required "
                                     "(letters, digits, '-', '_' and '.')")
    try:
        visibility = int(fields.get("Visibility", PUBLIC))
    except (TypeError, ValueError):
        visibility = -1
    if visibility not in VISIBILITIES:
        raise legacy_error(400, 400, "invalid parameter: Visibility must be 1, 3 or 5")
    return CreateRequest(owner, name, visibility, str(fields.get("License") or "Apache License 2.0"),
                         str(fields.get("ChineseName") or ""))


def _git_stamp(hub: HubView, key: RepoKey, ref: str) -> int | None:
    try:
        out = hub.run_git(key, "log", "-1", "--format=%ct", ref, "--")
    except RuntimeError:
        return None  # empty repository
    return int(out) if out.isdigit() else None


def legacy_repo_data(hub: HubView, repo: "RepoRecord | None") -> dict[str, Any]:
    assert repo is not None
    key = repo.key
    updated = _git_stamp(hub, key, f"refs/heads/{ModelScopeKind.default_branch}") or int(repo.created_at)
    return {
        "Id": _stable_int("repo", str(key)), "Path": key.owner, "Name": key.name,
        "ChineseName": repo.extra.get("chinese_name", ""), "Visibility": visibility_of(repo),
        "License": repo.extra.get("license", "Apache License 2.0"), "Description": "",
        "CreatedTime": int(repo.created_at), "LastUpdatedTime": updated,
        "Downloads": 0, "Stars": 0, "Tags": [],
    }


def openapi_repo_data(hub: HubView, repo: "RepoRecord") -> dict[str, Any]:
    key = repo.key
    updated = _git_stamp(hub, key, f"refs/heads/{ModelScopeKind.default_branch}") or int(repo.created_at)
    return {
        "id": key.repo_id, "display_name": repo.extra.get("chinese_name") or key.name, "description": "",
        "downloads": 0, "likes": 0, "created_at": int(repo.created_at), "last_modified": updated,
        "license": repo.extra.get("license", "Apache License 2.0"), "tags": [], "tasks": [],
        "private": visibility_of(repo) == PRIVATE, "gated": bool(repo.gated),
    }


def revision_map(hub: HubView, key: RepoKey, end_time: str | None) -> dict[str, list[dict[str, Any]]]:
    """``{Branches, Tags}`` of ``{Revision, CreatedAt}``; tags created after ``EndTime`` left out."""
    # creatordate: the tagger date of an annotated tag, the commit date otherwise.
    out = hub.run_git(key, "for-each-ref", "--format=%(refname) %(creatordate:unix)", "refs/heads", "refs/tags")
    limit = int(end_time) if end_time and end_time.isdigit() else None
    result: dict[str, list[dict[str, Any]]] = {"Branches": [], "Tags": []}
    for line in out.splitlines():
        refname, _, stamp = line.partition(" ")
        created = int(stamp) if stamp.isdigit() else 0
        if refname.startswith("refs/heads/"):
            result["Branches"].append({"Revision": refname[len("refs/heads/"):], "CreatedAt": created})
        elif limit is None or created <= limit:
            result["Tags"].append({"Revision": refname[len("refs/tags/"):], "CreatedAt": created})
    return result


KIND = ModelScopeKind
