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


#: An object nobody uploads: asking to upload it moves no bytes, but the server must first
#: decide whether we may write at all (the LFS batch API checks that before anything else).
_PROBE_DATA = b"gitmirror write probe\n"


def probe_lfs_write(store: object, display: str, who: str) -> None:
    """Fail early, before anything is pushed, when the credentials cannot write to ``store``.

    Only a refusal counts (401/403): any other odd answer is left for the real transfer to
    report, since this check is advisory.
    """
    import hashlib

    from gitmirror.errors import AuthError, PermissionDeniedError
    from gitmirror.httpclient import HttpClient
    from gitmirror.lfs import LfsObject

    probe = LfsObject(hashlib.sha256(_PROBE_DATA).hexdigest(), len(_PROBE_DATA))
    with HttpClient() as http:
        try:
            store.plan_uploads([probe], http)  # type: ignore[attr-defined]
        except (AuthError, PermissionDeniedError) as exc:
            if exc.status == 404:  # no LFS API at all (LFS disabled there): its own message says so
                raise
            raise PermissionDeniedError(
                f"{who} may not write to {display} ({one_line(exc.message, 160)})",
                hint="use a token with write access to this repository",
            ) from exc
        except GitMirrorError:
            pass
