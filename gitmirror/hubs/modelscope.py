"""ModelScope adapter: modelscope_hub's HubApi for the REST side, git + LFS with the *git* token.

ModelScope has two tokens. The SDK (API) token authenticates REST calls; git and LFS need the
separate git token that ``POST /api/v1/login`` hands out for it. We obtain it through the SDK's
login call without letting the SDK persist anything (``HubApi.login`` would overwrite the
user's stored login), and keep it in memory only, never in a URL.

The SDK itself is built in :mod:`gitmirror.hubs.modelscope_sdk` (one endpoint, exactly one token,
its own retries off so that :mod:`gitmirror.retry` alone decides, ``Success: false`` answers
turned into errors).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gitmirror.credentials import ModelScopeTokens, Token, describe, token_from
from gitmirror.errors import (
    AuthError,
    GitMirrorError,
    PermissionDeniedError,
    ProtocolError,
    RepoNotFoundError,
    TransientError,
    UsageError,
    certificate_error,
    certificate_failure,
    error_class_for_status,
    error_for_status,
)
from gitmirror.hubs._support import CallOptions, call, one_line, probe_lfs_write
from gitmirror.hubs.base import HUB_INITIAL_FILES, GitAuth, Hub, RepoInfo
from gitmirror.hubs.logins import LoginCache, login_key
from gitmirror.hubs.modelscope_sdk import EnvelopeFailure, build_sdk
from gitmirror.retry import RetryPolicy, retry_after_from
from gitmirror.rules import DestinationRules, RefNames

if TYPE_CHECKING:
    from gitmirror.lfs import LfsStore
    from gitmirror.specs import RepoSpec

log = logging.getLogger("gitmirror.hubs.modelscope")

GIT_USERNAME = "oauth2"
VISIBILITY_PRIVATE = 1
VISIBILITY_PUBLIC = 5
#: Business code of "already exists" (models; datasets use 10020101001).
_EXISTS_CODES = {10010101001, 10020101001, 10010202004}
#: The envelope code of a rate limit: modelscope_hub's errors._OPENAPI_CODE_MAP maps it to its
#: RateLimitError (a 429), and the hub sends it with Success: false (see the reference's hubs.md).
_RATE_LIMIT_CODES = {"RateLimitExceed"}
#: The code of a 400 from login meaning "AccessToken is invalid or expired" (an authentication failure).
_LOGIN_TOKEN_INVALID = 10010103009
_SDK_REPO_TYPE = {"model": "model", "dataset": "dataset"}
#: What a login leaves: the git token, or the error its refusal stands for.
LoginOutcome = tuple["Token | None", "GitMirrorError | None"]


class ModelScopeHub(Hub):
    new_repo_default_branch = "master"
    # A new repository's first commit is undocumented; the old SDK's create_repo pushed a
    # configuration.json by default (docs/hubs.md), so that one is the hub's own too.
    initial_files = HUB_INITIAL_FILES | {"configuration.json"}
    # Parsed by the hub, and so never stored in LFS by its SDK (modelscope_hub constants
    # UPLOAD_INLINE_METADATA_PATHS).
    metadata_files = frozenset({"README.md", "configuration.json", "config.json", ".gitattributes"})

    def __init__(
        self,
        spec: "RepoSpec",
        tokens: ModelScopeTokens,
        env: Mapping[str, str] | None = None,
        opts: CallOptions | None = None,
        logins: "LoginCache[LoginOutcome] | None" = None,
    ) -> None:
        """``logins``: the run's shared login results (None: this adapter logs in for itself)."""
        if spec.host != "modelscope" or not spec.repo_id or not spec.endpoint:
            raise ValueError(f"not a ModelScope spec: {spec.display}")
        self.spec = spec
        self._tokens = tokens
        self._env = os.environ if env is None else env
        self._opts = opts or CallOptions()
        self._git_token: Token | None = tokens.git
        self._login_refusal: GitMirrorError | None = None
        self._logged_in = False
        self._sdk_api: Any = None
        self._logins = logins

    # --- what git and LFS need ---------------------------------------------------------------

    @property
    def git_url(self) -> str:
        kind = "datasets" if self.spec.repo_type == "dataset" else "models"
        return f"{self.spec.endpoint}/{kind}/{self.spec.repo_id}.git"

    @property
    def lfs_url(self) -> str:
        return f"{self.git_url}/info/lfs"

    @property
    def credential_source(self) -> str:
        text = describe(self._tokens.sdk)
        if self._git_token is not None:
            text += f"; git token: {self._git_token.source}"
        return text

    def git_auth(self) -> GitAuth | None:
        # The git token comes from login(), an explicit step of the run: never a request here.
        if self._git_token is None and self._tokens.sdk is not None and not self._logged_in:
            raise RuntimeError("ModelScopeHub.login() must come before git_auth(), remote() or lfs_store()")
        return GitAuth(GIT_USERNAME, self._git_token.value) if self._git_token else None

    def lfs_store(self) -> "LfsStore":
        return self._http_lfs_store(self.lfs_url, self.git_auth())

    def rules(self) -> DestinationRules:
        """ModelScope's git server answers with GitLab's words, so branch names follow GitLab's
        rules (a branch named ``HEAD`` is refused: see :func:`gitmirror.rules.gitlab_branch_problem`)."""
        return DestinationRules(ref_name_check=RefNames.GITLAB)

    # --- doctor ------------------------------------------------------------------------------

    def whoami(self) -> str:
        """The SDK token's account name, for ``doctor``. Raises AuthError for a missing or rejected token."""
        if self._tokens.sdk is None:
            raise AuthError("no ModelScope token was found", hint="set MODELSCOPE_API_TOKEN or run `modelscope login`")
        user = self._whoami()
        return str(getattr(user, "username", None) or "an unnamed account")

    def git_token_source(self) -> str:
        """Obtain the git token (by login with the SDK token, unless a stored one goes with it); say where
        it came from, never its value. Raises AuthError / PermissionDeniedError as a push would."""
        token = self._ensure_git_token(required=True)
        assert token is not None  # required=True raises instead
        return token.source

    # --- preflight ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        # What build_sdk imports (the import is the work).
        import modelscope_hub._legacy_api  # noqa: F401
        import modelscope_hub._openapi  # noqa: F401
        import requests  # noqa: F401

    def preflight_source(self) -> RepoInfo:
        # A wrong token is a 401 on the repository route itself: no separate whoami needed.
        info = self._get_repo()
        private = _private_of(info)
        if private and self._tokens.sdk is not None:
            # A private source is cloned over git: learn now whether this token may do that.
            self._ensure_git_token(required=True)
        return RepoInfo(exists=True, private=private)

    def ensure_destination(self, private: bool | None) -> RepoInfo:
        if self._tokens.sdk is None:
            raise AuthError(
                f"writing to {self.display_name()} needs a ModelScope access token",
                hint="set MODELSCOPE_API_TOKEN or GITMIRROR_DST_TOKEN (--dst-token), or run `modelscope login`",
            )
        self._whoami()
        # Before anything is created: a token that cannot get git credentials cannot push.
        self._ensure_git_token(required=True)
        try:
            info = self._get_repo()
        except RepoNotFoundError:
            return self._create(private)
        # ModelScope has no "may I write here" call; the LFS batch API answers that question.
        probe_lfs_write(self.lfs_store(), self.display_name(), f"the token from {describe(self._tokens.sdk)}")
        return RepoInfo(exists=True, private=_private_of(info))

    # --- git token ---------------------------------------------------------------------------

    def login(self) -> None:
        """Trade the SDK token for the git token (``POST /api/v1/login``, as ``modelscope login``
        does), once per adapter, or once per run when the run shares logins (:meth:`_login`).
        Without an SDK token, or with a git token given, nothing is asked; a refusal is
        remembered and raised by the steps that need git credentials."""
        if self._git_token is None and self._tokens.sdk is not None and not self._logged_in:
            self._logged_in = True
            self._login()

    def _ensure_git_token(self, *, required: bool) -> Token | None:
        self.login()
        if self._git_token is None and required:
            raise self._login_refusal or AuthError(
                f"{self.display_name()} needs a ModelScope token for git",
                hint="set MODELSCOPE_API_TOKEN or pass a token",
            )
        return self._git_token

    def _login(self) -> None:
        """Trade the SDK token for the git token, once per run when the run shares its logins
        (``logins``, keyed by endpoint and SDK token), else once per adapter; a refusal is
        remembered (and shared), not retried."""
        sdk = self._tokens.sdk
        assert sdk is not None
        if self._logins is None:
            outcome = self._login_outcome(sdk)
        else:
            key = login_key(self.spec.endpoint or "", sdk.value)
            outcome = self._logins.get(key, lambda: self._login_outcome(sdk))
        self._git_token, self._login_refusal = outcome

    def _login_outcome(self, sdk: Token) -> "LoginOutcome":
        """The git token, or the error that stands for the refusal; a transient fault raises."""
        try:
            data = self._call("login to", lambda: self._post_login(sdk.value))
        except (AuthError, PermissionDeniedError) as exc:
            return None, self._explain_refusal(exc)
        value = data.get("AccessToken") if isinstance(data, dict) else None
        token = token_from(value, f"git token from ModelScope login with the {describe(sdk)} token")
        if token is None:
            return None, PermissionDeniedError(
                f"ModelScope login gave no git token for the token from {describe(sdk)}; it is probably read-only",
                hint="use an access token with write permission from modelscope.cn/my/myaccesstoken",
            )
        return token, None

    def _post_login(self, value: str) -> Any:
        """``POST /api/v1/login {"AccessToken": ...}`` -> its ``Data``, without the SDK.

        The login is the only call a mirror with nothing to do makes, and importing and
        building the SDK cost more than half a second of that run; the answer is read the
        way the SDK reads it (HTTP status, then the ``Success``/``Code`` envelope).
        """
        import json

        from gitmirror.httpclient import HttpClient, TransportError

        timeout = self._opts.policy or RetryPolicy()
        url = f"{(self.spec.endpoint or '').rstrip('/')}/api/v1/login"
        # gitmirror's own small HTTP client: requests alone would cost a tenth of a second to import.
        with HttpClient(timeout=(timeout.connect_timeout, timeout.read_timeout), pool_size=1) as http:
            try:
                resp = http.request("POST", url, body=json.dumps({"AccessToken": value}).encode(),
                                    headers={"Accept": "application/json", "Content-Type": "application/json"})
            except TransportError as exc:
                raise TransientError(f"cannot reach {self.spec.endpoint}: {exc.message}") from None
        try:
            body = json.loads(resp.data)
        except ValueError:
            body = None
        envelope = body if isinstance(body, dict) else {}
        message = one_line(envelope.get("Message") or envelope.get("message") or resp.reason or "", 160)
        code = _int(envelope.get("Code", envelope.get("code")))
        status = resp.status
        if status >= 300:
            # A 400 carrying the invalid-token code is the login's way of saying 401.
            kind = error_class_for_status(status, {400: AuthError} if code == _LOGIN_TOKEN_INVALID else None)
            if kind is AuthError:
                raise AuthError(
                    f"ModelScope rejected the token from {describe(self._tokens.sdk)} ({message})",
                    hint="it is wrong or expired, or it is a git token: use the access token from modelscope.cn/my/myaccesstoken",
                )
            if kind is PermissionDeniedError:
                raise PermissionDeniedError(f"ModelScope refused: {message}", hint="use a token with the needed rights")
            raise error_for_status(status, f"{self.spec.endpoint} failed: HTTP {status}: {message}",
                                   retry_after=retry_after_from(resp.headers))
        if body is None:
            raise ProtocolError(f"{self.spec.endpoint} answered with something that is not JSON")
        if envelope.get("Success", envelope.get("success")) is False:
            raise self._translate_envelope(EnvelopeFailure(message or "request refused", envelope.get("Code", envelope.get("code")),
                                                            status, retry_after_from(resp.headers)))
        return envelope.get("Data", envelope)

    def _explain_refusal(self, exc: GitMirrorError) -> GitMirrorError:
        # Login refuses read-only tokens as well as bad ones; whoami tells which this is.
        if isinstance(exc, AuthError):
            try:
                self._whoami()
            except AuthError as bad:
                return bad
        return PermissionDeniedError(
            f"the ModelScope token from {describe(self._tokens.sdk)} cannot obtain git credentials "
            f"(login refused: {one_line(exc.message, 120)}); it is probably read-only",
            hint="use an access token with write permission from modelscope.cn/my/myaccesstoken",
        )

    # --- the REST calls, each retried and translated ---------------------------------------

    def _sdk(self) -> Any:
        if self._sdk_api is None:
            self._sdk_api = build_sdk(self.spec.endpoint or "", self._tokens.sdk, self._env, self._opts.policy)
        return self._sdk_api

    def _call(self, what: str, fn: Any) -> Any:
        return call(f"{what} {self.display_name()}", fn, self._translate, self._opts)

    def _whoami(self) -> Any:
        return self._call("whoami for", lambda: self._sdk().whoami())

    def _get_repo(self) -> Any:
        sdk_type = _SDK_REPO_TYPE[self.spec.repo_type]
        info = self._call("repo info of", lambda: self._sdk().get_repo(self.spec.repo_id, sdk_type))
        return info

    def _create(self, private: bool | None) -> RepoInfo:
        visibility = VISIBILITY_PRIVATE if private else VISIBILITY_PUBLIC
        sdk_type = _SDK_REPO_TYPE[self.spec.repo_type]
        try:
            self._call("create", lambda: self._sdk().create_repo(self.spec.repo_id, sdk_type, visibility=visibility))
        except _Exists:
            info = self._get_repo()
            return RepoInfo(exists=True, private=_private_of(info))
        except PermissionDeniedError as exc:
            owner = self.spec.repo_id.split("/")[0]
            raise PermissionDeniedError(
                f"cannot create {self.display_name()}: this account may not create repositories under {owner!r} "
                f"({one_line(exc.message, 120)})",
                hint="check the owner name, or use a token of an account that belongs to that organization",
            ) from exc
        # The create call can answer 200 with an empty body on failure: make sure it is there.
        info = self._get_repo()
        log.info("created %s (%s)", self.display_name(), "private" if private else "public")
        return RepoInfo(exists=True, private=_private_of(info), default_branch=self.new_repo_default_branch, created=True)

    # --- error translation -------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> GitMirrorError:
        from modelscope_hub import errors as ms

        name = self.display_name()
        anonymous = self._tokens.sdk is None
        if isinstance(exc, EnvelopeFailure):
            return self._translate_envelope(exc)
        if isinstance(exc, ms.RateLimitError):  # the SDK's 429, or its RateLimitExceed code: status 429 for sync
            return error_for_status(429, f"{self.spec.endpoint} failed: RateLimitError: {_message(exc)}",
                                    retry_after=getattr(exc, "retry_after", None))
        if isinstance(exc, (ms.ServerError, ms.NetworkError)):
            return TransientError(
                f"{self.spec.endpoint} failed: {type(exc).__name__}: {_message(exc)}",
                retry_after=getattr(exc, "retry_after", None),
            )
        if isinstance(exc, ms.AuthenticationError):
            if anonymous:
                return AuthError(
                    f"{name} needs authentication and no ModelScope token was found",
                    hint="set MODELSCOPE_API_TOKEN or pass a token",
                )
            return AuthError(
                f"ModelScope rejected the token from {describe(self._tokens.sdk)} ({_message(exc)})",
                hint="it is wrong or expired, or it is a git token: use the access token from modelscope.cn/my/myaccesstoken",
            )
        if isinstance(exc, ms.PermissionDeniedError):
            return PermissionDeniedError(f"ModelScope refused: {_message(exc)}", hint="use a token with the needed rights")
        if isinstance(exc, ms.NotExistError):
            return self._not_found()
        if isinstance(exc, ms.AlreadyExistsError):
            return _Exists(f"{name} already exists")
        if isinstance(exc, ms.InvalidParameter):
            return UsageError(f"ModelScope refused the request for {name}: {_message(exc)}", hint="check the owner and name")
        if isinstance(exc, ms.APIError):
            status = getattr(exc, "status_code", None)
            text = f"ModelScope answered {status} for {name}: {_message(exc)}"
            return error_for_status(status, text) if isinstance(status, int) else GitMirrorError(text)
        if isinstance(exc, (ValueError, TypeError, KeyError)):
            return ProtocolError(f"{self.spec.endpoint} answered something that is not the expected JSON ({type(exc).__name__})")
        failure = certificate_failure(exc)  # inside the SDK's connection error: exit 9, never retried
        if failure is not None:
            return certificate_error(failure, f"connecting to {self.spec.endpoint}")
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return TransientError(f"cannot reach {self.spec.endpoint}: {type(exc).__name__}")
        return GitMirrorError(f"unexpected error talking to {self.spec.endpoint}: {type(exc).__name__}: {one_line(exc)}")

    def _not_found(self) -> GitMirrorError:
        name = self.display_name()
        if self._tokens.sdk is None:
            # Anonymous callers cannot tell "missing" from "private" (the hub answers 404 to both);
            # like the git side (401), this is reported as the missing token (exit code 4).
            return AuthError(
                f"{name} is private or does not exist, and no ModelScope token was found",
                hint="set MODELSCOPE_API_TOKEN (or GITMIRROR_SRC_TOKEN, or run `modelscope login`) if it is private; "
                "datasets need ms://datasets/owner/name",
            )
        return RepoNotFoundError(
            f"{name} does not exist, or it is private and the token from {describe(self._tokens.sdk)} cannot see it",
            hint="check the name, or use a token of an account that can read it",
        )

    def _translate_envelope(self, exc: EnvelopeFailure) -> GitMirrorError:
        text = one_line(exc, 160)
        if str(exc.code).strip() in _RATE_LIMIT_CODES:
            # "slow down" in a 200 envelope: a 429 in all but status (retried, waited out, and
            # heard by sync's per-hub back-off), never a refusal of rights.
            return error_for_status(429, f"{self.spec.endpoint} asked us to slow down for {self.display_name()}: {text}",
                                    retry_after=exc.retry_after)
        code = _int(exc.code)
        if code in _EXISTS_CODES:
            return _Exists(f"{self.display_name()} already exists")
        lowered = text.lower()
        if "not exist" in lowered or "not found" in lowered or "不存在" in text:
            return self._not_found()
        if "login" in lowered or "token" in lowered or "auth" in lowered:
            return AuthError(f"ModelScope refused the token from {describe(self._tokens.sdk)}: {text}")
        return PermissionDeniedError(f"ModelScope refused the request for {self.display_name()}: {text}")


class _Exists(GitMirrorError):
    """create_repo found the repository already there."""


def _private_of(info: Any) -> bool | None:
    visibility = getattr(info, "visibility", None)
    if visibility is not None:
        try:
            return int(visibility) == VISIBILITY_PRIVATE
        except (TypeError, ValueError):
            pass
    private = getattr(info, "private", None)
    return bool(private) if private is not None else None


def _message(exc: BaseException) -> str:
    return one_line(getattr(exc, "message", None) or exc, 160)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
