"""Hugging Face adapter: the hub's REST API for preflight and creation, git + LFS URLs for the rest.

The REST calls go through :mod:`gitmirror.hubs._hf_rest` (requests, with the run's timeouts)
rather than huggingface_hub's HfApi, whose shared client has no timeout at all; huggingface_hub
is still the reference for the protocol and validates repository ids. Its import stays inside
functions: ``gitmirror --help`` must not pay for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import requests

from gitmirror.credentials import Token, describe
from gitmirror.errors import (
    AuthError,
    GatedRepoError,
    GitMirrorError,
    PermissionDeniedError,
    ProtocolError,
    RepoNotFoundError,
    TRANSIENT_HTTP_STATUSES,
    TransientError,
    UsageError,
)
from gitmirror.hubs._hf_rest import HfHttpError, HfNotJson, HfRest
from gitmirror.hubs._support import CallOptions, call, one_line
from gitmirror.hubs.base import GitAuth, Hub, RepoInfo
from gitmirror.retry import RetryPolicy, parse_retry_after

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

    # --- doctor ------------------------------------------------------------------------------

    def whoami(self) -> str:
        """The token's account and role ("alice, token role write"), for ``doctor``.

        Raises AuthError for a missing or rejected token. Not used by mirror runs: whoami is
        rate-limited on the hub.
        """
        if self._token is None:
            raise AuthError("no Hugging Face token was found", hint="set HF_TOKEN or run `hf auth login`")
        who = self._whoami()
        role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
        name = who.get("name") or "an unnamed account"
        return f"{name}, token role {role}" if role else str(name)

    # --- preflight ---------------------------------------------------------------------------

    def preflight_source(self) -> RepoInfo:
        # No whoami here: it is rate-limited on the hub, and an unknown token already gets a
        # 401 "Invalid credentials" on the repository route, which _translate_http tells apart.
        info = self._repo_info()
        if info.get("disabled"):
            raise self._disabled()
        if info.get("gated"):
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
        if info.get("disabled"):
            raise self._disabled()
        self._check_write_access()
        return RepoInfo(exists=True, private=_private_of(info))

    # --- the REST calls, each retried and translated ---------------------------------------

    def _rest(self) -> HfRest:
        return HfRest(self.spec.endpoint or "", self._token.value if self._token else None, self._opts.policy or RetryPolicy())

    def _call(self, what: str, fn: Any) -> Any:
        self._validate_name()
        return call(f"{what} {self.display_name()}", fn, self._translate, self._opts)

    def _validate_name(self) -> None:
        # huggingface_hub's own rules are stricter than our spec parser ("--", "..", length).
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(self.spec.repo_id)
        except HFValidationError as exc:
            raise UsageError(f"{self.display_name()} is not a valid Hugging Face repository id: {one_line(exc, 160)}") from None

    def _whoami(self) -> dict:
        try:
            return self._call("whoami for", lambda: self._rest().whoami())
        except AuthError as exc:
            if self._token is None:
                raise
            raise self._rejected() from exc  # any 401 on whoami-v2 with a token: the token is bad

    def _repo_info(self) -> dict:
        rest = self._rest()
        return self._call("repo info of", lambda: rest.repo_info(self.spec.repo_type, self.spec.repo_id))

    def _check_gated_access(self) -> None:
        if self._token is None:
            raise GatedRepoError(
                f"{self.display_name()} is gated: only accounts that accepted its terms may read it",
                hint=f"accept them at {self._web_url()} and set HF_TOKEN to that account's token",
            )
        rest = self._rest()
        self._call("access check of", lambda: rest.auth_check(self.spec.repo_type, self.spec.repo_id))

    def _check_write_access(self) -> None:
        rest = self._rest()
        try:
            self._call("write check of", lambda: rest.auth_check(self.spec.repo_type, self.spec.repo_id, write=True))
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
        rest = self._rest()
        sdk = SPACE_SDK if self.spec.repo_type == "space" else None
        try:
            self._call("create", lambda: rest.create_repo(self.spec.repo_type, self.spec.repo_id, private, sdk))
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
        if isinstance(exc, HfHttpError):
            return self._translate_http(exc)
        if isinstance(exc, HfNotJson):
            return ProtocolError(f"{self.spec.endpoint} answered something that is not the expected JSON: {one_line(exc, 160)}")
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                            ConnectionError, TimeoutError)):
            return TransientError(f"cannot reach {self.spec.endpoint}: {type(exc).__name__}")
        return GitMirrorError(f"unexpected error talking to {self.spec.endpoint}: {type(exc).__name__}: {one_line(exc)}")

    def _translate_http(self, exc: HfHttpError) -> GitMirrorError:
        status, name, anonymous = exc.status, self.display_name(), self._token is None
        server = one_line(exc.message or exc.text or "")
        detail = f" ({server})" if server else ""
        if status in TRANSIENT_HTTP_STATUSES or status >= 500:
            return TransientError(f"{self.spec.endpoint} answered {status}{detail}", retry_after=parse_retry_after(exc.retry_after))
        if exc.invalid_token:
            return self._rejected()
        if exc.code == "GatedRepo":
            return GatedRepoError(
                f"{name} is gated and the account of the token from {describe(self._token)} has not been granted access",
                hint=f"accept the terms at {self._web_url()} with that account, then run again",
            )
        if exc.disabled:
            return self._disabled()
        if exc.code == "RepoNotFound" or status in (401, 404):
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
        if status in (400, 422):
            return UsageError(f"Hugging Face refused the request for {name}{detail}", hint="check the owner and name")
        return GitMirrorError(f"Hugging Face answered {status} for {name}{detail}")

    def _rejected(self) -> GitMirrorError:
        return AuthError(
            f"Hugging Face rejected the token from {describe(self._token)}",
            hint="it is wrong, expired or revoked; set HF_TOKEN or pass a valid token",
        )


class _Conflict(GitMirrorError):
    """409 from create_repo: the repository exists (maybe invisible to us)."""


def _private_of(info: dict) -> bool | None:
    private = info.get("private")
    return bool(private) if private is not None else None
