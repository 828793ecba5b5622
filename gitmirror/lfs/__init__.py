"""Git LFS: pointers, the batch API client, object stores (HTTP and local), the transfer queue.

One concept a module:

- :mod:`~gitmirror.lfs.pointer`: :class:`LfsObject`, :func:`parse_pointer`, :func:`format_pointer`
  (standard library only);
- :mod:`~gitmirror.lfs.wire`: the batch API's messages, typed (:class:`Link`, ``ObjectAnswer``);
- :mod:`~gitmirror.lfs.batch`: the batch API client (``POST /objects/batch``);
- :mod:`~gitmirror.lfs.failures`: what an LFS server's status means as a gitmirror error;
- :mod:`~gitmirror.lfs.hrefs`: requests to the hrefs a batch answer gives, stale links;
- :mod:`~gitmirror.lfs.adapters`: transfer adapters by name (``basic``, Hugging Face ``multipart``);
- :mod:`~gitmirror.lfs.stream`: the verifying stream (sha256 and size checked on the fly);
- :mod:`~gitmirror.lfs.store`, :mod:`~gitmirror.lfs.store_http`, :mod:`~gitmirror.lfs.store_local`:
  the stores and the tickets they hand out;
- :mod:`~gitmirror.lfs.events`: progress events and the transfer report;
- :mod:`~gitmirror.lfs.queue`: :func:`transfer` and :func:`missing`.

The names below are importable from ``gitmirror.lfs`` itself. Only the pointer names are loaded
with the package; the rest load on first use, so that importing the package (``gitrepo`` does)
stays cheap and ``gitmirror --help`` fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gitmirror.lfs.pointer import EMPTY_OID, MAX_POINTER_SIZE, POINTER_VERSION, LfsObject, format_pointer, parse_pointer

if TYPE_CHECKING:
    from gitmirror.lfs.events import TransferEvent, TransferFailure, TransferReport
    from gitmirror.lfs.queue import missing, transfer
    from gitmirror.lfs.store import DownloadTicket, LfsStore, UploadTicket
    from gitmirror.lfs.store_http import HttpLfsStore
    from gitmirror.lfs.store_local import LocalLfsStore
    from gitmirror.lfs.stream import CHUNK, VerifyingStream
    from gitmirror.lfs.wire import LFS_MEDIA_TYPE, MAX_BATCH, Link

_LAZY = {
    "CHUNK": "stream",
    "VerifyingStream": "stream",
    "DownloadTicket": "store",
    "LfsStore": "store",
    "UploadTicket": "store",
    "HttpLfsStore": "store_http",
    "LocalLfsStore": "store_local",
    "LFS_MEDIA_TYPE": "wire",
    "Link": "wire",
    "MAX_BATCH": "wire",
    "TransferEvent": "events",
    "TransferFailure": "events",
    "TransferReport": "events",
    "missing": "queue",
    "transfer": "queue",
}

__all__ = [
    "EMPTY_OID",
    "MAX_POINTER_SIZE",
    "POINTER_VERSION",
    "LfsObject",
    "format_pointer",
    "parse_pointer",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitmirror.lfs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gitmirror.lfs.{module}"), name)
    globals()[name] = value  # once loaded, no more lookups through here
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
