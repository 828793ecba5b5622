"""The retry policy: tenacity, transient faults only, exponential backoff, Retry-After honoured.

Callers wrap one network step (a git command, one HTTP request, one object transfer) with
:func:`retrying`. Whether an exception is worth another try is decided by
:func:`gitmirror.errors.is_transient`, never here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import tenacity

from gitmirror.errors import is_transient

log = logging.getLogger("gitmirror.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait and how hard to try. ``attempts`` counts the first try too (git-lfs makes 8)."""

    attempts: int = 8
    initial_wait: float = 0.25
    max_wait: float = 30.0
    #: A server may ask for a long pause; beyond this we give up rather than hang a cron job.
    max_retry_after: float = 120.0
    connect_timeout: float = 15.0
    #: A connection that sends nothing for this long is cut and retried (HTTP reads; git's low-speed limit).
    read_timeout: float = 120.0


#: Used by tests to keep fault-injection runs short.
FAST = RetryPolicy(attempts=6, initial_wait=0.02, max_wait=0.5, max_retry_after=5.0, read_timeout=20.0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _retry_after_of(exc: BaseException | None) -> float | None:
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            seconds = parse_retry_after(headers.get("Retry-After"))
    return seconds


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = _retry_after_of(exc)
        if asked is not None:
            return min(asked, policy.max_retry_after)
        return backoff(state)

    return wait


def retrying(
    what: str,
    policy: RetryPolicy | None = None,
    on_retry: Callable[[str, BaseException], None] | None = None,
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` for one step. ``on_retry(what, exc)`` is told of each retry (for counts)."""
    policy = policy or RetryPolicy()

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("retrying %s after %s (attempt %d)", what, type(exc).__name__, state.attempt_number)
        if on_retry is not None and exc is not None:
            on_retry(what, exc)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
