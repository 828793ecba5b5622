"""Transfer adapters: how an object's bytes go up once the batch API said where.

A batch request offers adapters by name (``transfers``); the answer names the one the server
chose (``transfer``) and :data:`ADAPTERS` maps that name to the code that speaks it, as git-lfs's
``tq`` registers its adapters by name:

- ``basic`` (git-lfs batch API, docs/api/basic-transfers.md): one PUT of the whole object to the
  ``upload`` href.
- ``multipart`` (Hugging Face; its ``huggingface_hub`` client, ``lfs.py`` ``_upload_multi_part``):
  the ``upload`` action's header holds ``chunk_size`` and the numbered part URLs, keyed by decimal
  strings of any width (``"1"`` or ``"00001"``: huggingface.js documents zero-padded keys) and
  ordered as numbers; each part is PUT there (each answer's ``ETag`` kept), then the ``upload``
  href is POSTed ``{"oid", "parts": [{"partNumber", "etag"}]}`` to complete the object.

Which adapter an object needs is read from that object's own upload action
(:func:`adapter_for`: a ``chunk_size`` in its header means multipart), not from the batch's
``transfer`` field: Hugging Face answers a batch mixing a large and a small object with
``transfer: multipart`` and a plain upload action for the small one (huggingface_hub ``lfs.py``
``lfs_upload`` decides per object the same way: ``chunk_size`` in the header or not).

Errors: ProtocolError for an action the adapter cannot follow; the errors of
:mod:`gitmirror.lfs.hrefs` for the requests themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from gitmirror.errors import ProtocolError
from gitmirror.lfs.hrefs import Timeout, post_json, put
from gitmirror.lfs.stream import Slice, VerifyingStream

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport
    from gitmirror.lfs.store import UploadTicket
    from gitmirror.lfs.wire import Link

__all__ = ["ADAPTERS", "BASIC", "MULTIPART", "Adapter", "adapter_for", "part_urls"]


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
        link = ticket.outgoing(ticket.actions["upload"])
        put(http, link, body, body, f"uploading LFS object {ticket.obj.oid}", timeout)


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
        if chunk_size <= 0:
            raise ProtocolError(f"{label} sent a multipart upload for {obj.oid} with chunk_size {chunk_size}")
        urls = part_urls(action.header)
        expected_parts = max(1, -(-obj.size // chunk_size))
        if list(urls) != list(range(1, expected_parts + 1)):
            raise ProtocolError(
                f"{label} sent {len(urls)} part URLs for LFS object {obj.oid}, expected {expected_parts}"
            )
        parts = []
        for number, url in urls.items():
            length = min(chunk_size, obj.size - (number - 1) * chunk_size)
            # The part URL is presigned: no header; the hub's credentials only on its own origin.
            part_link = ticket.outgoing(action.elsewhere(url))
            resp = put(http, part_link, Slice(body, length), body, f"uploading part {number} of {obj.oid}", timeout)
            etag = resp.headers.get("ETag")
            if not etag:
                raise ProtocolError(f"{label}: part {number} of LFS object {obj.oid} got no ETag")
            parts.append({"partNumber": number, "etag": etag})
        if not body.verified:
            return  # the store's write() reports it
        post_json(http, ticket.outgoing(action.elsewhere(action.href)), {"oid": obj.oid, "parts": parts},
                  f"completing the multipart upload of LFS object {obj.oid}", timeout)


def part_urls(header: Mapping[str, str]) -> dict[int, str]:
    """The part URLs of a multipart upload action's ``header``, by part number, in numeric order.

    Keys are decimal strings of any width (``"1"``, ``"00001"``); other keys (``chunk_size``) are
    not parts. Raises ProtocolError when two keys name the same part (``"1"`` and ``"01"``).
    """
    urls: dict[int, str] = {}
    for key, url in header.items():
        if not (key.isascii() and key.isdigit()):
            continue
        number = int(key)
        if number in urls:
            raise ProtocolError(f"a multipart upload names part {number} twice")
        urls[number] = url
    return dict(sorted(urls.items()))


def adapter_for(upload: Link) -> str:
    """The name of the adapter one object's ``upload`` action needs: ``multipart`` when its header
    holds a ``chunk_size`` (as huggingface_hub ``lfs.py`` decides), else ``basic``."""
    return MULTIPART.name if "chunk_size" in upload.header else BASIC.name


BASIC = Basic()
MULTIPART = HfMultipart()
#: Transfer name (as in a batch request's ``transfers`` and its answer's ``transfer``) -> adapter.
ADAPTERS: dict[str, Adapter] = {adapter.name: adapter for adapter in (BASIC, MULTIPART)}
