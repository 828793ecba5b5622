"""The HTTP client of the LFS transfer: a kept-alive HTTP/1.1 connection per thread and origin,
urllib3 for proxies and redirects.

A mirror of a repository with thousands of small LFS objects makes three requests per object
(download, upload, verify), and the client's CPU per request decides how long it takes. Measured
against the same local server (CPU per request): ``requests`` 1.9 ms, urllib3's PoolManager 0.8 ms,
urllib3's connection pool 0.66 ms, ``http.client`` on a kept connection 0.31-0.37 ms, of which
most is its header handling (the e-mail parser for every response, a check per header line sent).
No HTTP client in the tree costs less (httpx and httpcore sit on h11, in pure Python too). So a
direct request (no proxy) goes out on the calling thread's own connection to that origin, written
in one piece and its answer read here (0.12-0.15 ms): HTTP/1.1 with a ``Content-Length`` or
chunked body, or one read to the connection's end. Connections are opened with the connect
timeout, then use the read timeout, TCP_NODELAY, and are checked before reuse (a server may have
closed one while it was idle, which urllib3 checks the same way); that HTTP/1.1 lives in
:mod:`gitmirror.http1`. Everything else (a proxy from the environment, the hops of a redirect)
goes through urllib3.

What ``requests`` gave that is kept here, because users count on it:

- proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``),
  looked up once per origin;
- certificate checking against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE``
  when set, else certifi's bundle (as the hub SDKs do), else the system's;
- redirects followed on request (object downloads), never for uploads; credentials
  (``Authorization``, ``Cookie``) are dropped when a redirect leaves the host.

Left out on purpose: ``~/.netrc`` (it would send credentials to object hrefs), cookies, content
decoding (``Accept-Encoding: identity`` is sent: LFS byte counts are of the stored bytes), and
retries (:mod:`gitmirror.retry` decides those, in one place).

One :class:`HttpClient` serves every worker thread of a run: connections are per thread,
urllib3's pools are thread-safe.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import ssl
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import SplitResult, urljoin, urlsplit

from gitmirror.errors import GitMirrorError, TransientError, certificate_error, certificate_failure
from gitmirror.http1 import BLOCKSIZE, REDIRECT_STATUSES, Connection, Http1Response, host_header, request_head

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "HttpClient", "Response", "Transport", "TransportError"]

if TYPE_CHECKING:  # urllib3 is imported lazily so that `gitmirror --help` stays fast.
    import urllib3

#: How many redirects a download may follow (object stores redirect to CDNs once or twice).
MAX_REDIRECTS = 5


class TransportError(TransientError):
    """The connection failed before or during a request: refused, reset, timed out, cut."""


# -- the seam: what the LFS client needs of an HTTP stack --------------------------------------------


class ResponseHeaders(Protocol):
    """Response headers, looked up case-insensitively (repeated ones joined with ", ")."""

    def get(self, name: str, default: Any = None) -> Any: ...


class Response(Protocol):
    """One HTTP response, as :meth:`Transport.request` returns it (this module's own response on a
    kept connection, urllib3's through a proxy or a redirect, a test's fake).

    ``data`` is the whole body (read on first use); ``stream(n)`` gives it in pieces of at most
    ``n`` bytes. Closing (or leaving a ``with`` block) releases the connection.
    """

    status: int
    reason: str

    @property
    def headers(self) -> ResponseHeaders: ...

    @property
    def data(self) -> bytes: ...

    def stream(self, amt: int) -> Iterator[bytes]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Response: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Transport(Protocol):
    """What sends a request: :class:`HttpClient`, or a fake in tests (as httpx's ``MockTransport``).

    ``body`` is bytes, a file-like object with ``read(n)`` (and ``__len__``, for a length), or
    None. HTTP error statuses are returned, never raised; a failed connection raises
    :class:`TransportError` (:class:`~gitmirror.errors.CertificateError` for a certificate this
    machine does not trust: not transient). ``timeout`` is ``(connect, read)`` seconds or one number for both.
    """

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        stream: bool = False,
        follow_redirects: bool = False,
        timeout: float | tuple[float, float] | None = None,
    ) -> Response: ...

    def close(self) -> None: ...


class HttpClient:
    """Thread-safe HTTP for one run: a pool of kept-alive connections per origin. A :class:`Transport`.

    ``timeout`` is ``(connect, read)`` seconds or one number for both. ``pool_size`` is how many
    connections per origin are kept for reuse (more may be open at once; the extra ones are
    closed after use).
    """

    def __init__(self, *, timeout: float | tuple[float, float] = (10.0, 60.0), pool_size: int = 8,
                 env: dict[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._timeout = timeout
        self._pool_size = max(1, pool_size)
        self._lock = threading.Lock()
        # origin -> its proxy (or None) and whether to connect directly, decided once
        self._routes: dict[tuple[str, str], tuple[str | None, bool]] = {}
        self._managers: dict[str | None, Any] = {}
        self._timeouts: dict[Any, Any] = {}
        self._urllib3: Any = None
        self._local = threading.local()  # .kept: this thread's connections, by (scheme, host, port)
        self._opened: weakref.WeakSet[Connection] = weakref.WeakSet()  # for close()
        self._tls: ssl.SSLContext | None = None

    # -- requests -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        stream: bool = False,
        follow_redirects: bool = False,
        timeout: float | tuple[float, float] | None = None,
    ) -> Response:
        """Send one request; the response's body is read already unless ``stream``.

        A streamed response must be closed by the caller (``with`` works): when its body was
        read to the end, its connection goes back to the pool; when not, the connection is
        dropped. Connection failures raise :class:`TransportError` (an untrusted certificate:
        :class:`~gitmirror.errors.CertificateError`), whose message never holds the URL's query
        string (signed hrefs carry secrets there). HTTP error statuses are
        returned, not raised.
        """
        parts = urlsplit(url)
        proxy, direct = self._route(parts)
        if direct and _plain(url):
            try:
                resp = self._send_direct(method, parts, headers, body, stream, timeout)
                location = follow_redirects and resp.get_redirect_location()
                if not location:
                    return resp
                resp.drain_conn()
            except (http.client.HTTPException, OSError) as exc:
                raise _transport_error(exc, url) from None
            # The first hop by hand; urllib3 takes the rest and, like us here, keeps
            # credentials from following a redirect to another host.
            url, headers = _redirected(url, location, headers)
            proxy, _ = self._route(urlsplit(url))
        return self._via_urllib3(proxy, method, url, headers, body, stream, follow_redirects, timeout)

    def _via_urllib3(self, proxy: str | None, method: str, url: str, headers: dict[str, str] | None, body: Any,
                     stream: bool, follow_redirects: bool, timeout: float | tuple[float, float] | None) -> Response:
        """A request through urllib3 (imported only now): through a proxy, or a redirect's next hops."""
        u3 = self._lib()
        with self._lock:
            manager = self._managers.get(proxy)
            if manager is None:
                manager = self._managers[proxy] = self._new_manager(proxy)
        try:
            return manager.urlopen(
                method, url, body=body, headers=headers,
                retries=self._redirecting if follow_redirects else self._no_retries,
                redirect=follow_redirects, timeout=self._timeout_of(timeout),
                preload_content=not stream, decode_content=True,
            )
        except u3.exceptions.MaxRetryError as exc:
            raise _transport_error(exc.reason or exc, url) from None
        except (u3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise _transport_error(exc, url) from None

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            for manager in self._managers.values():
                manager.clear()
            self._managers.clear()
            self._routes.clear()
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _lib(self) -> Any:
        if self._urllib3 is None:
            import urllib3

            # No retries of our own here: gitmirror.retry decides what is retried, in one place.
            self._no_retries = urllib3.Retry(total=0, redirect=0, raise_on_redirect=False)
            self._redirecting = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0,
                                              redirect=MAX_REDIRECTS)
            self._urllib3 = urllib3
        return self._urllib3

    def _timeout_of(self, timeout: float | tuple[float, float] | None) -> "urllib3.Timeout":
        value = self._timeout if timeout is None else timeout
        cached = self._timeouts.get(value)
        if cached is None:
            connect, read = value if isinstance(value, tuple) else (value, value)
            cached = self._timeouts[value] = self._lib().Timeout(connect=connect, read=read)
        return cached

    def _route(self, parts: SplitResult) -> tuple[str | None, bool]:
        """The proxy for the URL's origin (None: none), and whether a direct connection serves it."""
        origin = (parts.scheme, parts.netloc)
        route = self._routes.get(origin)
        if route is None:
            proxy = _proxy_for(parts.scheme, parts.hostname or "", self._env)
            route = self._routes[origin] = (proxy, proxy is None and parts.scheme in ("http", "https"))
        return route

    # -- direct requests on kept connections -----------------------------------------------------

    def _send_direct(self, method: str, parts: SplitResult, headers: dict[str, str] | None, body: Any, stream: bool,
                     timeout: float | tuple[float, float] | None) -> Http1Response:
        key = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        connect, read = self._seconds(timeout)
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else (parts.path or "/")
        head, body = request_head(method, target, host_header(*key), headers or {}, body)
        replayable = body is None or isinstance(body, (bytes, bytearray, memoryview))
        for fresh in (False, True):
            conn, reused = self._connection(key, connect, read, new=fresh)
            try:
                conn.send(head, body)
                resp = conn.response(method, lambda keep, key=key, conn=conn: self._done(key, conn, keep))
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused and replayable and not fresh:
                    continue  # the server closed a kept connection as we used it: once more, on a new one
                raise
            except BaseException:
                conn.close()  # a request cut half-way leaves nothing reusable
                raise
            if not stream:
                resp.data  # noqa: B018 - read now, as urllib3 does unless streaming
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, key: tuple[str, str, int], connect: float, read: float,
                    new: bool) -> tuple["Connection", bool]:
        kept: dict = self._local.__dict__.setdefault("kept", {})
        conn = None if new else kept.pop(key, None)
        if conn is not None and not conn.dropped():
            conn.sock.settimeout(read)
            return conn, True
        if conn is not None:
            conn.close()
        scheme, host, port = key
        conn = Connection(host, port, connect, self._tls_context() if scheme == "https" else None)
        conn.sock.settimeout(read)
        with self._lock:
            self._opened.add(conn)
        return conn, False

    def _done(self, key: tuple[str, str, int], conn: "Connection", keep: bool) -> None:
        """A response is finished with: keep its connection for this thread's next request, or close it."""
        kept: dict = self._local.__dict__.setdefault("kept", {})
        if keep and key not in kept:  # one kept per thread and origin; a second one (two open at once) goes
            kept[key] = conn
        else:
            conn.close()

    def _seconds(self, timeout: float | tuple[float, float] | None) -> tuple[float, float]:
        value = self._timeout if timeout is None else timeout
        return value if isinstance(value, tuple) else (value, value)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=_ca_bundle(self._env))
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls

    def _new_manager(self, proxy: str | None) -> Any:
        u3 = self._lib()
        options: dict[str, Any] = {"num_pools": 64, "maxsize": self._pool_size, "blocksize": BLOCKSIZE}
        ca = _ca_bundle(self._env)
        if ca:
            options["ca_certs"] = ca
        if proxy is None:
            return u3.PoolManager(**options)
        proxy_url, proxy_headers = _split_proxy_credentials(proxy)
        return u3.ProxyManager(proxy_url, proxy_headers=proxy_headers, **options)


def _proxy_for(scheme: str, host: str, env: Any) -> str | None:
    """The proxy URL for ``scheme://host`` from the environment, or None to go direct."""
    names = {k.lower(): v for k, v in env.items() if k.lower().endswith("_proxy") and v}
    if not names:
        return None
    bypass = names.get("no_proxy", "")
    if bypass and _bypassed(host, bypass):
        return None
    return names.get(f"{scheme}_proxy") or names.get("all_proxy")


def _bypassed(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` as requests reads it: ``*``, host names, domain suffixes and IP networks."""
    import urllib.request  # only when NO_PROXY is set: it costs more to import than it does here

    if urllib.request.proxy_bypass_environment(host, {"no": no_proxy}):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    for entry in (e.strip() for e in no_proxy.split(",")):
        if "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _split_proxy_credentials(proxy: str) -> tuple[str, dict[str, str] | None]:
    """A proxy URL without user-info, and the Proxy-Authorization header for it (if any)."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.username:
        return parts.geturl(), None
    from urllib.parse import unquote

    import urllib3

    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return parts._replace(netloc=netloc).geturl(), urllib3.make_headers(proxy_basic_auth=auth)


def _ca_bundle(env: Any) -> str | None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if env.get(name):
            return env[name]
    try:
        import certifi
    except ImportError:
        return None  # the system's store (urllib3's default)
    return certifi.where()


_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _redirected(url: str, location: str, headers: dict[str, str] | None) -> tuple[str, dict[str, str] | None]:
    """Where a redirect leads, and the headers that may follow it there."""
    target = urljoin(url, location)
    if headers and _origin(target) != _origin(url):
        headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    return target, headers


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _plain(url: str) -> bool:
    """True when a URL can go on the request line as it is (else urllib3 encodes it first)."""
    return url.isascii() and url.isprintable() and " " not in url


_URL_IN_TEXT = re.compile(r"(https?://[^\s?#'\"]+|(?<=url: )/[^\s?#'\"]*)\?[^\s'\"]*")


def _transport_error(exc: BaseException, url: str) -> GitMirrorError:
    """One line naming what failed, never the URL's query string or user-info. A certificate this
    machine does not trust is a :class:`~gitmirror.errors.CertificateError` (exit 9, not retried)."""
    failure = certificate_failure(exc)
    if failure is not None:
        parts = urlsplit(url)
        return certificate_error(failure, f"connecting to {parts.scheme}://{parts.netloc.rpartition('@')[2]}")
    reason = getattr(exc, "reason", None) or exc
    text = " ".join(str(reason).split())
    text = _URL_IN_TEXT.sub(lambda m: m.group(1) + "?…", text)
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1", text)
    return TransportError(f"{type(reason).__name__}: {text}"[:300])
