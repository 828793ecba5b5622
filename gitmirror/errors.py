"""The errors gitmirror raises, each with a one-line user-facing message and an exit code.

Every failure a user can meet is one of these classes. The CLI prints ``str(error)`` (one line,
already scrubbed of credentials) and exits with ``error.exit_code``. Whether a fault is worth
retrying is decided in one place, :func:`is_transient`, which the retry policy in
:mod:`gitmirror.retry` consults.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # ssl is imported where it is used, so that `gitmirror --help` stays fast
    import ssl

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
    """Base class. ``message`` is what the user reads; ``hint`` says what to do about it.

    ``status`` is the HTTP status the server answered when the error stands for one (set by
    :func:`error_for_status`), else None: code that reacts to a 429 reads it, never the message.
    """

    exit_code: ClassVar[int] = EXIT_INTERNAL
    transient: ClassVar[bool] = False
    status: int | None = None

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


class PushRefusedError(IntegrityError):
    """The destination refused pushed refs by its own rules (a hook's verdict on the content, a
    ref name it does not accept): not transient, never retried. ``refs`` names the refused refs
    (the destination's full names); the message carries the server's words, scrubbed, on one line."""

    def __init__(self, message: str, *, hint: str | None = None, refs: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.refs = refs


class TransientError(GitMirrorError):
    """A fault that may pass: connection cut, timeout, 429, 5xx. Retried; raised when retries run out.

    ``retry_after`` carries a server's Retry-After (seconds) so the retry policy can honour it.
    """

    exit_code = EXIT_TRANSIENT
    transient = True

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """A server asked for a pause longer than one run may wait (``RetryPolicy.max_retry_after`` or
    what is left of ``wait_budget``): exit 8 like any fault that outlasts the retries, but raised
    at once and never retried within the run (the next run, later, starts a fresh budget)."""

    transient = False


class EnvironmentProblem(GitMirrorError):
    """Something on this machine: git missing or too old, the cache disk full."""

    exit_code = EXIT_ENVIRONMENT


class CertificateError(EnvironmentProblem):
    """A server's TLS certificate was not trusted (unknown authority, wrong host name, expired).

    This machine's trust settings decide (or a proxy that intercepts TLS): retrying cannot help,
    so it is never retried; certificate checks are never turned off.
    """


#: What to do about a :class:`CertificateError`: each client trusts a private CA through its own setting.
CERTIFICATE_HINT = ("if this host's certificates come from a private CA, point SSL_CERT_FILE or REQUESTS_CA_BUNDLE "
                    "(gitmirror, hub SDKs) and GIT_SSL_CAINFO or http.sslCAInfo (git, git-lfs) at its bundle")


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc`` (an HTTP library's wrapper of it, its
    ``reason``, first argument or cause), or None if ``exc`` is not one."""
    import ssl

    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return item
        todo.extend([getattr(item, "reason", None), *item.args[:1], item.__cause__, item.__context__])
    return None


def certificate_error(failure: ssl.SSLCertVerificationError, what: str) -> CertificateError:
    """``what`` (e.g. "connecting to https://host:port") failed on ``failure``; the message holds
    OpenSSL's reason ("unable to get local issuer certificate"), never a URL's query or user-info."""
    reason = failure.verify_message or failure.reason or "certificate verify failed"
    return CertificateError(f"{what}: the server's certificate is not trusted ({reason})", hint=CERTIFICATE_HINT)


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


# --------------------------------------------------------------------------------------------------
# The one map from what a server or git reported to an error class. Hub adapters, the LFS client
# and the git runner all classify through it; what is worth retrying is decided here and nowhere else.

#: HTTP statuses that may succeed on a later try (every 5xx is one too). 401/403/404/409/413/422 never do.
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})

#: What a non-transient HTTP status means, whoever answered it (a hub's API, an LFS server, git's
#: smart HTTP). A caller that knows its protocol gives a status a narrower meaning with ``refine``
#: (LFS: 422 is an invalid object; Hugging Face: 401 hides a repository that may not exist).
HTTP_STATUS_ERRORS: dict[int, type[GitMirrorError]] = {
    400: UsageError,
    401: AuthError,
    403: PermissionDeniedError,
    404: RepoNotFoundError,
    422: UsageError,
}


def status_is_transient(status: int) -> bool:
    """True for an HTTP status worth another try: 408, 425, 429 and every 5xx."""
    return status in TRANSIENT_HTTP_STATUSES or 500 <= status <= 599


def error_class_for_status(
    status: int, refine: Mapping[int, type[GitMirrorError]] | None = None
) -> type[GitMirrorError]:
    """The error class an HTTP ``status`` stands for. Transient statuses always give TransientError,
    whatever ``refine`` says; other statuses take ``refine``'s class first, then the shared map,
    then :class:`GitMirrorError` (an answer we have no meaning for: exit 1, a bug to report)."""
    if status_is_transient(status):
        return TransientError
    if refine and status in refine:
        return refine[status]
    return HTTP_STATUS_ERRORS.get(status, GitMirrorError)


def error_for_status(
    status: int,
    message: str,
    *,
    hint: str | None = None,
    retry_after: float | None = None,
    refine: Mapping[int, type[GitMirrorError]] | None = None,
) -> GitMirrorError:
    """An error for an HTTP ``status``: its class from :func:`error_class_for_status`, the caller's
    one-line ``message`` and ``hint``. ``retry_after`` (seconds, from the server's Retry-After) is
    kept on transient errors so that the retry policy can honour it."""
    cls = error_class_for_status(status, refine)
    error = cls(message, hint=hint, retry_after=retry_after) if issubclass(cls, TransientError) else cls(message, hint=hint)
    error.status = status
    return error


def is_transient(exc: BaseException) -> bool:
    """The one place that decides whether a failure is worth retrying."""
    if isinstance(exc, GitMirrorError):
        return exc.transient
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    # Imported lazily so that `gitmirror --help` stays fast.
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return status_is_transient(exc.response.status_code)
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError))


# --- git ------------------------------------------------------------------------------------------
# What git reports decides, in this order: the HTTP status it names in fixed phrases, then (for a
# push) its per-ref --porcelain status lines, then git's own phrases. Text that may hold user data
# never decides: the server's `remote:` lines (a hook's output: paths, repository and ref names)
# are shown but not matched, and git's own lines are matched only after URLs, quoted text and
# every word with a slash in it (ref names, owner/name, file paths) are taken out, so that a
# repository called "vit-base-512" or a file "models/429/w.bin" never reads as an HTTP status.

_GIT_HTTP_STATUS = re.compile(r"(?:returned error|RPC failed; HTTP|HTTP error)[: ]+(\d{3})\b")
_USER_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+|'[^'\n]*'|\"[^\"\n]*\"|\S*/\S*")


def _word(phrase: str) -> str:
    """A one-word phrase that must stand alone: "forbidden" does not match in "not-forbidden-7b"."""
    return rf"(?<![\w.-]){phrase}(?![\w.-])"


# libcurl's words for a certificate it refused, with OpenSSL ("SSL certificate problem: ...", "no
# alternative certificate subject name matches") and with GnuTLS ("server certificate verification
# failed"), and git-lfs's (Go's "x509: certificate signed by unknown authority").
_GIT_CERTIFICATE = re.compile(
    r"ssl certificate problem|server certificate verification failed|certificate subject name|"
    r"ssl peer certificate|x509: certificate",
    re.I,
)
_GIT_DISK_FULL = re.compile(r"no space left on device|disk quota exceeded", re.I)
_GIT_AUTH = re.compile(r"authentication failed|could not read username|terminal prompts disabled|invalid credentials", re.I)
_GIT_TRANSIENT = re.compile(
    r"rpc failed|early eof|connection (reset|refused|timed out)|timed out|"
    r"the remote end hung up|unexpected disconnect|transfer closed|recv failure|send failure|"
    r"couldn't connect|failed to connect|empty reply|curl \d+|"
    rf"{_word('gnutls')}|{_word('ssl_read')}|{_word('remote-curl')}|"
    r"broken pipe|index-pack failed|unpack-objects abnormal|protocol error|"
    # curl 28 as git words it when our own low-speed limit (http.lowSpeedLimit/Time) cut a stall
    r"operation too slow",
    re.I,
)
_GIT_FORBIDDEN = re.compile(rf"permission denied|not allowed|{_word('forbidden')}|{_word('read-only')}|write access", re.I)
_GIT_NOT_FOUND = re.compile(
    r"not found|does not appear to be a git repository|repository .* does not exist|"
    r"no such file or directory|could not read from remote repository",
    re.I,
)


def git_own_words(text: str) -> str:
    """The part of git's stderr that git itself wrote, fit to match phrases against: the
    server's ``remote:`` lines dropped, and URLs, quoted text and words with a slash removed."""
    own = [line for line in text.splitlines() if not line.lstrip().startswith("remote:")]
    return _USER_TEXT.sub(" ", "\n".join(own))


def error_for_git(stderr: str, what: str) -> GitMirrorError:
    """The error a failed git command's ``stderr`` stands for; ``what`` names the step for the message.

    An HTTP status git reports ("The requested URL returned error: 403", "RPC failed; HTTP 500")
    goes through the HTTP map; without one, git's own phrases decide (:func:`git_own_words`: never
    the server's ``remote:`` lines, never a URL, quoted name, path or ref name). The message shows
    git's headline, scrubbed of credentials.
    """
    text = scrub(stderr.strip())
    last = _git_headline(text)
    own = git_own_words(text)
    status = _GIT_HTTP_STATUS.search(own)
    if status is not None:
        code = int(status.group(1))
        if code == 401:
            return AuthError(f"{what}: authentication failed ({last})", hint="check the token for this host")
        if code == 403:
            return PermissionDeniedError(f"{what}: permission denied ({last})", hint="the token may be read-only")
        if code == 404:
            return RepoNotFoundError(f"{what}: repository not found ({last})")
        return error_for_status(code, f"{what}: {last}")
    if _GIT_DISK_FULL.search(own):
        return EnvironmentProblem(f"{what}: no space left on device", hint="free disk space in the cache directory or use --cache-dir")
    if _GIT_AUTH.search(own):
        return AuthError(f"{what}: authentication failed ({last})", hint="check the token for this host")
    if _GIT_CERTIFICATE.search(own):  # before the transient phrases: GnuTLS's lines name "gnutls"
        return CertificateError(f"{what}: the server's certificate is not trusted ({last})", hint=CERTIFICATE_HINT)
    if _GIT_TRANSIENT.search(own):
        return TransientError(f"{what}: {last}")
    if _GIT_FORBIDDEN.search(own):
        return PermissionDeniedError(f"{what}: permission denied ({last})", hint="the token may be read-only")
    if _GIT_NOT_FOUND.search(own):
        return RepoNotFoundError(f"{what}: repository not found ({last})")
    return GitMirrorError(f"{what}: {last}")


def _git_headline(text: str) -> str:
    """The line of git's stderr that says what went wrong (git's 'fatal:' line when there is one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:", "remote: error", "! [", "remote:"):
        for line in lines:
            if line.startswith(prefix):
                return line
    return lines[-1] if lines else "git failed"


# --- this machine ----------------------------------------------------------------------------------

#: What to do about a local OSError, by errno; anything else gets the generic hint.
_OSERROR_HINTS: dict[int, str] = {
    errno.ENOSPC: "free disk space there, or point gitmirror at another directory",
    errno.EDQUOT: "free space within the disk quota, or point gitmirror at another directory",
    errno.EACCES: "make it writable for this user, or point gitmirror at another directory",
    errno.EPERM: "make it writable for this user, or point gitmirror at another directory",
    errno.EROFS: "the file system is read-only: point gitmirror at another directory",
    errno.ENOTDIR: "a parent of that path is a file, not a directory: choose another path",
}


def error_for_oserror(exc: OSError, what: str, path: object = None) -> EnvironmentProblem:
    """A local filesystem failure (``exc``) while doing ``what`` (e.g. "writing the LFS cache") as
    one line naming the path and the system's reason, exit 9.

    Local faults are never retried: a full disk or an unwritable directory stays so on the next
    try, and retrying a download onto it only downloads again. The path named is ``path``, the
    one the user knows (the report file rather than its temporary twin), else ``exc.filename``.
    """
    reason = exc.strerror or type(exc).__name__
    named = path or exc.filename
    where = f" at {named}" if named else ""
    hint = _OSERROR_HINTS.get(exc.errno or 0, "check the path and its permissions, or point gitmirror at another directory")
    return EnvironmentProblem(f"{what}: {reason}{where}", hint=hint)


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
