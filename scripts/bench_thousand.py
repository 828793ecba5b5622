"""The ``thousand`` workload: one no-op ``gitmirror sync`` pass over many mirrors already in sync.

Issue 15's cron case: a thousand tiny repositories on a Hugging Face-like source hub, mirrored to a
ModelScope-like destination hub, each hub in a process of its own behind a 50 ms link. Measured:
wall time of the pass, the tool's CPU seconds per mirror (its whole process tree, ``wait4``),
requests per mirror (both hubs' counters), peak RSS of the tool's process tree.

Seeding does not go through git over the link: one repository is made on the source hub, mirrored
once by a real ``gitmirror clone-push`` (which also leaves the pair's cache, checked), and then
copied on disk, in the hubs' own processes, to the other names, as are the destination repository
and the pair's cache entry (under each pair's own cache key). Every pair then stands as a
successful earlier run leaves it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench_hubs import HubProcess, Link
from bench_measure import Run, measure

from gitmirror.cache import mirror_key
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs

#: The wall-time target of the no-op pass over 1,000 mirrors on 2 cores (issue 15), seconds.
TARGET_SECONDS = 20.0


class BenchContext(Protocol):
    """What the workload needs of the benchmark (scripts/bench.py ``Bench``)."""

    runs: list[Run]
    extra: dict[str, Any]

    def say(self, text: str) -> None: ...
    def envs(self, tag: str) -> tuple[dict[str, str], list[Path], dict[str, str], list[Path], Path]: ...
    def gitmirror(self, name: str, *args: str) -> list[str]: ...
    def logfile(self, *parts: str) -> Path | None: ...


@dataclass(frozen=True)
class ThousandResult:
    """The pass's figures (seconds, bytes); ``mirrors`` in sync out of ``count``."""

    count: int
    parallel: int
    seconds: float
    cpu_per_mirror: float
    requests_per_mirror: float
    peak_rss: int
    mirrors_ok: int
    refs_changed: int
    requests_by_route: dict[str, int]


def names(count: int) -> list[str]:
    return [f"org/tiny-{i:04d}" for i in range(count)]


def seed(bench: BenchContext, hf: HubProcess, ms: HubProcess, count: int) -> tuple[dict[str, str], list[Path], Path]:
    """Make ``count`` mirrored pairs as a successful earlier run leaves them; returns gitmirror's
    environment, its directories and its cache directory."""
    ids = names(count)
    first = ids[0]
    hf.create_repo(first, initial_commit=False)
    builder = RepoBuilder(default_branch="main")
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# tiny\n"}, message="initial commit")
    builder.commit({"weights.bin": lfs(b"tiny weights\n" * 10)}, message="weights")
    builder.push_to_hub(hf, first, create=False)
    _, _, genv, gdirs, cache = bench.envs("thousand")
    bench.say(f"   thousand: first mirror of {first}, then {count - 1} copies on disk")
    done = measure(bench.gitmirror("thousand-seed", "clone-push", "--quiet", f"hf://{first}", f"ms://{first}"),
                   genv, gdirs, hf, ms, Run("thousand", "seed", "gitmirror"), log=bench.logfile("thousand", "seed"))
    if not done.ok:
        raise RuntimeError(f"seeding the thousand workload failed: {done.note}")
    hf.copy_repo(first, ids[1:])
    ms.copy_repo(first, ids[1:])
    template = cache / "repos" / f"{mirror_key(f'hf://{first}', f'ms://{first}', genv)}.git"
    for repo_id in ids[1:]:
        shutil.copytree(template, cache / "repos" / f"{mirror_key(f'hf://{repo_id}', f'ms://{repo_id}', genv)}.git",
                        symlinks=True)
    return genv, gdirs, cache


def run_thousand(bench: BenchContext, hf: HubProcess, ms: HubProcess, link: Link, count: int,
                 parallel: int) -> ThousandResult:
    """Seed ``count`` pairs, then time one ``gitmirror sync --parallel <parallel>`` over them.

    The pass must leave every destination as it was: a mirror reported failed or changed marks the
    run failed (``Run.ok``)."""
    genv, gdirs, _ = seed(bench, hf, ms, count)
    mirrors = bench.envs("thousand")[2]["HOME"]
    listing = Path(mirrors) / "mirrors.txt"
    listing.write_text("".join(f"hf://{r} ms://{r}\n" for r in names(count)), encoding="utf-8")
    report = Path(mirrors) / "sync-report.json"
    bench.say(f"   thousand: no-op sync of {count} mirrors, {parallel} at once ({link.name})")
    cmd = bench.gitmirror("thousand-sync", "sync", "--parallel", str(parallel), "--report", str(report),
                          str(listing))
    run = measure(cmd, genv, gdirs, hf, ms, Run("thousand", "no-op", "gitmirror", link=link.name),
                  log=bench.logfile("thousand", "sync"))
    outcomes = json.loads(report.read_text())["mirrors"] if report.exists() else []
    ok = [o for o in outcomes if o.get("status") == "up-to-date"]
    changed = sum(int(o.get("refs_changed") or 0) for o in outcomes)
    if run.ok and (len(ok) != count or changed):
        run.ok, run.note = False, f"{len(ok)} of {count} mirrors ok, {changed} refs changed"
    bench.runs.append(run)
    result = ThousandResult(count=count, parallel=parallel, seconds=run.seconds, cpu_per_mirror=run.cpu / count,
                            requests_per_mirror=run.requests / count, peak_rss=run.peak_rss, mirrors_ok=len(ok),
                            refs_changed=changed, requests_by_route=run.requests_by_route)
    bench.extra["thousand"] = {**result.__dict__, "link": link.name}
    return result
