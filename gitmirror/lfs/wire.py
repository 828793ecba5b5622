"""The git-lfs batch API's messages, typed: the request body, and per object the answer's actions
(:class:`Link`) or error (:class:`ObjectError`).

Source: the git-lfs batch API (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md),
read as git-lfs's ``tq/api.go`` and ``lfshttp`` read it. Standard library only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from gitmirror.errors import ProtocolError
from gitmirror.lfs.pointer import LfsObject

if TYPE_CHECKING:
    from gitmirror.httpclient import Response

__all__ = ["LFS_MEDIA_TYPE", "MAX_BATCH", "Link", "ObjectAnswer", "ObjectError", "Operation", "batch_request",
           "parse_answer", "read_answer"]

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
#: Clients send at most this many objects per batch request (git-lfs does the same; servers answer 413).
MAX_BATCH = 100

Operation = Literal["upload", "download"]


@dataclass(frozen=True)
class Link:
    """An action of a batch answer: where to send a request and exactly which headers to send.

    ``expires_at`` and ``issued_at`` are epoch seconds (``expires_at`` None: the link does not expire).
    """

    href: str
    header: Mapping[str, str]
    expires_at: float | None = None
    issued_at: float = 0.0

    def stale(self, now: float | None = None) -> bool:
        """True when the link has expired or is about to (within 30 s, or half its lifetime if shorter)."""
        if self.expires_at is None:
            return False
        now = time.time() if now is None else now
        margin = min(30.0, max(0.0, (self.expires_at - self.issued_at) / 2))
        return now >= self.expires_at - margin

    def elsewhere(self, href: str, header: Mapping[str, str] | None = None) -> Link:
        """A link to ``href`` with ``header`` (default none) that expires when this one does."""
        return Link(href, header or {}, self.expires_at, self.issued_at)


@dataclass(frozen=True)
class ObjectError:
    """A per-object error of a batch answer: ``code`` is an HTTP status (0 when the server gave none)."""

    code: int
    message: str


@dataclass(frozen=True)
class ObjectAnswer:
    """What a batch answer says about one object.

    ``transfer`` is the adapter the server named for the whole batch (``basic`` when it names none);
    which adapter one object needs is read from its own actions (see
    :func:`gitmirror.lfs.adapters.adapter_for`). ``authenticated`` is the object's
    ``authenticated`` field: True means its hrefs need no credentials beyond their ``header``
    (git-lfs ``tq/transfer.go``; absent means False). No ``actions`` and no ``error`` on an
    upload: the server has the object already.
    """

    obj: LfsObject
    transfer: str = "basic"
    actions: Mapping[str, Link] = field(default_factory=dict)
    error: ObjectError | None = None
    authenticated: bool = False


def batch_request(
    operation: Operation, objects: Sequence[LfsObject], transfers: Sequence[str], ref: str | None = None
) -> bytes:
    """The JSON body of a batch request for ``objects``, offering the ``transfers`` adapters."""
    body: dict = {
        "operation": operation,
        "transfers": list(transfers),
        "objects": [{"oid": o.oid, "size": o.size} for o in objects],
        "hash_algo": "sha256",
    }
    if ref:
        body["ref"] = {"name": ref}
    return json.dumps(body).encode()


def read_answer(resp: Response, what: str) -> dict:
    """The JSON document of a 200 batch answer. Raises ProtocolError for an HTML page (a login
    portal), anything else that is not JSON, or JSON without an ``objects`` list."""
    ctype = resp.headers.get("Content-Type", "")
    try:
        doc = json.loads(resp.data)
    except ValueError:
        kind = "an HTML page" if "html" in ctype.lower() else f"something that is not JSON ({ctype or 'no type'})"
        raise ProtocolError(f"{what} answered {kind}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
        raise ProtocolError(f"{what} answered JSON without an objects list")
    return doc


def parse_answer(doc: dict, asked: Sequence[LfsObject], issued: float, label: str) -> list[ObjectAnswer]:
    """One :class:`ObjectAnswer` per object of ``asked``, in that order, from a batch answer ``doc``.

    ``issued`` (epoch seconds, taken before the request) anchors relative expiries; ``label``
    names the server in messages. Raises ProtocolError when an object is left out of the answer
    or an action is malformed.
    """
    transfer = doc.get("transfer") or "basic"
    by_oid: dict[str, dict] = {}
    for raw in doc["objects"]:
        if isinstance(raw, dict) and isinstance(raw.get("oid"), str):
            by_oid[raw["oid"]] = raw
    answers = []
    for obj in asked:
        raw = by_oid.get(obj.oid)
        if raw is None:
            raise ProtocolError(f"{label} left LFS object {obj.oid} out of its batch answer")
        actions = raw.get("actions")
        links = {}
        if isinstance(actions, dict):
            links = {name: parse_link(spec, issued, label) for name, spec in actions.items()}
        answers.append(ObjectAnswer(obj, transfer, links, _object_error(raw.get("error")),
                                    authenticated=raw.get("authenticated") is True))
    return answers


def _object_error(error: object) -> ObjectError | None:
    if error is None:
        return None
    if not isinstance(error, dict):
        return ObjectError(0, "")
    code = error.get("code")
    return ObjectError(code if isinstance(code, int) else 0, str(error.get("message", "")))


def parse_link(spec: object, issued: float, label: str) -> Link:
    """An action object (``href``, ``header``, ``expires_in`` seconds or ``expires_at`` RFC 3339) as a Link."""
    if not isinstance(spec, dict) or not isinstance(spec.get("href"), str):
        raise ProtocolError(f"{label} sent an action without an href")
    header = spec.get("header") or {}
    if not isinstance(header, dict):
        raise ProtocolError(f"{label} sent an action whose header is not an object")
    # As git-lfs reads them: a relative expires_in wins over an absolute expires_at (the
    # server's clock may differ from ours).
    expires_at = None
    if isinstance(spec.get("expires_in"), (int, float)) and spec["expires_in"] > 0:
        expires_at = issued + float(spec["expires_in"])
    elif isinstance(spec.get("expires_at"), str):
        expires_at = _parse_time(spec["expires_at"])
    return Link(
        href=spec["href"],
        header={str(k): str(v) for k, v in header.items()},
        expires_at=expires_at,
        issued_at=issued,
    )


def _parse_time(value: str) -> float | None:
    """RFC 3339 time as epoch seconds; None when unreadable (or the zero time some servers send)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if when.year <= 1:
        return None
    return when.timestamp()
