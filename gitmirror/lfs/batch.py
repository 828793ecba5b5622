"""The git-lfs batch API client: ``POST <endpoint>/objects/batch``.

As git-lfs does (``tq/api.go``, ``lfshttp``; docs/api/batch.md): at most :data:`MAX_BATCH`
objects a request, halved on a 413 until one object is refused (PermissionDeniedError); a 307/308
redirect is followed keeping method and body; our credentials go to the endpoint's origin only.
Transient faults (connection failures, 408/425/429/5xx, a malformed answer) are retried per the
retry policy; other statuses raise the error :mod:`gitmirror.lfs.failures` maps them to.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from gitmirror.errors import PermissionDeniedError, ProtocolError
from gitmirror.lfs.failures import Operation, response_error, same_origin, transport_error
from gitmirror.lfs.pointer import LfsObject
from gitmirror.lfs.wire import LFS_MEDIA_TYPE, MAX_BATCH, ObjectAnswer, batch_request, parse_answer, read_answer
from gitmirror.retry import RetryPolicy, retrying

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport
    from gitmirror.lfs.hrefs import Timeout
    from gitmirror.lfs.store import OnRetry

__all__ = ["BatchClient"]

#: Redirects of one batch request followed at most (a hub moving a repository redirects once).
MAX_HOPS = 5


class _TooManyObjects(Exception):
    """A batch answered 413: send fewer objects at a time."""


class BatchClient:
    """Asks one LFS server's batch API about objects.

    ``auth_headers`` go to requests on the endpoint's origin only; ``timeout`` is ``(connect,
    read)`` seconds; ``policy`` bounds the retries of one batch request (None: the default policy);
    ``ref`` is sent as the request's ``ref`` (servers that check per-branch permissions read it);
    ``label`` names the server in messages.
    """

    def __init__(
        self,
        endpoint: str,
        auth_headers: Mapping[str, str],
        *,
        label: str,
        timeout: Timeout,
        policy: RetryPolicy | None = None,
        ref: str | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.url = f"{endpoint.rstrip('/')}/objects/batch"
        self._auth = dict(auth_headers)
        self.label = label
        self.timeout = timeout
        self.policy = policy
        self.ref = ref
        self.batch_size = max(1, min(batch_size, MAX_BATCH))

    def answers(
        self,
        operation: Operation,
        objects: Sequence[LfsObject],
        http: Transport,
        transfers: Sequence[str],
        on_retry: OnRetry | None = None,
        attempts: int | None = None,
    ) -> list[ObjectAnswer]:
        """One answer per distinct object, at most ``batch_size`` a request, halving on a 413.

        Each request is tried up to ``attempts`` times (None: the policy's), ``on_retry`` told of
        each retry. ``transfers`` are the adapters offered, by name.
        """
        answers: list[ObjectAnswer] = []
        objects = list(dict.fromkeys(objects))
        size, i = self.batch_size, 0
        while i < len(objects):
            chunk = objects[i : i + size]
            try:
                answers.extend(self._batch(operation, chunk, http, transfers, on_retry, attempts))
            except _TooManyObjects:
                if len(chunk) == 1:
                    raise PermissionDeniedError(
                        f"{self.label} refuses even a one-object LFS {operation} batch (413)"
                    ) from None
                size = max(1, len(chunk) // 2)
                continue
            i += len(chunk)
        return answers

    def _batch(self, operation: Operation, chunk: Sequence[LfsObject], http: Transport, transfers: Sequence[str],
               on_retry: OnRetry | None, attempts: int | None) -> list[ObjectAnswer]:
        payload = batch_request(operation, chunk, transfers, self.ref)
        what = f"LFS {operation} batch at {self.label}"
        policy = self.policy or RetryPolicy()
        if attempts is not None:
            policy = dataclasses.replace(policy, attempts=attempts)
        for attempt in retrying(what, policy, on_retry):
            with attempt:
                issued = time.time()
                doc = self._post(payload, what, operation, http)
                return parse_answer(doc, chunk, issued, self.label)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, payload: bytes, what: str, operation: Operation, http: Transport) -> dict:
        url = self.url
        for _hop in range(MAX_HOPS):
            headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
            if same_origin(url, self.url):
                headers.update(self._auth)  # our credentials go to our endpoint's origin only
            try:
                resp = http.request("POST", url, body=payload, headers=headers, timeout=self.timeout)
            except Exception as exc:
                raise transport_error(what, exc) from exc
            if resp.status in (307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers.get("Location"))  # keep method and body
                continue
            if resp.status == 413:
                raise _TooManyObjects()
            if resp.status != 200:
                raise response_error(resp, what, operation)
            return read_answer(resp, what)
        raise ProtocolError(f"{what}: too many redirects")
