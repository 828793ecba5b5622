"""The sandbox hub's HTTP server is the stdlib's (``http.server``) with its own request parsing:
what clients rely on still holds."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def _connect(endpoint: str) -> socket.socket:
    parts = urlsplit(endpoint)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.settimeout(5)
    return sock


def test_expect_100_continue_is_answered_before_the_body(sandbox):
    hub = sandbox.add_hub("huggingface")
    body = b'{"operation": "download", "objects": []}'
    with _connect(hub.endpoint) as sock:
        sock.sendall(b"POST /org/none.git/info/lfs/objects/batch HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/vnd.git-lfs+json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        interim = sock.recv(1024)  # times out (an error) if the server waits for the body first
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 100"), answer


def test_a_header_line_too_long_is_refused(sandbox):
    hub = sandbox.add_hub("huggingface")
    with _connect(hub.endpoint) as sock:
        sock.sendall(b"GET /api/models/org/x HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = sock.recv(1024)
        assert answer.split(b" ", 2)[1] == b"431", answer


def test_keep_alive_serves_two_requests_on_one_connection(sandbox):
    hub = sandbox.add_hub("huggingface")
    with _connect(hub.endpoint) as sock:
        for _ in range(2):
            sock.sendall(b"GET /api/models/org/missing HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            status = head.split(b" ", 2)[1]
            assert status in (b"401", b"404"), head
            length = int([line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")][0])
            rest = head.split(b"\r\n\r\n", 1)[1]
            while len(rest) < length:
                rest += sock.recv(4096)
