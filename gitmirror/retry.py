"""The retry policy: tenacity, transient faults only, exponential backoff, server-asked waits honoured.

Callers wrap one network step (a git command, one HTTP request, one object transfer) with
:func:`retrying`. Whether an exception is worth another try is decided by
:func:`gitmirror.errors.is_transient`, never here.

A server may ask for a pause (``Retry-After``, or Hugging Face's ``RateLimit: "api";r=0;t=N``):
it is waited out, said on one WARNING line, within :attr:`RetryPolicy.max_retry_after` per wait
and :attr:`RetryPolicy.wait_budget` in all for one run; a pause beyond either fails at once
(:class:`~gitmirror.errors.RateLimitedError`, exit 8) rather than hang a cron job silently.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

import tenacity

from gitmirror.errors import RateLimitedError, is_transient

log = logging.getLogger("gitmirror.retry")

#: A server-asked pause at least this long (seconds) is said at WARNING level, the default.
LOUD_WAIT = 1.0


class WaitLedger:
    """The wall-clock seconds one run has spent waiting out pauses servers asked for.

    Thread-safe. Waits that overlap (eight LFS workers told "wait 30 s" at once) count once:
    the ledger adds only the part of a new wait that reaches past every wait already taken.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.spent = 0.0
        self._until = 0.0

    def take(self, seconds: float, budget: float) -> bool:
        """Book a wait of ``seconds`` starting now; False (nothing booked) if it would pass ``budget``."""
        with self._lock:
            now = self._clock()
            end = now + seconds
            extra = max(0.0, end - max(now, self._until))
            if self.spent + extra > budget:
                return False
            self.spent += extra
            self._until = max(self._until, end)
            return True


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait and how hard to try. ``attempts`` counts the first try too (git-lfs makes 8).

    Times are in seconds. One policy object is one run's wait budget, booked in its ``ledger``
    (a :class:`WaitLedger`): :meth:`for_run` gives a copy with a fresh one (``dataclasses.replace``
    does too).
    """

    attempts: int = 8
    initial_wait: float = 0.25
    max_wait: float = 30.0
    #: The longest single pause a server may ask for (Retry-After, RateLimit's t) that we wait
    #: out: Hugging Face counts its limits in 5-minute windows. A longer one fails at once (exit 8).
    max_retry_after: float = 300.0
    #: The most one run waits, in all, for pauses servers asked for; the wait that would pass it
    #: fails at once (exit 8) instead. Backoff between other retries does not count.
    wait_budget: float = 900.0
    connect_timeout: float = 15.0
    #: A connection that sends nothing for this long is cut and retried (HTTP reads; git's low-speed limit).
    read_timeout: float = 120.0

    def __post_init__(self) -> None:
        # The run's wait ledger: an attribute, not a dataclass field, so that the policy's fields
        # stay its settings (copied, compared, listed); every new or replaced policy gets its own.
        object.__setattr__(self, "ledger", WaitLedger())

    def for_run(self) -> "RetryPolicy":
        """This policy with a wait budget of its own, untouched (one per run)."""
        return dataclasses.replace(self)


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


# The IETF draft's RateLimit field as Hugging Face sends it: "api";r=0;t=55 (r: requests left in
# the window, t: seconds until it resets). The same expression as huggingface_hub's
# parse_ratelimit_headers (utils/_http.py), which is not imported here: any LFS server may send
# the header, and loading huggingface_hub costs a third of a second.
_RATELIMIT = re.compile(r"\"(?P<kind>\w+)\"\s*;\s*r\s*=\s*(?P<r>\d+)\s*;\s*t\s*=\s*(?P<t>\d+)")


def parse_ratelimit(value: str | None) -> float | None:
    """Seconds to wait from a ``RateLimit`` header: its ``t`` when no request is left (``r=0``), else None."""
    match = _RATELIMIT.search(value or "")
    if match is None or int(match.group("r")) != 0:
        return None
    return float(match.group("t"))


def retry_after_from(headers: Mapping[str, str] | Any) -> float | None:
    """The pause (seconds) a response asks for: ``RateLimit`` with nothing left (Hugging Face; what
    huggingface_hub 1.2+ honours first), else ``Retry-After``; None when neither says.

    ``headers`` is any mapping with a case-insensitive ``get`` (ours, requests', httpx's).
    """
    asked = parse_ratelimit(headers.get("RateLimit"))
    return asked if asked is not None else parse_retry_after(headers.get("Retry-After"))


def _retry_after_of(exc: BaseException | None) -> float | None:
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            seconds = retry_after_from(headers)
    return seconds


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = _retry_after_of(exc)
        return backoff(state) if asked is None else asked

    return wait


def _check_asked_wait(what: str, policy: RetryPolicy, exc: BaseException | None) -> None:
    """Before a retry that waits out a pause the server asked for: refuse a pause beyond the
    policy's limits (RateLimitedError), book it in the run's ledger, and say a long one.

    Called from tenacity's ``before_sleep``, which runs only when a retry will happen (tenacity
    computes the wait before it checks ``stop``: a last attempt books nothing).
    """
    asked = _retry_after_of(exc)
    if asked is None:
        return
    why = f"HTTP {exc.status}" if getattr(exc, "status", None) else "Retry-After"  # type: ignore[union-attr]
    if asked > policy.max_retry_after:
        raise _too_long(what, asked, why, f"more than the {policy.max_retry_after:.0f} s we wait at once", exc)
    if not policy.ledger.take(asked, policy.wait_budget):
        left = max(0.0, policy.wait_budget - policy.ledger.spent)
        raise _too_long(what, asked, why, f"past this run's wait budget ({left:.0f} of {policy.wait_budget:.0f} s left)", exc)
    if asked >= LOUD_WAIT:
        log.warning("waiting %.0f s: the server asked us to slow down (%s) on %s", asked, why, what)


def _too_long(what: str, asked: float, why: str, limit: str, exc: BaseException | None) -> RateLimitedError:
    error = RateLimitedError(
        f"{what}: the server asked us to wait {asked:.0f} s ({why}), {limit}",
        hint="run again later; the rate limit resets on its own",
        retry_after=asked,
    )
    error.status = getattr(exc, "status", None)
    error.__cause__ = exc
    return error


def retrying(
    what: str,
    policy: RetryPolicy | None = None,
    on_retry: Callable[[str, BaseException], None] | None = None,
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` for one step. ``on_retry(what, exc)`` is told of each retry (for counts).

    Raises the last failure when the attempts run out, and :class:`~gitmirror.errors.RateLimitedError`
    (exit 8, not retried) when a server asks for a pause beyond the policy's limits.
    """
    policy = policy or RetryPolicy()

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        _check_asked_wait(what, policy, exc)
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
