"""The errors gitmirror raises, each with a one-line user-facing message and an exit code.

Every failure a user can meet is one of these classes. The CLI prints ``str(error)`` (one line,
already scrubbed of credentials) and exits with ``error.exit_code``. Whether a fault is worth
retrying is decided in one place, :func:`is_transient`, which the retry policy in
:mod:`gitmirror.retry` consults.
"""

from __future__ import annotations

import re
from typing import ClassVar

# Exit codes are part of the CLI contract (documented in docs/exit-codes.md); never renumber.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_PERMISSION = 5
EXIT_DIVERGED = 6
EXIT_INTEGRITY = 7
EXIT_TRANSIENT = 8
EXIT_ENVIRONMENT = 9
EXIT_NOT_IN_SYNC = 10
EXIT_PARTIAL = 11
EXIT_LOCKED = 12


class GitMirrorError(Exception):
    """Base class. ``message`` is what the user reads; ``hint`` says what to do about it."""

    exit_code: ClassVar[int] = EXIT_INTERNAL
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = scrub(message)
        self.hint = scrub(hint) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        one_line = " ".join(self.message.split())
        if self.hint:
            return f"{one_line} ({' '.join(self.hint.split())})"
        return one_line


class UsageError(GitMirrorError):
    """Bad input from the user: a malformed spec, an unknown hub, conflicting options."""

    exit_code = EXIT_USAGE


class RepoNotFoundError(GitMirrorError):
    """The repository does not exist (or the hub will not say it exists to us)."""

    exit_code = EXIT_NOT_FOUND


class AuthError(GitMirrorError):
    """No token, a wrong token, or a private repository we may not read."""

    exit_code = EXIT_AUTH


class GatedRepoError(AuthError):
    """A gated Hugging Face repository whose terms this account has not accepted."""


class PermissionDeniedError(GitMirrorError):
    """The token works but may not do this: a read-only token, an owner we cannot create in."""

    exit_code = EXIT_PERMISSION


class DivergedError(GitMirrorError):
    """A destination ref is not an ancestor of its source ref and --force was not given."""

    exit_code = EXIT_DIVERGED


class IntegrityError(GitMirrorError):
    """LFS content is missing at the source or its bytes do not match its pointer."""

    exit_code = EXIT_INTEGRITY


class TransientError(GitMirrorError):
    """A fault that may pass: connection cut, timeout, 429, 5xx. Retried; raised when retries run out.

    ``retry_after`` carries a server's Retry-After (seconds) so the retry policy can honour it.
    """

    exit_code = EXIT_TRANSIENT
    transient = True

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class EnvironmentProblem(GitMirrorError):
    """Something on this machine: git missing or too old, the cache disk full."""

    exit_code = EXIT_ENVIRONMENT


class NotInSyncError(GitMirrorError):
    """``verify`` found differences between source and destination."""

    exit_code = EXIT_NOT_IN_SYNC


class PartialFailure(GitMirrorError):
    """A sync run where some mirrors failed and others succeeded."""

    exit_code = EXIT_PARTIAL


class LockedError(GitMirrorError):
    """Another run is working on this mirror right now."""

    exit_code = EXIT_LOCKED


class ProtocolError(GitMirrorError):
    """A server answered something we cannot understand (malformed JSON, an HTML page)."""

    exit_code = EXIT_TRANSIENT
    transient = True


# HTTP statuses that may succeed on a later try. 401/403/404/409/413/422 never do.
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """The one place that decides whether a failure is worth retrying."""
    if isinstance(exc, GitMirrorError):
        return exc.transient
    # Imported lazily so that `gitmirror --help` stays fast.
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code in TRANSIENT_HTTP_STATUSES
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return False


_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*)(basic|bearer|token)?\s*[^\s'\",}]+")
_REGISTERED: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a token so that :func:`scrub` removes it from any text we show or store.

    This is process-wide on purpose: a token must never appear in an error message, whichever
    module formats it, and a registry is the only way to catch tokens that hubs echo back.
    """
    if secret and len(secret) >= 6:
        _REGISTERED.add(secret)


def scrub(text: str) -> str:
    """Remove credentials from text: URL user-info, Authorization values, and known tokens."""
    if not text:
        return text
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}***", text)
    for secret in _REGISTERED:
        if secret in text:
            text = text.replace(secret, "***")
    return text
