"""The Hugging Face kind of sandbox hub.

What it reproduces (sources: huggingface_hub 2.4.0 ``hf_api.py`` and ``utils/_http.py``; the
project's reference notes on the hubs):

* Git URLs ``/{id}``, ``/datasets/{id}``, ``/spaces/{id}`` (``.git`` optional); default branch
  ``main``; a new repository gets a server-made "initial commit" holding ``.gitattributes``.
* Tokens: ``Authorization: Bearer`` for the API; git and LFS take the token as the Basic
  password with any user name, or as Bearer. Tokens carry a read or write role.
* REST: ``whoami-v2``, repo info (also ``/revision/{rev}``), ``refs``, ``auth-check``,
  ``repos/create``. Errors carry ``X-Error-Code`` / ``X-Error-Message`` because
  ``hf_raise_for_status`` picks its exception class from them (on a plain-http endpoint its
  URL-based fallback never matches, so a missing header would give a generic error).
* Statuses as the real hub answers them: a repository that does not exist or that the caller
  may not see is 401 ("Invalid username or password.") for an anonymous caller and 404
  RepoNotFound for an authenticated one (see :func:`repo_not_found` for the one header added);
  an unknown token is 401 "Invalid credentials in Authorization header" on every API route
  (huggingface_hub deliberately does not turn that one into RepositoryNotFoundError);
  a gated repository shows its info to anyone, but its content (git, LFS) is 401 GatedRepo
  anonymously and 403 GatedRepo for an account that has not accepted its terms.
* Push rules, in the hub's words: non-LFS files over 10 MiB, binary non-LFS files of 1 MB or more
  in any pushed commit; ``refs/pr/N`` only for a pull request opened through the API
  (``POST /api/{type}s/{id}/discussions``). Options ``max_plain_blob_size``,
  ``max_binary_plain_blob_size``, ``pr_refs_need_pr`` relax them (see docs/hubs.md).
* Downloads, as ``huggingface_hub.snapshot_download`` makes them (``_snapshot_download.py``;
  ``hf_api.py`` ``repo_info`` / ``list_repo_tree``; ``file_download.py`` ``hf_hub_download`` /
  ``get_hf_file_metadata``): ``/api/{type}s/{id}/revision/{rev}`` for the commit, then
  ``/api/{type}s/{id}/tree/{rev}[/{path}]?recursive=`` (pages of ``tree_page_size`` entries
  chained by a ``Link: <...>; rel="next"`` header, which ``utils/_pagination.py`` follows), then
  ``HEAD``/``GET /{prefix}{id}/resolve/{rev}/{path}``: ``X-Repo-Commit`` and ``ETag`` always; a
  plain file is served as is; an LFS file is a 302 to a presigned storage href with
  ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``, which ``get_hf_file_metadata`` reads from
  the redirect itself because storage is another origin (``utils/_http.py``
  ``_httpx2_follow_hub_redirects_with_backoff``). Private and gated repositories need the token
  there as on the git routes; a missing file is 404 ``EntryNotFound`` with ``X-Repo-Commit``.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Mapping
from urllib.parse import parse_qsl, quote, urlencode

from gitmirror.sandbox.files import (Entry, download_href, file_entry, list_tree, read_blob, remove_repository,
                                     resolve_commit, split_revision)
from gitmirror.sandbox.http import HttpError, Request, Response, json_response, text_response
from gitmirror.sandbox.kinds import HubKind, HubView, PushPolicy, split_git_path
from gitmirror.sandbox.state import Principal, RepoKey

if TYPE_CHECKING:
    from gitmirror.sandbox.state import RepoRecord

TYPE_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
NOT_SIGNED_IN = "Invalid username or password."
# The hub's challenge on an anonymous 401.
BEARER_CHALLENGE = 'Bearer realm="Authentication required", charset="UTF-8"'
# Refs a client may push: branches, tags and pull-request refs (refs/convert/* are the hub's own).
PUSHABLE_REFS = r"refs/heads/.+|refs/tags/.+|refs/pr/\d+"
TEN_MB = 10 * 1024 * 1024
FIVE_GB = 5 * 1024 ** 3
ONE_MB = 1000 * 1000


# --------------------------------------------------------------------------------------------
# Error responses
# --------------------------------------------------------------------------------------------
def api_error(status: int, message: str, code: str | None = None) -> HttpError:
    """A REST error the way the hub sends it: JSON ``error`` plus the X-Error-* headers."""
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    if status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    return HttpError(json_response(status, {"error": message}, headers))


def repo_not_found(principal: Principal | None) -> HttpError:
    """Missing, or private and not yours: 401 anonymously, 404 when signed in.

    The real hub's anonymous 401 carries no X-Error-Code; huggingface_hub still raises
    RepositoryNotFoundError for it because its URL pattern matches ``https://<hub>/api/...``.
    That pattern never matches the sandbox's plain-http URLs, so the code is sent here to give
    clients the exception they get from the real hub.
    """
    if principal is None:
        return api_error(401, NOT_SIGNED_IN, "RepoNotFound")
    return api_error(404, "Repository not found", "RepoNotFound")


def git_error(status: int, message: str, code: str | None = None) -> HttpError:
    """A git/LFS refusal: plain text, which git prints as ``remote: <message>``."""
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return HttpError(text_response(status, message + "\n", headers))


def _type_word(key: RepoKey) -> str:
    return key.repo_type  # "model", "dataset", "space": the word the hub uses in messages


# --------------------------------------------------------------------------------------------
# Access rules shared by the API and git/LFS
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """What a caller may do with one repository (None = it does not exist for them)."""

    visible: bool
    content: bool  # may read files (gate accepted, or member, or not gated)
    write: bool


def access_of(hub: HubView, principal: Principal | None, repo: "RepoRecord | None") -> Access:
    if repo is None:
        return Access(False, False, False)
    member = principal is not None and hub.state.is_member(principal.user, repo.owner)
    visible = member or not repo.private
    gate_open = not repo.gated or member or (principal is not None and principal.user in repo.accepted)
    return Access(visible, visible and gate_open, member and principal is not None and principal.can_write)


def _disabled(repo: "RepoRecord | None") -> bool:
    return bool(repo is not None and repo.extra.get("disabled"))


# --------------------------------------------------------------------------------------------
# Push rules beyond the core's: binary files, pull-request refs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HfPushPolicy(PushPolicy):
    """The core policy plus the hub's own rules, enforced by the pre-receive hook
    (``prereceive.binary_file_errors`` / ``pr_ref_errors``).

    ``max_binary_plain_blob_size``: binary non-LFS blobs of this many bytes or more are refused
    (None = any). ``pull_requests``: the numbers of the pull requests opened through the API,
    the only ``refs/pr/N`` a push may create (None = any).
    """

    max_binary_plain_blob_size: int | None = None
    pull_requests: tuple[int, ...] | None = field(default=None)


def pull_request_numbers(hub: HubView, key: RepoKey) -> tuple[int, ...]:
    """Numbers of the pull requests opened on a repository (discussions that are PRs)."""
    repo = hub.state.get_repo(key)
    with hub.state.lock:
        found = list(repo.extra.get("discussions", ())) if repo is not None else []
    return tuple(d["num"] for d in found if d["isPullRequest"])


# --------------------------------------------------------------------------------------------
# The kind
# --------------------------------------------------------------------------------------------
class HuggingFaceKind(HubKind):
    """Hugging Face Hub: see the module docstring for what is reproduced."""

    name: ClassVar[str] = "huggingface"
    default_branch: ClassVar[str] = "main"
    token_prefix: ClassVar[str] = "sbxhf_"
    bot_name: ClassVar[str] = "system"
    bot_email: ClassVar[str] = "system@sandbox.invalid"
    object_auth: ClassVar[str] = "query"  # presigned S3-style hrefs, no header
    default_options: ClassVar[Mapping[str, Any]] = {
        "multipart_enabled": True,
        # The real hub offers multipart only for very large files; tests lower this.
        "multipart_threshold": FIVE_GB,
        # Non-LFS files above 10 MB are refused on push, as on the real hub (None = no limit).
        "max_plain_blob_size": TEN_MB,
        # Binary non-LFS files (a NUL in the first 8000 bytes) of 1 MB or more are refused in any
        # pushed commit (huggingface_hub PR #657, #687, #1404); None = no limit.
        "max_binary_plain_blob_size": ONE_MB,
        # refs/pr/N may be pushed only for a pull request opened through the API (#1998);
        # False lets a push create any refs/pr/N.
        "pr_refs_need_pr": True,
        # Entries per page of the tree API (the hub's cap is 1000; tests lower it to see paging).
        "tree_page_size": 1000,
        # Multipart part keys zero-padded to this width ("00001"), as huggingface.js documents.
        "multipart_key_width": 5,
        # Seconds upload hrefs live (None: href_ttl). The real hub presigns S3 uploads for 900 s;
        # tests that expire links on purpose set href_ttl, so the default leaves it to them.
        "upload_href_ttl": None,
    }

    # -- URLs -----------------------------------------------------------------------------
    def parse_repo_path(self, path: str) -> tuple[RepoKey, str] | None:
        split = split_git_path(path)
        if split is None:
            return None
        prefix, tail = split
        parts = [p for p in prefix.split("/") if p]
        repo_type = "model"
        if len(parts) == 3 and parts[0] in ("datasets", "spaces"):
            repo_type, parts = API_TYPES[parts[0]], parts[1:]
        if len(parts) != 2 or parts[0] in ("api", "datasets", "spaces"):
            return None
        return RepoKey(repo_type, "/".join(parts)), tail

    def git_url(self, hub: HubView, key: RepoKey) -> str:
        return f"{hub.endpoint}/{TYPE_PREFIXES[key.repo_type]}{key.repo_id}"

    def web_url(self, hub: HubView, key: RepoKey) -> str:
        return self.git_url(hub, key)

    # -- git and LFS auth -----------------------------------------------------------------
    def authenticate(self, hub: HubView, request: Request) -> Principal | None:
        """git/LFS: the token as Bearer or as the Basic password (any user name)."""
        token = self.presented_token(request)
        if token is None:
            return None
        record = hub.state.lookup_token(token)
        if record is None:
            raise git_error(401, "Invalid username or password.")
        return Principal(user=record.user, scope=record.scope, purpose=record.purpose)

    def can_read(self, hub: HubView, principal: Principal | None, key: RepoKey,
                 repo: "RepoRecord | None") -> "RepoRecord":
        access = access_of(hub, principal, repo)
        if not access.visible or repo is None:
            # Anonymous callers get 401 so that git asks its credential helper, as on the hub.
            raise git_error(401 if principal is None else 404, "Repository not found", "RepoNotFound")
        if _disabled(repo):
            raise git_error(403, "Access to this resource is disabled.")
        if not access.content:
            raise self.gated_error(hub, principal, key, git=True)
        return repo

    def can_write(self, hub: HubView, principal: Principal | None, key: RepoKey,
                  repo: "RepoRecord | None") -> "RepoRecord":
        if principal is None:
            raise git_error(401, "Repository not found", "RepoNotFound")
        repo = self.can_read(hub, principal, key, repo)
        if not principal.can_write and hub.state.is_member(principal.user, repo.owner):
            raise git_error(403, "Forbidden: you must use a write token to upload to a repository.")
        if not access_of(hub, principal, repo).write:
            raise git_error(403, f"You are not authorized to push to this repo ({key.repo_id}).")
        return repo

    def gated_error(self, hub: HubView, principal: Principal | None, key: RepoKey, git: bool) -> HttpError:
        make = git_error if git else api_error
        word = _type_word(key)
        if principal is None:
            return make(401, f"Access to {word} {key.repo_id} is restricted. You must have access to it "
                             "and be authenticated to access it. Please log in.", "GatedRepo")
        return make(403, f"Access to {word} {key.repo_id} is restricted and you are not in the authorized "
                         f"list. Visit {self.web_url(hub, key)} to ask for access.", "GatedRepo")

    # -- repositories and pushes ----------------------------------------------------------
    def new_repo_initial_commit(self, hub: HubView, key: RepoKey) -> bool:
        return True

    def push_policy(self, hub: HubView, key: RepoKey) -> PushPolicy:
        return HfPushPolicy(
            protected_branches=(self.default_branch,),
            allowed_refs=self.options.get("allowed_refs", PUSHABLE_REFS),
            max_plain_blob_size=self.options.get("max_plain_blob_size"),
            max_binary_plain_blob_size=self.options.get("max_binary_plain_blob_size"),
            pull_requests=pull_request_numbers(hub, key) if self.options.get("pr_refs_need_pr") else None,
        )

    def choose_transfer(self, hub: HubView, offered: list[str], operation: str, size: int) -> str:
        """Per object, as the real hub: multipart for an upload above ``multipart_threshold`` when
        offered, else basic. A batch mixing both says ``transfer: multipart`` for all of its
        objects (lfs.handle_batch); what tells a client is each object's own ``chunk_size``."""
        if (operation == "upload" and "multipart" in offered and self.options.get("multipart_enabled")
                and size > int(self.options["multipart_threshold"])):
            return "multipart"
        return "basic"

    # -- REST -----------------------------------------------------------------------------
    def handle_api(self, hub: HubView, request: Request) -> Response | None:
        if request.path.startswith("/api/"):
            return HfApiHandler(self, hub, request).dispatch()
        resolved = parse_resolve_path(request.path)
        if resolved is None or request.method.upper() not in ("GET", "HEAD"):
            return None
        key, rest = resolved
        return HfApiHandler(self, hub, request).resolve(key, rest)


def parse_resolve_path(path: str) -> tuple[RepoKey, list[str]] | None:
    """``/{prefix}{owner}/{name}/resolve/{rev...}/{path...}`` -> (repository, [rev..., path...])."""
    parts = path.lstrip("/").split("/")
    repo_type = "model"
    if parts and parts[0] in ("datasets", "spaces"):
        repo_type, parts = API_TYPES[parts[0]], parts[1:]
    if len(parts) < 5 or parts[2] != "resolve" or parts[0] in ("api", "datasets", "spaces"):
        return None
    return RepoKey(repo_type, f"{parts[0]}/{parts[1]}"), parts[3:]


class HfApiHandler:
    """One REST request. Kept apart from the kind so each route is a small method."""

    def __init__(self, kind: HuggingFaceKind, hub: HubView, request: Request) -> None:
        self.kind = kind
        self.hub = hub
        self.request = request

    # -- routing --------------------------------------------------------------------------
    def dispatch(self) -> Response:
        method, path = self.request.method.upper(), self.request.path.rstrip("/")
        if path == "/api/whoami-v2" and method == "GET":
            return self.whoami()
        discussions = self.discussions_route(method, path)
        if discussions is not None:
            return discussions
        if path == "/api/repos/create" and method == "POST":
            return self.create_repo()
        if path == "/api/repos/delete" and method == "DELETE":
            return self.delete_repo()
        parts = path.split("/")
        # /api/{models|datasets|spaces}/{owner}/{name}[/...]
        if len(parts) >= 5 and parts[2] in API_TYPES and method == "GET":
            key = RepoKey(API_TYPES[parts[2]], f"{parts[3]}/{parts[4]}")
            return self.repo_route(key, parts[5:])
        raise api_error(404, "Sorry, we can't find the page you are looking for.")

    def repo_route(self, key: RepoKey, rest: list[str]) -> Response:
        if not rest:
            return self.repo_info(key, None)
        if rest[0] == "revision" and len(rest) > 1:
            return self.repo_info(key, "/".join(rest[1:]))
        if rest == ["refs"]:
            return self.refs(key)
        if rest == ["auth-check"]:
            return self.auth_check(key, write=False)
        if rest == ["auth-check", "write"]:
            return self.auth_check(key, write=True)
        if rest[0] == "tree" and len(rest) > 1:
            return self.tree(key, rest[1:])
        raise api_error(404, "Sorry, we can't find the page you are looking for.")

    # -- auth -----------------------------------------------------------------------------
    def principal(self) -> Principal | None:
        """The caller of an API route: Bearer only; an unknown token is refused everywhere."""
        token = self.request.bearer_token()
        if token is None:
            return None
        record = self.hub.state.lookup_token(token)
        if record is None:
            raise api_error(401, INVALID_CREDENTIALS)
        return Principal(user=record.user, scope=record.scope, purpose=record.purpose)

    def visible_repo(self, key: RepoKey, principal: Principal | None) -> "RepoRecord":
        repo = self.hub.state.get_repo(key)
        if not access_of(self.hub, principal, repo).visible or repo is None:
            raise repo_not_found(principal)
        return repo

    # -- discussions and pull requests ----------------------------------------------------
    def discussions_route(self, method: str, path: str) -> Response | None:
        """``POST /api/{type}s/{id}/discussions`` (open one; ``pullRequest: true`` makes it a PR,
        as ``HfApi.create_pull_request`` sends) and ``GET .../discussions/{num}`` (what
        ``HfApi.get_discussion_details`` reads); None for any other path."""
        parts = path.split("/")
        if len(parts) < 6 or parts[2] not in API_TYPES or parts[5] != "discussions":
            return None
        key = RepoKey(API_TYPES[parts[2]], f"{parts[3]}/{parts[4]}")
        if len(parts) == 6 and method == "POST":
            return self.open_discussion(key)
        if len(parts) == 7 and parts[6].isdigit() and method == "GET":
            return self.discussion(key, int(parts[6]))
        raise api_error(404, "Sorry, we can't find the page you are looking for.")

    def open_discussion(self, key: RepoKey) -> Response:
        principal = self.principal()
        if principal is None:
            raise api_error(401, NOT_SIGNED_IN)
        repo = self.visible_repo(key, principal)
        if not principal.can_write:
            raise api_error(403, "You need a write token to open a discussion")
        body = self.request.json()
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not 3 <= len(title.strip()) <= 200:
            raise api_error(400, "\"title\" must be between 3 and 200 characters")
        is_pr = bool(body.get("pullRequest"))
        base = f"refs/heads/{self.kind.default_branch}"
        with self.hub.state.lock:
            found = repo.extra.setdefault("discussions", [])
            record = {"num": len(found) + 1, "title": title.strip(), "isPullRequest": is_pr,
                      "author": principal.user, "createdAt": time.time(), "base": base}
            found.append(record)
        head = self.hub.refs(key).get(base)
        if is_pr and head:  # a new PR starts as its target branch, as on the hub
            self.hub.run_git(key, "update-ref", f"refs/pr/{record['num']}", head)
        url = f"{self.kind.web_url(self.hub, key)}/discussions/{record['num']}"
        return json_response(200, {"num": record["num"], "url": url, "pullRequest": is_pr})

    def discussion(self, key: RepoKey, num: int) -> Response:
        repo = self.visible_repo(key, self.principal())
        with self.hub.state.lock:
            found = [d for d in repo.extra.get("discussions", ()) if d["num"] == num]
        if not found:
            raise api_error(404, "Discussion not found")
        record = found[0]
        is_pr = record["isPullRequest"]
        body = {"num": num, "title": record["title"], "author": {"name": record["author"]},
                "createdAt": _iso(record["createdAt"]), "status": "draft" if is_pr else "open",
                "repo": {"name": key.repo_id, "type": key.repo_type}, "isPullRequest": is_pr,
                "events": [], "changes": {"base": record["base"]}, "filesWithConflicts": [], "diff": ""}
        return json_response(200, body)

    # -- routes ---------------------------------------------------------------------------
    def whoami(self) -> Response:
        principal = self.principal()
        if principal is None:
            raise api_error(401, NOT_SIGNED_IN)
        user = self.hub.state.users[principal.user]
        record = self.hub.state.lookup_token(self.request.bearer_token())
        orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "write",
                 "id": _object_id("org", org)} for org in sorted(user.orgs)]
        body = {
            "type": "user", "id": _object_id("user", user.name), "name": user.name,
            "fullname": user.fullname or user.name, "email": user.email, "emailVerified": True,
            "canPay": False, "isPro": False, "periodEnd": None, "avatarUrl": "", "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {
                "displayName": "sandbox", "role": principal.scope,
                "createdAt": _iso(record.created_at if record else 0)}},
        }
        return json_response(200, body)

    def repo_info(self, key: RepoKey, revision: str | None) -> Response:
        principal = self.principal()
        repo = self.visible_repo(key, principal)
        commit = resolve_revision(self.hub, key, revision or self.kind.default_branch)
        if revision is not None and commit is None:
            raise api_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return json_response(200, repo_payload(self.hub, repo, commit))

    def refs(self, key: RepoKey) -> Response:
        self.visible_repo(key, self.principal())
        with_prs = self.request.query_value("include_prs") in ("1", "true", "True")
        return json_response(200, refs_payload(self.hub, key, with_prs))

    def auth_check(self, key: RepoKey, write: bool) -> Response:
        principal = self.principal()
        repo = self.visible_repo(key, principal)
        access = access_of(self.hub, principal, repo)
        if not access.content:
            raise self.kind.gated_error(self.hub, principal, key, git=False)
        if write and not access.write:
            raise api_error(403, f"You don't have write access to {key.repo_id}")
        return json_response(200, {"success": True})

    # -- downloads ------------------------------------------------------------------------
    def at_revision(self, key: RepoKey, parts: list[str]) -> tuple[str, str]:
        """(commit, path) of ``[rev..., path...]``; 404 RevisionNotFound when no revision matches."""
        split = split_revision(self.hub, key, parts)
        if split is None:
            raise api_error(404, f"Invalid rev id: {parts[0] if parts else ''}", "RevisionNotFound")
        return split[1], split[2]

    def tree(self, key: RepoKey, parts: list[str]) -> Response:
        """One page of the tree at a revision: ``[{type, oid, size, path[, lfs]}]`` (hf_api.py
        ``_iter_repo_tree_pages``); the file list is as visible as ``repo_info``'s siblings."""
        self.visible_repo(key, self.principal())
        commit, root = self.at_revision(key, parts)
        recursive = (self.request.query_value("recursive") or "").lower() in ("1", "true")
        entries = list_tree(self.hub, key, commit, root, recursive)
        if entries is None:
            raise api_error(404, f"Entry not found: {root}", "EntryNotFound")
        size = max(1, int(self.kind.options.get("tree_page_size", 1000)))
        cursor = self.request.query_value("cursor") or "0"
        start = int(cursor) if cursor.isdigit() else 0
        headers = {}
        if start + size < len(entries):
            query = [(k, v) for k, v in parse_qsl(self.request.query_string, keep_blank_values=True) if k != "cursor"]
            url = f"{self.hub.endpoint}{quote(self.request.path)}?{urlencode([*query, ('cursor', start + size)])}"
            headers["Link"] = f'<{url}>; rel="next"'
        return json_response(200, [tree_item(e) for e in entries[start:start + size]], headers)

    def resolve(self, key: RepoKey, parts: list[str]) -> Response:
        """``HEAD``/``GET /{prefix}{id}/resolve/{rev}/{path}``: a plain file's bytes, or a 302 to
        storage for an LFS file; the headers ``get_hf_file_metadata`` reads, on both."""
        principal = self.principal()
        repo = self.visible_repo(key, principal)
        if not access_of(self.hub, principal, repo).content:
            raise self.kind.gated_error(self.hub, principal, key, git=False)
        commit, path = self.at_revision(key, parts)
        entry = file_entry(self.hub, key, commit, path)
        headers = {"X-Repo-Commit": commit}
        if entry is None:
            message = f"Entry not found: {path}"
            raise HttpError(json_response(404, {"error": message},
                                          {**headers, "X-Error-Code": "EntryNotFound", "X-Error-Message": message}))
        headers["ETag"] = f'"{entry.oid}"'
        if entry.lfs is not None:
            headers.update({"Location": download_href(self.hub, key, entry.lfs),
                            "X-Linked-Etag": f'"{entry.lfs.oid}"', "X-Linked-Size": str(entry.lfs.size)})
            return Response(302, b"", headers)
        headers["Content-Type"] = "application/octet-stream"
        return Response(200, read_blob(self.hub, key, entry.oid), headers)

    def named_repo(self) -> tuple[Principal, "CreateRequest", RepoKey]:
        """The signed-in caller and the repository a create/delete body names."""
        principal = self.principal()
        if principal is None:
            raise api_error(401, NOT_SIGNED_IN)
        request = parse_create(self.request.json(), principal.user)
        return principal, request, RepoKey(request.repo_type, f"{request.owner}/{request.name}")

    def create_repo(self) -> Response:
        principal, request, key = self.named_repo()
        if not self.hub.state.is_member(principal.user, request.owner) or not principal.can_write:
            raise api_error(403, f"You don't have the rights to create a {request.repo_type} "
                                 f"under the namespace \"{request.owner}\"")
        url = self.kind.git_url(self.hub, key)
        try:
            self.hub.create_repo(key.repo_id, repo_type=key.repo_type, private=request.private)
        except FileExistsError:
            raise HttpError(json_response(409, {"error": f"You already created this {key.repo_type} repo",
                                                "url": url},
                                          {"X-Error-Message": f"You already created this {key.repo_type} repo"}))
        return json_response(200, {"url": url, "name": key.repo_id, "id": _object_id(str(key), "repo")})

    def delete_repo(self) -> Response:
        """``DELETE /api/repos/delete {"name","organization","type"}`` (hf_api.py ``delete_repo``)."""
        principal, _, key = self.named_repo()
        repo = self.visible_repo(key, principal)
        if not access_of(self.hub, principal, repo).write:
            raise api_error(403, f"You don't have the rights to delete {key.repo_id}")
        remove_repository(self.hub, key)
        return json_response(200, {})


# --------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateRequest:
    owner: str
    name: str
    repo_type: str
    private: bool


def parse_create(body: Any, user: str) -> CreateRequest:
    """``{"name","organization","type","private"|"visibility"}`` as huggingface_hub sends it."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise api_error(400, "\"name\" is required")
    name = body["name"]
    owner = body.get("organization") or user
    repo_type = body.get("type") or "model"
    if repo_type not in TYPE_PREFIXES:
        raise api_error(400, f"Invalid repo type: {repo_type}")
    if not NAME_RE.match(name) or not isinstance(owner, str) or not NAME_RE.match(owner) \
            or "--" in name or ".." in name:
        raise api_error(400, "Invalid repo name: use letters, digits, '-', '_' and '.' "
                             "('--' and '..' are forbidden, '-' and '.' cannot start or end the name)")
    private = body.get("private")
    if "visibility" in body:  # huggingface_hub >= 1.x sends "visibility"
        private = body["visibility"] == "private"
    return CreateRequest(owner, name, repo_type, bool(private))


def resolve_revision(hub: HubView, key: RepoKey, revision: str) -> str | None:
    """The commit a branch, tag, ``refs/...`` name or full sha names, or None."""
    return resolve_commit(hub, key, revision)


def tree_item(entry: Entry) -> dict[str, Any]:
    """One entry of the tree API, as ``RepoFile`` / ``RepoFolder`` (hf_api.py) read it; an LFS
    file's ``size`` is its real size, and ``lfs.pointerSize`` the pointer's."""
    if entry.kind == "tree":
        return {"type": "directory", "oid": entry.oid, "size": 0, "path": entry.path}
    item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.file_size, "path": entry.path}
    if entry.lfs is not None:
        item["lfs"] = {"oid": entry.lfs.oid, "size": entry.lfs.size, "pointerSize": entry.size}
    return item


def commit_date(hub: HubView, key: RepoKey, commit: str | None) -> str | None:
    if commit is None:
        return None
    stamp = hub.run_git(key, "show", "-s", "--format=%ct", commit)
    return _iso(float(stamp)) if stamp.isdigit() else None


def repo_payload(hub: HubView, repo: "RepoRecord", commit: str | None) -> dict[str, Any]:
    """What ``GET /api/{type}s/{id}`` returns (enough for ModelInfo/DatasetInfo/SpaceInfo)."""
    key = repo.key
    files = hub.run_git(key, "ls-tree", "-r", "--name-only", commit).splitlines() if commit else []
    payload: dict[str, Any] = {
        "_id": _object_id(str(key), "repo"),
        "id": key.repo_id,
        "author": key.owner,
        "sha": commit,
        "lastModified": commit_date(hub, key, commit) or _iso(repo.created_at),
        "createdAt": _iso(repo.created_at),
        "private": repo.private,
        "gated": repo.gated or False,
        "disabled": bool(repo.extra.get("disabled", False)),
        "downloads": 0,
        "likes": 0,
        "tags": list(repo.extra.get("tags", [])),
        "siblings": [{"rfilename": name} for name in files],
    }
    if key.repo_type == "model":
        payload["modelId"] = key.repo_id
    if key.repo_type == "space":
        payload["sdk"] = repo.extra.get("sdk", "static")
        payload["subdomain"] = key.repo_id.replace("/", "-").lower()
    return payload


REF_GROUPS = (("refs/heads/", "branches"), ("refs/tags/", "tags"),
              ("refs/convert/", "converts"), ("refs/pr/", "pullRequests"))


def refs_payload(hub: HubView, key: RepoKey, with_prs: bool) -> dict[str, list[dict[str, str]]]:
    """``{branches, tags, converts[, pullRequests]}``, each ``{name, ref, targetCommit}``."""
    groups: dict[str, list[dict[str, str]]] = {group: [] for _, group in REF_GROUPS}
    # %(*objectname) is the peeled commit of an annotated tag: targetCommit is always a commit.
    out = hub.run_git(key, "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)")
    for line in out.splitlines():
        refname, sha, *peeled = line.split(" ")
        for prefix, group in REF_GROUPS:
            if refname.startswith(prefix):
                target = peeled[0] if peeled and peeled[0] else sha
                groups[group].append({"name": refname[len(prefix):], "ref": refname, "targetCommit": target})
    if not with_prs:
        del groups["pullRequests"]
    return groups


def _iso(stamp: float) -> str:
    """The hub's timestamp format, which huggingface_hub's parse_datetime expects."""
    moment = datetime.fromtimestamp(stamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _object_id(*parts: str) -> str:
    """A stable 24-hex id, shaped like the hub's database ids."""
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:24]


KIND = HuggingFaceKind
