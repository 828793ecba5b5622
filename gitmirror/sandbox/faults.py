"""Fault injection for one hub (its git port and storage port), set at run time.

From Python::

    hub.faults.fail(method="POST", path=r"/info/lfs/objects/batch$", status=503, times=2)
    hub.faults.fail(path=r"/objects/", status=429, retry_after=1)
    hub.faults.cut(route="lfs-download", after_bytes=1000)           # response cut after 1000 body bytes
    hub.faults.cut(route="lfs-upload", after_bytes=10, direction="request")
    hub.faults.stall(route="git-upload-pack", seconds=2)
    hub.faults.bandwidth(down=200_000, up=None)                        # bytes/s, git + storage traffic
    hub.faults.redirect(route="lfs-batch")                             # 307 to the same URL (+ a marker)
    hub.faults.rate_limit(route="lfs-batch", reset=2, quota=500)       # HF: 429 + RateLimit headers
    hub.faults.rate_limit(route="api", style="modelscope")             # ModelScope: 200, Success false
    hub.faults.clear()

Over HTTP: ``POST {endpoint}/_sandbox/faults`` with ``{"action": "fail"|"cut"|"stall"|"bandwidth"|"clear", ...}``
or ``"redirect"`` or ``"rate_limit"`` (same keyword names); ``GET`` lists the rules; ``DELETE`` clears.

A rule matches when the method matches (``"*"`` = any), ``path`` (a regex, searched in the
path plus ``?query``) matches and, if given, ``route`` equals the request's route class. Each
rule fires ``times`` times (None = until cleared). ``port`` limits a rule to ``"hub"`` or
``"storage"`` (None = both).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultRule:
    id: int
    action: str  # "fail" | "cut" | "stall" | "redirect"
    method: str = "*"
    path: str = ""
    route: str | None = None
    port: str | None = None
    times: int | None = 1
    status: int = 500
    retry_after: float | None = None
    body: str | None = None  # for fail: answer this text instead of a JSON error (malformed JSON, HTML)
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)  # for fail: extra response headers (RateLimit)
    after_bytes: int = 0
    direction: str = "response"  # for cut: "response" (to the client) or "request" (from it)
    seconds: float = 0.0
    limit: RateLimitAnswer | None = None  # for rate_limit: how the hub words its answer
    fired: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path)

    def matches(self, method: str, target: str, route: str, port: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method not in ("*", method.upper()):
            return False
        if self.route is not None and self.route != route:
            return False
        if self.port is not None and self.port != port:
            return False
        return self._regex.search(target) is not None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        if self.limit is not None:
            out["limit"] = self.limit.__dict__.copy()
        return out


@dataclass(frozen=True)
class Triggered:
    """The faults that apply to one request (each None when no rule fired)."""

    fail: FaultRule | None = None
    cut_request: FaultRule | None = None
    cut_response: FaultRule | None = None
    stall: FaultRule | None = None
    redirect: FaultRule | None = None
    rate_limit: FaultRule | None = None


RATE_LIMIT_STYLES = ("huggingface", "modelscope")


@dataclass(frozen=True)
class RateLimitAnswer:
    """A rate-limit refusal worded as a real hub words it.

    ``huggingface``: 429 with the IETF-draft headers ``RateLimit: "<bucket>";r=0;t=<reset>`` and
    ``RateLimit-Policy: "fixed window";"<bucket>";q=<quota>;w=<window>`` (hub-docs
    ``rate-limits.md``: 5-minute windows; huggingface_hub ``utils/_http.py``
    ``parse_ratelimit_headers`` reads them, ``t`` in whole seconds), ``Retry-After`` only when
    given. ``modelscope``: a 200 whose body is ``{"Success": false, "Code": "RateLimitExceed",
    "Message": ...}`` (modelscope_hub ``errors.py`` ``_OPENAPI_CODE_MAP`` and ``_openapi.py`` read
    that code, in either letter case, as its RateLimitError). ``status`` overrides the status.
    """

    style: str = "huggingface"
    reset: int = 1  # seconds until the window resets
    quota: int = 1000  # requests a window allows
    window: int = 300  # seconds
    bucket: str = "api"
    retry_after: float | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        if self.style not in RATE_LIMIT_STYLES:
            raise ValueError(f"rate limit style must be one of {RATE_LIMIT_STYLES}")

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` of the refusal."""
        headers = {"Content-Type": "application/json"}
        if self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        if self.style == "modelscope":
            message = "Request rate limit exceeded, please try again later"
            body = {"Success": False, "success": False, "Code": "RateLimitExceed", "code": "RateLimitExceed",
                    "Message": message, "message": message, "Data": None, "RequestId": secrets.token_hex(8)}
            return self.status or 200, headers, json.dumps(body).encode()
        headers["RateLimit"] = f'"{self.bucket}";r=0;t={int(self.reset)}'
        headers["RateLimit-Policy"] = f'"fixed window";"{self.bucket}";q={int(self.quota)};w={int(self.window)}'
        body = {"error": f"You have been rate-limited ({self.bucket}); retry in {int(self.reset)} seconds"}
        return self.status or 429, headers, json.dumps(body).encode()


class Throttle:
    """A byte-rate limit shared by every connection of a hub in one direction, like one link:
    callers sleep so that the aggregate rate stays under ``rate``.

    A token bucket holding at most ``burst`` seconds of credit: a sleep that overshoots (they
    all do, by tens of microseconds) is made up by the next callers instead of being lost, so
    the cap is reached, not just approached.
    """

    BURST = 0.02  # seconds of credit an idle link may bank

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def piece(self, smallest: int) -> int:
        """A pacing granularity of about 2.5 ms of traffic (at least ``smallest`` bytes)."""
        return max(smallest, min(256 * 1024, self.rate // 400))

    def consume(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now - self.BURST, self._next)
            self._next = start + n / self.rate
            delay = self._next - now
        if delay > 0:
            time.sleep(delay)


class Faults:
    """The fault rules and bandwidth caps of one hub."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self.down: Throttle | None = None  # to the client
        self.up: Throttle | None = None  # from the client

    def _add(self, **kwargs: Any) -> FaultRule:
        with self._lock:
            rule = FaultRule(id=self._next_id, **kwargs)
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def fail(self, method: str = "*", path: str = "", *, status: int = 500, times: int | None = 1,
             retry_after: float | None = None, route: str | None = None, port: str | None = None,
             body: str | None = None, content_type: str = "text/html; charset=utf-8",
             headers: dict[str, str] | None = None) -> FaultRule:
        """Answer the next ``times`` matching requests with ``status`` (429/503 may carry Retry-After).

        ``body`` replaces the JSON error with raw text, e.g. a proxy's HTML page or broken JSON
        (with ``status=200`` too). ``headers`` are added to the answer, e.g.
        ``{"RateLimit": '"api";r=0;t=2'}`` as Hugging Face sends with a 429.
        """
        return self._add(action="fail", method=method.upper(), path=path, status=status, times=times,
                         retry_after=retry_after, route=route, port=port, body=body, content_type=content_type,
                         headers=dict(headers or {}))

    def cut(self, method: str = "*", path: str = "", *, after_bytes: int = 0, direction: str = "response",
            times: int | None = 1, route: str | None = None, port: str | None = None) -> FaultRule:
        """Close the connection after ``after_bytes`` body bytes of the request or response."""
        if direction not in ("response", "request"):
            raise ValueError("direction must be 'response' or 'request'")
        return self._add(action="cut", method=method.upper(), path=path, after_bytes=after_bytes,
                         direction=direction, times=times, route=route, port=port)

    def stall(self, method: str = "*", path: str = "", *, seconds: float = 1.0, times: int | None = 1,
              route: str | None = None, port: str | None = None) -> FaultRule:
        """Wait ``seconds`` before handling the next ``times`` matching requests."""
        return self._add(action="stall", method=method.upper(), path=path, seconds=seconds, times=times,
                         route=route, port=port)

    def redirect(self, method: str = "*", path: str = "", *, status: int = 307, times: int | None = 1,
                 route: str | None = None, port: str | None = None) -> FaultRule:
        """Answer ``status`` (307/308) with ``Location`` = the same URL plus ``_redirected=N``,
        as a hub that moves its batch endpoint does; the client must repeat method and body."""
        return self._add(action="redirect", method=method.upper(), path=path, status=status, times=times,
                         route=route, port=port)

    def rate_limit(self, method: str = "*", path: str = "", *, style: str = "huggingface", reset: int = 1,
                   quota: int = 1000, window: int = 300, bucket: str = "api", retry_after: float | None = None,
                   status: int | None = None, times: int | None = 1, route: str | None = None,
                   port: str | None = None) -> FaultRule:
        """Refuse the next ``times`` matching requests as the hub's rate limiter does
        (:class:`RateLimitAnswer`: ``reset``, ``window`` in seconds, ``quota`` requests a window)."""
        limit = RateLimitAnswer(style, int(reset), int(quota), int(window), bucket, retry_after, status)
        return self._add(action="rate_limit", method=method.upper(), path=path, times=times, route=route,
                         port=port, limit=limit)

    def bandwidth(self, down: int | None = None, up: int | None = None) -> None:
        """Cap body bytes/s to (``down``) and from (``up``) clients on git and storage traffic."""
        self.down = Throttle(down) if down else None
        self.up = Throttle(up) if up else None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self.down = self.up = None

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def trigger(self, method: str, target: str, route: str, port: str) -> Triggered:
        """Pick (and use up) the first matching rule of each action for one request."""
        found: dict[str, FaultRule] = {}
        with self._lock:
            for rule in self._rules:
                slot = f"cut_{rule.direction}" if rule.action == "cut" else rule.action
                if slot in found or not rule.matches(method, target, route, port):
                    continue
                rule.fired += 1
                found[slot] = rule
        return Triggered(**found)

    def apply_control(self, body: dict[str, Any]) -> Any:
        """The HTTP control endpoint's POST: ``{"action": ..., <keyword arguments>}``."""
        args = dict(body)
        action = args.pop("action", None)
        if action == "clear":
            self.clear()
            return {"cleared": True}
        if action == "bandwidth":
            self.bandwidth(down=args.get("down"), up=args.get("up"))
            return {"down": args.get("down"), "up": args.get("up")}
        handlers = {"fail": self.fail, "cut": self.cut, "stall": self.stall, "redirect": self.redirect,
                    "rate_limit": self.rate_limit}
        if action not in handlers:
            raise ValueError(f"unknown fault action {action!r}")
        return handlers[action](**args).to_dict()
