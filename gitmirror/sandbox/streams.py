"""Request and response body streams with counting, bandwidth caps and injected cuts.

Every body byte of git and storage traffic passes through these, so the counters see it,
the bandwidth cap paces it and a ``cut`` fault can drop the connection mid-body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable

from gitmirror.sandbox.faults import Throttle

PIECE = 16 * 1024  # smallest pacing granularity under a bandwidth cap


class ConnectionCut(Exception):
    """An injected fault (or a broken client) ended the connection mid-body."""


class BadRequestBody(Exception):
    """The request body is malformed (bad chunked encoding, short body)."""


@dataclass
class Meter:
    """Where a stream reports its bytes, and the fault state that applies to it."""

    count: Callable[[int], None]
    throttle: Throttle | None = None
    cut_after: int | None = None  # close after this many bytes (None = never)


class BodyReader:
    """Reads a request body: ``Content-Length`` bytes, a de-chunked body, or nothing."""

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool, meter: Meter) -> None:
        self._rfile = rfile
        self._remaining = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and not self._remaining
        self._meter = meter
        self.consumed = 0

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the body."""
        if self._done:
            return b""
        data = self._read_chunked(size) if self._chunked else self._read_plain(size)
        if not data:
            self._done = True
            return b""
        return self._account(data)

    def read_all(self, limit: int = 64 * 1024 * 1024) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            data = self.read()
            if not data:
                return b"".join(parts)
            total += len(data)
            if total > limit:
                raise BadRequestBody("request body too large")
            parts.append(data)

    def drain(self) -> None:
        while self.read():
            pass

    @property
    def finished(self) -> bool:
        return self._done

    def _account(self, data: bytes) -> bytes:
        meter = self._meter
        if meter.cut_after is not None and self.consumed + len(data) >= meter.cut_after:
            keep = max(0, meter.cut_after - self.consumed)
            self.consumed += keep
            meter.count(keep)
            raise ConnectionCut(f"request body cut after {meter.cut_after} bytes")
        self.consumed += len(data)
        meter.count(len(data))
        if meter.throttle is not None:
            meter.throttle.consume(len(data))
        return data

    def _read_plain(self, size: int) -> bytes:
        if self._remaining <= 0:
            return b""
        data = self._rfile.read1(min(size, self._remaining)) if hasattr(self._rfile, "read1") \
            else self._rfile.read(min(size, self._remaining))
        if not data:
            raise ConnectionCut("client closed the connection mid-body")
        self._remaining -= len(data)
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            if not line:
                raise ConnectionCut("client closed the connection mid-body")
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise BadRequestBody(f"bad chunk size line {line!r}") from exc
            if self._chunk_left == 0:
                # Trailer section: header lines up to an empty line.
                while self._rfile.readline(1024).strip():
                    pass
                return b""
        data = self._rfile.read(min(size, self._chunk_left))
        if not data:
            raise ConnectionCut("client closed the connection mid-chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(16)  # the CRLF after each chunk
        return data


class BodyWriter:
    """Writes a response body, plain or chunked, counting, pacing and cutting as configured."""

    def __init__(self, wfile: BinaryIO, meter: Meter, chunked: bool = False) -> None:
        self._wfile = wfile
        self._meter = meter
        self._chunked = chunked
        self.sent = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        throttle = self._meter.throttle
        step = throttle.piece(PIECE) if throttle is not None else len(view) or 1
        for start in range(0, len(view), step):
            self._write_piece(view[start:start + step])

    def _write_piece(self, piece: memoryview) -> None:
        meter = self._meter
        cut = meter.cut_after is not None and self.sent + len(piece) >= meter.cut_after
        if cut:
            piece = piece[: max(0, meter.cut_after - self.sent)]  # type: ignore[operator]
        if len(piece):
            # Count before sending: a client that has the bytes may read the counters at once.
            self.sent += len(piece)
            meter.count(len(piece))
            if self._chunked:
                self._wfile.write(b"%x\r\n" % len(piece))
            self._wfile.write(piece)
            if self._chunked:
                self._wfile.write(b"\r\n")
        if cut:
            self._wfile.flush()
            raise ConnectionCut(f"response body cut after {meter.cut_after} bytes")
        if meter.throttle is not None:
            self._wfile.flush()
            meter.throttle.consume(len(piece))

    def finish(self) -> None:
        if self._chunked:
            self._wfile.write(b"0\r\n\r\n")
        self._wfile.flush()
