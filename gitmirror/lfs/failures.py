"""What an LFS server's answer means as a gitmirror error, and how URLs appear in messages.

The class of an HTTP status comes from the one map in :mod:`gitmirror.errors`
(:func:`~gitmirror.errors.error_for_status`); this module only adds what a status means in the
git-lfs batch API (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md): a 403 on a
download is a token that may not read, 410 and 422 are an object gone or invalid. Whether a
status is worth another try is decided in :mod:`gitmirror.errors` alone.

Messages are one line and never hold a URL's query string or user-info: signed hrefs carry
secrets there, and servers echo them back.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from gitmirror.errors import (
    AuthError,
    GitMirrorError,
    IntegrityError,
    PermissionDeniedError,
    TransientError,
    error_for_status,
    scrub,
)
from gitmirror.retry import retry_after_from

if TYPE_CHECKING:
    from gitmirror.httpclient import Response

Operation = Literal["upload", "download"]

# The narrower meanings a status has in the LFS API. 400: the batch request we built was refused,
# a bug of ours rather than the user's input (exit 1, as before the shared map).
_REFINE: dict[Operation, dict[int, type[GitMirrorError]]] = {
    "upload": {400: GitMirrorError, 403: PermissionDeniedError, 410: IntegrityError, 422: IntegrityError},
    "download": {400: GitMirrorError, 403: AuthError, 410: IntegrityError, 422: IntegrityError},
}
_HINTS: dict[tuple[int, Operation], str] = {
    (401, "upload"): "check the token for this hub",
    (401, "download"): "check the token for this hub",
    (403, "upload"): "the token may not write to this repository",
    (403, "download"): "the token may not read this repository",
}


# A whole LFS request answered 404 (rather than one object of a batch answer): the repository's
# git side answered moments ago, so it exists, and its LFS API does not. That is LFS switched off
# for it (GitLab, Gitea and Bitbucket answer so when LFS is disabled), a destination-side refusal
# (exit 5, the destination "may not" hold LFS objects; never "does not exist", which names the
# source), or a source whose LFS objects cannot be read (exit 7, content missing at the source).
_ENDPOINT_REFINE: dict[Operation, dict[int, type[GitMirrorError]]] = {
    "upload": {404: PermissionDeniedError},
    "download": {404: IntegrityError},
}
_ENDPOINT_HINTS: dict[tuple[int, Operation], str] = {
    (404, "upload"): "the destination has no LFS API for this repository: LFS may be disabled there; "
                     "enable LFS for it (a repository or server setting), then run again",
    (404, "download"): "the source has no LFS API for this repository: LFS may be disabled there, "
                       "so its LFS objects cannot be read",
}


def status_error(
    status: int, what: str, operation: Operation, *, message: str = "", retry_after: float | None = None,
    endpoint: bool = False,
) -> GitMirrorError:
    """The error for HTTP ``status`` from the LFS API (``message``: the server's own words, one line).

    ``retry_after`` (seconds) is kept on transient errors for the retry policy. ``endpoint``: the
    status answers a whole request, not one object of a batch answer (a 404 then means the LFS
    API itself is missing).
    """
    text = f"{what}: HTTP {status}" + (f" ({message})" if message else "")
    refine = {**_REFINE[operation], **(_ENDPOINT_REFINE[operation] if endpoint else {})}
    hint = (_ENDPOINT_HINTS.get((status, operation)) if endpoint else None) or _HINTS.get((status, operation))
    return error_for_status(status, text, hint=hint, retry_after=retry_after, refine=refine)


def response_error(resp: Response, what: str, operation: Operation) -> GitMirrorError:
    """The error for a response whose status is not a success, with the server's message and the
    wait it asked for (Retry-After, or the RateLimit header: :func:`gitmirror.retry.retry_after_from`)."""
    return status_error(
        resp.status,
        what,
        operation,
        message=server_message(resp),
        retry_after=retry_after_from(resp.headers),
        endpoint=True,
    )


def server_message(resp: Response) -> str:
    """The ``message`` of a JSON error body (the batch API's error shape), one line; "" when none."""
    try:
        doc = json.loads(resp.data)
    except (ValueError, OSError):  # OSError: the body of a streamed answer broke off
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return one_line(doc["message"])
    return ""


def transport_error(what: str, exc: BaseException) -> GitMirrorError:
    """A failed request (``exc``) as a gitmirror error naming ``what`` failed; transient unless
    ``exc`` is a gitmirror error already."""
    from gitmirror.httpclient import TransportError

    if isinstance(exc, TransportError):  # it says how the connection failed; we say to what
        return TransientError(f"{what}: {exc.message}")
    if isinstance(exc, GitMirrorError):
        return exc
    return TransientError(f"{what}: {type(exc).__name__}: {one_line(str(exc))}")


def one_line(text: str, limit: int = 200) -> str:
    """``text`` scrubbed of credentials, on one line, at most ``limit`` characters."""
    text = " ".join(scrub(text).split())
    # A server may echo a signed URL back: keep only its public part.
    text = re.sub(r"(https?://[^\s?#]+)\?\S*", r"\1?…", text)
    return text[:limit]


def public(url: str) -> str:
    """A URL fit for messages: no user-info, no query string (signed URLs carry secrets there).

    Plain string work rather than urlsplit: it names every object request, thousands a run.
    """
    scheme, sep, rest = url.split("#", 1)[0].split("?", 1)[0].partition("://")
    if not sep:
        return "<url>"
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def same_origin(a: str, b: str) -> bool:
    """True when two URLs share scheme, host and port (where our credentials may go)."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
