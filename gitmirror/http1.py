"""HTTP/1.1 on one kept connection: a request written in one piece, its response read here.

The fast path of :class:`gitmirror.httpclient.HttpClient` (see its module for why: CPU per
request decides how long a mirror of thousands of small LFS objects takes). A request goes out
with a ``Content-Length`` or chunked body; a response is read with a ``Content-Length``, chunked,
or to the connection's end. Malformed answers raise ``http.client`` exceptions (the client turns
them into :class:`~gitmirror.httpclient.TransportError`); header values with CR, LF or NUL raise
ValueError. Standard library only.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["BLOCKSIZE", "REDIRECT_STATUSES", "Connection", "Http1Response", "host_header", "request_head"]

#: Bytes per socket write of a request body. urllib3 writes 16 KiB at a time by default;
#: 1 MiB pieces cut the per-call overhead of multi-gigabyte uploads.
BLOCKSIZE = 1 << 20

#: Request bodies up to this size go out in the same write as the request's head.
COALESCE = 64 * 1024

#: The read buffer of a connection: a small object's whole response fits in one read.
READ_BUFFER = 64 * 1024

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

USER_AGENT = "gitmirror"


class Connection:
    """One HTTP/1.1 connection: a request written in one piece, its response read here.

    The buffered reader lives as long as the connection; a response's body must be read to its
    end (or the connection closed) before the next request goes out.
    """

    def __init__(self, host: str, port: int, connect_timeout: float, tls: ssl.SSLContext | None) -> None:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket = sock
        self.reader = sock.makefile("rb", buffering=READ_BUFFER)

    def send(self, head: bytes, body: Any) -> None:
        if body is None:
            self.sock.sendall(head)
        elif isinstance(body, (bytes, bytearray, memoryview)):
            if len(body) <= COALESCE:  # one packet, one syscall
                self.sock.sendall(head + bytes(body))
            else:
                self.sock.sendall(head)
                self.sock.sendall(body)
        else:
            self.sock.sendall(head)
            self._send_stream(body)

    def _send_stream(self, body: Any) -> None:
        chunked = isinstance(body, _Chunked)
        for piece in _pieces_of(body.body if chunked else body):
            if not piece:
                continue
            if chunked:
                self.sock.sendall(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
            else:
                self.sock.sendall(piece)
        if chunked:
            self.sock.sendall(b"0\r\n\r\n")

    def response(self, method: str, done: Callable[[bool], None]) -> "Http1Response":
        while True:
            version, status, reason = _status_line(self.reader)
            headers = _read_headers(self.reader)
            if not 100 <= status < 200 or status == 101:
                break  # interim answers (100 Continue, 103 Early Hints) are skipped
        return Http1Response(self, method, version, status, reason, headers, done)

    def dropped(self) -> bool:
        """True when a kept connection cannot be used: closed, or readable while idle (the server
        hung up, or sent something no request asked for)."""
        if self.sock.fileno() < 0:
            return True
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class _Headers:
    """Response headers, looked up case-insensitively; repeated ones joined with ", " (as urllib3 does)."""

    __slots__ = ("_values",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        values: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            low = name.lower()
            if low in values:
                values[low] = (values[low][0], f"{values[low][1]}, {value}")
            else:
                values[low] = (name, value)
        self._values = values

    def get(self, name: str, default: Any = None) -> Any:
        found = self._values.get(name.lower())
        return default if found is None else found[1]

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def items(self) -> list[tuple[str, str]]:
        return list(self._values.values())

    def __repr__(self) -> str:
        return f"_Headers({dict(self.items())!r})"


class Http1Response:
    """A response on a kept connection, read the way callers read urllib3's: ``status``,
    ``reason``, ``headers``, ``data`` (the whole body), ``stream(n)`` (the body in pieces),
    ``get_redirect_location()``, ``drain_conn()``, and ``with``. The connection is kept for the
    next request once the body has been read to its end, and closed when it was not."""

    def __init__(self, conn: Connection, method: str, version: str, status: int, reason: str,
                 headers: _Headers, done: Callable[[bool], None]) -> None:
        self._reader = conn.reader
        self._done = done
        self._finished = False
        self._data: bytes | None = None
        self.status = status
        self.reason = reason
        self.headers = headers
        connection = (headers.get("Connection") or "").lower()
        self._will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        self._chunked = False
        self._left: int | None = None  # body bytes still to read; None: until the connection ends
        if method == "HEAD" or status in (204, 304):
            self._left = 0
        elif "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            self._chunked, self._left = True, 0
        else:
            length = headers.get("Content-Length")
            if length is not None:
                # repeated equal lengths arrive joined ("12, 12"); differing ones are refused
                values = {v.strip() for v in length.split(",")}
                if len(values) != 1 or not (value := values.pop()).isdigit():
                    raise http.client.HTTPException(f"bad Content-Length {length[:40]!r}")
                self._left = int(value)
            else:
                self._will_close = True
        self._eof = self._left == 0 and not self._chunked

    @property
    def data(self) -> bytes:
        if self._data is None:
            try:
                self._data = b"".join(self._pieces(None))
            except BaseException:
                self._finish(keep=False)
                raise
            self._finish(keep=True)
        return self._data

    def stream(self, amt: int) -> Iterator[bytes]:
        try:
            yield from self._pieces(amt)
        except BaseException:
            self._finish(keep=False)
            raise
        self._finish(keep=True)

    def _pieces(self, amt: int | None) -> Iterator[bytes]:
        """The body, in pieces of at most ``amt`` bytes (None: as large as they come)."""
        reader = self._reader
        while not self._eof:
            if self._chunked and self._left == 0:
                self._left = _chunk_size(reader)
                if self._left == 0:
                    _read_headers(reader)  # trailers, ignored
                    self._eof = True
                    return
            if self._left is None:  # until the server closes the connection
                piece = reader.read(amt) if amt else reader.read()
                if not piece:
                    self._eof = True
                    return
                yield piece
                continue
            want = self._left if amt is None else min(amt, self._left)
            piece = reader.read(want)
            if len(piece) < want:
                raise http.client.IncompleteRead(piece, want - len(piece))
            self._left -= want
            if self._chunked and self._left == 0 and reader.readline(3) not in (b"\r\n", b"\n"):
                raise http.client.HTTPException("chunk not followed by CRLF")
            if not self._chunked and self._left == 0:
                self._eof = True
            yield piece

    def get_redirect_location(self) -> str | bool:
        if self.status in REDIRECT_STATUSES:
            return self.headers.get("Location") or False
        return False

    def drain_conn(self) -> None:
        self.data  # noqa: B018 - a redirect's body is small; reading it keeps the connection

    def close(self) -> None:
        # A body read to its last byte (the reader need not ask past it) keeps the connection.
        self._finish(keep=self._eof or self._data is not None)

    def _finish(self, keep: bool) -> None:
        if self._finished:
            return
        self._finished = True
        self._done(keep and not self._will_close)

    def __enter__(self) -> "Http1Response":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Chunked:
    """Marks a request body of unknown length, sent with ``Transfer-Encoding: chunked``."""

    def __init__(self, body: Any) -> None:
        self.body = body


def _pieces_of(body: Any) -> Iterator[bytes]:
    """A streamed request body in pieces: a file-like one read ``BLOCKSIZE`` at a time, else iterated."""
    read = getattr(body, "read", None)
    return iter(lambda: read(BLOCKSIZE), b"") if read is not None else iter(body)


_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def request_head(method: str, target: str, host: str, headers: dict[str, str], body: Any) -> tuple[bytes, Any]:
    """The request line and headers, and the body as it is to be sent.

    Header values come partly from servers (an LFS action's ``header``): a CR or LF in one would
    let a server add requests of its own, so such values are refused, as ``http.client`` does.
    """
    given = {name.lower() for name in headers}
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"] if "host" not in given else [f"{method} {target} HTTP/1.1"]
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")
    if body is not None and "content-length" not in given and "transfer-encoding" not in given:
        if isinstance(body, (bytes, bytearray, memoryview)):
            lines.append(f"Content-Length: {len(body)}")
        elif isinstance(body, str):
            body = body.encode("utf-8")
            lines.append(f"Content-Length: {len(body)}")
        else:
            lines.append("Transfer-Encoding: chunked")
            body = _Chunked(body)
    elif body is None and method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    for name, value in headers.items():
        value = str(value)
        if not _TOKEN.fullmatch(name) or _FORBIDDEN_IN_HEADER.search(value):
            raise ValueError(f"invalid HTTP header {name[:40]!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1"), body


def host_header(scheme: str, host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


MAX_LINE = 65536
MAX_HEADERS = 100


def _status_line(reader: Any) -> tuple[str, int, str]:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("status line")
    version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(line[:80].decode("iso-8859-1"))
    return version, int(code), reason.strip()


def _read_headers(reader: Any) -> _Headers:
    pairs: list[tuple[str, str]] = []
    while True:
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return _Headers(pairs)
        if len(pairs) >= MAX_HEADERS:
            raise http.client.HTTPException(f"more than {MAX_HEADERS} headers")
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))


def _chunk_size(reader: Any) -> int:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise http.client.IncompleteRead(b"")
    text = line.split(b";", 1)[0].strip()
    try:
        return int(text, 16)
    except ValueError:
        raise http.client.HTTPException(f"bad chunk size {text[:20]!r}") from None
