"""The benchmark's hubs, each a sandbox hub in a process of its own, and the link settings they model.

A :class:`HubProcess` is called as a sandbox ``Hub`` is (``create_repo``, ``refs``, ``counters.reset()``),
through a ``multiprocessing`` manager's proxy. A :class:`Link` names one setting of the link model:
a round-trip time to the source hub and one to the destination hub (seconds), and HTTPS or not.
"""

from __future__ import annotations

import functools
import multiprocessing
import operator
import os
import shutil
import threading
import time
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

from gitmirror.sandbox import Sandbox
from gitmirror.sandbox.state import RepoRecord


@dataclass(frozen=True)
class Link:
    """One link setting: ``src_rtt`` / ``dst_rtt`` seconds to each hub, ``tls`` for HTTPS on every port.

    The sandbox's model (option ``rtt``): every request waits one RTT before its answer, a new
    connection one more, two more with TLS (TCP's handshake, then TLS 1.3's one round trip).
    """

    name: str
    src_rtt: float
    dst_rtt: float
    tls: bool

    @property
    def loopback(self) -> bool:
        return not (self.src_rtt or self.dst_rtt or self.tls)


#: The settings of issue 15: loopback as it is; 50 ms to each hub with HTTPS; a machine near
#: ModelScope pulling from the Hugging Face Hub (150 ms to the source, 30 ms to the destination).
LINKS: dict[str, Link] = {
    "loopback": Link("loopback", 0.0, 0.0, False),
    "50/50": Link("50/50 TLS", 0.050, 0.050, True),
    "150/30": Link("150/30 TLS", 0.150, 0.030, True),
}


def parse_links(text: str) -> list[Link]:
    """``"loopback,50/50,150/30"`` -> the :data:`LINKS` named; also ``"S/D"`` (ms) for any other pair, with TLS."""
    links = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if name in LINKS:
            links.append(LINKS[name])
            continue
        try:
            src, dst = (float(x) / 1000 for x in name.split("/"))
        except ValueError:
            raise SystemExit(f"unknown link setting {name!r}: one of {', '.join(LINKS)} or SRC_MS/DST_MS") from None
        links.append(Link(f"{name} TLS", src, dst, True))
    return links


class _HostedHub:
    """One sandbox hub, living in its own process and reached through a manager's proxy."""

    def __init__(self, kind: str, root: str, tls: bool = False, ca_dir: str | None = None, **options: Any) -> None:
        # options: add_hub's, e.g. rtt=0.05; ca_dir: one CA shared by every hub process (with tls)
        self.sandbox = Sandbox(root=Path(root), tls=tls, ca_dir=ca_dir).start()
        self.hub = self.sandbox.add_hub(kind, **options)
        self._timeline: list[tuple[float, str]] = []
        self._timeline_lock = threading.Lock()
        count = self.hub.counters.request

        def request(route: str, method: str, path: str) -> None:
            # When the request left the client: the sandbox counts it after the link's RTT.
            with self._timeline_lock:
                self._timeline.append((time.time() - float(self.hub.options.get("rtt") or 0), route))
            count(route, method, path)

        self.hub.counters.request = request  # type: ignore[method-assign]

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``hub.<name>(*args, **kwargs)``, or the attribute's value; ``name`` may be dotted."""
        target = operator.attrgetter(name)(self.hub)
        return target(*args, **kwargs) if callable(target) else target

    def timeline(self, reset: bool = False) -> list[tuple[float, str]]:
        """``(wall-clock time the request was sent, route class)`` of every request since the last reset."""
        with self._timeline_lock:
            out = list(self._timeline)
            if reset:
                self._timeline.clear()
        return out

    def copy_repo(self, template: str, repo_ids: list[str]) -> None:
        """Make each of ``repo_ids`` a copy of repository ``template`` (its git directory and LFS
        objects copied on disk, registered with the hub's state): a thousand repositories in
        seconds, where a thousand pushes over a 50 ms link would take minutes."""
        source = self.hub.repo(template)
        for repo_id in repo_ids:
            key = self.hub.key(repo_id)
            path = self.hub.repo_path(key)
            self.hub.state.register_repo(RepoRecord(key=key, path=path, private=source.private))
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source.path, path, symlinks=True)

    def cpu(self) -> float:
        """CPU seconds of this process and of the ``git http-backend`` processes it has run."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> None:
        self.sandbox.stop()


class _HubManager(BaseManager):
    pass


_HubManager.register("HostedHub", _HostedHub)


class _Calls:
    """``hub.counters.reset()`` and the like, for a hub in another process."""

    def __init__(self, hosted: Any, prefix: str) -> None:
        self._hosted, self._prefix = hosted, prefix

    def __getattr__(self, name: str) -> Any:
        return functools.partial(self._hosted.call, f"{self._prefix}.{name}")


class HubProcess:
    """A sandbox hub served from a process of its own; its methods are called as on a ``Hub``.

    Real hubs are other machines. With both hubs in the benchmark's process, they shared one GIL
    with each other and with the sampler: a request to one hub waited on work for the other (or on
    the sampler walking the recipe's LFS store), a cost no real pair of hubs has, and one that
    fell on whichever tool kept both hubs busy at once.

    ``rtt`` (seconds) and ``tls`` set the link model; ``ca_dir`` holds the CA every hub process
    of one benchmark shares (with ``tls``), whose certificate is :attr:`ca_file`.
    """

    def __init__(self, kind: str, root: Path, rtt: float = 0.0, tls: bool = False, ca_dir: Path | None = None) -> None:
        # Forked before the benchmark starts any thread of its own.
        self._manager = _HubManager(ctx=multiprocessing.get_context("fork"))
        self._manager.start()
        self._hosted = self._manager.HostedHub(  # type: ignore[attr-defined]
            kind, str(root), tls=tls, ca_dir=str(ca_dir) if ca_dir else None, rtt=rtt)
        self.rtt, self.tls = rtt, tls
        self.ca_file = (ca_dir / "sandbox-ca.pem") if tls and ca_dir else None
        self.endpoint: str = self._hosted.call("endpoint")
        self.counters = _Calls(self._hosted, "counters")
        self.faults = _Calls(self._hosted, "faults")

    def __getattr__(self, name: str) -> Any:  # create_repo, refs, repo_path, git_url, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._hosted.call, name)

    def timeline(self, reset: bool = False) -> list[tuple[float, str]]:
        return self._hosted.timeline(reset)

    def copy_repo(self, template: str, repo_ids: list[str]) -> None:
        self._hosted.copy_repo(template, repo_ids)

    def cpu(self) -> float:
        return self._hosted.cpu()

    def stop(self) -> None:
        try:
            self._hosted.stop()
        finally:
            self._manager.shutdown()
