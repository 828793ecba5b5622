"""gitmirror.httpclient on urllib3: the bounded pool per origin, streamed request bodies, streamed
responses given back (or not) to the pool, failures while a body is read. Loopback servers only."""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gitmirror.errors import TransientError
from gitmirror.httpclient import BLOCKSIZE, HttpClient, TransportError

from test_httpclient import stop_listening

pytestmark = pytest.mark.timeout(120)


class CountingServer:
    """HTTP/1.1 on loopback that answers each request after ``delay`` seconds, reads (and drops)
    request bodies in pieces, and counts connections: open now, at most at once, in all.

    GET /big/<n> answers n bytes (``Content-Length``); /moved redirects (302) to ``redirect_to``;
    anything else answers ``ok``.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.redirect_to = ""
        self.lock = threading.Lock()
        self.open = self.peak = self.total = 0
        self.received: list[tuple[str, dict[str, str], int]] = []  # method, headers, body bytes
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.total += 1
                self.peak = max(self.peak, self.open)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                while self._one(conn, reader):
                    pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.open -= 1

    def _one(self, conn: socket.socket, reader) -> bool:
        line = reader.readline()
        if not line:
            return False
        method, path = line.decode().split(" ")[:2]
        headers = {}
        while (header := reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        size = 0
        if "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                piece = reader.read(min(left, 1 << 20))
                if not piece:
                    return False
                left -= len(piece)
                size += len(piece)
        elif headers.get("transfer-encoding") == "chunked":
            while (length := int(reader.readline().split(b";")[0], 16)):
                size += len(reader.read(length + 2)) - 2
            reader.readline()
        with self.lock:
            self.received.append((method, headers, size))
        time.sleep(self.delay)
        if path.startswith("/moved"):
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 5\r\n\r\nmoved"
                         % self.redirect_to.encode())
        elif path.startswith("/big/"):
            length = int(path.rsplit("/", 1)[1])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
            block = b"x" * (1 << 20)
            while length:
                conn.sendall(block[: min(length, len(block))])
                length -= min(length, len(block))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    def close(self) -> None:
        stop_listening(self.sock)
        self.acceptor.join(5)


@pytest.fixture
def counting() -> Iterator[type[CountingServer]]:
    made: list[CountingServer] = []

    def make(delay: float = 0.0) -> CountingServer:
        made.append(CountingServer(delay))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _in_time(work, seconds: float = 20.0):
    """``work()``'s answer, or a failed test when it has not returned within ``seconds`` (a pool
    that lost its places blocks for good)."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_an_origin_gets_a_bounded_number_of_connections_however_many_threads_ask(counting):
    server = counting(delay=0.05)
    with HttpClient(env={}, pool_size=2) as http:
        def fetch(i: int) -> int:
            return http.request("GET", f"{server.url}/obj{i}").status

        threads = [threading.Thread(target=lambda i=i: results.append(fetch(i))) for i in range(16)]
        results: list[int] = []
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == [200] * 16
    assert server.peak <= 4  # 2 * pool_size, not one a thread
    assert server.total <= 4  # and kept: no connection opened, dropped and opened again


def test_a_thread_holding_a_streamed_answer_can_still_send_to_the_same_origin(counting):
    # An LFS download feeding an upload to the same host: two connections of one thread.
    server = counting()
    with HttpClient(env={}, pool_size=1) as http:
        def both() -> tuple[int, bytes]:
            with http.request("GET", f"{server.url}/big/{3 << 20}", stream=True) as down:
                first = next(down.stream(1 << 20))
                up = http.request("PUT", f"{server.url}/up", body=b"abc")
                rest = b"".join(down.stream(1 << 20))
            return up.status, first + rest

        status, data = _in_time(both)
    assert status == 200 and len(data) == 3 << 20


def test_a_streamed_answer_closed_half_read_gives_its_place_back(counting):
    server = counting()
    with HttpClient(env={}, pool_size=1) as http:
        def abandon_three_then_ask() -> bytes:
            for _ in range(3):  # more than the pool's two places
                with http.request("GET", f"{server.url}/big/{4 << 20}", stream=True) as resp:
                    next(resp.stream(1024))
            return http.request("GET", f"{server.url}/small").data

        assert _in_time(abandon_three_then_ask) == b"ok"
    assert server.total >= 4  # each half-read answer's connection was closed, not reused


def test_a_streamed_answer_read_to_the_end_keeps_its_connection(counting):
    server = counting()
    with HttpClient(env={}, pool_size=1) as http:
        for _ in range(3):
            with http.request("GET", f"{server.url}/big/{2 << 20}", stream=True) as resp:
                assert sum(len(piece) for piece in resp.stream(1 << 16)) == 2 << 20
        assert http.request("GET", f"{server.url}/small").data == b"ok"
    assert server.total == 1


class Generated:
    """A file-like upload body of ``size`` bytes made on the fly (as VerifyingStream is: ``read(n)``
    and ``__len__``), recording the sizes asked of it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = size
        self.asked: list[int] = []
        self.block = b"y" * BLOCKSIZE

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        self.asked.append(n)
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return self.block[:n] if n <= len(self.block) else b"y" * n


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def test_a_large_upload_goes_out_streamed_with_its_length(counting):
    server = counting()
    size = 512 << 20
    body = Generated(size)
    before = _peak_rss()
    with HttpClient(env={}) as http:
        resp = http.request("PUT", f"{server.url}/object", body=body)  # no Content-Length given
    grown = _peak_rss() - before
    assert resp.status == 200
    ((method, headers, received),) = server.received
    assert method == "PUT" and received == size
    assert headers["content-length"] == str(size) and "transfer-encoding" not in headers
    assert body.asked and max(body.asked) <= BLOCKSIZE and min(body.asked) > 0  # never read whole
    assert grown < 128 << 20, f"peak RSS grew by {grown >> 20} MiB for a {size >> 20} MiB upload"


def test_a_body_cut_while_streamed_is_a_transient_transport_error():
    sock = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 1000)

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/object?X-Amz-Signature=topsecret"
    try:
        with HttpClient(env={}, timeout=(5, 5)) as http:
            with http.request("GET", url, stream=True) as resp:
                with pytest.raises(TransportError) as caught:
                    b"".join(resp.stream(4096))
    finally:
        sock.close()
    assert isinstance(caught.value, TransientError)
    assert "topsecret" not in str(caught.value)


def test_a_refused_header_value_is_not_echoed(counting):
    server = counting()
    with HttpClient(env={}) as http:
        with pytest.raises(ValueError) as caught:
            http.request("GET", f"{server.url}/a", headers={"Authorization": "Bearer s3cret\r\nX: y"})
    assert "s3cret" not in str(caught.value) and "Authorization" in str(caught.value)
    assert server.received == []


def test_a_streamed_download_follows_a_redirect_without_credentials_and_keeps_both_connections(counting):
    hub, cdn = counting(), counting()
    hub.redirect_to = f"{cdn.url}/big/{3 << 20}"
    with HttpClient(env={}, pool_size=1) as http:
        def download_three_times() -> list[int]:
            sizes = []
            for _ in range(3):
                with http.request("GET", f"{hub.url}/moved", headers={"Authorization": "Basic c2VjcmV0"},
                                  stream=True, follow_redirects=True) as resp:
                    sizes.append(sum(len(piece) for piece in resp.stream(1 << 20)))
            return sizes

        assert _in_time(download_three_times) == [3 << 20] * 3
    assert [h.get("authorization") for _, h, _ in hub.received] == ["Basic c2VjcmV0"] * 3
    assert [h.get("authorization") for _, h, _ in cdn.received] == [None] * 3
    assert (hub.total, cdn.total) == (1, 1)  # the redirect's body drained, its connection reused


def test_a_redirect_loop_is_a_transport_error(counting):
    server = counting()
    server.redirect_to = f"{server.url}/moved"
    with HttpClient(env={}) as http:
        with pytest.raises(TransportError):
            http.request("GET", f"{server.url}/moved", follow_redirects=True)
    assert 2 <= len(server.received) <= 7  # the first hop, then at most MAX_REDIRECTS more
