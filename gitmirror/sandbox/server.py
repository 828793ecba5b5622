"""The HTTP servers of a hub: the hub port (git, LFS batch, REST, control) and the storage port.

A stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive. Git smart HTTP goes
through git's own ``git http-backend`` as a CGI, streamed both ways (request bodies are
de-chunked on the fly; gzip bodies are left for http-backend to inflate). Every request is
classified into a route class, counted, and checked against the hub's fault rules first.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from gitmirror.sandbox import lfs
from gitmirror.sandbox.faults import Triggered
from gitmirror.sandbox.http import HttpError, Request, Response, json_response
from gitmirror.sandbox.streams import BadRequestBody, BodyReader, BodyWriter, ConnectionCut, Meter

if TYPE_CHECKING:
    from pathlib import Path

    from gitmirror.sandbox.counters import Counters
    from gitmirror.sandbox.faults import Faults
    from gitmirror.sandbox.state import Principal, RepoKey, RepoRecord

GIT_ROUTES = {"/info/refs": "git-info-refs", "/git-upload-pack": "git-upload-pack",
              "/git-receive-pack": "git-receive-pack"}
LFS_ROUTES = {"/info/lfs/objects/batch": "lfs-batch", "/info/lfs/objects/verify": "lfs-verify",
              "/info/lfs/locks/verify": "lfs-locks"}
STORAGE_ROUTES = {"download": "lfs-download", "upload": "lfs-upload", "part": "lfs-multipart-part",
                  "complete": "lfs-multipart-complete"}
# Bulk traffic that a bandwidth cap applies to.
TRAFFIC = {"git-info-refs", "git-upload-pack", "git-receive-pack", "lfs-download", "lfs-upload",
           "lfs-multipart-part"}
DRAIN_LIMIT = 1024 * 1024  # unread request bodies up to this size are drained to keep the connection


def classify(role: str, path: str) -> str:
    """The route class of a request path, for counters and fault rules."""
    if role == "storage":
        op = path.split("/", 2)[1] if path.count("/") >= 2 else ""
        return STORAGE_ROUTES.get(op, "other")
    for tail, route in GIT_ROUTES.items():
        if path.endswith(tail):
            return route
    for tail, route in LFS_ROUTES.items():
        if path.endswith(tail):
            return route
    if "/info/lfs/objects/upload/" in path:  # upload hrefs on the hub's own port (lfs.hub_upload)
        return "lfs-upload"
    if path.startswith(("/api/", "/openapi/")):
        return "api"
    return "other"


class ServedHubView(lfs.LfsHubView, Protocol):
    """What the servers use of their hub, beyond the LFS code's view (the hub is
    :class:`gitmirror.sandbox.hub.Hub`, the one module that imports this one)."""

    name: str
    counters: Counters
    faults: Faults
    repos_root: Path  # GIT_PROJECT_ROOT of git http-backend
    env: dict[str, str]  # the environment server-side git runs in
    last_git_error: str  # stderr of the last failed git http-backend, for debugging
    options: dict[str, Any]  # "rtt": the link's round-trip time, seconds (read on every request)

    def describe(self) -> dict[str, Any]: ...


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, hub: ServedHubView, role: str, host: str, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, 0), SandboxHandler)
        self.hub = hub
        self.role = role  # "hub" | "storage"
        self.tls = tls  # a server-side context: every connection speaks HTTPS
        self.url = f"{'https' if tls else 'http'}://{host}:{self.server_address[1]}"
        self._thread: threading.Thread | None = None
        self.live: set[subprocess.Popen[bytes]] = set()  # running CGI processes, killed on stop

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        # The handler sends headers and body in separate writes; with Nagle's algorithm on, each
        # small response then waits for the client's delayed ACK (~40 ms on Linux), which made
        # every small LFS object cost ~40 ms per request here. Real servers do not stall so.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            # The handshake happens on the connection's own thread (SandboxHandler.setup), so that
            # a slow or refusing client never holds up the accept loop.
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def rtt(self) -> float:
        """The hub's emulated round-trip time in seconds (option ``rtt``, 0 = loopback as is)."""
        return float(self.hub.options.get("rtt") or 0)

    def connect_cost(self) -> float:
        """Seconds a new connection waits before its first byte: one round trip for TCP's
        handshake, one more for TLS's (TLS 1.3: one round trip; TLS 1.2 takes two, not modelled)."""
        return self.rtt() * (2 if self.tls is not None else 1)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (killed mirror, cut fault) is normal here, not an error."""
        # ssl.SSLError: a client that does not trust the hub's certificate aborts the handshake.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.hub.name}-{self.role}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        for proc in list(self.live):  # requests still in flight must not outlive the sandbox
            _kill_group(proc)
        if self._thread is not None:
            self._thread.join(timeout=5)


class Exchange:
    """One request in flight: its body reader, fault state and response helpers."""

    def __init__(self, handler: "SandboxHandler", route: str, fired: Triggered, metered: bool = True) -> None:
        hub = handler.server.hub
        self.handler = handler
        self.hub = hub
        self.route = route
        self.fired = fired
        self.headers_sent = False
        headers = handler.headers
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length_value = headers.get("Content-Length")
        length = int(length_value) if length_value and length_value.strip().isdigit() else None
        self.length = None if chunked else length
        traffic = metered and route in TRAFFIC
        self.reader = BodyReader(handler.rfile, self.length, chunked, Meter(
            count=(lambda n: hub.counters.add_in(route, n)) if metered else (lambda n: None),
            throttle=hub.faults.up if traffic else None,
            cut_after=fired.cut_request.after_bytes if fired.cut_request else None,
        ))
        self._out_meter = Meter(
            count=(lambda n: hub.counters.add_out(route, n)) if metered else (lambda n: None),
            throttle=hub.faults.down if traffic else None,
            cut_after=fired.cut_response.after_bytes if fired.cut_response else None,
        )
        self.metered = metered

    def request(self, body: bytes = b"") -> Request:
        handler = self.handler
        path, _, query = handler.path.partition("?")
        return Request(method=handler.command, path=unquote(path), query_string=query,
                       headers=dict(handler.headers.items()), body=body, client=handler.client_address[0])

    def start(self, status: int, headers: dict[str, str], chunked: bool = False,
              length: int | None = None, settle: bool = True) -> BodyWriter:
        """Send the status line and headers; returns the body writer.

        ``settle=False`` when another thread still reads the request body (the CGI feeder);
        the caller then closes the connection itself if the body was not read to the end.
        """
        handler = self.handler
        keep = self._settle_request_body() if settle else True
        handler.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                handler.send_header(name, value)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(length or 0))
        if not keep:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        self.headers_sent = True
        if self.metered:
            self.hub.counters.status(self.route, status)
        return BodyWriter(handler.wfile, self._out_meter, chunked=chunked)

    def send(self, response: Response) -> None:
        body = b"" if self.handler.command == "HEAD" else response.body
        writer = self.start(response.status, response.headers, length=len(response.body))
        writer.write(body)
        writer.finish()

    def _settle_request_body(self) -> bool:
        """Read what is left of the request body if small; else the connection must close."""
        if self.reader.finished:
            return True
        if self.length is not None and self.length - self.reader.consumed <= DRAIN_LIMIT:
            self.reader.drain()
            return True
        return False


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle keep-alive connection (or a silent client) may hold a thread
    # Responses are buffered and go out when complete (or the buffer is full, or a body is paced
    # or cut): unbuffered, the status line and headers took one write and the body another, two
    # system calls per small response where one does.
    wbufsize = 64 * 1024
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the counters are the record; stderr noise would drown test output

    def setup(self) -> None:
        """A new connection: its link cost (option ``rtt``), then the TLS handshake if any.

        Counted as features ``connection-<role>`` and, for a handshake a client refused (it does
        not trust the certificate), ``tls-refused-<role>`` (role: hub | storage).
        """
        super().setup()
        server = self.server
        server.hub.counters.feature(f"connection-{server.role}")
        cost = server.connect_cost()
        if cost:
            time.sleep(cost)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except OSError:  # an alert (ssl.SSLError), or a client that just hangs up
                server.hub.counters.feature(f"tls-refused-{server.role}")
                raise

    def handle_expect_100(self) -> bool:
        answered = super().handle_expect_100()
        self.wfile.flush()  # buffered (wbufsize): the client waits for "100 Continue" before its body
        return answered

    _date_cache: tuple[int, str] = (0, "")

    def date_time_string(self, timestamp: float | None = None) -> str:
        # Formatting the Date header (email.utils) showed up in profiles; it changes once a second.
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = SandboxHandler._date_cache
        if second != now:
            text = super().date_time_string(now)
            SandboxHandler._date_cache = (now, text)
        return text

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # -- entry ---------------------------------------------------------------------------
    def _handle(self) -> None:
        hub, role = self.server.hub, self.server.role
        raw_path, _, query = self.path.partition("?")
        path = unquote(raw_path)
        if role == "hub" and path.startswith("/_sandbox/"):
            self._guarded(Exchange(self, "control", Triggered(), metered=False),
                          lambda ex: self._control(ex, path))
            return
        rtt = self.server.rtt()
        if rtt:  # the request's way there and its answer's way back (the control endpoint is exempt)
            time.sleep(rtt)
        route = classify(role, path)
        hub.counters.request(route, self.command, path)
        fired = hub.faults.trigger(self.command, self.path, route, role)
        exchange = Exchange(self, route, fired)
        self._guarded(exchange, lambda ex: self._faulted(ex, role, path, query))

    def _guarded(self, exchange: Exchange, work: Any) -> None:
        try:
            work(exchange)
        except HttpError as exc:
            self._send_error(exchange, self._decorate(exchange.route, exc.response))
        except ConnectionCut:
            self._drop()
        except BadRequestBody as exc:
            self._send_error(exchange, json_response(400, {"error": str(exc)}))
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a sandbox bug: say so loudly, but keep serving
            traceback.print_exc(file=sys.stderr)
            self._send_error(exchange, json_response(500, {"error": "sandbox internal error"}))
            self.close_connection = True

    def _send_error(self, exchange: Exchange, response: Response) -> None:
        if exchange.headers_sent:
            self._drop()
            return
        try:
            exchange.send(response)
        except (ConnectionCut, BrokenPipeError, ConnectionResetError):
            self._drop()

    def _drop(self) -> None:
        """Close the connection abruptly, as a network fault would."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _decorate(route: str, response: Response) -> Response:
        """A 401 on git/LFS routes needs the challenge headers git and git-lfs expect."""
        if response.status == 401 and (route.startswith("git-") or route.startswith("lfs-")):
            names = {k.lower() for k in response.headers}
            if "www-authenticate" not in names:
                response.headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
            if route.startswith("lfs-") and "lfs-authenticate" not in names:
                response.headers["LFS-Authenticate"] = 'Basic realm="sandbox"'
        return response

    def _faulted(self, ex: Exchange, role: str, path: str, query: str) -> None:
        fired = ex.fired
        if fired.stall:
            time.sleep(fired.stall.seconds)
        if (fired.cut_request and fired.cut_request.after_bytes == 0) or \
                (fired.cut_response and fired.cut_response.after_bytes == 0):
            raise ConnectionCut("connection dropped before any body byte")
        if fired.rate_limit and fired.rate_limit.limit:
            status, headers, body = fired.rate_limit.limit.answer()
            raise HttpError(Response(status, body, headers))
        if fired.fail:
            rule = fired.fail
            headers = {"Retry-After": str(int(rule.retry_after) if float(rule.retry_after).is_integer()
                                          else rule.retry_after)} if rule.retry_after is not None else {}
            headers.update(rule.headers)
            if rule.body is not None:
                raise HttpError(Response(rule.status, rule.body.encode(), {**headers, "Content-Type": rule.content_type}))
            raise HttpError(json_response(rule.status, {"error": "injected fault",
                                                        "message": f"injected fault {rule.status}"}, headers))
        if fired.redirect:
            raise HttpError(Response(fired.redirect.status, b"", {"Location": self._redirect_target(fired.redirect)}))
        if role == "storage":
            self._storage(ex, path)
        else:
            self._hub(ex, path, query)

    def _redirect_target(self, rule: Any) -> str:
        """The same URL on the same port, marked so the rule's regex can tell it apart."""
        hub = self.server.hub
        base = hub.storage_endpoint if self.server.role == "storage" else hub.endpoint
        separator = "&" if "?" in self.path else "?"
        return f"{base}{self.path}{separator}_redirected={rule.fired}"

    # -- hub port ------------------------------------------------------------------------
    def _hub(self, ex: Exchange, path: str, query: str) -> None:
        hub = self.server.hub
        kind = hub.kind
        if ex.route.startswith("git-"):
            parsed = kind.parse_repo_path(path)
            if parsed is None:
                raise HttpError(json_response(404, {"error": "Not Found"}))
            key, tail = parsed
            request = ex.request()
            principal = kind.authenticate(hub, request)
            repo = hub.state.get_repo(key)
            service = request.query_value("service") if tail == "/info/refs" else tail.lstrip("/")
            if service == "git-receive-pack":
                repo = kind.can_write(hub, principal, key, repo)
            else:
                repo = kind.can_read(hub, principal, key, repo)
            self._git_backend(ex, key, repo, tail, query, principal)
            return
        if ex.route == "lfs-upload":  # streamed, not read whole
            parsed = kind.parse_repo_path(path)
            if parsed is None:
                raise HttpError(json_response(404, {"error": "Not Found"}))
            ex.send(lfs.hub_upload(hub, ex.request(), parsed[0], parsed[1], ex.reader))
            return
        request = ex.request(ex.reader.read_all())
        response = kind.handle_api(hub, request)
        if response is None:
            response = self._lfs_api(ex, request)
        ex.send(response)

    def _lfs_api(self, ex: Exchange, request: Request) -> Response:
        hub = self.server.hub
        parsed = hub.kind.parse_repo_path(request.path)
        if parsed is None or request.method != "POST":
            raise HttpError(json_response(404, {"error": "Not Found"}))
        key, tail = parsed
        if tail == "/info/lfs/objects/batch":
            principal = hub.kind.authenticate(hub, request)
            return lfs.handle_batch(hub, key, request, principal)
        if tail == "/info/lfs/objects/verify":
            return lfs.handle_verify(hub, key, request)
        raise HttpError(json_response(404, {"error": "Not Found"}))

    def _git_backend(self, ex: Exchange, key: "RepoKey", repo: "RepoRecord", tail: str, query: str,
                     principal: "Principal | None") -> None:
        hub = self.server.hub
        env = self._cgi_env(key, repo, tail, query, principal)
        # The backend binary itself (``git http-backend`` would be a wrapper process around it),
        # in its own process group so an aborted request can take receive-pack & co. down too.
        proc = subprocess.Popen([http_backend_path()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.server.live.add(proc)
        feeder = _Feeder(ex.reader, proc)
        stderr = _Collector(proc.stderr)
        try:
            status, headers = _read_cgi_headers(proc.stdout)
            if feeder.cut:
                raise ConnectionCut("request body cut")
            writer = ex.start(status, headers, chunked=self.command != "HEAD", settle=False)
            while True:
                data = proc.stdout.read1(65536)  # type: ignore[union-attr]
                if not data:
                    break
                writer.write(data)
            feeder.join()
            if feeder.cut:
                raise ConnectionCut("request body cut")
            writer.finish()
            if not ex.reader.finished:  # the CGI stopped reading early: the rest is unread
                self.close_connection = True
        finally:
            if proc.poll() is None or feeder.cut:
                _kill_group(proc)
            proc.wait()
            feeder.join()
            stderr.join()
            self.server.live.discard(proc)
            if stderr.text.strip() and proc.returncode not in (0, None, -9):
                hub.last_git_error = stderr.text

    def _cgi_env(self, key: "RepoKey", repo: "RepoRecord", tail: str, query: str,
                 principal: "Principal | None") -> dict[str, str]:
        hub = self.server.hub
        relative = repo.path.relative_to(hub.repos_root).as_posix()
        env = {
            **hub.env,
            "GIT_PROJECT_ROOT": str(hub.repos_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{relative}{tail}",
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": principal.user if principal else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "SANDBOX_PUSH_POLICY": json.dumps(asdict(hub.kind.push_policy(hub, key))),
        }
        counters = hub.counters
        protocol = self.headers.get("Git-Protocol")
        if protocol:
            env["GIT_PROTOCOL"] = protocol
            if "version=2" in protocol:
                counters.feature("protocol-v2")
        encoding = self.headers.get("Content-Encoding")
        if encoding:
            env["HTTP_CONTENT_ENCODING"] = encoding  # http-backend inflates gzip itself
            counters.feature(f"{encoding}-request")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            counters.feature("chunked-request")  # no CONTENT_LENGTH: http-backend reads to EOF
        elif self.headers.get("Content-Length"):
            env["CONTENT_LENGTH"] = self.headers["Content-Length"]
        return env

    # -- storage port --------------------------------------------------------------------
    def _storage(self, ex: Exchange, path: str) -> None:
        hub = self.server.hub
        parsed = lfs.parse_storage_path(path)
        if parsed is None:
            raise lfs.lfs_error(404, "Not Found")
        op, key, oid = parsed
        method = self.command
        if method in ("GET", "HEAD"):
            request = ex.request()
            grant = lfs.authorize_storage(hub, request, op, key, oid)
            self._send_file(ex, lfs.storage_get(hub, request, grant))
        elif method == "PUT":
            request = ex.request()
            grant = lfs.authorize_storage(hub, request, op, key, oid)
            ex.send(lfs.storage_put(hub, request, grant, ex.reader))
        elif method == "POST":
            request = ex.request(ex.reader.read_all())
            grant = lfs.authorize_storage(hub, request, op, key, oid)
            ex.send(lfs.storage_complete(hub, request, grant))
        else:
            raise lfs.lfs_error(405, "method not allowed")

    def _send_file(self, ex: Exchange, body: lfs.FileBody) -> None:
        writer = ex.start(body.status, body.headers, length=body.length)
        if self.command == "HEAD":
            writer.finish()
            return
        with open(body.path, "rb") as source:
            source.seek(body.start)
            left = body.length
            while left > 0:
                data = source.read(min(left, 256 * 1024))
                if not data:
                    break
                writer.write(data)
                left -= len(data)
        writer.finish()

    # -- control -------------------------------------------------------------------------
    def _control(self, ex: Exchange, path: str) -> None:
        hub = self.server.hub
        method = self.command
        body = ex.reader.read_all()
        payload = json.loads(body) if body.strip() else {}
        if path == "/_sandbox/info":
            ex.send(json_response(200, hub.describe()))
        elif path == "/_sandbox/faults":
            if method == "DELETE":
                hub.faults.clear()
                ex.send(json_response(200, {"cleared": True}))
            elif method == "POST":
                try:
                    ex.send(json_response(200, hub.faults.apply_control(payload)))
                except (TypeError, ValueError) as exc:
                    ex.send(json_response(400, {"error": str(exc)}))
            else:
                ex.send(json_response(200, {"rules": [r.to_dict() for r in hub.faults.rules()]}))
        elif path in ("/_sandbox/counters", "/_sandbox/counters/reset"):
            if method in ("DELETE", "POST"):
                hub.counters.reset()
                ex.send(json_response(200, {"reset": True}))
            else:
                ex.send(json_response(200, hub.counters.snapshot().to_dict()))
        else:
            ex.send(json_response(404, {"error": "unknown control path"}))


class _Feeder(threading.Thread):
    """Copies the request body into the CGI's stdin, concurrently with reading its stdout."""

    def __init__(self, reader: BodyReader, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.reader = reader
        self.proc = proc
        self.cut = False
        self.start()

    def run(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while True:
                data = self.reader.read(65536)
                if not data:
                    break
                stdin.write(data)
        except (ConnectionCut, BadRequestBody):
            self.cut = True  # the client's side broke: the CGI must not act on half a request
            _kill_group(self.proc)
        except OSError:
            pass  # the CGI exited without reading everything; its answer still goes out
        finally:
            if not self.reader.finished and self.proc.poll() is None and not self.cut:
                # The body ended before its declared length (the client went away): git
                # http-backend would wait, or spin, forever on the missing bytes.
                self.cut = True
                self.proc.kill()
            try:
                stdin.close()
            except OSError:
                pass


class _Collector(threading.Thread):
    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.text = ""
        self.start()

    def run(self) -> None:
        data = self.stream.read()
        self.text = data[-65536:].decode("utf-8", "replace")


@functools.lru_cache(maxsize=1)
def http_backend_path() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    candidate = os.path.join(exec_path, "git-http-backend")
    return candidate if os.access(candidate, os.X_OK) else "git-http-backend"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the backend and everything it started (receive-pack, unpack-objects, hooks)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_cgi_headers(stdout: Any) -> tuple[int, dict[str, str]]:
    status = 200
    headers: dict[str, str] = {}
    while True:
        line = stdout.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = int(value.split(" ", 1)[0])
        else:
            headers[name] = value
    return status, headers
