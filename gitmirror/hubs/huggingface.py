"""Hugging Face adapter: huggingface_hub's HfApi for the REST side, git + LFS URLs for the rest.

huggingface_hub is imported inside functions only: ``gitmirror --help`` must not pay for it.
The endpoint is always passed explicitly (``HF_ENDPOINT`` is read once, at import, by the
library) and the token is always explicit too (``False`` for anonymous), so the library never
falls back to a token we did not choose.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from gitmirror.credentials import Token, describe
from gitmirror.errors import (
    AuthError,
    EnvironmentProblem,
    GatedRepoError,
    GitMirrorError,
    PermissionDeniedError,
    ProtocolError,
    RepoNotFoundError,
    TRANSIENT_HTTP_STATUSES,
    TransientError,
    UsageError,
)
from gitmirror.hubs._support import CallOptions, call, one_line
from gitmirror.hubs.base import GitAuth, Hub, RepoInfo
from gitmirror.retry import parse_retry_after

if TYPE_CHECKING:
    from gitmirror.lfs import LfsStore
    from gitmirror.specs import RepoSpec

log = logging.getLogger("gitmirror.hubs.huggingface")

#: Any user name works with a token as the password; this one shows up in server logs.
GIT_USERNAME = "gitmirror"
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
#: A new Space needs an SDK; "static" is the one that costs nothing to create.
SPACE_SDK = "static"


class HuggingFaceHub(Hub):
    new_repo_default_branch = "main"

    def __init__(self, spec: "RepoSpec", token: Token | None, opts: CallOptions | None = None) -> None:
        if spec.host != "huggingface" or not spec.repo_id or not spec.endpoint:
            raise ValueError(f"not a Hugging Face spec: {spec.display}")
        self.spec = spec
        self._token = token
        self._opts = opts or CallOptions()

    # --- what git and LFS need ---------------------------------------------------------------

    @property
    def git_url(self) -> str:
        return f"{self.spec.endpoint}/{_URL_PREFIX[self.spec.repo_type]}{self.spec.repo_id}"

    @property
    def lfs_url(self) -> str:
        return f"{self.git_url}.git/info/lfs"

    @property
    def credential_source(self) -> str:
        return describe(self._token)

    def git_auth(self) -> GitAuth | None:
        return GitAuth(GIT_USERNAME, self._token.value) if self._token else None

    def lfs_store(self) -> "LfsStore":
        from gitmirror.lfs import HttpLfsStore

        auth = self.git_auth()
        headers = {"Authorization": auth.basic_header()} if auth else {}
        return HttpLfsStore(self.lfs_url, headers, policy=self._opts.policy, multipart=True)

    # --- preflight ---------------------------------------------------------------------------

    def preflight_source(self) -> RepoInfo:
        # No whoami here: it is rate-limited on the hub, and an unknown token already gets a
        # 401 "Invalid credentials" on the repository route, which _translate_http tells apart.
        info = self._repo_info()
        if getattr(info, "disabled", False):
            raise self._disabled()
        if getattr(info, "gated", False):
            self._check_gated_access()
        return RepoInfo(exists=True, private=_private_of(info))

    def ensure_destination(self, private: bool | None) -> RepoInfo:
        if self._token is None:
            raise AuthError(
                f"writing to {self.display_name()} needs a Hugging Face token with write access",
                hint="set HF_TOKEN or pass --dst-token",
            )
        self._require_write_role(self._whoami())
        try:
            info = self._repo_info()
        except RepoNotFoundError:
            return self._create(private)
        if getattr(info, "disabled", False):
            raise self._disabled()
        self._check_write_access()
        return RepoInfo(exists=True, private=_private_of(info))

    # --- the REST calls, each retried and translated ---------------------------------------

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.spec.endpoint, token=self._token.value if self._token else False)

    def _call(self, what: str, fn: Any) -> Any:
        return call(f"{what} {self.display_name()}", fn, self._translate, self._opts)

    def _whoami(self) -> dict:
        result = self._call("whoami for", lambda: self._api().whoami())
        if not isinstance(result, dict):
            raise ProtocolError(f"{self.spec.endpoint}/api/whoami-v2 answered something that is not a user record")
        return result

    def _repo_info(self) -> Any:
        api = self._api()
        return self._call("repo info of", lambda: api.repo_info(self.spec.repo_id, repo_type=self.spec.repo_type))

    def _check_gated_access(self) -> None:
        if self._token is None:
            raise GatedRepoError(
                f"{self.display_name()} is gated: only accounts that accepted its terms may read it",
                hint=f"accept them at {self._web_url()} and set HF_TOKEN to that account's token",
            )
        api = self._api()
        self._call("access check of", lambda: api.auth_check(self.spec.repo_id, repo_type=self.spec.repo_type))

    def _check_write_access(self) -> None:
        api = self._api()
        try:
            self._call(
                "write check of",
                lambda: api.auth_check(self.spec.repo_id, repo_type=self.spec.repo_type, write=True),
            )
        except RepoNotFoundError as exc:
            raise PermissionDeniedError(
                f"the token from {describe(self._token)} may not write to {self.display_name()}",
                hint="use a token with write access to this repository",
            ) from exc

    def _require_write_role(self, who: dict) -> None:
        # whoami-v2 names the token's role: "read", "write", or "fineGrained" (scoped; the
        # write check on the repository itself decides those).
        role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":
            raise PermissionDeniedError(
                f"the Hugging Face token from {describe(self._token)} is read-only; "
                f"it cannot create or push to {self.display_name()}",
                hint="create a token with the 'write' role at huggingface.co/settings/tokens",
            )

    def _create(self, private: bool | None) -> RepoInfo:
        api = self._api()
        kwargs: dict[str, Any] = {"repo_type": self.spec.repo_type, "private": private, "exist_ok": False}
        if self.spec.repo_type == "space":
            kwargs["space_sdk"] = SPACE_SDK
        try:
            self._call("create", lambda: api.create_repo(self.spec.repo_id, **kwargs))
        except _Conflict:
            # Created meanwhile (another run), or it exists and this account cannot see it.
            try:
                info = self._repo_info()
            except RepoNotFoundError as exc:
                raise PermissionDeniedError(
                    f"{self.display_name()} exists but the account of the token from {describe(self._token)} cannot see it",
                    hint="ask its owner for access, or mirror to another name",
                ) from exc
            self._check_write_access()
            return RepoInfo(exists=True, private=_private_of(info))
        except PermissionDeniedError as exc:
            owner = self.spec.repo_id.split("/")[0]
            raise PermissionDeniedError(
                f"cannot create {self.display_name()}: this account may not create repositories under {owner!r}",
                hint="check the owner name, or use a token of an account that belongs to that organization",
            ) from exc
        log.info("created %s (%s)", self.display_name(), "private" if private else "public")
        return RepoInfo(exists=True, private=private, default_branch=self.new_repo_default_branch, created=True)

    # --- error translation -------------------------------------------------------------------

    def _web_url(self) -> str:
        return self.git_url

    def _disabled(self) -> GitMirrorError:
        return PermissionDeniedError(
            f"{self.display_name()} has been disabled by the hub and cannot be read",
            hint="nothing to mirror; contact the repository's owner",
        )

    def _translate(self, exc: BaseException) -> GitMirrorError:
        from huggingface_hub import errors as hf

        name = self.display_name()
        if isinstance(exc, hf.OfflineModeIsEnabled):
            return EnvironmentProblem("HF_HUB_OFFLINE is set, so huggingface_hub refuses every request", hint="unset HF_HUB_OFFLINE")
        if isinstance(exc, hf.GatedRepoError):
            return GatedRepoError(
                f"{name} is gated and the account of the token from {describe(self._token)} has not been granted access",
                hint=f"accept the terms at {self._web_url()} with that account, then run again",
            )
        if isinstance(exc, hf.DisabledRepoError):
            return self._disabled()
        if isinstance(exc, hf.HFValidationError):
            # huggingface_hub checks names more strictly than our spec parser ("--", "..", length).
            return UsageError(f"{name} is not a valid Hugging Face repository id: {one_line(exc, 160)}")
        if isinstance(exc, hf.HfHubHTTPError):
            return self._translate_http(exc)
        if isinstance(exc, (json.JSONDecodeError, KeyError, TypeError, ValueError)) and not isinstance(exc, hf.HfHubHTTPError):
            return ProtocolError(f"{self.spec.endpoint} answered something that is not the expected JSON ({type(exc).__name__})")
        if _is_transport_error(exc):
            return TransientError(f"cannot reach {self.spec.endpoint}: {type(exc).__name__}: {one_line(exc)}")
        return GitMirrorError(f"unexpected error talking to {self.spec.endpoint}: {type(exc).__name__}: {one_line(exc)}")

    def _translate_http(self, exc: Any) -> GitMirrorError:
        from huggingface_hub import errors as hf

        response = exc.response
        status = response.status_code if response is not None else 0
        name = self.display_name()
        anonymous = self._token is None
        server = one_line(getattr(exc, "server_message", None) or response.headers.get("X-Error-Message", "") or "")
        detail = f" ({server})" if server else ""
        if status in TRANSIENT_HTTP_STATUSES:
            return TransientError(
                f"{self.spec.endpoint} answered {status}{detail}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            return TransientError(f"{self.spec.endpoint} answered {status}{detail}")
        invalid_token = response.headers.get("X-Error-Message") == "Invalid credentials in Authorization header"
        if status == 401 and (invalid_token or (not anonymous and _is_whoami(response))):
            return AuthError(
                f"Hugging Face rejected the token from {describe(self._token)}",
                hint="it is wrong, expired or revoked; set HF_TOKEN or pass a valid token",
            )
        if isinstance(exc, hf.RepositoryNotFoundError) or status in (401, 404):
            if anonymous and status == 401:
                return AuthError(
                    f"{name} is private or does not exist, and no Hugging Face token was found",
                    hint="set HF_TOKEN (or run `hf auth login`, or pass --src-token) if it is private",
                )
            who = "anonymous access" if anonymous else f"the token from {describe(self._token)}"
            return RepoNotFoundError(
                f"{name} does not exist, or it is private and {who} cannot see it",
                hint="check the name and repository type (datasets/, spaces/), or use a token that can read it",
            )
        if status == 403:
            return PermissionDeniedError(f"Hugging Face refused access to {name}{detail}", hint="use a token with the needed rights")
        if status == 409:
            return _Conflict(f"{name} already exists{detail}")
        return GitMirrorError(f"Hugging Face answered {status} for {name}{detail}")


class _Conflict(GitMirrorError):
    """409 from create_repo: the repository exists (maybe invisible to us)."""


def _private_of(info: Any) -> bool | None:
    private = getattr(info, "private", None)
    return bool(private) if private is not None else None


def _is_whoami(response: Any) -> bool:
    request = getattr(response, "request", None)
    return request is not None and str(request.url).endswith("/api/whoami-v2")


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import httpx2
    except ImportError:  # pragma: no cover - depends on the huggingface_hub version
        httpx2 = None  # type: ignore[assignment]
    if httpx2 is not None and isinstance(exc, httpx2.TransportError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, httpx.TransportError)
