"""The sandbox: one process hosting any number of local hubs on 127.0.0.1."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from gitmirror.sandbox.hub import Hub
from gitmirror.sandbox.tls import SandboxCA, make_ca, tls_env

KINDS = ("huggingface", "modelscope", "git")


class Sandbox:
    """Start with ``with Sandbox(root=tmp_path) as sb:`` (or :meth:`start` / :meth:`stop`).

    ``root`` holds every hub's repositories; without it a temporary directory is used and
    removed on stop.

    ``tls=True``: every port of every hub speaks HTTPS only, with a certificate from a local CA
    (made by ``trustme``, imported only then) whose certificate is :attr:`ca_file`; clients
    trust it through :meth:`tls_env`. The CA is kept in ``ca_dir`` (default ``root``) and reused
    from there if present, so that sandboxes in several processes can share one.
    """

    def __init__(self, root: str | Path | None = None, host: str = "127.0.0.1", tls: bool = False,
                 ca_dir: str | Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="gitmirror-sandbox-")) if root is None else Path(root)
        self.host = host
        self.hubs: dict[str, Hub] = {}
        self.started = False
        self._ca: SandboxCA | None = make_ca(Path(ca_dir) if ca_dir else self.root) if tls else None

    @property
    def tls(self) -> bool:
        """True when every port speaks HTTPS only."""
        return self._ca is not None

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate (PEM) that signs every hub's certificate; None without TLS."""
        return None if self._ca is None else self._ca.ca_file

    def tls_env(self) -> dict[str, str]:
        """Environment additions for git, git-lfs, gitmirror and the SDKs to trust this
        sandbox's CA (``GIT_SSL_CAINFO``, ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``); {} without TLS."""
        return {} if self._ca is None else tls_env(self._ca.ca_file)

    def _start_hub(self, hub: Hub) -> None:
        context = None
        if self._ca is not None:
            names = [self.host, "localhost", "127.0.0.1", str(hub.options.get("storage_host") or self.host)]
            context = self._ca.server_context(names)
        hub.start(self.host, context)

    def start(self) -> "Sandbox":
        self.root.mkdir(parents=True, exist_ok=True)
        self.started = True
        for hub in self.hubs.values():
            if not hub.endpoint:
                self._start_hub(hub)
        return self

    def stop(self) -> None:
        # In parallel: each server takes up to a poll interval to notice the shutdown.
        stoppers = [threading.Thread(target=hub.stop, daemon=True) for hub in self.hubs.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(timeout=10)
        self.started = False
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add_hub(self, kind: str, name: str | None = None, **options: Any) -> Hub:
        """Add (and, if the sandbox runs, start) a hub of ``kind``: huggingface, modelscope or git."""
        if kind not in KINDS:
            raise ValueError(f"unknown hub kind {kind!r}; expected one of {KINDS}")
        if name is None:
            count = sum(1 for hub in self.hubs.values() if hub.kind.name == kind)
            name = kind if count == 0 else f"{kind}-{count + 1}"
        if name in self.hubs:
            raise ValueError(f"a hub named {name!r} exists")
        hub = Hub(kind, name, self.root / name, options)
        self.hubs[name] = hub
        if self.started:
            self._start_hub(hub)
        return hub

    def hub(self, name: str) -> Hub:
        return self.hubs[name]
