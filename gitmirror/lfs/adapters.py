"""Transfer adapters: how an object's bytes go up once the batch API said where.

A batch request offers adapters by name (``transfers``); the answer names the one the server
chose (``transfer``) and :data:`ADAPTERS` maps that name to the code that speaks it, as git-lfs's
``tq`` registers its adapters by name:

- ``basic`` (git-lfs batch API, docs/api/basic-transfers.md): one PUT of the whole object to the
  ``upload`` href.
- ``multipart`` (Hugging Face; its ``huggingface_hub`` client, ``lfs.py`` ``_upload_multi_part``):
  the ``upload`` action's header holds ``chunk_size`` and the numbered part URLs ``"1"``..``"n"``;
  each part is PUT there (each answer's ``ETag`` kept), then the ``upload`` href is POSTed
  ``{"oid", "parts": [{"partNumber", "etag"}]}`` to complete the object.

Errors: ProtocolError for an action the adapter cannot follow; the errors of
:mod:`gitmirror.lfs.hrefs` for the requests themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from gitmirror.errors import ProtocolError
from gitmirror.lfs.hrefs import Timeout, post_json, put
from gitmirror.lfs.stream import Slice, VerifyingStream

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport
    from gitmirror.lfs.store import UploadTicket

__all__ = ["ADAPTERS", "BASIC", "MULTIPART", "Adapter"]


class Adapter(Protocol):
    """Sends one object's bytes to where an upload ticket says. ``label`` names the store in messages."""

    name: str

    def upload(self, ticket: UploadTicket, body: VerifyingStream, http: Transport, timeout: Timeout,
               label: str) -> None: ...


class Basic:
    """git-lfs's basic transfer: one PUT of the whole object."""

    name = "basic"

    def upload(self, ticket: UploadTicket, body: VerifyingStream, http: Transport, timeout: Timeout,
               label: str) -> None:
        put(http, ticket.actions["upload"], body, body, f"uploading LFS object {ticket.obj.oid}", timeout)


class HfMultipart:
    """Hugging Face's multipart transfer: consecutive slices PUT to numbered part URLs, then completed."""

    name = "multipart"

    def upload(self, ticket: UploadTicket, body: VerifyingStream, http: Transport, timeout: Timeout,
               label: str) -> None:
        obj, action = ticket.obj, ticket.actions["upload"]
        try:
            chunk_size = int(action.header["chunk_size"])
        except (KeyError, ValueError):
            raise ProtocolError(f"{label} sent a multipart upload for {obj.oid} without a valid chunk_size") from None
        numbers = sorted(int(k) for k in action.header if k.isdigit())
        expected_parts = max(1, -(-obj.size // chunk_size))
        if numbers != list(range(1, expected_parts + 1)):
            raise ProtocolError(
                f"{label} sent {len(numbers)} part URLs for LFS object {obj.oid}, expected {expected_parts}"
            )
        parts = []
        for number in numbers:
            length = min(chunk_size, obj.size - (number - 1) * chunk_size)
            part_link = action.elsewhere(action.header[str(number)])  # the part URL is signed: no header
            resp = put(http, part_link, Slice(body, length), body, f"uploading part {number} of {obj.oid}", timeout)
            etag = resp.headers.get("ETag")
            if not etag:
                raise ProtocolError(f"{label}: part {number} of LFS object {obj.oid} got no ETag")
            parts.append({"partNumber": number, "etag": etag})
        if not body.verified:
            return  # the store's write() reports it
        post_json(http, action.elsewhere(action.href), {"oid": obj.oid, "parts": parts},
                  f"completing the multipart upload of LFS object {obj.oid}", timeout)


BASIC = Basic()
MULTIPART = HfMultipart()
#: Transfer name (as in a batch request's ``transfers`` and its answer's ``transfer``) -> adapter.
ADAPTERS: dict[str, Adapter] = {adapter.name: adapter for adapter in (BASIC, MULTIPART)}
