#!/usr/bin/env python3
"""Benchmark: ``gitmirror clone-push`` against the documented git + git-lfs recipe, on the sandbox hubs.

    .venv/bin/python scripts/bench.py                      # full run (about 1.5 GB + 2 GB objects)
    .venv/bin/python scripts/bench.py --quick              # the same steps with tiny sizes (seconds)
    .venv/bin/python scripts/bench.py --write docs/benchmarks.md --json bench.json

A Hugging Face-like source hub and a ModelScope-like destination hub each run in a process of
their own, as real hubs are other machines; a bandwidth cap models the link: ``--down`` MB/s from the source hub and ``--up`` MB/s to the
destination hub, each shared by every connection to that hub (git and LFS storage traffic).
Each tool runs as its own process tree:

* (a) the recipe: ``git clone --bare``, ``git lfs fetch --all``, ``git lfs push --all DST``, then
  ``git push DST refs/heads/* refs/tags/*`` (LFS before refs: the destination refuses refs whose
  objects are missing); later runs ``git fetch`` into the same bare clone and repeat the rest.
  Credentials reach git and git-lfs through ``GIT_CONFIG_COUNT``/``KEY``/``VALUE``
  (``http.<origin>/.extraHeader``), never argv.
* (b) ``gitmirror clone-push hf://... ms://...`` (the installed CLI, in a subprocess).
* (c) the physical limit: LFS bytes of the step / min(down cap, up cap).

Workloads: ``model`` (about 1.5 GB of LFS objects in 8 files over 20 commits, some replaced),
``many`` (2,000 small LFS objects); each as first mirror, incremental (one new commit) and
no-op. Then ``gitmirror --help`` wall time and gitmirror's peak RSS while moving one 2 GiB object.

Measured per run: wall time, LFS body bytes per direction and HTTP requests (the hubs' counters),
peak RSS of the tool's process tree (summed over its processes, sampled from /proc every 50 ms),
peak disk used in the tool's own directories (clone, cache, HOME, TMPDIR; not the hubs' storage).
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import multiprocessing
import operator
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gitmirror.sandbox import Sandbox  # noqa: E402
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder  # noqa: E402

MB = 1_000_000
GiB = 1 << 30
POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# ------------------------------------------------------------------------------------------------
# The hubs, each in a process of its own


class _HostedHub:
    """One sandbox hub, living in its own process and reached through a manager's proxy."""

    def __init__(self, kind: str, root: str, tls: bool = False, ca_dir: str | None = None, **options: Any) -> None:
        # options: add_hub's, e.g. rtt=0.05; ca_dir: one CA shared by every hub process (with tls)
        self.sandbox = Sandbox(root=Path(root), tls=tls, ca_dir=ca_dir).start()
        self.hub = self.sandbox.add_hub(kind, **options)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``hub.<name>(*args, **kwargs)``, or the attribute's value; ``name`` may be dotted."""
        target = operator.attrgetter(name)(self.hub)
        return target(*args, **kwargs) if callable(target) else target

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
    """

    def __init__(self, kind: str, root: Path) -> None:
        # Forked before the benchmark starts any thread of its own.
        self._manager = _HubManager(ctx=multiprocessing.get_context("fork"))
        self._manager.start()
        self._hosted = self._manager.HostedHub(kind, str(root))  # type: ignore[attr-defined]
        self.endpoint: str = self._hosted.call("endpoint")
        self.counters = _Calls(self._hosted, "counters")
        self.faults = _Calls(self._hosted, "faults")

    def __getattr__(self, name: str) -> Any:  # create_repo, refs, repo_path, git_url, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._hosted.call, name)

    def cpu(self) -> float:
        return self._hosted.cpu()

    def stop(self) -> None:
        try:
            self._hosted.stop()
        finally:
            self._manager.shutdown()


# ------------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class Sizes:
    scale: float  # multiplies the model's object sizes
    many_count: int
    many_new: int
    many_size: tuple[int, int]  # min, max bytes of one small object
    model_new: int  # bytes of the object the incremental commit adds
    big: int  # the single-object RSS check

    def model(self, mb: int) -> int:
        return max(1024, int(mb * MB * self.scale))


FULL = Sizes(scale=1.0, many_count=2000, many_new=20, many_size=(1024, 32 * 1024), model_new=50 * MB, big=2 * GiB)
QUICK = Sizes(scale=0.004, many_count=60, many_new=3, many_size=(512, 4096), model_new=200_000, big=16 * MB)


# ------------------------------------------------------------------------------------------------
# Seeding: objects are written straight into the source hub's store, never held in memory whole


class SourceRepo:
    def __init__(self, hub, repo_id: str, seed: str) -> None:
        self.hub, self.repo_id = hub, repo_id
        hub.create_repo(repo_id, initial_commit=False)
        self.store = hub.repo_path(repo_id) / "lfs" / "objects"
        self.builder = RepoBuilder(default_branch="main")
        self.rng = random.Random(seed)
        self.objects: dict[str, int] = {}  # oid -> size, everything the history refers to
        self.refs: dict[str, str] = {}

    def lfs(self, size: int) -> bytes:
        """A new random object of ``size`` bytes in the store; returns its pointer blob."""
        self.store.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.store, prefix=".seed-")
        digest = hashlib.sha256()
        left = size
        with os.fdopen(fd, "wb") as out:
            while left > 0:
                piece = os.urandom(min(left, 8 * MB))
                digest.update(piece)
                out.write(piece)
                left -= len(piece)
        oid = digest.hexdigest()
        target = self.store / oid[:2] / oid[2:4] / oid
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        self.objects[oid] = size
        return POINTER.format(oid=oid, size=size).encode()

    def push(self) -> dict[str, str]:
        self.refs = self.builder.push_to_hub(self.hub, self.repo_id, create=False)  # made in __init__
        return self.refs


def seed_model(src: SourceRepo, sizes: Sizes) -> None:
    b, lfs, m = src.builder, src.lfs, sizes.model
    readme = lambda n: f"---\nlicense: apache-2.0\n---\n# Model\n\nRevision {n}.\n"  # noqa: E731
    config = lambda n: json.dumps({"hidden_size": 4096, "num_layers": 32, "rev": n}) + "\n"  # noqa: E731
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": readme(1)}, message="initial commit")
    b.commit({"config.json": config(1), "generation_config.json": '{"do_sample": true}\n'}, message="config")
    b.commit({"model-00001-of-00003.safetensors": lfs(m(300))}, message="shard 1")
    b.commit({"model-00002-of-00003.safetensors": lfs(m(300))}, message="shard 2")
    b.commit({"model-00003-of-00003.safetensors": lfs(m(200)), "model.safetensors.index.json": '{"weight_map": {}}\n'},
             message="shard 3 and index")
    b.commit({"tokenizer.json": json.dumps({"vocab": {f"t{i}": i for i in range(2000)}}) + "\n",
              "tokenizer.model": lfs(m(4))}, message="tokenizer")
    b.commit({"README.md": readme(2)}, message="README")
    b.tag("v1.0", message="First release")
    b.commit({"config.json": config(2)}, message="config tweak")
    b.commit({"model-00003-of-00003.safetensors": lfs(m(200))}, message="retrain shard 3")
    b.commit({"README.md": readme(3)}, message="README")
    b.commit({"onnx/model.onnx": lfs(m(180))}, message="ONNX export")
    b.commit({"README.md": readme(4)}, message="README")
    b.commit({"config.json": config(3)}, message="config tweak")
    b.commit({"model-00001-of-00003.safetensors": lfs(m(300))}, message="retrain shard 1")
    b.tag("v1.1")
    b.commit({"README.md": readme(5)}, message="README")
    b.commit({"training_args.bin": lfs(m(6))}, message="training args")
    b.commit(delete=["onnx/model.onnx"], message="drop ONNX")
    b.commit({"README.md": readme(6)}, message="README")
    b.commit({"config.json": config(4)}, message="config tweak")
    b.commit({"README.md": readme(7)}, message="README")
    b.tag("v2.0", message="Second release")
    assert len(b.commits) == 20


def grow_model(src: SourceRepo, sizes: Sizes) -> None:
    src.builder.commit({"adapter_model.safetensors": src.lfs(sizes.model_new), "README.md": "# Model\n\nWith an adapter.\n"},
                       message="add adapter")


def seed_many(src: SourceRepo, sizes: Sizes) -> None:
    b = src.builder
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# Many small files\n"}, message="initial commit")
    per_commit = max(1, sizes.many_count // 4)
    made = 0
    while made < sizes.many_count:
        files = {}
        for _ in range(min(per_commit, sizes.many_count - made)):
            files[f"data/part-{made:05d}.bin"] = src.lfs(src.rng.randint(*sizes.many_size))
            made += 1
        b.commit(files, message=f"add {len(files)} files")


def grow_many(src: SourceRepo, sizes: Sizes) -> None:
    start = sizes.many_count
    files = {f"data/part-{start + i:05d}.bin": src.lfs(src.rng.randint(*sizes.many_size)) for i in range(sizes.many_new)}
    src.builder.commit(files, message=f"add {len(files)} files")


def seed_big(src: SourceRepo, sizes: Sizes) -> None:
    src.builder.commit({".gitattributes": LFS_ATTRIBUTES, "big.bin": src.lfs(sizes.big)}, message="one big object")


# ------------------------------------------------------------------------------------------------
# Sampling a process tree's RSS and some directories' disk use


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


# ------------------------------------------------------------------------------------------------
# Running one tool


@dataclass
class Run:
    workload: str
    step: str  # first | incremental | no-op
    tool: str  # recipe | gitmirror | limit
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

    @property
    def wall(self) -> float:
        """The wall time reported: the median over the trials when there were several."""
        return statistics.median(self.trial_seconds) if self.trial_seconds else self.seconds


def _sum_routes(snap, names: tuple[str, ...], side: str) -> int:
    values = snap.bytes_out if side == "out" else snap.bytes_in
    return sum(values.get(n, 0) for n in names)


def measure(cmd: list[str], env: dict[str, str], dirs: list[Path], src_hub, dst_hub, run: Run,
            cwd: Path | None = None, log: Path | None = None) -> Run:
    for hub in (src_hub, dst_hub):
        hub.counters.reset()
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb") if log else subprocess.DEVNULL
    # Write back what earlier runs left dirty (the recipe leaves its whole LFS store): otherwise
    # the kernel flushes it during the next run, which is then charged for another's disk work.
    os.sync()
    run.load = os.getloadavg()[0]
    hub_cpu = src_hub.cpu() + dst_hub.cpu()
    started = time.monotonic()
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
    run.peak_rss, run.peak_disk = sampler.peak_rss, sampler.peak_disk
    if code != 0:
        run.ok = False
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log else []
        run.note = f"exit {code}: " + " / ".join(tail)
    return run


def basic_header(user: str, token: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def git_auth_env(base: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """``http.<origin>/.extraHeader`` per origin, through the environment (so git-lfs gets them too)."""
    env = dict(base)
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (url, header) in enumerate(pairs):
        parts = urlsplit(url)
        env[f"GIT_CONFIG_KEY_{i}"] = f"http.{parts.scheme}://{parts.netloc}/.extraHeader"
        env[f"GIT_CONFIG_VALUE_{i}"] = header
    return env


def base_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("GIT_", "HF_", "HUGGING", "MODELSCOPE", "GITMIRROR"))
            and k not in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PYTHONDONTWRITEBYTECODE")}
    home.mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    return {**keep, "HOME": str(home), "TMPDIR": str(home / "tmp"), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
            "LANG": "C.UTF-8"}


class Recipe:
    """The documented recipe, as one shell script per run (so the whole process tree is sampled)."""

    def __init__(self, work: Path, src_url: str, dst_url: str, env: dict[str, str]) -> None:
        self.work, self.src_url, self.dst_url, self.env = work, src_url, dst_url, env
        self.repo = work / "repo.git"

    def script(self) -> str:
        q = shlex.quote
        repo, src, dst = q(str(self.repo)), q(self.src_url), q(self.dst_url)
        if not self.repo.exists():
            get = f"git clone --bare --quiet {src} {repo}\ncd {repo}\n"
        else:
            get = f"cd {repo}\ngit fetch --quiet origin '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'\n"
        return ("set -e\n" + get +
                "git lfs fetch --all origin\n"
                f"git lfs push --all {dst}\n"
                f"git push --quiet {dst} 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*'\n")

    def command(self) -> list[str]:
        return ["bash", "-c", self.script()]

    def pack(self) -> int:
        return du(self.repo / "objects") if self.repo.exists() else 0


def gitmirror_exe() -> list[str]:
    exe = Path(sys.executable).with_name("gitmirror")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gitmirror"]


# ------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Bench:
    sizes: Sizes
    down: int
    up: int
    work: Path
    workloads: tuple[str, ...]
    recipe: bool = True
    big: bool = True
    steps: tuple[str, ...] = ("first", "incremental", "no-op")
    help_runs: int = 7
    profile: Path | None = None  # py-spy raw profiles of each gitmirror run go here
    hub_root: Path | None = None  # where the hubs keep repositories and objects (default: under work)
    trials: int = 3  # first mirrors of each tool per workload; the median wall time is reported
    logs: Path | None = None
    runs: list[Run] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def gitmirror(self, name: str, *args: str) -> list[str]:
        """The gitmirror command line, under py-spy (all threads, idle time too) with ``--profile``."""
        cmd = [*gitmirror_exe(), *args]
        if self.profile is None:
            return cmd
        self.profile.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return [spy, "record", "--idle", "--threads", "--subprocesses", "-r", "100", "-f", "raw",
                "-o", str(self.profile / f"{name}.raw"), "--", *cmd]

    def logfile(self, *parts: str) -> Path | None:
        return self.logs / ("-".join(parts) + ".log") if self.logs else None

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def run(self) -> None:
        # As an install does: the tools start from compiled bytecode, not from source.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "gitmirror")], check=False,
                       stdout=subprocess.DEVNULL)
        root = (self.hub_root or self.work) / "sandbox"
        hf = HubProcess("huggingface", root / "huggingface")
        ms = HubProcess("modelscope", root / "modelscope")
        try:
            for hub in (hf, ms):
                hub.add_user("bench", orgs=("org",))
            self.hf_token, self.ms_token = hf.issue_token("bench", scope="write"), ms.issue_token("bench", scope="write")
            self.ms_git = ms.git_token_for(self.ms_token)
            hf.faults.bandwidth(down=self.down)
            ms.faults.bandwidth(up=self.up)
            self.hf, self.ms = hf, ms
            seeds = {"model": (seed_model, grow_model), "many": (seed_many, grow_many)}
            for name in self.workloads:
                self.workload(name, *seeds[name])
            if self.big:
                self.big_object()
        finally:
            hf.stop()
            ms.stop()
        self.help_time(self.help_runs)

    def envs(self, tag: str) -> tuple[dict[str, str], list[Path], dict[str, str], list[Path], Path]:
        work = self.work / tag
        rhome, ghome = work / "recipe-home", work / "gitmirror-home"
        renv = git_auth_env(base_env(rhome), [(self.hf.endpoint, basic_header("bench", self.hf_token)),
                                              (self.ms.endpoint, basic_header("oauth2", self.ms_git))])
        genv = {**base_env(ghome), "HF_ENDPOINT": self.hf.endpoint, "MODELSCOPE_ENDPOINT": self.ms.endpoint,
                "HF_TOKEN": self.hf_token, "MODELSCOPE_API_TOKEN": self.ms_token,
                "GITMIRROR_CACHE": str(ghome / "cache"), "HF_HOME": str(ghome / "hf"),
                "MODELSCOPE_HOME": str(ghome / "modelscope"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        return renv, [rhome, work / "recipe-work"], genv, [ghome], ghome / "cache"

    def workload(self, name: str, seed, grow) -> None:
        self.say(f"== {name}: seeding")
        src = SourceRepo(self.hf, f"org/{name}", name)
        seed(src, self.sizes)
        src.push()
        renv, rdirs, genv, gdirs, cache = self.envs(name)
        (self.work / name / "recipe-work").mkdir(parents=True, exist_ok=True)
        recipe = Recipe(self.work / name / "recipe-work", self.hf.git_url(f"org/{name}"),
                        self.ms.git_url(f"org/{name}-recipe"), renv)
        self.ms.create_repo(f"org/{name}-recipe", initial_commit=False)  # the recipe cannot create one
        known: set[str] = set()
        for step in self.steps:
            if step == "incremental":
                grow(src, self.sizes)
                src.push()
            new_bytes = sum(size for oid, size in src.objects.items() if oid not in known)
            known |= set(src.objects)
            trials = self.first_trials(name, src) if step == "first" else {}
            if self.recipe:
                self.say(f"   {name} {step}: recipe")
                r = measure(recipe.command(), renv, rdirs, self.hf, self.ms, Run(name, step, "recipe"), log=self.logfile(name, step, "recipe"))
                r.pack = recipe.pack()
                self.check(r, f"org/{name}-recipe", src, rename=False)
                self.add_trials(r, trials.get("recipe", []))
                self.runs.append(r)
            self.say(f"   {name} {step}: gitmirror")
            cmd = self.gitmirror(f"{name}-{step}", "clone-push", "--quiet", f"hf://org/{name}", f"ms://org/{name}")
            g = measure(cmd, genv, gdirs, self.hf, self.ms, Run(name, step, "gitmirror"), log=self.logfile(name, step, "gitmirror"))
            g.pack = sum(du(p / "objects") for p in (cache / "repos").glob("*.git"))
            self.check(g, f"org/{name}", src, rename=True)
            self.add_trials(g, trials.get("gitmirror", []))
            self.runs.append(g)
            limit = Run(name, step, "limit", seconds=new_bytes / min(self.down, self.up), lfs_down=new_bytes, lfs_up=new_bytes)
            self.runs.append(limit)

    def first_trials(self, name: str, src: SourceRepo) -> dict[str, list[Run]]:
        """The extra first mirrors (``trials - 1`` per tool), each into a fresh destination with
        fresh working directories, alternating the tools; their storage is freed after each."""
        done: dict[str, list[Run]] = {"recipe": [], "gitmirror": []}
        for k in range(1, self.trials):
            tag = f"{name}-trial{k}"
            renv, rdirs, genv, gdirs, _ = self.envs(tag)
            if self.recipe:
                self.say(f"   {name} first, trial {k}: recipe")
                dst = f"org/{name}-recipe-trial{k}"
                self.ms.create_repo(dst, initial_commit=False)
                (self.work / tag / "recipe-work").mkdir(parents=True, exist_ok=True)
                recipe = Recipe(self.work / tag / "recipe-work", self.hf.git_url(f"org/{name}"), self.ms.git_url(dst), renv)
                r = measure(recipe.command(), renv, rdirs, self.hf, self.ms, Run(name, "first", "recipe"))
                self.check(r, dst, src, rename=False)
                done["recipe"].append(r)
                shutil.rmtree(self.ms.repo_path(dst) / "lfs" / "objects", ignore_errors=True)
            self.say(f"   {name} first, trial {k}: gitmirror")
            dst = f"org/{name}-trial{k}"
            cmd = self.gitmirror(f"{name}-first-trial{k}", "clone-push", "--quiet", f"hf://org/{name}", f"ms://{dst}")
            g = measure(cmd, genv, gdirs, self.hf, self.ms, Run(name, "first", "gitmirror"))
            self.check(g, dst, src, rename=True)
            done["gitmirror"].append(g)
            shutil.rmtree(self.ms.repo_path(dst) / "lfs" / "objects", ignore_errors=True)
            shutil.rmtree(self.work / tag, ignore_errors=True)
        return done

    @staticmethod
    def add_trials(run: Run, trials: list[Run]) -> None:
        if not trials:
            return
        run.trial_seconds = [t.seconds for t in trials] + [run.seconds]
        failed = [t for t in trials if not t.ok]
        if failed and run.ok:
            run.ok, run.note = False, f"trial failed: {failed[0].note}"

    def check(self, run: Run, dst_repo: str, src: SourceRepo, rename: bool) -> None:
        """The destination holds the source's refs and every LFS object (else the run is marked failed)."""
        if not run.ok:
            return
        want = dict(src.refs)
        if rename:
            want["refs/heads/master"] = want.pop("refs/heads/main")
        try:
            have = self.ms.refs(dst_repo)
        except KeyError:
            have = {}
        missing = set(src.objects) - self.ms.lfs_objects(dst_repo)
        if have != want or missing:
            run.ok = False
            run.note = f"destination differs: refs {'ok' if have == want else 'differ'}, {len(missing)} LFS objects missing"

    def big_object(self) -> None:
        self.say("== big: seeding")
        src = SourceRepo(self.hf, "org/big", "big")
        seed_big(src, self.sizes)
        src.push()
        _, _, genv, gdirs, cache = self.envs("big")
        self.say("   big first: gitmirror")
        cmd = self.gitmirror("big-first", "clone-push", "--quiet", "hf://org/big", "ms://org/big")
        g = measure(cmd, genv, gdirs, self.hf, self.ms, Run("big", "first", "gitmirror"), log=self.logfile("big", "first", "gitmirror"))
        g.pack = sum(du(p / "objects") for p in (cache / "repos").glob("*.git"))
        self.check(g, "org/big", src, rename=True)
        self.runs.append(g)
        self.runs.append(Run("big", "first", "limit", seconds=self.sizes.big / min(self.down, self.up),
                             lfs_down=self.sizes.big, lfs_up=self.sizes.big))

    def help_time(self, n: int) -> None:
        env = base_env(self.work / "help-home")
        times = []
        for _ in range(n):
            started = time.monotonic()
            subprocess.run([*gitmirror_exe(), "--help"], env=env, stdout=subprocess.DEVNULL, check=True)
            times.append(time.monotonic() - started)
        self.extra["help_seconds"] = {"min": min(times), "median": statistics.median(times), "max": max(times)}

    # -- reporting -------------------------------------------------------------------------------

    def find(self, workload: str, step: str, tool: str) -> Run | None:
        return next((r for r in self.runs if (r.workload, r.step, r.tool) == (workload, step, tool)), None)

    def table(self) -> str:
        mb = lambda n: f"{n / MB:,.1f}"  # noqa: E731
        rows = ["| workload | step | tool | wall s | b/a | b/c | LFS down MB | LFS up MB | HTTP requests | peak RSS MB "
                "| peak disk MB | git pack MB | tool CPU s | hubs CPU s | load |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in self.runs:
            a, c = self.find(r.workload, r.step, "recipe"), self.find(r.workload, r.step, "limit")
            ba = bc = ""
            if r.tool == "gitmirror":
                ba = f"{r.wall / a.wall:.2f}" if a and a.wall else "-"
                bc = f"{r.wall / c.wall:.2f}" if c and c.wall else "-"
            tool = {"recipe": "(a) git + git-lfs", "gitmirror": "(b) gitmirror", "limit": "(c) limit"}[r.tool]
            if r.tool == "limit":
                rows.append(f"| {r.workload} | {r.step} | {tool} | {r.seconds:.2f} | | | {mb(r.lfs_down)} | {mb(r.lfs_up)} "
                            f"| | | | | | | |")
                continue
            wall = f"{r.wall:.2f}" + ("" if r.ok else f" FAILED ({r.note})")
            rows.append(f"| {r.workload} | {r.step} | {tool} | {wall} | {ba} | {bc} | {mb(r.lfs_down)} | {mb(r.lfs_up)} "
                        f"| {r.requests} | {mb(r.peak_rss)} | {mb(r.peak_disk)} | {mb(r.pack)} | {r.cpu:.2f} | {r.hub_cpu:.2f} "
                        f"| {r.load:.1f} |")
        return "\n".join(rows)

    def trial_lines(self) -> str:
        lines = []
        for r in self.runs:
            if r.trial_seconds:
                times = ", ".join(f"{t:.2f}" for t in r.trial_seconds)
                lines.append(f"- {r.workload}, {r.tool}: {times} (median {r.wall:.2f})")
        return "\n".join(lines)

    def noop_requests(self) -> str:
        lines = []
        for r in self.runs:
            if r.step == "no-op" and r.tool != "limit":
                parts = ", ".join(f"{k} {v}" for k, v in sorted(r.requests_by_route.items()))
                lines.append(f"- {r.workload}, {r.tool}: {parts}")
        return "\n".join(lines)

    def hub_storage_note(self) -> str:
        return "in memory (tmpfs)" if self.hub_root is not None and is_memory_fs(self.hub_root) else "on disk"

    def markdown(self, command: str) -> str:
        h = self.extra.get("help_seconds", {})
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
        lines = [
            BEGIN,
            f"Command: `{command}`",
            "",
            f"Machine: {os.cpu_count()} cores, {mem:.0f} GiB memory, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {_version(['git', '--version'])}, {_version(['git', 'lfs', 'version'])}. "
            f"Caps: {self.down / MB:g} MB/s down from the source hub, {self.up / MB:g} MB/s up to the destination hub "
            f"(1 MB = 10^6 bytes). Hubs' storage: {self.hub_storage_note()}. "
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            self.table(),
            "",
            *([f"First mirrors: the wall time shown (and b/a, b/c) is the median of {self.trials} trials per tool, "
               "each into a fresh destination with fresh working directories, the tools alternating; "
               "the other columns are of the last trial. Every trial's wall time in seconds:", "",
               self.trial_lines(), ""] if self.trials > 1 else []),
            f"`gitmirror --help`: min {h.get('min', 0):.3f} s, median {h.get('median', 0):.3f} s over {self.help_runs} runs.",
            "",
            "HTTP requests of the no-op runs, by hub and route class:",
            "",
            self.noop_requests(),
            END,
        ]
        return "\n".join(lines)


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().split(" (")[0]
    except (OSError, subprocess.CalledProcessError):
        return f"{cmd[0]} ?"


MEMORY_FS = Path("/dev/shm")


def is_memory_fs(path: Path) -> bool:
    return MEMORY_FS in (path, *path.parents)


def memory_hub_root(sizes: Sizes) -> Path | None:
    """A directory in memory for the hubs' storage, when the machine has one with room enough.

    The hubs stand in for other machines: their file-system work (thousands of objects written,
    renamed and stat-ed) would otherwise compete with the tools for this machine's disk and CPU,
    and the ext4 inode allocator alone cost more CPU than either tool's client for 2,000 small
    objects. Both tools gain; the tools' own working directories stay on disk.
    """
    if not MEMORY_FS.is_dir():
        return None
    # the source, two destinations of the model workload and the big object, twice
    needed = 4 * sizes.scale * 1_600 * MB + 2 * sizes.big + 256 * MB
    stats = os.statvfs(MEMORY_FS)
    if stats.f_bavail * stats.f_frsize < needed:
        return None
    return Path(tempfile.mkdtemp(prefix="gitmirror-bench-hubs-", dir=MEMORY_FS))


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (between the bench markers), keeping the prose around it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every step in seconds")
    parser.add_argument("--down", type=float, default=100.0, help="MB/s from the source hub (default 100)")
    parser.add_argument("--up", type=float, default=100.0, help="MB/s to the destination hub (default 100)")
    parser.add_argument("--workloads", default="model,many", help="comma-separated: model, many (default both)")
    parser.add_argument("--no-recipe", action="store_true", help="skip (a), the git + git-lfs recipe")
    parser.add_argument("--no-big", action="store_true", help="skip the 2 GiB single-object run")
    parser.add_argument("--steps", default="first,incremental,no-op", help="comma-separated steps to run (default all)")
    parser.add_argument("--help-runs", type=int, default=7, help="how often to time `gitmirror --help` (default 7)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory, removed)")
    parser.add_argument("--write", type=Path, help="put the results into this markdown file (between bench markers)")
    parser.add_argument("--json", type=Path, help="write the raw measurements here")
    parser.add_argument("--trials", type=int, default=None,
                        help="first mirrors per tool and workload, the median reported (default 3; 1 with --quick)")
    parser.add_argument("--hub-storage", choices=("memory", "disk"), default="memory",
                        help="keep the hubs' repositories and objects in memory (/dev/shm, when it has room; "
                             "the default) or on disk under the work directory")
    parser.add_argument("--profile", type=Path,
                        help="run gitmirror under py-spy (pip install gitmirror[bench]) and keep raw profiles here; "
                             "times and RSS of such a run include the profiler")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="gitmirror-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if args.quick else FULL
    hub_root = memory_hub_root(sizes) if args.hub_storage == "memory" else None
    bench = Bench(sizes=sizes, down=int(args.down * MB), up=int(args.up * MB), work=work,
                  workloads=tuple(w for w in args.workloads.split(",") if w), recipe=not args.no_recipe,
                  big=not args.no_big, logs=work / "logs", help_runs=max(1, args.help_runs),
                  steps=tuple(s for s in args.steps.split(",") if s), profile=args.profile, hub_root=hub_root,
                  trials=max(1, args.trials if args.trials is not None else (1 if args.quick else 3)))
    try:
        bench.run()
    finally:
        if hub_root is not None:
            shutil.rmtree(hub_root, ignore_errors=True)  # memory, not disk: never keep it
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    # Where raw data was kept does not change the numbers (and local paths do not belong in the doc).
    shown, skip = ["scripts/bench.py"], False
    for arg in (argv if argv is not None else sys.argv[1:]):
        if skip:
            skip = False
        elif arg in ("--workdir", "--json", "--profile"):
            skip = True
        elif not arg.startswith(("--workdir=", "--json=", "--profile=")):
            shown.append(arg)
    block = bench.markdown(" ".join(shlex.quote(a) for a in shown))
    print(block)
    if args.write:
        write_doc(args.write, block)
    if args.json:
        args.json.write_text(json.dumps({"runs": [asdict(r) for r in bench.runs], **bench.extra,
                                         "sizes": asdict(bench.sizes), "down": bench.down, "up": bench.up}, indent=1))
    return 0 if all(r.ok for r in bench.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
