#!/usr/bin/env python3
"""Benchmark: ``gitmirror clone-push`` against the documented git + git-lfs recipe, on the sandbox hubs.

    .venv/bin/python scripts/bench.py                      # full run (about 1.5 GB + 2 GB objects)
    .venv/bin/python scripts/bench.py --quick              # the same steps with tiny sizes (seconds)
    .venv/bin/python scripts/bench.py --write docs/benchmarks.md --json bench.json
    .venv/bin/python scripts/bench.py --links 50/50 --workloads many --steps first --trials 1

A Hugging Face-like source hub and a ModelScope-like destination hub each run in a process of
their own, as real hubs are other machines; a bandwidth cap models the link: ``--down`` MB/s from the source hub and ``--up`` MB/s to the
destination hub, each shared by every connection to that hub (git and LFS storage traffic).
Each workload runs at every link setting of ``--links`` (bench_hubs.LINKS: loopback; 50 ms to
each hub with HTTPS; 150 ms to the source and 30 ms to the destination with HTTPS).
Each tool runs as its own process tree:

* (a) the recipe: ``git clone --bare``, ``git lfs fetch --all``, ``git lfs push --all DST``, then
  ``git push DST refs/heads/* refs/tags/*`` (LFS before refs: the destination refuses refs whose
  objects are missing); later runs ``git fetch`` into the same bare clone and repeat the rest.
  Credentials reach git and git-lfs through ``GIT_CONFIG_COUNT``/``KEY``/``VALUE``
  (``http.<origin>/.extraHeader``), never argv.
* (b) ``gitmirror clone-push hf://... ms://...`` (the installed CLI, in a subprocess).
* (c) the limit: LFS bytes of the step / min(down cap, up cap), plus the round trips no client can
  avoid at the hubs' concurrency (bench_limit.limit).

Workloads: ``model`` (about 1.5 GB of LFS objects in 8 files over 20 commits, some replaced),
``many`` (2,000 small LFS objects); each as first mirror, incremental (one new commit) and
no-op; ``thousand``, a no-op ``gitmirror sync`` over 1,000 mirrors (bench_thousand). Then
``gitmirror --help`` wall time and gitmirror's peak RSS while moving one 2 GiB object (loopback).
The report (bench_report) holds the targets of issue 15 with pass/fail.

Measured per run: wall time, LFS body bytes per direction and HTTP requests (the hubs' counters),
new connections and when each request was sent (the hubs' request logs), peak RSS of the tool's
process tree (summed over its processes, sampled from /proc every 50 ms), peak disk used in the
tool's own directories (clone, cache, HOME, TMPDIR; not the hubs' storage).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_hubs import LINKS, HubProcess, Link, parse_links  # noqa: E402
from bench_limit import HUB_CONCURRENCY, StepWork, limit  # noqa: E402
from bench_measure import Run, du, measure  # noqa: E402
from bench_report import BEGIN, END, markdown, targets  # noqa: E402
from bench_seed import FULL, MB, QUICK, Sizes, SourceRepo, grow_many, grow_model, seed_big, seed_many, seed_model  # noqa: E402
from bench_thousand import run_thousand  # noqa: E402

from gitmirror.sandbox.tls import tls_env  # noqa: E402

ALL_LINKS = ",".join(LINKS)


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
    trials: int = 3  # first mirrors of each tool per workload on loopback; the median wall time is reported
    link_trials: int = 2  # the same at the settings with latency (their runs wait on the link more than on the CPU)
    logs: Path | None = None
    links: tuple[Link, ...] = (LINKS["loopback"],)
    hub_concurrency: int = HUB_CONCURRENCY  # requests in flight per hub that (c) assumes
    thousand_link: Link = LINKS["50/50"]
    thousand_parallel: int = 16  # mirrors at once in the thousand workload's sync
    link: Link = LINKS["loopback"]  # the setting being run
    runs: list[Run] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def gitmirror(self, name: str, *args: str) -> list[str]:
        """The gitmirror command line, under py-spy (all threads, idle time too) with ``--profile``."""
        cmd = [*gitmirror_exe(), *args]
        name = f"{self.slug}-{name}"
        if self.profile is None:
            return cmd
        self.profile.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return [spy, "record", "--idle", "--threads", "--subprocesses", "-r", "100", "-f", "raw",
                "-o", str(self.profile / f"{name}.raw"), "--", *cmd]

    def logfile(self, *parts: str) -> Path | None:
        return self.logs / self.slug / ("-".join(parts) + ".log") if self.logs else None

    def new(self, workload: str, step: str, tool: str) -> Run:
        """An empty run of ``tool`` at the current link setting."""
        return Run(workload, step, tool, link=self.link.name)

    def limit(self, workload: str, step: str, work: StepWork) -> Run:
        """(c) for ``work`` at the current link setting (bench_limit.limit), as a run of the table."""
        parts = limit(work, self.link, self.down, self.up, self.hub_concurrency)
        return Run(workload, step, "limit", link=self.link.name, seconds=sum(parts.values()),
                   lfs_down=work.lfs_bytes, lfs_up=work.lfs_bytes, limit_parts=parts)

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    @property
    def slug(self) -> str:
        """The current link setting's name as a file name."""
        return self.link.name.replace("/", "-").replace(" ", "-")

    def dir(self, tag: str) -> Path:
        """The working directory of one workload (or trial) at the current link setting."""
        return self.work / self.slug / tag

    def run(self) -> None:
        # As an install does: the tools start from compiled bytecode, not from source.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "gitmirror")], check=False,
                       stdout=subprocess.DEVNULL)
        seeds = {"model": (seed_model, grow_model), "many": (seed_many, grow_many)}
        for link in self.links:
            if not (set(self.workloads) & set(seeds) or (self.big and link.loopback)):
                continue
            self.link = link
            with self.hubs(link):
                for name in self.workloads:
                    if name in seeds:
                        self.workload(name, *seeds[name])
                if self.big and link.loopback:  # a memory check: the link does not change it
                    self.big_object()
        if "thousand" in self.workloads:
            link = self.thousand_link
            self.link = link
            with self.hubs(link):
                self.say(f"== thousand ({link.name})")
                run_thousand(self, self.hf, self.ms, link, self.sizes.thousand, self.thousand_parallel)
        self.help_time(self.help_runs)

    @contextmanager
    def hubs(self, link: Link) -> Iterator[None]:
        """A source (Hugging Face-like) and a destination (ModelScope-like) hub at ``link``, each in
        a process of its own, capped at ``down``/``up``; their storage is freed afterwards."""
        root = (self.hub_root or self.work) / "sandbox" / self.slug
        hf = HubProcess("huggingface", root / "huggingface", rtt=link.src_rtt, tls=link.tls, ca_dir=self.work / "ca")
        ms = HubProcess("modelscope", root / "modelscope", rtt=link.dst_rtt, tls=link.tls, ca_dir=self.work / "ca")
        try:
            for hub in (hf, ms):
                hub.add_user("bench", orgs=("org",))
            self.hf_token, self.ms_token = hf.issue_token("bench", scope="write"), ms.issue_token("bench", scope="write")
            self.ms_git = ms.git_token_for(self.ms_token)
            hf.faults.bandwidth(down=self.down)
            ms.faults.bandwidth(up=self.up)
            self.hf, self.ms = hf, ms
            yield
        finally:
            hf.stop()
            ms.stop()
            shutil.rmtree(root, ignore_errors=True)

    def envs(self, tag: str) -> tuple[dict[str, str], list[Path], dict[str, str], list[Path], Path]:
        work = self.dir(tag)
        rhome, ghome = work / "recipe-home", work / "gitmirror-home"
        # With TLS both tools trust the sandbox's CA through their own settings (tls_env: GIT_SSL_CAINFO,
        # SSL_CERT_FILE, REQUESTS_CA_BUNDLE); certificate checks stay on.
        trust = tls_env(self.hf.ca_file) if self.hf.ca_file else {}
        renv = git_auth_env({**base_env(rhome), **trust}, [(self.hf.endpoint, basic_header("bench", self.hf_token)),
                                                         (self.ms.endpoint, basic_header("oauth2", self.ms_git))])
        genv = {**base_env(ghome), **trust, "HF_ENDPOINT": self.hf.endpoint, "MODELSCOPE_ENDPOINT": self.ms.endpoint,
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
        (self.dir(name) / "recipe-work").mkdir(parents=True, exist_ok=True)
        recipe = Recipe(self.dir(name) / "recipe-work", self.hf.git_url(f"org/{name}"),
                        self.ms.git_url(f"org/{name}-recipe"), renv)
        self.ms.create_repo(f"org/{name}-recipe", initial_commit=False)  # the recipe cannot create one
        known: set[str] = set()
        for step in self.steps:
            if step == "incremental":
                grow(src, self.sizes)
                src.push()
            new_objects = {oid: size for oid, size in src.objects.items() if oid not in known}
            known |= set(src.objects)
            trials = self.first_trials(name, src) if step == "first" else {}
            if self.recipe:
                self.say(f"   {name} {step}: recipe")
                r = measure(recipe.command(), renv, rdirs, self.hf, self.ms, self.new(name, step, "recipe"), log=self.logfile(name, step, "recipe"))
                r.pack = recipe.pack()
                self.check(r, f"org/{name}-recipe", src, rename=False)
                self.add_trials(r, trials.get("recipe", []))
                self.runs.append(r)
            self.say(f"   {name} {step}: gitmirror")
            cmd = self.gitmirror(f"{name}-{step}", "clone-push", "--quiet", f"hf://org/{name}", f"ms://org/{name}")
            g = measure(cmd, genv, gdirs, self.hf, self.ms, self.new(name, step, "gitmirror"), log=self.logfile(name, step, "gitmirror"))
            g.pack = sum(du(p / "objects") for p in (cache / "repos").glob("*.git"))
            self.check(g, f"org/{name}", src, rename=True)
            self.add_trials(g, trials.get("gitmirror", []))
            self.runs.append(g)
            self.runs.append(self.limit(name, step, StepWork(sum(new_objects.values()), len(new_objects),
                                                             history=step != "no-op")))

    def first_trials(self, name: str, src: SourceRepo) -> dict[str, list[Run]]:
        """The extra first mirrors (``trials - 1`` per tool), each into a fresh destination with
        fresh working directories, alternating the tools; their storage is freed after each."""
        done: dict[str, list[Run]] = {"recipe": [], "gitmirror": []}
        for k in range(1, self.trials if self.link.loopback else self.link_trials):
            tag = f"{name}-trial{k}"
            renv, rdirs, genv, gdirs, _ = self.envs(tag)
            if self.recipe:
                self.say(f"   {name} first, trial {k}: recipe")
                dst = f"org/{name}-recipe-trial{k}"
                self.ms.create_repo(dst, initial_commit=False)
                (self.dir(tag) / "recipe-work").mkdir(parents=True, exist_ok=True)
                recipe = Recipe(self.dir(tag) / "recipe-work", self.hf.git_url(f"org/{name}"), self.ms.git_url(dst), renv)
                r = measure(recipe.command(), renv, rdirs, self.hf, self.ms, self.new(name, "first", "recipe"))
                self.check(r, dst, src, rename=False)
                done["recipe"].append(r)
                shutil.rmtree(self.ms.repo_path(dst) / "lfs" / "objects", ignore_errors=True)
            self.say(f"   {name} first, trial {k}: gitmirror")
            dst = f"org/{name}-trial{k}"
            cmd = self.gitmirror(f"{name}-first-trial{k}", "clone-push", "--quiet", f"hf://org/{name}", f"ms://{dst}")
            g = measure(cmd, genv, gdirs, self.hf, self.ms, self.new(name, "first", "gitmirror"))
            self.check(g, dst, src, rename=True)
            done["gitmirror"].append(g)
            shutil.rmtree(self.ms.repo_path(dst) / "lfs" / "objects", ignore_errors=True)
            shutil.rmtree(self.dir(tag), ignore_errors=True)
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
        g = measure(cmd, genv, gdirs, self.hf, self.ms, self.new("big", "first", "gitmirror"), log=self.logfile("big", "first", "gitmirror"))
        g.pack = sum(du(p / "objects") for p in (cache / "repos").glob("*.git"))
        self.check(g, "org/big", src, rename=True)
        self.runs.append(g)
        self.runs.append(self.limit("big", "first", StepWork(self.sizes.big, 1, history=True)))

    def help_time(self, n: int) -> None:
        env = base_env(self.work / "help-home")
        times = []
        for _ in range(n):
            started = time.monotonic()
            subprocess.run([*gitmirror_exe(), "--help"], env=env, stdout=subprocess.DEVNULL, check=True)
            times.append(time.monotonic() - started)
        self.extra["help_seconds"] = {"min": min(times), "median": statistics.median(times), "max": max(times)}

    def hub_storage_note(self) -> str:
        return "in memory (tmpfs)" if self.hub_root is not None and is_memory_fs(self.hub_root) else "on disk"


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
    parser.add_argument("--workloads", default="model,many,thousand",
                        help="comma-separated: model, many, thousand (default all)")
    parser.add_argument("--links", default=ALL_LINKS,
                        help=f"comma-separated link settings for model and many: {ALL_LINKS} (default all), "
                             "or SRC_MS/DST_MS with HTTPS")
    parser.add_argument("--thousand-link", default="50/50", help="the thousand workload's link setting (default 50/50)")
    parser.add_argument("--thousand", type=int, default=None,
                        help="mirrors of the thousand workload (default 1000; 20 with --quick)")
    parser.add_argument("--thousand-parallel", type=int, default=16,
                        help="gitmirror sync --parallel of the thousand workload (default 16)")
    parser.add_argument("--hub-concurrency", type=int, default=HUB_CONCURRENCY,
                        help=f"requests in flight per hub that the limit (c) assumes (default {HUB_CONCURRENCY})")
    parser.add_argument("--no-recipe", action="store_true", help="skip (a), the git + git-lfs recipe")
    parser.add_argument("--no-big", action="store_true", help="skip the 2 GiB single-object run")
    parser.add_argument("--steps", default="first,incremental,no-op", help="comma-separated steps to run (default all)")
    parser.add_argument("--help-runs", type=int, default=7, help="how often to time `gitmirror --help` (default 7)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory, removed)")
    parser.add_argument("--write", type=Path, help="put the results into this markdown file (between bench markers)")
    parser.add_argument("--json", type=Path, help="write the raw measurements here")
    parser.add_argument("--link-trials", type=int, default=None,
                        help="first mirrors per tool and workload at the link settings with latency (default 2; "
                             "1 with --quick or with --trials 1)")
    parser.add_argument("--trials", type=int, default=None,
                        help="first mirrors per tool and workload, the median reported (default 3; 1 with --quick)")
    parser.add_argument("--hub-storage", choices=("memory", "disk"), default="memory",
                        help="keep the hubs' repositories and objects in memory (/dev/shm, when it has room; "
                             "the default) or on disk under the work directory")
    parser.add_argument("--profile", type=Path,
                        help="run gitmirror under py-spy (pip install gitmirror[bench]) and keep raw profiles here; "
                             "times and RSS of such a run include the profiler")
    args = parser.parse_args(argv)

    unknown = set(args.workloads.split(",")) - {"model", "many", "thousand", ""}
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))} (model, many, thousand)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gitmirror-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if args.quick else FULL
    trials = max(1, args.trials if args.trials is not None else (1 if args.quick else 3))
    if args.thousand is not None:
        sizes = replace(sizes, thousand=max(1, args.thousand))
    hub_root = memory_hub_root(sizes) if args.hub_storage == "memory" else None
    bench = Bench(sizes=sizes, down=int(args.down * MB), up=int(args.up * MB), work=work,
                  workloads=tuple(w for w in args.workloads.split(",") if w), recipe=not args.no_recipe,
                  big=not args.no_big, logs=work / "logs", help_runs=max(1, args.help_runs),
                  steps=tuple(s for s in args.steps.split(",") if s), profile=args.profile, hub_root=hub_root,
                  trials=trials, link_trials=max(1, args.link_trials if args.link_trials is not None else min(trials, 2)),
                  links=tuple(parse_links(args.links)), hub_concurrency=max(1, args.hub_concurrency),
                  thousand_link=parse_links(args.thousand_link)[0], thousand_parallel=max(1, args.thousand_parallel))
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
    block = markdown(bench, " ".join(shlex.quote(a) for a in shown))
    print(block)
    if args.write:
        write_doc(args.write, block)
    if args.json:
        args.json.write_text(json.dumps({"runs": [asdict(r) for r in bench.runs], **bench.extra,
                                         "targets": [asdict(t) for t in targets(bench)],
                                         "links": [asdict(k) for k in bench.links],
                                         "sizes": asdict(bench.sizes), "down": bench.down, "up": bench.up}, indent=1))
    return 0 if all(r.ok for r in bench.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
