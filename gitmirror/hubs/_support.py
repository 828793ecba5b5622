"""Small helpers the adapters share: one retried call, one-line messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gitmirror.errors import GitMirrorError, scrub
from gitmirror.retry import RetryPolicy, retrying

T = TypeVar("T")

OnRetry = Callable[[str, BaseException], None]


@dataclass(frozen=True)
class CallOptions:
    """How an adapter retries its own API calls, and whom it tells about each retry."""

    policy: RetryPolicy | None = None
    on_retry: OnRetry | None = None


def call(what: str, fn: Callable[[], T], translate: Callable[[BaseException], GitMirrorError], opts: CallOptions) -> T:
    """Run ``fn`` under the retry policy; SDK exceptions become ours *inside* each attempt.

    Translating inside the attempt is what makes the policy work: only our TransientError /
    ProtocolError are transient, so 401/403/404 fail at once and 5xx/timeouts are tried again.
    """
    for attempt in retrying(what, opts.policy, opts.on_retry):
        with attempt:
            try:
                return fn()
            except GitMirrorError:
                raise
            except Exception as exc:  # noqa: BLE001 - every SDK failure is translated
                raise translate(exc) from None
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


def one_line(text: object, limit: int = 300) -> str:
    """A server's message as one short, scrubbed line (it may echo tokens or be an HTML page)."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return scrub(flat)
