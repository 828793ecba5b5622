"""What an LFS store is (:class:`LfsStore`), and the tickets it hands the transfer queue: where to
read one object (:class:`DownloadTicket`), where to write it (:class:`UploadTicket`).

The stores themselves: :mod:`gitmirror.lfs.store_http` (a server's batch API) and
:mod:`gitmirror.lfs.store_local` (a directory laid out as git-lfs does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitmirror.errors import GitMirrorError
from gitmirror.lfs.hrefs import OriginCredentials
from gitmirror.lfs.pointer import LfsObject
from gitmirror.lfs.wire import Link

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport
    from gitmirror.lfs.stream import VerifyingStream

__all__ = ["DownloadTicket", "LfsStore", "OnRetry", "UploadTicket"]

#: Told of each retry: what is retried (for logs) and the fault that made it necessary.
OnRetry = Callable[[str, BaseException], None]


@dataclass(frozen=True)
class DownloadTicket:
    """Where to read one object from. ``link`` is None for a local store; ``credentials`` are
    the hub's, for hrefs on its LFS endpoint's origin (None: the object was marked
    ``authenticated``, or the store has none)."""

    obj: LfsObject
    link: Link | None = None
    credentials: OriginCredentials | None = field(default=None, repr=False)

    def stale(self) -> bool:
        return self.link is not None and self.link.stale()

    def outgoing(self, link: Link) -> Link:
        """``link`` as it is sent: see :meth:`OriginCredentials.add_to`."""
        return self.credentials.add_to(link) if self.credentials else link


@dataclass(frozen=True)
class UploadTicket:
    """Where to write one object: ``transfer`` names the adapter (:mod:`gitmirror.lfs.adapters`),
    ``actions`` the batch answer's links by action name (``upload``, ``verify``), ``credentials``
    as for :class:`DownloadTicket`."""

    obj: LfsObject
    transfer: str = "basic"
    actions: Mapping[str, Link] = field(default_factory=dict)
    credentials: OriginCredentials | None = field(default=None, repr=False)

    def stale(self) -> bool:
        return any(link.stale() for link in self.actions.values())

    def outgoing(self, link: Link) -> Link:
        """``link`` as it is sent: see :meth:`OriginCredentials.add_to`."""
        return self.credentials.add_to(link) if self.credentials else link


class LfsStore(ABC):
    """Somewhere LFS objects live. Methods take the run's :class:`~gitmirror.httpclient.Transport`.

    Batch-style methods accept any number of objects; HTTP stores split them into batches. They
    retry transient faults of a batch request up to ``attempts`` times (None: the store's policy),
    telling ``on_retry`` of each retry.
    """

    #: For messages: where this store is, without credentials or query strings.
    label: str = "LFS store"

    @abstractmethod
    def plan_uploads(
        self, objects: Sequence[LfsObject], http: Transport, on_retry: OnRetry | None = None,
        *, attempts: int | None = None,
    ) -> dict[LfsObject, UploadTicket | None | GitMirrorError]:
        """For each object: a ticket to upload it, None when the store already has it, or an error."""

    @abstractmethod
    def plan_downloads(
        self, objects: Sequence[LfsObject], http: Transport, on_retry: OnRetry | None = None,
        *, attempts: int | None = None,
    ) -> dict[LfsObject, DownloadTicket | GitMirrorError]:
        """For each object: a ticket to read it, or an error (IntegrityError when the store lacks it)."""

    @abstractmethod
    def reading(
        self, ticket: DownloadTicket, http: Transport, offset: int = 0
    ) -> AbstractContextManager[Iterator[bytes]]:
        """The object's bytes from ``offset`` on, as an iterator of chunks of about
        :data:`~gitmirror.lfs.stream.CHUNK` bytes (a context manager)."""

    @abstractmethod
    def write(self, ticket: UploadTicket, body: VerifyingStream, http: Transport) -> None:
        """Store the object from ``body``. Nothing may be stored when ``body`` raises."""

    def upload(self, ticket: UploadTicket, body: VerifyingStream, http: Transport) -> None:
        """Send the object's bytes from ``body`` without asking the store to confirm them: the
        transfer queue calls :meth:`confirm` later, off the worker's critical path. A store with
        nothing to confirm does all of :meth:`write` here."""
        self.write(ticket, body, http)

    def confirm(self, ticket: UploadTicket, http: Transport) -> None:
        """Have the store confirm an object :meth:`upload` sent (an LFS ``verify`` action); raises
        IntegrityError when it does not. Nothing to do by default."""

    @property
    def hub_key(self) -> str:
        """Which hub this store's requests go to, for the per-hub bound on requests in flight
        (:class:`gitmirror.lfs.admission.HubSlots`)."""
        return self.label

    @abstractmethod
    def lacking(self, objects: Sequence[LfsObject], http: Transport) -> list[LfsObject]:
        """Which of ``objects`` this store does not have, moving no object bytes."""
