"""git's smart-HTTP ref advertisement, read in-process: what ``git ls-remote --symref`` prints,
without the two git children (``git`` and ``git-remote-https``) it costs per listing.

The bytes are fetched over gitmirror's own :class:`~gitmirror.httpclient.HttpClient` and parsed
with dulwich's pkt-line reader and ref readers (``dulwich.protocol.Protocol``,
``dulwich.client.read_pkt_refs_v1`` / ``read_pkt_refs_v2``), imported only when a listing is
made: ``gitmirror --help`` never loads dulwich.

Protocol choice (see docs/architecture.md, "Listing refs"): **v0 by default**. A v0 listing is one
request, ``GET <url>/info/refs?service=git-upload-pack`` (gitprotocol-http(5), "Smart Clients"),
whose answer holds every ref, HEAD's target (the ``symref=HEAD:...`` capability) and each annotated
tag's peeled object (``<tag>^{}`` lines). Protocol v2 (gitprotocol-v2(5), ``ls-refs``) can leave
refs out with ``ref-prefix``, so Hugging Face's many ``refs/pr/*`` would not be sent, but over
HTTP it is always two requests: the GET above only returns capabilities, and ``ls-refs`` is a
second ``POST <url>/git-upload-pack``. A no-op mirror's critical path is a listing of each side
(run in parallel), so v2 would add one round trip to it (150 ms to a far source), while the bytes
it saves are small next to one round trip: a ref line is about 60 bytes, so even 1,000
``refs/pr/*`` are ~60 KB, under 5 ms at 100 Mbit/s. ``protocol=2`` is kept for callers that list
a repository with very many refs they do not want.

Answers map to errors through :func:`gitmirror.errors.error_for_status` (401 AuthError, 403
PermissionDeniedError, 404 RepoNotFoundError, 429/5xx TransientError with Retry-After), as
``git ls-remote`` is classified from the status git names. A 200 that is not a smart-HTTP
advertisement (a dumb server, an HTML login page) raises :class:`NotSmartHttp`, and the caller
asks git, which knows the dumb protocol.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitmirror.errors import GitMirrorError, ProtocolError, TransientError, error_for_status, scrub
from gitmirror.retry import parse_retry_after

if TYPE_CHECKING:
    from gitmirror.httpclient import Response, Transport

SERVICE = "git-upload-pack"
ADVERTISEMENT_TYPE = f"application/x-{SERVICE}-advertisement"
RESULT_TYPE = f"application/x-{SERVICE}-result"
#: What a mirror reads: branches and tags (and HEAD, which ls-refs sends with ``symrefs``).
DEFAULT_PREFIXES: tuple[str, ...] = ("refs/heads/", "refs/tags/")


class NotSmartHttp(GitMirrorError):
    """The server answered 200 with something other than a smart-HTTP advertisement: git's own
    client (which also speaks the dumb protocol) should list this remote instead."""


@dataclass(frozen=True)
class Advertisement:
    """A listing: ``refs`` (name -> object id, HEAD left out), ``head`` (the ref HEAD points
    at, if the server says) and ``peeled`` (annotated tag -> the object it points at)."""

    refs: dict[str, str]
    head: str | None = None
    peeled: dict[str, str] = field(default_factory=dict)


def info_refs_url(url: str) -> str:
    """The ref advertisement's URL of the repository at ``url`` (http or https, no credentials)."""
    return url.rstrip("/") + f"/info/refs?service={SERVICE}"


def list_refs(
    http: "Transport",
    url: str,
    *,
    authorization: str | None = None,
    protocol: int = 0,
    ref_prefixes: Sequence[str] = DEFAULT_PREFIXES,
    timeout: float | tuple[float, float] | None = None,
) -> Advertisement:
    """List the refs of the repository at ``url`` over ``http``; ``timeout`` in seconds.

    ``authorization`` is the ``Authorization`` header value git would send (for example
    :meth:`gitmirror.remote.GitAuth.basic_header`); it goes in a header only, and the client
    drops it on a redirect to another origin. ``protocol=2`` asks for ``ls-refs`` limited to
    ``ref_prefixes`` when the server offers v2 (falling back to v0 when it does not);
    ``protocol=0`` lists everything in one request. Raises the classified GitMirrorError of a
    failed answer, NotSmartHttp, or ProtocolError for a malformed advertisement.
    """
    headers = {"Accept": "*/*", "Cache-Control": "no-cache"}
    if authorization:
        headers["Authorization"] = authorization
    if protocol == 2:
        headers["Git-Protocol"] = "version=2"
    from gitmirror.httpclient import TransportError  # noqa: PLC0415 - not for `--help`

    try:
        resp = http.request("GET", info_refs_url(url), headers=headers, follow_redirects=True, timeout=timeout)
    except TransportError as exc:  # a cut or a stall past the read timeout: say which step, retry it
        raise TransientError(f"listing refs of {scrub(url)}: {exc.message}") from None
    _check(resp, url, ADVERTISEMENT_TYPE)
    from dulwich.errors import GitProtocolError  # noqa: PLC0415 - lazy: dulwich is for listings only

    try:
        return _parse_info_refs(resp.data, http, url, headers, ref_prefixes, timeout)
    except (GitProtocolError, ValueError, AssertionError) as exc:
        raise ProtocolError(f"{scrub(url)} sent a malformed ref advertisement: {exc}") from None


def _check(resp: "Response", url: str, content_type: str) -> None:
    """Raise what a non-200 answer, or a 200 of the wrong kind, stands for."""
    status = resp.status
    if status != 200:
        what = f"listing refs of {scrub(url)}: HTTP {status} {resp.reason}".rstrip()
        hint = "check the token for this host" if status == 401 else None
        raise error_for_status(status, what, hint=hint, retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    if not (resp.headers.get("Content-Type") or "").startswith(content_type):
        raise NotSmartHttp(f"{scrub(url)} is not a smart-HTTP git server")


def _parse_info_refs(data: bytes, http: "Transport", url: str, headers: dict[str, str],
                     prefixes: Sequence[str], timeout: float | tuple[float, float] | None) -> Advertisement:
    from dulwich.protocol import Protocol

    proto = Protocol(_reader(data), lambda _data: None)
    line = proto.read_pkt_line()
    # v0 opens with "# service=..." and a flush; git's http-backend answers v2 with "version 2" at once.
    if line is not None and line.rstrip(b"\n") == f"# service={SERVICE}".encode():
        for _ in proto.read_pkt_seq():  # the rest of the service section, up to its flush
            pass
        line = proto.read_pkt_line()
    elif line is None or not line.startswith(b"version 2"):
        raise ProtocolError(f"{scrub(url)} sent no '# service={SERVICE}' line")
    if line is not None and line.strip() == b"version 2":
        capabilities = {bytes(pkt).rstrip(b"\n") for pkt in proto.read_pkt_seq()}
        return _ls_refs(http, url, headers, capabilities, prefixes, timeout)
    proto.unread_pkt_line(line)
    return _v0_refs(proto.read_pkt_seq())


def _v0_refs(pkts: Iterable[bytes]) -> Advertisement:
    """A v0 advertisement: ``<oid> <ref>`` lines, capabilities after a NUL on the first."""
    from dulwich.client import read_pkt_refs_v1
    from dulwich.protocol import CAPABILITY_SYMREF, parse_capability

    listed, capabilities = read_pkt_refs_v1(pkts)
    head = None
    for capability in capabilities:
        name, value = parse_capability(capability)
        if name == CAPABILITY_SYMREF and value is not None and value.startswith(b"HEAD:"):
            head = value[len(b"HEAD:"):]
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for name, oid in listed.items():
        text = name.decode("utf-8", "surrogateescape")
        if text.endswith("^{}"):
            peeled[text[:-3]] = oid.decode("ascii")
        elif text != "HEAD":
            refs[text] = oid.decode("ascii")
    return Advertisement(refs=refs, head=head.decode("utf-8", "surrogateescape") if head else None, peeled=peeled)


def _ls_refs(http: "Transport", url: str, headers: dict[str, str], capabilities: set[bytes],
             prefixes: Sequence[str], timeout: float | tuple[float, float] | None) -> Advertisement:
    """A v2 ``ls-refs`` (gitprotocol-v2(5)) for ``prefixes``, with peeled tags and HEAD's target."""
    from dulwich.client import build_ls_refs_request_v2, extract_object_format_from_capabilities, read_pkt_refs_v2
    from dulwich.protocol import Protocol, pkt_line

    wanted = [b"HEAD", *(p.encode() for p in prefixes)]
    commands, arguments = build_ls_refs_request_v2(
        capabilities, extract_object_format_from_capabilities(capabilities), wanted)
    body = b"".join([*map(pkt_line, commands), b"0001", *map(pkt_line, arguments), b"0000"])
    post = {**headers, "Content-Type": f"application/x-{SERVICE}-request", "Accept": RESULT_TYPE}
    resp = http.request("POST", url.rstrip("/") + f"/{SERVICE}", headers=post, body=body, timeout=timeout)
    _check(resp, url, RESULT_TYPE)
    listed, symrefs, peeled = read_pkt_refs_v2(Protocol(_reader(resp.data), lambda _data: None).read_pkt_seq())
    refs = {name.decode("utf-8", "surrogateescape"): oid.decode("ascii")
            for name, oid in listed.items() if name != b"HEAD" and oid is not None}
    head = symrefs.get(b"HEAD")
    return Advertisement(
        refs=refs,
        head=head.decode("utf-8", "surrogateescape") if head else None,
        peeled={name.decode("utf-8", "surrogateescape"): oid.decode("ascii") for name, oid in peeled.items()},
    )


def _reader(data: bytes) -> "Callable[[int], bytes]":
    """``read(n)`` over a body read whole: dulwich reports a short read as a malformed pkt-line."""
    return io.BytesIO(data).read


__all__ = ["Advertisement", "NotSmartHttp", "list_refs", "info_refs_url", "DEFAULT_PREFIXES"]
