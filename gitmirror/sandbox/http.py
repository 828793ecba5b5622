"""Small HTTP types shared by the sandbox core and the hub kinds.

Contract for hub kinds (``kinds.py`` and the per-hub modules):

* A kind sees a :class:`Request` whose body has already been read (REST and LFS batch
  requests are small). Git and object-storage traffic never reaches a kind: the core streams it.
* A kind answers with a :class:`Response` (bytes body), usually built with
  :func:`json_response`, :func:`text_response` or :func:`empty_response`.
* To refuse anywhere (authentication, permissions, validation) a kind raises
  :class:`HttpError` carrying the exact response the real hub sends; the core sends it as is.
  On git and LFS routes the core adds ``WWW-Authenticate`` / ``LFS-Authenticate`` to a 401
  that lacks them, so git and git-lfs ask their credential helpers as they do on the real hubs.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.cookies import SimpleCookie
from typing import Any, Mapping
from urllib.parse import parse_qs


@dataclass
class Request:
    """One HTTP request as a kind sees it. Header names are matched case-insensitively."""

    method: str
    path: str  # percent-decoded path, without the query string
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str = "127.0.0.1"

    def __post_init__(self) -> None:
        # Normalise once so lookups are cheap and case-insensitive.
        self._lower = {k.lower(): v for k, v in self.headers.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self._lower.get(name.lower(), default)

    @property
    def query(self) -> dict[str, list[str]]:
        parsed = self.__dict__.get("_query")
        if parsed is None:  # storage requests ask for several values: parse once
            parsed = self.__dict__["_query"] = parse_qs(self.query_string, keep_blank_values=True)
        return parsed

    def query_value(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`HttpError` 400 when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise HttpError(json_response(400, {"error": f"invalid JSON body: {exc}"})) from exc

    def form(self) -> dict[str, str]:
        """Fields of an urlencoded or multipart/form-data body (file parts decoded as text)."""
        ctype = self.header("content-type", "") or ""
        if ctype.startswith("multipart/form-data"):
            raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + self.body
            message = BytesParser(policy=HTTP).parsebytes(raw)
            fields: dict[str, str] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    payload = part.get_payload(decode=True) or b""
                    fields[str(name)] = payload.decode("utf-8", "replace")
            return fields
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def bearer_token(self) -> str | None:
        """The token of ``Authorization: Bearer <token>``, else None."""
        auth = self.header("authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    def basic_auth(self) -> tuple[str, str] | None:
        """``(user, password)`` of ``Authorization: Basic ...``, else None."""
        auth = self.header("authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None

    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        try:
            jar.load(self.header("cookie", "") or "")
        except Exception:  # a malformed cookie header is the client's problem, not ours
            return {}
        return {k: m.value for k, m in jar.items()}


@dataclass
class Response:
    """A complete response. ``Content-Length`` is set by the core."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised anywhere in request handling to send ``response`` instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


def json_response(status: int, obj: Any, headers: Mapping[str, str] | None = None,
                  content_type: str = "application/json") -> Response:
    merged = {"Content-Type": content_type, **(headers or {})}
    return Response(status, json.dumps(obj).encode("utf-8"), merged)


def text_response(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    merged = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
    return Response(status, text.encode("utf-8"), merged)


def empty_response(status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, b"", dict(headers or {}))


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> HttpError:
    """Shorthand: ``raise error(404, "not found", {"X-Error-Code": "RepoNotFound"})``."""
    return HttpError(json_response(status, {"error": message}, headers))
