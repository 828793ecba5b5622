"""Measuring one run of a tool: wall time, CPU of its process tree, peak RSS and disk, and what the
hubs saw (bytes, requests, new connections, and when each request was sent)."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split(b" ", 2)[1])
        children.setdefault(ppid, []).append(int(name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return total


def du(path: Path) -> int:
    """Bytes allocated under ``path`` (files and directories, symlinks not followed)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


class Sampler(threading.Thread):
    def __init__(self, pid: int, dirs: list[Path], interval: float = 0.05, disk_every: int = 4) -> None:
        super().__init__(daemon=True)
        self.pid, self.dirs, self.interval, self.disk_every = pid, dirs, interval, disk_every
        self.peak_rss = 0
        self.peak_disk = 0
        self._halt = threading.Event()

    def sample(self, disk: bool) -> None:
        self.peak_rss = max(self.peak_rss, _tree_rss(self.pid))
        if disk:
            self.peak_disk = max(self.peak_disk, sum(du(d) for d in self.dirs))

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            self.sample(n % self.disk_every == 0)
            n += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.peak_disk = max(self.peak_disk, sum(du(d) for d in self.dirs))


@dataclass
class Run:
    """One measured run of a tool (or the limit (c) of a step); sizes in bytes, times in seconds."""

    workload: str
    step: str  # first | incremental | no-op
    tool: str  # recipe | gitmirror | limit
    link: str = "loopback"  # the link setting's name (bench_hubs.Link.name)
    seconds: float = 0.0
    lfs_down: int = 0
    lfs_up: int = 0
    git_down: int = 0
    git_up: int = 0
    requests: int = 0
    requests_by_route: dict[str, int] = field(default_factory=dict)
    peak_rss: int = 0
    peak_disk: int = 0
    pack: int = 0  # git objects of the tool's working repository at the end
    cpu: float = 0.0  # user + system seconds of the tool's whole process tree
    hub_cpu: float = 0.0  # CPU seconds of the two hubs' processes meanwhile
    load: float = 0.0  # 1-minute load average at the start (other work on the machine)
    ok: bool = True
    note: str = ""
    trial_seconds: list[float] = field(default_factory=list)  # every trial's wall time (first mirrors)
    connections: dict[str, int] = field(default_factory=dict)  # "src"/"dst" -> new connections the hub accepted
    # "src:lfs-download" -> [first, last] request sent, seconds after the tool started (hub timelines)
    phases: dict[str, list[float]] = field(default_factory=dict)
    limit_parts: dict[str, float] = field(default_factory=dict)  # (c) only: its terms, see bench_limit

    @property
    def wall(self) -> float:
        """The wall time reported: the median over the trials when there were several."""
        return statistics.median(self.trial_seconds) if self.trial_seconds else self.seconds


def _sum_routes(snap, names: tuple[str, ...], side: str) -> int:
    values = snap.bytes_out if side == "out" else snap.bytes_in
    return sum(values.get(n, 0) for n in names)


def side_requests(run: Run, side: str) -> int:
    """Requests one hub (``"src"`` or ``"dst"``) answered during ``run``."""
    return sum(n for route, n in run.requests_by_route.items() if route.startswith(side + ":"))


def _phases(timelines: dict[str, list[tuple[float, str]]], wall_start: float) -> dict[str, list[float]]:
    """When each route class of each hub was first and last asked, in seconds after ``wall_start``."""
    phases: dict[str, list[float]] = {}
    for side, timeline in timelines.items():
        for sent, route in timeline:
            at = round(sent - wall_start, 4)
            span = phases.setdefault(f"{side}:{route}", [at, at])
            span[0], span[1] = min(span[0], at), max(span[1], at)
    return phases


def measure(cmd: list[str], env: dict[str, str], dirs: list[Path], src_hub, dst_hub, run: Run,
            cwd: Path | None = None, log: Path | None = None) -> Run:
    """Run ``cmd`` to its end and fill ``run`` with what it cost and what the hubs saw.

    ``dirs``: the tool's own directories (peak disk). A non-zero exit marks the run failed, with
    the log's last lines as its note."""
    for hub in (src_hub, dst_hub):
        hub.counters.reset()
        hub.timeline(reset=True)
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb") if log else subprocess.DEVNULL
    # Write back what earlier runs left dirty (the recipe leaves its whole LFS store): otherwise
    # the kernel flushes it during the next run, which is then charged for another's disk work.
    os.sync()
    run.load = os.getloadavg()[0]
    hub_cpu = src_hub.cpu() + dst_hub.cpu()
    started, wall_start = time.monotonic(), time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    sampler = Sampler(proc.pid, dirs)
    sampler.start()
    # wait4 gives the CPU time of the tool and of every descendant it waited for: a measure that,
    # unlike wall time, does not depend on what else the machine is doing.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    run.seconds = time.monotonic() - started
    run.cpu = usage.ru_utime + usage.ru_stime
    sampler.stop()
    run.hub_cpu = src_hub.cpu() + dst_hub.cpu() - hub_cpu
    if log:
        out.close()  # type: ignore[union-attr]
    src, dst = src_hub.counters.snapshot(), dst_hub.counters.snapshot()
    run.lfs_down = _sum_routes(src, ("lfs-download",), "out")
    run.lfs_up = _sum_routes(dst, ("lfs-upload", "lfs-multipart-part"), "in")
    run.git_down = _sum_routes(src, ("git-info-refs", "git-upload-pack"), "out")
    run.git_up = _sum_routes(dst, ("git-receive-pack",), "in")
    by_route: dict[str, int] = {}
    for label, snap in (("src", src), ("dst", dst)):
        for route, methods in snap.requests.items():
            by_route[f"{label}:{route}"] = sum(methods.values())
    run.requests_by_route = by_route
    run.requests = sum(by_route.values())
    run.connections = {label: sum(n for name, n in snap.features.items() if name.startswith("connection-"))
                       for label, snap in (("src", src), ("dst", dst))}
    run.phases = _phases({"src": src_hub.timeline(reset=True), "dst": dst_hub.timeline(reset=True)}, wall_start)
    run.peak_rss, run.peak_disk = sampler.peak_rss, sampler.peak_disk
    if code != 0:
        run.ok = False
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log else []
        run.note = f"exit {code}: " + " / ".join(tail)
    return run
