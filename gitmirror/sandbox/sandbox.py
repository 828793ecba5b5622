"""The sandbox: one process hosting any number of local hubs on 127.0.0.1."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from gitmirror.sandbox.hub import Hub

KINDS = ("huggingface", "modelscope", "git")


class Sandbox:
    """Start with ``with Sandbox(root=tmp_path) as sb:`` (or :meth:`start` / :meth:`stop`).

    ``root`` holds every hub's repositories; without it a temporary directory is used and
    removed on stop.
    """

    def __init__(self, root: str | Path | None = None, host: str = "127.0.0.1") -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="gitmirror-sandbox-")) if root is None else Path(root)
        self.host = host
        self.hubs: dict[str, Hub] = {}
        self.started = False

    def start(self) -> "Sandbox":
        self.root.mkdir(parents=True, exist_ok=True)
        self.started = True
        for hub in self.hubs.values():
            if not hub.endpoint:
                hub.start(self.host)
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
            hub.start(self.host)
        return hub

    def hub(self, name: str) -> Hub:
        return self.hubs[name]
