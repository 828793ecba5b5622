"""What a hub's login handed out, shared by every adapter of one run.

A ModelScope token is traded for its git token by ``POST /api/v1/login``; a ``sync`` over 1,000
mirrors opens 2,000 adapters, and without sharing would log in 1,000 times a run. The run makes
one :class:`LoginCache` (``RunOptions.logins``) and every adapter asks it first. It is an object
of the run, not module state: two runs in one process (the library API, the tests) never share.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


def login_key(endpoint: str, secret: str) -> tuple[str, str]:
    """The cache key for ``secret`` at ``endpoint``: a digest of the secret, never the secret, so
    no repr or log of the cache can show it."""
    return endpoint.rstrip("/"), hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass
class LoginCache(Generic[T]):
    """One login per key per run, thread-safe: concurrent mirrors with the same token wait for the
    first one's login instead of making their own.

    What ``login()`` returns is kept, a refusal included when the caller returns it as a value; an
    exception (a transient fault that outlasted its retries) is not kept, so a later mirror asks again.
    """

    _results: dict[Hashable, T] = field(default_factory=dict, repr=False)
    _locks: dict[Hashable, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)
    logins: int = 0  # how many logins were made (the others were shared)

    def get(self, key: Hashable, login: Callable[[], T]) -> T:
        """The result of ``login()`` for ``key``, made at most once while it succeeds."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._results:
                return self._results[key]
            result = login()
            self._results[key] = result
            with self._guard:
                self.logins += 1
            return result
