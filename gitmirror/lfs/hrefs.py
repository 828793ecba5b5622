"""Requests to the hrefs of a batch answer (storage hosts, multipart part URLs, verify and
completion calls), and what their statuses mean.

An href gets exactly the headers its action gave (signed URLs on storage hosts must never see a
hub token), plus the hub's credentials only where git-lfs would add them
(:class:`OriginCredentials`). A storage host answers 401/403 for a link that expired or was refused, and 404 for an
upload session that ended: :class:`StaleLink`, a transient error, so the transfer queue asks the
batch API for a fresh link. Other statuses go through :func:`~gitmirror.lfs.failures.status_error`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitmirror.errors import IntegrityError, ProtocolError, TransientError
from gitmirror.lfs.failures import Operation, public, response_error, same_origin, transport_error
from gitmirror.lfs.stream import CHUNK, BodyAborted, VerifyingStream
from gitmirror.lfs.wire import LFS_MEDIA_TYPE, Link

if TYPE_CHECKING:
    from gitmirror.httpclient import Response, Transport

__all__ = ["OriginCredentials", "StaleLink", "check_href_status", "post_json", "put"]

Timeout = float | tuple[float, float] | None


@dataclass(frozen=True)
class OriginCredentials:
    """The hub's credentials (``headers``) and the LFS endpoint whose origin alone may get them.

    Given to the hrefs of an object its batch answer did not mark ``authenticated: true``, as
    git-lfs does: ``tq/adapterbase.go`` ``doHTTP`` sends an authenticated object's requests as
    they are and the others through ``DoWithAuth``, whose ``getCredURLForAPI``
    (``lfsapi/auth.go``) uses the LFS endpoint's (or git remote's) credentials only for a request
    with the endpoint's scheme and host, and adds none when the action's header already holds an
    ``Authorization``. Where git-lfs learns from a 401 that the endpoint wants Basic auth and then
    resends, we add them up front: the body is streamed from the source and cannot be sent twice
    without reading it again, and the origin is the one our batch request already went to.
    """

    endpoint: str
    headers: Mapping[str, str] = field(repr=False)  # never in a repr, a log line or a message

    def add_to(self, link: Link) -> Link:
        """``link`` with the hub's credentials in its header when its href is on the endpoint's
        origin (scheme, host, port) and its header has no ``Authorization`` of its own;
        otherwise ``link`` unchanged."""
        if not self.headers or not same_origin(link.href, self.endpoint):
            return link
        if any(name.lower() == "authorization" for name in link.header):
            return link
        return link.elsewhere(link.href, {**link.header, **self.headers})


class StaleLink(TransientError):
    """An href was refused (401/403), expired or leads nowhere: worth asking the batch API again.

    ``status`` is the href's answer (401, 403 or 404), as for any error standing for a status.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_href_status(resp: Response, what: str, operation: Operation) -> None:
    """Return for a 2xx; raise StaleLink, IntegrityError (a download the storage lacks),
    ProtocolError (an upload redirected) or the error the status maps to."""
    status = resp.status
    if 200 <= status < 300:
        return
    if status in (401, 403):
        # Signed links expire; storage answers 401/403 then. Ask the batch API for a fresh one.
        raise StaleLink(f"{what}: HTTP {status}, the link is stale or refused; asking for a new one", status=status)
    if status in (404, 410) and operation == "download":
        # The batch API promised the object but its storage does not have it: the source lacks it.
        raise IntegrityError(f"{what}: HTTP {status}, the source's storage does not have it")
    if status == 404:
        # An upload link that no longer leads anywhere (an expired upload session): ask again.
        raise StaleLink(f"{what}: HTTP 404, the link leads nowhere; asking for a new one", status=404)
    if 300 <= status < 400 and operation == "upload":
        raise ProtocolError(f"{what}: unexpected redirect (HTTP {status})")
    raise response_error(resp, what, operation)


def put(http: Transport, link: Link, data: Any, body: VerifyingStream, what: str, timeout: Timeout) -> Response:
    """PUT ``data`` (``body`` itself or a :class:`~gitmirror.lfs.stream.Slice` of it) to ``link``.

    When ``body`` fails (wrong bytes, a broken source), its failure is raised rather than what the
    HTTP stack made of it; the request is abandoned before its last byte.
    """
    what = f"{what} to {public(link.href)}"
    # An explicit length: without it a file-like body goes out chunked, which object stores refuse.
    headers = {**link.header, "Content-Length": str(len(data))}
    try:
        if data is body and len(body) <= CHUNK:
            # A small object is read (and verified) whole before the request: one send of
            # bytes instead of a file-like read in pieces, which cost more than the bytes.
            data = body.read_whole()
        resp = http.request("PUT", link.href, body=data, headers=headers, timeout=timeout)
    except BodyAborted:
        raise body.failure from None  # type: ignore[misc]
    except Exception as exc:
        if body.failure is not None:
            raise body.failure from None
        raise transport_error(what, exc) from exc
    check_href_status(resp, what, "upload")
    return resp


def post_json(http: Transport, link: Link, doc: dict, what: str, timeout: Timeout) -> None:
    """POST ``doc`` as LFS JSON to ``link`` (a verify or completion call); raises on a failed status."""
    what = f"{what} at {public(link.href)}"
    headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE, **link.header}
    try:
        resp = http.request("POST", link.href, body=json.dumps(doc).encode(), headers=headers, timeout=timeout)
    except Exception as exc:
        raise transport_error(what, exc) from exc
    check_href_status(resp, what, "upload")
