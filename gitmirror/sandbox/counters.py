"""Per-hub counters of requests and body bytes, so tests can assert what moved and what did not.

Requests are counted by route class (``git-info-refs``, ``git-upload-pack``, ``git-receive-pack``,
``lfs-batch``, ``lfs-download``, ``lfs-upload``, ``lfs-verify``, ``lfs-multipart-part``,
``lfs-multipart-complete``, ``api``, ``other``) and method, by status, and by "METHOD path";
bytes are request/response *body* bytes per class (``bytes_in`` = from the client);
``features`` counts protocol features seen (``gzip-request``, ``chunked-request``, ``protocol-v2``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CounterSnapshot:
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> method -> n
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)  # class -> status -> n
    bytes_in: dict[str, int] = field(default_factory=dict)
    bytes_out: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)  # "GET /a/b.git/info/refs" -> n
    features: dict[str, int] = field(default_factory=dict)  # "gzip-request", "chunked-request", "protocol-v2"

    def count(self, route: str, method: str | None = None) -> int:
        """Requests of one class (optionally one method)."""
        by_method = self.requests.get(route, {})
        return by_method.get(method, 0) if method else sum(by_method.values())

    def status_count(self, route: str, status: int) -> int:
        return self.statuses.get(route, {}).get(status, 0)

    def total_requests(self) -> int:
        return sum(sum(m.values()) for m in self.requests.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": {k: {str(s): n for s, n in v.items()} for k, v in self.statuses.items()},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "paths": self.paths,
            "features": self.features,
        }


class Counters:
    """Thread-safe counters of one hub (its git port and its storage port together)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self._statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
            self._bytes_in: dict[str, int] = defaultdict(int)
            self._bytes_out: dict[str, int] = defaultdict(int)
            self._paths: dict[str, int] = defaultdict(int)
            self._features: dict[str, int] = defaultdict(int)

    def request(self, route: str, method: str, path: str) -> None:
        with self._lock:
            self._requests[route][method] += 1
            self._paths[f"{method} {path}"] += 1

    def feature(self, name: str) -> None:
        """Note a protocol feature a request used (tests assert e.g. that gzip was exercised)."""
        with self._lock:
            self._features[name] += 1

    def status(self, route: str, status: int) -> None:
        with self._lock:
            self._statuses[route][status] += 1

    def add_in(self, route: str, n: int) -> None:
        with self._lock:
            self._bytes_in[route] += n

    def add_out(self, route: str, n: int) -> None:
        with self._lock:
            self._bytes_out[route] += n

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return CounterSnapshot(
                requests={k: dict(v) for k, v in self._requests.items()},
                statuses={k: dict(v) for k, v in self._statuses.items()},
                bytes_in=dict(self._bytes_in),
                bytes_out=dict(self._bytes_out),
                paths=dict(self._paths),
                features=dict(self._features),
            )
