"""An LFS server reached through its batch API: :class:`HttpLfsStore`.

Planning asks the batch API (:mod:`gitmirror.lfs.batch`); bytes go to and from the hrefs it
answers (:mod:`gitmirror.lfs.hrefs`), uploads through the adapter the server chose
(:mod:`gitmirror.lfs.adapters`). Credentials: the store's own headers go only to its endpoint's
origin; an object href gets exactly the headers the batch answer gave for it, plus the store's
own when the href is on the endpoint's origin and the object was not marked ``authenticated``
(as git-lfs does; :class:`~gitmirror.lfs.hrefs.OriginCredentials`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gitmirror.errors import GitMirrorError, IntegrityError, ProtocolError, RepoNotFoundError
from gitmirror.lfs.adapters import ADAPTERS, BASIC, MULTIPART, adapter_for
from gitmirror.lfs.batch import BatchClient
from gitmirror.lfs.failures import Operation, one_line, public, same_origin, status_error, transport_error
from gitmirror.lfs.hrefs import OriginCredentials, check_href_status, post_json
from gitmirror.lfs.pointer import LfsObject
from gitmirror.lfs.store import DownloadTicket, LfsStore, OnRetry, UploadTicket
from gitmirror.lfs.stream import CHUNK, VerifyingStream
from gitmirror.lfs.wire import MAX_BATCH, Link, ObjectAnswer, ObjectError
from gitmirror.retry import RetryPolicy

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport

__all__ = ["HttpLfsStore"]


class HttpLfsStore(LfsStore):
    """An LFS server reached through its batch API at ``<endpoint>/objects/batch``.

    ``auth_headers`` go to the batch endpoint, and to object hrefs on its origin for objects the
    batch answer did not mark ``authenticated`` (as git-lfs sends them), never elsewhere.
    ``multipart=True`` offers Hugging Face's multipart transfer in upload batches. ``timeout`` is ``(connect, read)`` seconds (default:
    the policy's); ``policy`` bounds each batch request's retries; ``ref`` is sent in batch
    requests; ``batch_size`` caps the objects per request (at most :data:`MAX_BATCH`).
    """

    def __init__(
        self,
        endpoint: str,
        auth_headers: Mapping[str, str] | None = None,
        *,
        policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
        multipart: bool = False,
        ref: str | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._auth = dict(auth_headers or {})
        self.policy = policy
        if timeout is None:
            knobs = policy or RetryPolicy()
            timeout = (knobs.connect_timeout, knobs.read_timeout)
        self.timeout = timeout
        self.multipart = multipart
        #: Adapters offered in upload batches, by name; downloads are always basic.
        self.upload_transfers = (BASIC.name, MULTIPART.name) if multipart else (BASIC.name,)
        self.label = f"LFS endpoint {public(self.endpoint)}"
        self.batch = BatchClient(self.endpoint, self._auth, label=self.label, timeout=timeout, policy=policy,
                                 ref=ref, batch_size=batch_size)
        self.batch_url = self.batch.url
        self._origin_credentials = OriginCredentials(self.endpoint, self._auth)

    # -- planning: the batch API ---------------------------------------------------------------------

    def plan_uploads(self, objects: Sequence[LfsObject], http: Transport, on_retry: OnRetry | None = None,
                     *, attempts: int | None = None) -> dict[LfsObject, UploadTicket | None | GitMirrorError]:
        result: dict[LfsObject, UploadTicket | None | GitMirrorError] = {}
        for answer in self.batch.answers("upload", objects, http, self.upload_transfers, on_retry, attempts):
            obj = answer.obj
            if answer.error is not None:
                result[obj] = self._object_error("upload", obj, answer.error)
            elif not answer.actions:
                result[obj] = None  # no actions: the server already has it
            else:
                result[obj] = self._upload_ticket(answer)
        return result

    def plan_downloads(self, objects: Sequence[LfsObject], http: Transport, on_retry: OnRetry | None = None,
                       *, attempts: int | None = None) -> dict[LfsObject, DownloadTicket | GitMirrorError]:
        result: dict[LfsObject, DownloadTicket | GitMirrorError] = {}
        for answer in self.batch.answers("download", objects, http, (BASIC.name,), on_retry, attempts):
            obj = answer.obj
            link = answer.actions.get("download")
            if answer.error is not None:
                result[obj] = self._object_error("download", obj, answer.error)
            elif link is None:
                result[obj] = ProtocolError(f"{self.label} gave no download link for LFS object {obj.oid}")
            else:
                result[obj] = DownloadTicket(obj, link, self._credentials(answer))
        return result

    def lacking(self, objects: Sequence[LfsObject], http: Transport) -> list[LfsObject]:
        planned = self.plan_downloads(objects, http)
        return sorted(obj for obj, ticket in planned.items() if not isinstance(ticket, DownloadTicket))

    def _upload_ticket(self, answer: ObjectAnswer) -> UploadTicket | GitMirrorError:
        obj = answer.obj
        upload = answer.actions.get("upload")
        if upload is None:
            return ProtocolError(f"{self.label} gave no upload link for LFS object {obj.oid}")
        # The batch's own choice must be one we offered; each object's adapter is then read from
        # its own action (a batch mixing large and small objects names one transfer for both).
        adapter = adapter_for(upload)
        for name in (answer.transfer, adapter):
            if name not in self.upload_transfers:
                return ProtocolError(f"{self.label} chose LFS transfer {name!r}, which was not offered")
        return UploadTicket(obj, adapter, answer.actions, self._credentials(answer))

    def _credentials(self, answer: ObjectAnswer) -> OriginCredentials | None:
        """Our credentials for the object's hrefs on our endpoint's origin, unless the batch
        answer marked it ``authenticated`` (git-lfs ``tq/adapterbase.go`` ``doHTTP``)."""
        return None if answer.authenticated else self._origin_credentials

    def _object_error(self, operation: Operation, obj: LfsObject, error: ObjectError) -> GitMirrorError:
        code, message = error.code, one_line(error.message)
        if operation == "download" and code in (404, 410, 422):
            what = {404: "lacks", 410: "has removed", 422: "holds an invalid copy of"}[code]
            return IntegrityError(
                f"source {self.label} {what} LFS object {obj.oid} ({obj.size} bytes): {code} {message}".rstrip()
            )
        return status_error(code, f"{self.label}, LFS object {obj.oid}", operation, message=message)

    # -- object bytes: the hrefs -----------------------------------------------------------------------

    @contextmanager
    def reading(self, ticket: DownloadTicket, http: Transport, offset: int = 0) -> Iterator[Iterator[bytes]]:
        assert ticket.link is not None
        link = ticket.outgoing(ticket.link)
        # identity: byte counts and Range offsets must refer to the stored bytes, not a gzip of them.
        headers = {"Accept-Encoding": "identity", **link.header}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        what = f"downloading LFS object {ticket.obj.oid} from {public(link.href)}"
        whole = ticket.obj.size <= CHUNK and not offset  # small: read in one go, not streamed in pieces
        try:
            resp = http.request("GET", link.href, headers=headers, stream=not whole, follow_redirects=True,
                                timeout=self.timeout)
        except Exception as exc:
            raise transport_error(what, exc) from exc
        if whole:  # read already, and its connection back in the pool
            check_href_status(resp, what, "download")
            yield iter((resp.data,))
            return
        with resp:  # a body read to its end keeps the connection for the next request
            check_href_status(resp, what, "download")
            chunks = resp.stream(CHUNK)
            if offset and resp.status != 206:
                chunks = _skip(chunks, offset)  # the server ignored Range: drop what we already have
            yield chunks

    @property
    def hub_key(self) -> str:
        """The LFS endpoint's origin (``scheme://host:port``, no credentials)."""
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def write(self, ticket: UploadTicket, body: VerifyingStream, http: Transport) -> None:
        self.upload(ticket, body, http)
        self.confirm(ticket, http)

    def upload(self, ticket: UploadTicket, body: VerifyingStream, http: Transport) -> None:
        ADAPTERS[ticket.transfer].upload(ticket, body, http, self.timeout, self.label)
        if not body.verified:
            raise ProtocolError(
                f"{self.label} answered before receiving all of LFS object {ticket.obj.oid}"
            )

    def confirm(self, ticket: UploadTicket, http: Transport) -> None:
        """POST the ``verify`` action, when the batch answer gave one (git-lfs ``tq/verify.go``)."""
        verify = ticket.actions.get("verify")
        if verify is not None:
            self._verify(ticket.outgoing(verify), ticket.obj, http)

    def _verify(self, link: Link, obj: LfsObject, http: Transport) -> None:
        what = f"verifying LFS object {obj.oid}"
        if self._under_endpoint(link.href):
            # Hugging Face's verify href is its own LFS API (``.../info/lfs/objects/verify``) and
            # gives no header: its client sends the hub token there, even for an object marked
            # ``authenticated``. That is still our endpoint, not a storage host, so our
            # credentials may go along.
            link = self._origin_credentials.add_to(link)
        try:
            post_json(http, link, {"oid": obj.oid, "size": obj.size}, what, self.timeout)
        except (RepoNotFoundError, IntegrityError) as exc:
            raise IntegrityError(f"{self.label} did not confirm LFS object {obj.oid} after upload: {exc}") from None

    def _under_endpoint(self, href: str) -> bool:
        """True for an href of our own LFS API: same origin, path under the endpoint's."""
        return same_origin(href, self.endpoint) and urlsplit(href).path.startswith(urlsplit(self.endpoint).path + "/")


def _skip(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    """``chunks`` without their first ``count`` bytes."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:]
        count = 0
