"""Hugging Face adapter: huggingface_hub's HfApi for the REST side, git + LFS URLs for the rest.

Four REST calls are made, through :class:`huggingface_hub.HfApi`: ``whoami``, ``repo_info``,
``auth_check`` and ``create_repo``. huggingface_hub 2.x sends them through one process-wide
httpx client created with ``timeout=None``; of the four, only ``repo_info`` takes a per-call
timeout, which the adapter passes. The ``gitmirror`` command gives the rest theirs with
:func:`install_timeouts`. Code that uses gitmirror as a library keeps its own huggingface_hub
configuration: gitmirror never replaces that client unless asked to.

huggingface_hub is imported inside functions only: ``gitmirror --help`` must not pay for it.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
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
    TransientError,
    UsageError,
    certificate_error,
    certificate_failure,
    error_class_for_status,
    error_for_status,
)
from gitmirror.hubs._support import CallOptions, call, one_line
from gitmirror.hubs.base import GitAuth, Hub, RepoInfo
from gitmirror.retry import RetryPolicy, retry_after_from
from gitmirror.rules import MB, MIB, DestinationRules

if TYPE_CHECKING:
    from gitmirror.lfs import LfsStore
    from gitmirror.specs import RepoSpec

log = logging.getLogger("gitmirror.hubs.huggingface")

#: Any user name works with a token as the password; this one shows up in server logs.
GIT_USERNAME = "gitmirror"
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
#: A new Space needs an SDK; "static" is the one that costs nothing to create.
SPACE_SDK = "static"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


# --- timeouts for huggingface_hub's shared client (the command's choice, not the library's) ------

#: The policy of the adapter call in progress in this thread; the client made by
#: :func:`install_timeouts` applies its timeouts to each request (doctor's short ones, say).
_CALL_POLICY: ContextVar[RetryPolicy | None] = ContextVar("gitmirror_hf_call_policy", default=None)
_factory_lock = threading.Lock()
_factory_policy: RetryPolicy | None = None  # what install_timeouts asked for
_factory_installed = False


def install_timeouts(policy: RetryPolicy | None = None) -> None:
    """Give huggingface_hub's shared HTTP client connect/read timeouts, for this whole process.

    For the ``gitmirror`` command, which calls it once before any work: huggingface_hub 2.x makes
    its requests through one client created with ``timeout=None``, so a stalled answer to
    ``whoami``, ``auth_check`` or ``create_repo`` would hang a cron job for ever. The client
    installed (with ``huggingface_hub.set_client_factory``) is huggingface_hub's default one
    (same request hook: offline mode, request ids, debug log; redirects followed) with
    ``policy``'s timeouts (default: :class:`RetryPolicy`'s); during an adapter call, that call's
    own policy decides instead. A stalled request then fails with a timeout, which the adapter
    retries like any transient fault.

    Library code does not call this: a program that imports gitmirror keeps the client it
    configured (or huggingface_hub's default, where only repository info has a timeout).
    The factory is installed at the first Hugging Face call, so a command that never talks to
    Hugging Face does not import huggingface_hub.
    """
    global _factory_policy, _factory_installed
    policy = policy or RetryPolicy()
    with _factory_lock:
        if policy != _factory_policy:  # a new client (and closing the old one) only when needed
            _factory_policy, _factory_installed = policy, False


def _ensure_client_factory() -> None:
    global _factory_installed
    if _factory_policy is None or _factory_installed:
        return
    with _factory_lock:
        if _factory_policy is None or _factory_installed:
            return
        from huggingface_hub import set_client_factory

        policy = _factory_policy
        set_client_factory(lambda: _client_with_timeouts(policy))
        _factory_installed = True


def _client_with_timeouts(policy: RetryPolicy) -> Any:
    """huggingface_hub's default client (its request hook, redirects followed), with timeouts."""
    from huggingface_hub.utils._http import default_client_factory

    client = default_client_factory()
    client.timeout = _httpx_timeout(policy)
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "request": [*hooks["request"], _apply_call_timeouts]}
    return client


def _apply_call_timeouts(request: Any) -> None:
    """Request hook: inside an adapter call, that call's policy sets the request's timeouts."""
    policy = _CALL_POLICY.get()
    if policy is not None:
        request.extensions["timeout"] = _httpx_timeout(policy).as_dict()


def _httpx_timeout(policy: RetryPolicy) -> Any:
    import httpx2

    # read_timeout bounds every wait for bytes (read, write, a free connection); connect its own.
    return httpx2.Timeout(policy.read_timeout, connect=policy.connect_timeout)


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
        return self._http_lfs_store(self.lfs_url, self.git_auth(), multipart=True)

    def rules(self) -> DestinationRules:
        """The hub's pre-receive hook refuses, in every pushed commit, a non-LFS file over
        10 MiB and a binary non-LFS file of 1 MB or more (huggingface_hub PR #657, issue #687,
        issue #1404); ``refs/pr/N`` exists only for a pull request opened through the API
        (huggingface_hub #1998). Whether "1 MB" is 10^6 or 2^20 bytes is unknown: 10^6 is the
        stricter reading (a 2^20-byte file was refused in #687)."""
        return DestinationRules(max_plain_blob=10 * MIB, max_binary_plain_blob=MB, can_create_pr_refs=False)

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

    def warm_up(self) -> None:
        import huggingface_hub.hf_api  # noqa: F401 - the import is the work
        from huggingface_hub.utils import get_session

        _ensure_client_factory()
        get_session()  # huggingface_hub's shared client: building it loads the TLS store

    def preflight_source(self) -> RepoInfo:
        # No whoami here: it is rate-limited on the hub, and an unknown token already gets a
        # 401 "Invalid credentials" on the repository route, which _translate_http tells apart.
        info = self._repo_info()
        if getattr(info, "disabled", None):
            raise self._disabled()
        if getattr(info, "gated", None):
            self._check_gated_access()
        return RepoInfo(exists=True, private=_private_of(info))

    def ensure_destination(self, private: bool | None) -> RepoInfo:
        if self._token is None:
            raise AuthError(
                f"writing to {self.display_name()} needs a Hugging Face token with write access",
                hint="set HF_TOKEN or GITMIRROR_DST_TOKEN (--dst-token)",
            )
        self._require_write_role(self._whoami())
        try:
            info = self._repo_info()
        except RepoNotFoundError:
            return self._create(private)
        if getattr(info, "disabled", None):
            raise self._disabled()
        self._check_write_access()
        return RepoInfo(exists=True, private=_private_of(info))

    # --- the REST calls, each retried and translated ---------------------------------------

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        _ensure_client_factory()
        # token=False: anonymous means anonymous, never huggingface_hub's own token lookup.
        return HfApi(endpoint=self.spec.endpoint, token=self._token.value if self._token else False,
                     library_name="gitmirror", library_version=_version())

    def _call(self, what: str, fn: Any) -> Any:
        self._validate_name()
        policy = self._opts.policy or RetryPolicy()

        def attempt() -> Any:
            previous = _CALL_POLICY.set(policy)
            try:
                return fn()
            finally:
                _CALL_POLICY.reset(previous)

        return call(f"{what} {self.display_name()}", attempt, self._translate, self._opts)

    def _validate_name(self) -> None:
        # huggingface_hub's own rules are stricter than our spec parser ("--", "..", length).
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(self.spec.repo_id)
        except HFValidationError as exc:
            raise UsageError(f"{self.display_name()} is not a valid Hugging Face repository id: {one_line(exc, 160)}") from None

    def _whoami(self) -> dict:
        api, token = self._api(), self._token.value if self._token else None
        try:
            who = self._call("whoami for", lambda: api.whoami(token=token))
        except AuthError as exc:
            if self._token is None:
                raise
            raise self._rejected() from exc  # any 401 on whoami-v2 with a token: the token is bad
        if not isinstance(who, dict):
            raise ProtocolError(f"{self.spec.endpoint} answered whoami with JSON that is not an object")
        return who

    def _repo_info(self) -> Any:
        api, policy = self._api(), self._opts.policy or RetryPolicy()
        # repo_info is the one call that takes a timeout; huggingface_hub hands it to httpx as is.
        return self._call("repo info of", lambda: api.repo_info(
            self.spec.repo_id, repo_type=self.spec.repo_type, timeout=_httpx_timeout(policy)))

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
            self._call("write check of", lambda: api.auth_check(self.spec.repo_id, repo_type=self.spec.repo_type, write=True))
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
        sdk = SPACE_SDK if self.spec.repo_type == "space" else None
        try:
            # Not exist_ok: a 409 must be told apart from "created", see below.
            self._call("create", lambda: api.create_repo(self.spec.repo_id, repo_type=self.spec.repo_type,
                                                          private=private, space_sdk=sdk))
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
        """huggingface_hub's exceptions (and httpx2's, which it lets through) as ours."""
        import json

        import httpx2
        from huggingface_hub import errors as hf

        if isinstance(exc, hf.OfflineModeIsEnabled):  # a ConnectionError: before the transport case
            return EnvironmentProblem(f"HF_HUB_OFFLINE is set, so huggingface_hub will not reach {self.spec.endpoint}",
                                      hint="unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) for gitmirror")
        if isinstance(exc, hf.HfHubHTTPError):
            return self._translate_http(exc)
        if isinstance(exc, json.JSONDecodeError):
            return ProtocolError(f"{self.spec.endpoint} answered something that is not the expected JSON: {one_line(exc, 160)}")
        failure = certificate_failure(exc)  # inside the SDK's connection error: exit 9, never retried
        if failure is not None:
            return certificate_error(failure, f"connecting to {self.spec.endpoint}")
        if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
            return TransientError(f"cannot reach {self.spec.endpoint}: {type(exc).__name__}")
        return GitMirrorError(f"unexpected error talking to {self.spec.endpoint}: {type(exc).__name__}: {one_line(exc)}")

    def _translate_http(self, exc: Any) -> GitMirrorError:
        """The error for the SDK's HTTP error ``exc``, carrying the status the hub answered
        (``.status``, for ``--json`` and for code that reacts to a status)."""
        error = self._error_for_http(exc)
        if error.status is None:
            error.status = exc.response.status_code
        return error

    def _error_for_http(self, exc: Any) -> GitMirrorError:
        from huggingface_hub import errors as hf

        response = exc.response
        status, name, anonymous = response.status_code, self.display_name(), self._token is None
        message = response.headers.get("X-Error-Message")
        server = one_line(exc.server_message or message or "")
        detail = f" ({server})" if server else ""
        kind = error_class_for_status(status, _STATUS_MEANINGS)
        if kind is TransientError:
            return error_for_status(status, f"{self.spec.endpoint} answered {status}{detail}",
                                    retry_after=retry_after_from(response.headers))  # RateLimit's t, or Retry-After
        if status == 401 and message == INVALID_CREDENTIALS:
            return self._rejected()  # huggingface_hub leaves this one a plain HfHubHTTPError
        if isinstance(exc, hf.GatedRepoError):
            return GatedRepoError(
                f"{name} is gated and the account of the token from {describe(self._token)} has not been granted access",
                hint=f"accept the terms at {self._web_url()} with that account, then run again",
            )
        if isinstance(exc, hf.DisabledRepoError):
            return self._disabled()
        if isinstance(exc, hf.RepositoryNotFoundError) or kind is RepoNotFoundError:
            if anonymous and status == 401:
                return AuthError(
                    f"{name} is private or does not exist, and no Hugging Face token was found",
                    hint="set HF_TOKEN (or GITMIRROR_SRC_TOKEN, or run `hf auth login`) if it is private",
                )
            who = "anonymous access" if anonymous else f"the token from {describe(self._token)}"
            return RepoNotFoundError(
                f"{name} does not exist, or it is private and {who} cannot see it",
                hint="check the name and repository type (datasets/, spaces/), or use a token that can read it",
            )
        if kind is PermissionDeniedError:
            return PermissionDeniedError(f"Hugging Face refused access to {name}{detail}", hint="use a token with the needed rights")
        if kind is _Conflict:
            return _Conflict(f"{name} already exists{detail}")
        if kind is UsageError:
            return UsageError(f"Hugging Face refused the request for {name}{detail}", hint="check the owner and name")
        return GitMirrorError(f"Hugging Face answered {status} for {name}{detail}")

    def _rejected(self) -> GitMirrorError:
        return AuthError(
            f"Hugging Face rejected the token from {describe(self._token)}",
            hint="it is wrong, expired or revoked; set HF_TOKEN or pass a valid token",
        )


class _Conflict(GitMirrorError):
    """409 from create_repo: the repository exists (maybe invisible to us)."""


#: What a status means on Hugging Face's API where it differs from the shared map
#: (:data:`gitmirror.errors.HTTP_STATUS_ERRORS`): a 401 answers a repository that does not exist
#: or that the token cannot see, the same answer for both (huggingface_hub turns it into
#: RepositoryNotFoundError); a 409 from create_repo says the repository exists.
_STATUS_MEANINGS: dict[int, type[GitMirrorError]] = {401: RepoNotFoundError, 409: _Conflict}


def _private_of(info: Any) -> bool | None:
    private = getattr(info, "private", None)
    return bool(private) if private is not None else None


def _version() -> str:
    from gitmirror import __version__

    return __version__
