"""How much of a transfer runs at once: :class:`Limits` (the options), :class:`ByteBudget` (object
bytes being transferred at once) and :class:`HubSlots` (requests in flight at each hub).

On a link with a round-trip time, an object's requests (download, upload, verify) spend most of
their time waiting for answers, so many small objects move at once: tens of requests in flight per
hub, bounded so that a hub's rate limits are not hit harder than its own clients hit them. Large
objects are bounded by their bytes instead: each transfer streams with a bounded buffer, and the
byte budget keeps a handful of multi-gigabyte uploads from starting together (each would hold a
connection, a read-ahead buffer and a retry's worth of resent bytes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["BYTES_IN_FLIGHT", "REQUESTS_PER_HUB", "ByteBudget", "HubSlots", "Limits", "parse_size"]

#: Requests in flight at one hub (batch, download, upload, verify). Safe because the hubs limit
#: requests per 5-minute window, not concurrency (Hugging Face's rate-limits doc; a 429 carries
#: ``RateLimit``/``Retry-After``, which the retry policy honours), and a mirror makes the same
#: requests git-lfs makes (one batch per 100 objects, one download, upload and verify per object),
#: only sooner. 32 is four times git-lfs's 8 concurrent transfers and huggingface_hub's 8 download
#: workers (``snapshot_download(max_workers=8)``): tens, not hundreds, of connections per hub.
REQUESTS_PER_HUB = 32

#: Bytes of objects being transferred at once (object sizes, not memory: each transfer streams
#: through a few MiB of buffers). One 200 MB object at a time moved at half the speed of several
#: at once (hashing, TLS and copying in one thread; docs/benchmarks.md, "Transfer queue"), so the
#: budget lets three to five large objects share the link; multi-gigabyte ones move one at a time.
BYTES_IN_FLIGHT = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Bounds of one transfer.

    ``requests_per_hub``: requests in flight at each hub (counted per LFS endpoint origin; a
    streamed download or upload holds its slot until its body is done). ``bytes_in_flight``:
    the sizes, in bytes, of the objects being transferred at once; an object larger than it moves
    alone. ``jobs``: objects transferred at once, at most (None: as many as the other two bounds
    allow, up to ``requests_per_hub``; the old meaning of ``-j/--jobs``).

    Raises ValueError for a bound below 1.
    """

    requests_per_hub: int = REQUESTS_PER_HUB
    bytes_in_flight: int = BYTES_IN_FLIGHT
    jobs: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_hub", "bytes_in_flight", "jobs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")

    @classmethod
    def of(cls, requests_per_hub: int | None = None, bytes_in_flight: int | None = None,
           jobs: int | None = None) -> Limits:
        """Limits from options that may be unset (None: the default)."""
        return cls(requests_per_hub or REQUESTS_PER_HUB, bytes_in_flight or BYTES_IN_FLIGHT, jobs)

    @property
    def workers(self) -> int:
        """Object workers: ``jobs``, else the per-hub bound. Each holds one request at a time for
        a small object (its download, then its upload; verify calls have a pool of their own).
        Twice as many workers moved 2,000 small objects no faster at 50 ms per round trip
        (docs/benchmarks.md, "Transfer queue") and cost more CPU."""
        return self.jobs if self.jobs is not None else self.requests_per_hub


_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"512M"`` -> 536870912: a positive whole number of bytes, with an optional binary unit
    K, M, G or T (``"512MiB"`` and ``"512mb"`` read the same). Raises ValueError otherwise."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = _UNITS.get(value[-1:], 1)
    number = value[:-1] if scale > 1 else value
    if not number.strip().isdigit() or int(number) < 1:
        raise ValueError(f"{text!r} is not a size in bytes (e.g. 536870912, 512M, 2G)")
    return int(number) * scale


class ByteBudget:
    """Admits objects while the sizes of those admitted stay within ``limit`` bytes; an object
    larger than the limit is admitted when nothing else is in flight. Thread-safe.

    ``peak`` is the largest total admitted at once (bytes), for tests and metrics.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextmanager
    def admit(self, size: int, abort: threading.Event | None = None) -> Iterator[None]:
        """Hold ``size`` bytes of the budget for the ``with`` block; waits until they fit (or
        ``abort`` is set: then returns at once, admitted, and the caller's abort check stops it)."""
        with self._cond:
            while self.in_flight and self.in_flight + size > self.limit:
                if abort is not None and abort.is_set():
                    break
                self._cond.wait(0.5)
            self.in_flight += size
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= size
                self._cond.notify_all()


class HubSlots:
    """At most ``limit`` requests in flight at each hub (by key: an LFS endpoint's origin).

    :meth:`hold` may take slots at several hubs at once: a streamed copy holds a source and a
    destination slot together. Slots are taken in the keys' order, so two workers never wait for
    each other's; two at the same hub (a copy within one hub) are taken under that hub's own lock,
    so that workers each holding one cannot all wait for a second. One semaphore per hub: a slot
    freed wakes one waiter, not every worker. Thread-safe. ``peak[key]`` is the most slots held at
    once at a hub; ``held[key]`` those held now.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._lock = threading.Lock()
        self._hubs: dict[str, tuple[threading.Semaphore, threading.Lock]] = {}

    def _hub(self, key: str) -> tuple[threading.Semaphore, threading.Lock]:
        with self._lock:
            if key not in self._hubs:
                self._hubs[key] = (threading.Semaphore(self.limit), threading.Lock())
                self.held[key] = 0
            return self._hubs[key]

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.held[key] += n
            self.peak[key] = max(self.peak.get(key, 0), self.held[key])

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """One slot at each hub of ``keys`` (a key twice: two slots there, or one when the limit
        is 1) for the ``with`` block."""
        need: dict[str, int] = {}
        for key in sorted(keys):
            need[key] = min(self.limit, need.get(key, 0) + 1)
        taken: list[tuple[str, int]] = []
        try:
            for key, n in need.items():
                slots, several = self._hub(key)
                if n == 1:
                    slots.acquire()
                else:
                    with several:
                        for _ in range(n):
                            slots.acquire()
                taken.append((key, n))
                self._count(key, n)
            yield
        finally:
            for key, n in taken:
                self._count(key, -n)
                slots, _ = self._hub(key)
                slots.release(n)
