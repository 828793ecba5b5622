"""gitmirror.httpclient: the LFS transfer's HTTP on urllib3 (redirects, credentials, proxies,
connection reuse, error messages), against small loopback servers."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gitmirror.errors import CertificateError, TransientError, is_transient
from gitmirror.httpclient import HttpClient, TransportError, _bypassed, _proxy_for

pytestmark = pytest.mark.timeout(60)


@dataclass
class Server:
    url: str
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)  # client ports: one per connection
    redirect_to: str | None = None


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    made, stops = [], []
    for _ in range(2):
        state = Server("")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            record = state

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.record.seen.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.record.ports.add(self.client_address[1])
                if self.record.redirect_to and self.path.startswith("/moved"):
                    self.send_response(302)
                    self.send_header("Location", self.record.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"payload of " + self.path.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                length = int(self.headers["Content-Length"])
                self.rfile.read(length)
                self.record.seen.append(("PUT", self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.record.ports.add(self.client_address[1])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        made.append(state)
        stops.append(server)
    yield made[0], made[1]
    for server in stops:
        server.shutdown()
        server.server_close()


def test_connections_are_kept_alive_and_bodies_go_out_with_a_length(servers):
    a, _ = servers
    with HttpClient(env={}) as http:
        for i in range(5):
            with http.request("GET", f"{a.url}/obj{i}", stream=True) as resp:
                assert b"".join(resp.stream(1024)) == f"payload of /obj{i}".encode()
            resp = http.request("PUT", f"{a.url}/obj{i}", body=b"x" * 10, headers={"Content-Length": "10"})
            assert resp.status == 200
    assert len(a.ports) == 1  # ten requests, one connection
    assert all(h.get("content-length") == "10" for m, _, h in a.seen if m == "PUT")


def test_redirect_to_another_host_drops_credentials(servers):
    a, b = servers
    a.redirect_to = f"{b.url}/cdn/object?sig=abc"
    with HttpClient(env={}) as http:
        resp = http.request("GET", f"{a.url}/moved", headers={"Authorization": "Basic c2VjcmV0", "X-Keep": "1"},
                            follow_redirects=True)
        assert resp.status == 200 and resp.data == b"payload of /cdn/object?sig=abc"
    (first,) = a.seen
    (second,) = b.seen
    assert first[2]["authorization"] == "Basic c2VjcmV0"
    assert "authorization" not in second[2] and second[2]["x-keep"] == "1"


def test_redirect_on_the_same_host_keeps_credentials(servers):
    a, _ = servers
    a.redirect_to = "/elsewhere"
    with HttpClient(env={}) as http:
        resp = http.request("GET", f"{a.url}/moved", headers={"Authorization": "Basic c2VjcmV0"}, follow_redirects=True)
        assert resp.data == b"payload of /elsewhere"
    assert [h.get("authorization") for _, _, h in a.seen] == ["Basic c2VjcmV0", "Basic c2VjcmV0"]


def test_redirects_are_not_followed_unless_asked(servers):
    a, b = servers
    a.redirect_to = f"{b.url}/x"
    with HttpClient(env={}) as http:
        resp = http.request("GET", f"{a.url}/moved")
    assert resp.status == 302 and not b.seen


def test_connection_failure_is_transient_and_hides_the_query():
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with HttpClient(env={}, timeout=(2, 2)) as http:
        with pytest.raises(TransportError) as caught:
            http.request("GET", f"http://127.0.0.1:{port}/object?X-Signature=topsecret")
    assert isinstance(caught.value, TransientError)
    assert "topsecret" not in str(caught.value)


def test_proxies_come_from_the_environment():
    env = {"HTTPS_PROXY": "http://proxy.invalid:3128", "http_proxy": "http://plain.invalid:8080",
           "NO_PROXY": "localhost,.internal.example,10.0.0.0/8"}
    assert _proxy_for("https", "hub.example", env) == "http://proxy.invalid:3128"
    assert _proxy_for("http", "hub.example", env) == "http://plain.invalid:8080"
    assert _proxy_for("https", "localhost", env) is None
    assert _proxy_for("https", "lfs.internal.example", env) is None
    assert _proxy_for("https", "10.1.2.3", env) is None
    assert _proxy_for("https", "hub.example", {}) is None
    assert _bypassed("anything.example", "*")


def _self_signed(tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b"over tls"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_tls_is_checked_against_the_configured_bundle(tls_server):
    url, cert = tls_server
    with HttpClient(env={"SSL_CERT_FILE": str(cert)}) as http:
        assert http.request("GET", f"{url}/x").data == b"over tls"
    with HttpClient(env={}, timeout=(5, 5)) as http:  # certifi's bundle does not know this certificate
        # not a TransportError: a certificate this machine does not trust is exit 9, never retried
        with pytest.raises(CertificateError, match="(?i)certificate") as caught:
            http.request("GET", f"{url}/x")
        assert caught.value.exit_code == 9 and not is_transient(caught.value)


def test_requests_go_through_the_proxy_from_the_environment(servers):
    target, proxy = servers  # the second server plays the proxy: it answers whatever it is asked
    env = {"HTTP_PROXY": proxy.url}
    with HttpClient(env=env) as http:
        assert http.request("GET", f"{target.url}/via-proxy").status == 200
    assert not target.seen
    ((method, line, headers),) = proxy.seen
    assert method == "GET" and line == f"{target.url}/via-proxy"  # an absolute URI: a proxy request
    with HttpClient(env={**env, "NO_PROXY": "127.0.0.1"}) as http:
        assert http.request("GET", f"{target.url}/direct").status == 200
    assert [p for _, p, _ in target.seen] == ["/direct"]


# -- HTTP/1.1 framing, against a server that answers with scripted bytes ----------------------------


class ScriptedServer:
    """Answers the n-th request with the n-th scripted response (raw bytes), then closes the
    connection if the script says so; keeps every request as received, body included."""

    def __init__(self, answers: list[tuple[bytes, bool]]) -> None:
        import socket

        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.hung_up = threading.Event()  # set once the server has closed a connection on its own
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                reader = conn.makefile("rb")
                while self.answers:
                    request = self._read_request(reader)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer, close = self.answers.pop(0)
                    conn.sendall(answer)
                    if close:
                        conn.shutdown(socket.SHUT_RDWR)  # the reader's reference would keep it open
                        self.hung_up.set()
                        break

    @staticmethod
    def _read_request(reader) -> bytes | None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline()
            if not line:
                return None
            head += line
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            body = b""
            while True:
                line = reader.readline()
                size = int(line.strip(), 16)
                body += line + reader.read(size + 2)
                if size == 0:
                    return head + body
        if b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            return head + reader.read(length)
        return head

    def close(self) -> None:
        stop_listening(self.sock)


def stop_listening(sock) -> None:
    """Close a listening socket for good. close() alone leaves the port listening while accept()
    waits in another thread (a later test's server could then share the port); shutdown() ends
    that wait."""
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def scripted():
    made: list[ScriptedServer] = []

    def make(*answers: tuple[bytes, bool]) -> ScriptedServer:
        made.append(ScriptedServer(list(answers)))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_chunked_responses_are_read_and_the_connection_kept(scripted):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Id: a\r\nx-id: b\r\n\r\n"
               b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: t\r\n\r\n", False)
    server = scripted(chunked, chunked, (b"HTTP/1.1 204 No Content\r\n\r\n", False),
                      (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False))
    with HttpClient(env={}) as http:
        resp = http.request("GET", f"{server.url}/a")
        assert resp.data == b"hello, world"
        assert resp.headers.get("x-id") == "a, b" and resp.headers["X-ID"] == "a, b"
        with http.request("GET", f"{server.url}/b", stream=True) as resp:
            assert list(resp.stream(4)) == [b"hell", b"o", b", wo", b"rld"]
        assert http.request("DELETE", f"{server.url}/c").status == 204  # no body, no length
        assert http.request("GET", f"{server.url}/d").data == b"ok"
    assert server.connections == 1


def test_interim_answers_are_skipped_and_a_body_without_length_ends_with_the_connection(scripted):
    server = scripted((b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", True),
                      (b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold", False),
                      (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew", False))
    with HttpClient(env={}) as http:
        resp = http.request("GET", f"{server.url}/a")
        assert (resp.status, resp.data) == (200, b"until the end")
        assert http.request("GET", f"{server.url}/b").data == b"old"  # HTTP/1.0 without keep-alive: closed after
        assert http.request("GET", f"{server.url}/c").data == b"new"
    assert server.connections == 3


def test_a_cut_body_is_an_error_not_a_short_object(scripted):
    server = scripted((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True))
    with HttpClient(env={}, timeout=(5, 5)) as http:
        with pytest.raises(TransportError, match="IncompleteRead"):
            http.request("GET", f"{server.url}/a")


def test_bad_answers_are_transport_errors(scripted):
    server = scripted((b"SSH-2.0-OpenSSH\r\n\r\n", True), (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", True))
    with HttpClient(env={}, timeout=(5, 5)) as http:
        with pytest.raises(TransportError, match="BadStatusLine"):
            http.request("GET", f"{server.url}/a")
        with pytest.raises(TransportError, match="Content-Length"):
            http.request("GET", f"{server.url}/b")


def test_request_bodies_go_out_framed(scripted):
    ok = (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False)
    server = scripted(ok, ok, ok, ok)
    big = bytes(range(256)) * 1024  # larger than one coalesced write

    class Stream:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, n: int) -> bytes:
            piece, self.data = self.data[:n], self.data[n:]
            return piece

    with HttpClient(env={}) as http:
        http.request("PUT", f"{server.url}/small", body=b"tiny")
        http.request("PUT", f"{server.url}/big", body=big, headers={"Content-Length": str(len(big))})
        http.request("PUT", f"{server.url}/stream", body=Stream(b"streamed"), headers={"Content-Length": "8"})
        http.request("PUT", f"{server.url}/unknown", body=Stream(b"no length"))
    small, large, streamed, unknown = server.requests
    assert small.startswith(b"PUT /small HTTP/1.1\r\n") and b"\r\nHost: 127.0.0.1:" in small
    assert b"\r\nContent-Length: 4\r\n" in small and small.endswith(b"\r\n\r\ntiny")
    assert b"\r\nAccept-Encoding: identity\r\n" in small
    assert large.endswith(b"\r\n\r\n" + big)
    assert streamed.endswith(b"\r\nContent-Length: 8\r\n\r\nstreamed")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in unknown and unknown.endswith(b"9\r\nno length\r\n0\r\n\r\n")
    assert server.connections == 1


def test_a_header_value_cannot_smuggle_a_request(scripted):
    server = scripted((b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False))
    with HttpClient(env={}) as http:
        # An LFS action's header comes from the server: a line break in it must not reach the wire.
        with pytest.raises(ValueError, match="invalid HTTP header"):
            http.request("GET", f"{server.url}/a", headers={"X-Token": "t\r\nGET /evil HTTP/1.1"})
        with pytest.raises(ValueError, match="invalid HTTP header"):
            http.request("GET", f"{server.url}/a", headers={"Bad Name": "v"})
    assert server.requests == []


def test_only_a_ref_advertisement_to_an_anonymous_request_makes_a_source_public(scripted):
    from gitmirror.remote import anyone_can_clone

    advert = b"001e# service=git-upload-pack\n0000"
    server = scripted(
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n"
         b"Content-Length: %d\r\n\r\n" % len(advert) + advert, False),
        (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\nlog in", False),  # a login page
        (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", False),
    )
    answers = [anyone_can_clone(f"{server.url}/org/repo{i}") for i in range(4)]
    assert answers == [True, False, False, False]
    assert all(b"authorization" not in request.lower() for request in server.requests)
    assert server.requests[0].startswith(b"GET /org/repo0/info/refs?service=git-upload-pack HTTP/1.1\r\n")
    assert anyone_can_clone("/a/local/path") is False


def test_a_kept_connection_the_server_closed_is_replaced(scripted):
    # Moved from a test that shut the kept socket down by hand: the server now hangs up on the idle
    # kept connection itself, without saying so first (as servers do after their keep-alive timeout).
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted((ok, True), (ok, False))
    with HttpClient(env={}) as http:
        assert http.request("GET", f"{server.url}/one").status == 200
        assert server.hung_up.wait(5)
        assert http.request("PUT", f"{server.url}/two", body=b"abc").status == 200
    assert [r.split(b" ", 1)[0] for r in server.requests] == [b"GET", b"PUT"]
    assert server.connections == 2
