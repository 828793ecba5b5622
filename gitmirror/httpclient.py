"""The HTTP client of the LFS transfer and the hub probes: urllib3's connection pools behind the
:class:`Transport` seam.

Why urllib3: it is well kept, already installed (``requests`` and the hub SDKs sit on it), and
its pools are thread-safe; it frames HTTP/1.1 through ``http.client``, checks a kept connection
before reusing it, follows redirects and tunnels through proxies. httpx is not installed and
would add h11 (pure Python too) without a measured gain on HTTP/1.1. What it costs: CPU per
request. The hand-written HTTP/1.1 client on raw sockets it replaces spent 0.07-0.10 ms of CPU
per small request on loopback; urllib3 spends 0.21-0.26 ms (``http.client``'s e-mail parser for
every response's headers, urllib3's response object and pool bookkeeping). On a real link that
is noise next to one round trip (50 ms): docs/benchmarks.md ("HTTP client") measures both.

How it is used:

- one :class:`urllib3.PoolManager` per run (a :class:`urllib3.ProxyManager` per proxy), a pool
  per origin with a hard bound on its connections (``block=True``: a thread waits for one rather
  than opening more);
- ``retries=False``: :mod:`gitmirror.retry` decides what is retried, in one place; a kept
  connection the server closed while idle is noticed before reuse and replaced (urllib3's check);
  one closed as the request went out fails as a transient :class:`TransportError`;
- bodies: a file-like request body (``read(n)``, ``__len__``) goes out in 1 MiB reads with a
  ``Content-Length``, never read whole; a streamed response is read in pieces and its
  connection goes back to the pool when read to the end (closed when not);
- ``Accept-Encoding: identity`` and no content decoding: LFS byte counts are of the stored bytes.

What ``requests`` gave that is kept here, because users count on it:

- proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``),
  looked up once per origin;
- certificate checking against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE``
  when set, else certifi's bundle (as the hub SDKs do), else the system's; the bundle is loaded
  once per client, not per connection;
- redirects followed on request (object downloads), never for uploads; credentials
  (``Authorization``, ``Cookie``) are dropped when a redirect leaves the origin (urllib3's
  ``Retry.remove_headers_on_redirect``).

Left out on purpose: ``~/.netrc`` (it would send credentials to object hrefs), cookies.

One :class:`HttpClient` serves every worker thread of a run.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import SplitResult, urljoin, urlsplit

from gitmirror.errors import GitMirrorError, TransientError, certificate_error, certificate_failure

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "HttpClient", "Response", "Transport", "TransportError", "open_client"]

if TYPE_CHECKING:  # urllib3 is imported lazily so that `gitmirror --help` stays fast.
    import urllib3

#: How many redirects a download may follow (object stores redirect to CDNs once or twice).
MAX_REDIRECTS = 5

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Bytes per read of a file-like request body, and per socket write (urllib3's default is 16 KiB;
#: 1 MiB pieces cut the per-call overhead of multi-gigabyte uploads).
BLOCKSIZE = 1 << 20

#: What a request says it is, unless the caller says otherwise.
USER_AGENT = "gitmirror"


class TransportError(TransientError):
    """The connection failed before or during a request: refused, reset, timed out, cut."""


# -- the seam: what the LFS client needs of an HTTP stack --------------------------------------------


class ResponseHeaders(Protocol):
    """Response headers, looked up case-insensitively (repeated ones joined with ", ")."""

    def get(self, name: str, default: Any = None) -> Any: ...


class Response(Protocol):
    """One HTTP response, as :meth:`Transport.request` returns it (urllib3's, or a test's fake).

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
    """Thread-safe HTTP for one run: urllib3 pools of kept-alive connections, one per origin. A :class:`Transport`.

    ``timeout`` is ``(connect, read)`` seconds or one number for both. ``pool_size`` is how many
    threads may use one origin at once: each gets a connection of its own, kept for reuse. A
    thread may hold a streamed response open while it sends another request to the same origin
    (an LFS download feeding an upload, when both ends are one host), so an origin's pool is
    bounded at ``2 * pool_size`` connections: a thread needing one more waits for one to come
    back (``block=True``), and no run opens more, however many requests it makes. ``env``: where
    proxies and the CA bundle are looked up (default: ``os.environ``).
    """

    def __init__(self, *, timeout: float | tuple[float, float] = (10.0, 60.0), pool_size: int = 8,
                 env: dict[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._timeout = timeout
        self._pool_size = max(1, pool_size)
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], str | None] = {}  # origin -> its proxy (or None), decided once
        self._managers: dict[str | None, Any] = {}
        self._pools: dict[tuple[str, str], Any] = {}  # origin -> the direct manager's pool for it
        self._timeouts: dict[Any, Any] = {}
        self._urllib3: Any = None

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

        ``body``: bytes, a file-like object (``read(n)``; with ``__len__`` it goes out with that
        ``Content-Length``, else chunked), or None. A streamed response must be closed by the
        caller (``with`` works): when its body was read to the end, its connection goes back to
        the pool; when not, the connection is closed. Connection failures raise
        :class:`TransportError` (an untrusted certificate:
        :class:`~gitmirror.errors.CertificateError`), whose message never holds the URL's query
        string (signed hrefs carry secrets there); so do failures while a streamed body is read.
        A header name or value that HTTP cannot carry (a line break in a value from a server)
        raises ValueError naming the header, not its value. HTTP error statuses are returned,
        not raised.
        """
        u3 = self._lib()
        parts = urlsplit(url)
        proxy = self._route(parts)
        options = {"timeout": self._timeout_of(timeout), "preload_content": not stream, "decode_content": False}
        try:
            if proxy is None and _plain(url):
                resp = self._direct(parts, method, body, _headers(headers, body), options)
                if resp is not None:
                    location = follow_redirects and resp.get_redirect_location()
                    if not location:
                        return _Streamed(resp, url, u3.exceptions.HTTPError) if stream else resp
                    # The first hop was ours; urllib3 follows the rest, and drops credentials off
                    # the origin as _redirected does here.
                    resp.drain_conn()
                    resp.release_conn()
                    url, headers = _redirected(url, location, headers)
                    proxy = self._route(urlsplit(url))
            resp = self._manager(proxy).urlopen(
                method, url, body=body, headers=_headers(headers, body),
                retries=self._redirecting if follow_redirects else self._no_retries, redirect=follow_redirects,
                **options,
            )
        except u3.exceptions.MaxRetryError as exc:
            raise _transport_error(exc.reason or exc, url) from None
        except (u3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise _transport_error(exc, url) from None
        return _Streamed(resp, url, u3.exceptions.HTTPError) if stream else resp

    def _direct(self, parts: SplitResult, method: str, body: Any, headers: dict[str, str],
                options: dict[str, Any]) -> Any:
        """The request on its origin's pool, not through ``PoolManager.urlopen``, which parses the
        URL and looks its pool up again for every request (0.04-0.08 ms of CPU per request, of about
        0.3 ms, on loopback). None when the pool was closed under us (the manager let it go): nothing was
        sent then, and the caller goes through the manager."""
        origin = (parts.scheme, parts.netloc)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = self._manager(None).connection_from_host(
                parts.hostname, parts.port, parts.scheme)
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else (parts.path or "/")
        try:
            return pool.urlopen(method, target, body=body, headers=headers, retries=self._no_retries,
                                redirect=False, assert_same_host=False, **options)
        except self._urllib3.exceptions.ClosedPoolError:
            self._pools.pop(origin, None)
            return None

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            for manager in self._managers.values():
                manager.clear()
            self._managers.clear()
            self._pools.clear()
            self._routes.clear()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _lib(self) -> Any:
        if self._urllib3 is None:
            import urllib3

            # retries=False, made once (urllib3 would build it again for every request): a failure
            # is raised as it is, and a redirect returned.
            self._no_retries = urllib3.Retry(False, redirect=False)
            # Redirects only: any other failure is gitmirror.retry's to decide. Credentials are
            # dropped off the origin by urllib3 (Retry.remove_headers_on_redirect: Authorization,
            # Cookie, Proxy-Authorization).
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

    def _route(self, parts: SplitResult) -> str | None:
        """The proxy for the URL's origin (None: connect directly)."""
        origin = (parts.scheme, parts.netloc)
        try:
            return self._routes[origin]
        except KeyError:
            proxy = self._routes[origin] = _proxy_for(parts.scheme, parts.hostname or "", self._env)
            return proxy

    def _manager(self, proxy: str | None) -> Any:
        manager = self._managers.get(proxy)
        if manager is None:
            with self._lock:
                manager = self._managers.get(proxy)
                if manager is None:
                    manager = self._managers[proxy] = self._new_manager(proxy)
        return manager

    def _new_manager(self, proxy: str | None) -> Any:
        u3 = self._lib()
        options: dict[str, Any] = {"num_pools": 64, "maxsize": 2 * self._pool_size, "block": True,
                                   "blocksize": BLOCKSIZE, "ssl_context": _tls_context(self._env)}
        if proxy is None:
            return u3.PoolManager(**options)
        proxy_url, proxy_headers = _split_proxy_credentials(proxy)
        return u3.ProxyManager(proxy_url, proxy_headers=proxy_headers, **options)


@contextmanager
def open_client(given: Transport | None = None, *, pool_size: int = 8, env: dict[str, str] | None = None,
                timeout: float | tuple[float, float] = (10.0, 60.0)) -> Iterator[Transport]:
    """``given`` (a run's client), left open; or a new :class:`HttpClient`, closed on the way out
    except after Ctrl-C (a worker blocked in a read holds its connection, and the process is ending)."""
    if given is not None:
        yield given
        return
    http = HttpClient(timeout=timeout, pool_size=pool_size, env=env)
    try:
        yield http
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            http.close()
        raise
    http.close()


class _Streamed:
    """A streamed urllib3 response as :class:`Response` describes it: read failures raise
    :class:`TransportError`, and closing gives its connection back to the pool (urllib3's own
    ``close`` closes the connection without giving it back, which would cost a bounded pool a
    place for good)."""

    __slots__ = ("_errors", "_resp", "_url", "headers", "reason", "status")

    def __init__(self, resp: Any, url: str, errors: type[Exception]) -> None:
        self._resp = resp
        self._url = url
        self._errors = (errors, http.client.HTTPException, OSError)
        self.status: int = resp.status
        self.reason: str = resp.reason
        self.headers = resp.headers

    @property
    def data(self) -> bytes:
        try:
            return self._resp.data
        except self._errors as exc:
            self.close()
            raise _transport_error(exc, self._url) from None

    def stream(self, amt: int) -> Iterator[bytes]:
        try:
            yield from self._resp.stream(amt)
        except self._errors as exc:
            self.close()
            raise _transport_error(exc, self._url) from None

    def get_redirect_location(self) -> str | bool:
        return self._resp.get_redirect_location()

    def close(self) -> None:
        # Read to the end, urllib3 gave the connection back already; else it is closed here and
        # its place returned (a closed connection is opened again on its next use).
        self._resp.close()
        self._resp.release_conn()

    def __enter__(self) -> "_Streamed":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _headers(given: dict[str, str] | None, body: Any) -> dict[str, str]:
    """The headers to send: ``given``, checked, with a ``User-Agent`` and, for a file-like body
    with a length, its ``Content-Length`` (else urllib3 would send it chunked, which object
    stores refuse).

    Header values come partly from servers (an LFS action's ``header``): a CR or LF in one would
    let a server add requests of its own. ``http.client`` refuses those too, but names the value
    (a token, maybe) in its message; this refusal names the header only.
    """
    headers = {"User-Agent": USER_AGENT}
    for name, value in (given or {}).items():
        value = str(value)
        if not _TOKEN.fullmatch(name) or _FORBIDDEN_IN_HEADER.search(value):
            raise ValueError(f"invalid HTTP header {name[:40]!r}")
        if name.lower() == "user-agent":
            del headers["User-Agent"]
        headers[name] = value
    if body is not None and hasattr(body, "read") and hasattr(body, "__len__") and not any(
        name.lower() in ("content-length", "transfer-encoding") for name in headers
    ):
        headers["Content-Length"] = str(len(body))
    return headers


def _tls_context(env: Any) -> ssl.SSLContext:
    """The client's TLS settings, with the CA bundle loaded once (urllib3 would load it again
    for every connection when given only its path)."""
    from urllib3.util.ssl_ import create_urllib3_context

    context = create_urllib3_context()
    ca = _ca_bundle(env)
    if ca:
        context.load_verify_locations(cafile=ca)
    else:
        context.load_default_certs()
    return context


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
    """True when a URL can go on the request line as it is (else urllib3's PoolManager encodes it first)."""
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
