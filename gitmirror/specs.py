"""Repository specs: the SRC and DST words a user types, parsed into a :class:`RepoSpec`.

Accepted forms::

    hf://owner/name   hf://datasets/owner/name   hf://spaces/owner/name
    ms://owner/name   ms://datasets/owner/name
    https://huggingface.co/owner/name  (and /datasets/, /spaces/; any HF_ENDPOINT origin)
    https://modelscope.cn/models/owner/name.git  https://www.modelscope.cn/owner/name.git
    any other git URL: http(s)://, ssh://, git@host:path, file://
    a local path (./backup.git, /srv/mirrors/x.git): a bare repository, created if missing
    owner/name: hf:// as a source, ms:// as a destination (what the original scripts did)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gitmirror.errors import UsageError, register_secret

HostKind = Literal["huggingface", "modelscope", "git"]
RepoType = Literal["model", "dataset", "space"]
Role = Literal["src", "dst"]

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
MS_DEFAULT_ENDPOINT = "https://modelscope.cn"
_HF_HOSTS = {"huggingface.co", "hf.co", "www.huggingface.co"}
_MS_HOSTS = {"modelscope.cn", "www.modelscope.cn", "modelscope.ai", "www.modelscope.ai"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCP_LIKE = re.compile(r"^(?P<user>[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>[^/].*)$")
_TYPE_PREFIXES = {"models": "model", "datasets": "dataset", "spaces": "space"}


@dataclass(frozen=True)
class RepoSpec:
    """A parsed repository spec. For hubs, ``repo_id`` is ``owner/name``; for git, ``url`` or ``path``."""

    host: HostKind
    text: str
    repo_type: RepoType = "model"
    repo_id: str | None = None
    endpoint: str | None = None
    url: str | None = None
    path: Path | None = None

    @property
    def display(self) -> str:
        if self.host == "huggingface":
            prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
            return f"hf://{prefix}{self.repo_id}"
        if self.host == "modelscope":
            prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
            return f"ms://{prefix}{self.repo_id}"
        return str(self.path) if self.path is not None else strip_userinfo(self.url or self.text)

    @property
    def identity(self) -> str:
        """What makes two specs the same repository (cache names hash it); never holds a password."""
        if self.host in ("huggingface", "modelscope"):
            return f"{self.host} {self.endpoint} {self.repo_type} {self.repo_id}"
        if self.path is not None:
            return f"path {self.path.expanduser().resolve()}"
        return f"url {strip_userinfo(self.url or self.text)}"

    @property
    def is_local(self) -> bool:
        return self.path is not None


def strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host).geturl()


def parse_spec(text: str, role: Role, env: Mapping[str, str] | None = None) -> RepoSpec:
    """Parse what the user typed. Raises UsageError with a hint on anything malformed."""
    env = os.environ if env is None else env
    raw = text.strip()
    if not raw:
        raise UsageError(f"empty repository spec for {role.upper()}", hint="give e.g. hf://owner/name")
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme in ("http", "https", "ssh", "git+ssh"):
        # A password in a URL is a credential: keep it out of every message from now on.
        register_secret(urlsplit(raw).password)
    if scheme == "hf":
        return _hub_spec("huggingface", raw, raw[5:], hf_endpoint(env))
    if scheme == "ms":
        return _hub_spec("modelscope", raw, raw[5:], ms_endpoint(env))
    if scheme in ("http", "https"):
        return _http_spec(raw, env)
    if scheme == "file":
        return RepoSpec(host="git", text=raw, path=Path(urlsplit(raw).path))
    if scheme in ("ssh", "git", "git+ssh"):
        return RepoSpec(host="git", text=raw, url=raw)
    if scheme:
        raise UsageError(
            f"unknown hub or URL scheme {scheme!r} in {strip_userinfo(raw)!r}",
            hint="use hf://, ms://, an http(s)/ssh/file URL or a local path",
        )
    if _looks_like_path(raw):
        return RepoSpec(host="git", text=raw, path=Path(raw).expanduser())
    if _SCP_LIKE.match(raw):
        return RepoSpec(host="git", text=raw, url=raw)
    if raw.count("/") == 1:
        kind: HostKind = "huggingface" if role == "src" else "modelscope"
        endpoint = hf_endpoint(env) if kind == "huggingface" else ms_endpoint(env)
        return _hub_spec(kind, raw, raw, endpoint)
    raise UsageError(
        f"cannot tell what repository {raw!r} names",
        hint="use hf://owner/name, ms://owner/name, a git URL, or a path starting with ./ or /",
    )


def hf_endpoint(env: Mapping[str, str]) -> str:
    return (env.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def ms_endpoint(env: Mapping[str, str]) -> str:
    return (env.get("MODELSCOPE_ENDPOINT") or MS_DEFAULT_ENDPOINT).rstrip("/")


def _looks_like_path(raw: str) -> bool:
    return raw.startswith(("/", "./", "../", "~")) or raw in (".", "..") or raw.endswith(".git") and "/" not in raw


def _hub_spec(host: HostKind, text: str, rest: str, endpoint: str) -> RepoSpec:
    parts = [p for p in rest.strip("/").split("/") if p]
    repo_type: RepoType = "model"
    if parts and parts[0] in _TYPE_PREFIXES:
        repo_type = _TYPE_PREFIXES[parts[0]]  # type: ignore[assignment]
        parts = parts[1:]
    if host == "modelscope" and repo_type == "space":
        raise UsageError(f"ModelScope spaces are not supported: {text!r}", hint="use ms://owner/name or ms://datasets/owner/name")
    if len(parts) != 2:
        raise UsageError(f"malformed repository spec {text!r}: expected owner/name", hint=f"e.g. {text.split('://')[0]}://owner/name" if "://" in text else "e.g. owner/name")
    owner, name = parts[0], parts[1].removesuffix(".git")
    for word in (owner, name):
        if not _NAME.match(word) or ".." in word:
            raise UsageError(f"malformed repository spec {text!r}: {word!r} is not a valid owner or name")
    return RepoSpec(host=host, text=text, repo_type=repo_type, repo_id=f"{owner}/{name}", endpoint=endpoint)


def _http_spec(raw: str, env: Mapping[str, str]) -> RepoSpec:
    parts = urlsplit(raw)
    origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    host = (parts.hostname or "").lower()
    path = parts.path.strip("/")
    if origin == hf_endpoint(env) or host in _HF_HOSTS:
        return _hub_spec("huggingface", raw, _trim_web_path(path), origin)
    if origin == ms_endpoint(env) or host in _MS_HOSTS:
        return _hub_spec("modelscope", raw, _trim_web_path(path), origin)
    return RepoSpec(host="git", text=raw, url=raw)


def _trim_web_path(path: str) -> str:
    """Keep ``[type/]owner/name`` from a hub web or git URL (drop .git, /tree/main, /resolve/...)."""
    parts = [p for p in path.split("/") if p]
    keep = 3 if parts and parts[0] in _TYPE_PREFIXES else 2
    return "/".join(parts[:keep])
