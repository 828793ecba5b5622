"""The benchmark's report: the block of docs/benchmarks.md between the bench markers.

Tables of every run per link setting, the terms of each limit (c), the targets of issue 15 with
pass/fail, when each hub was asked what (where the time goes), and the thousand workload.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from typing import Any

from bench_hubs import LINKS
from bench_limit import PUBLISHED_LOOPBACK, Target, critical_path_rts, side_rts, spread
from bench_measure import Run
from bench_seed import FULL
from bench_thousand import TARGET_SECONDS

MB = 1_000_000
GiB = 1 << 30
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
TOOLS = {"recipe": "(a) git + git-lfs", "gitmirror": "(b) gitmirror", "limit": "(c) limit"}


def find(bench: Any, link: str, workload: str, step: str, tool: str) -> Run | None:
    return next((r for r in bench.runs if (r.link, r.workload, r.step, r.tool) == (link, workload, step, tool)), None)


def _mb(n: float) -> str:
    return f"{n / MB:,.1f}"


def table(bench: Any) -> str:
    rows = ["| link | workload | step | tool | wall s | b/a | b/c | LFS down MB | LFS up MB | HTTP requests | peak RSS MB "
            "| peak disk MB | git pack MB | tool CPU s | hubs CPU s | load |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in bench.runs:
        if r.workload == "thousand":
            continue
        head = f"| {r.link} | {r.workload} | {r.step} | {TOOLS[r.tool]}"
        if r.tool == "limit":
            rows.append(f"{head} | {r.seconds:.2f} | | | {_mb(r.lfs_down)} | {_mb(r.lfs_up)} | | | | | | | |")
            continue
        ba = bc = ""
        if r.tool == "gitmirror":
            a, c = find(bench, r.link, r.workload, r.step, "recipe"), find(bench, r.link, r.workload, r.step, "limit")
            ba = f"{r.wall / a.wall:.2f}" if a and a.wall else "-"
            bc = f"{r.wall / c.wall:.2f}" if c and c.wall else "-"
        wall = f"{r.wall:.2f}" + ("" if r.ok else f" FAILED ({r.note})")
        rows.append(f"{head} | {wall} | {ba} | {bc} | {_mb(r.lfs_down)} | {_mb(r.lfs_up)} | {r.requests} "
                    f"| {_mb(r.peak_rss)} | {_mb(r.peak_disk)} | {_mb(r.pack)} | {r.cpu:.2f} | {r.hub_cpu:.2f} | {r.load:.1f} |")
    return "\n".join(rows)


def limit_lines(bench: Any) -> str:
    lines = []
    for r in bench.runs:
        if r.tool == "limit" and r.limit_parts:
            terms = " + ".join(f"{k} {v:.2f}" for k, v in r.limit_parts.items() if v)
            lines.append(f"- {r.link}, {r.workload} {r.step}: {terms or '0'} = {r.seconds:.2f} s")
    return "\n".join(lines)


def _ratio_target(bench: Any, name: str, link: str, workload: str, other: str, bound: float) -> Target:
    b, o = find(bench, link, workload, "first", "gitmirror"), find(bench, link, workload, "first", other)
    if not (b and o and o.wall):
        return Target(name, "not run", f"<= {bound:.2f}", None)
    ratio = b.wall / o.wall
    return Target(name, f"{ratio:.2f} ({b.wall:.2f} s / {o.wall:.2f} s)", f"<= {bound:.2f}", b.ok and ratio <= bound)


def targets(bench: Any) -> list[Target]:
    """Issue 15's targets, from this run's measurements (None: the run did not measure it)."""
    far, even = LINKS["150/30"].name, LINKS["50/50"].name
    found = [_ratio_target(bench, f"many-files first mirror b/a at {even}", even, "many", "recipe", 0.30),
             _ratio_target(bench, f"model first mirror b/c at {far}", far, "model", "limit", 1.10)]
    noops = [r for r in bench.runs if r.link == far and r.step == "no-op" and r.tool == "gitmirror"]
    if noops:
        slow = max(noops, key=lambda r: r.wall)
        rts, side = max(critical_path_rts(r, LINKS["150/30"]) for r in noops)
        found.append(Target(f"no-op wall time at {far}", f"{slow.wall:.2f} s ({slow.workload})", "<= 1.00 s",
                            all(r.ok for r in noops) and slow.wall <= 1.0))
        found.append(Target(f"no-op round trips on the critical path at {far}", f"{rts} (the {side} side)", "<= 4",
                            rts <= 4))
    else:
        found += [Target(f"no-op wall time at {far}", "not run", "<= 1.00 s", None),
                  Target(f"no-op round trips on the critical path at {far}", "not run", "<= 4", None)]
    for (workload, step), (median, slowest) in PUBLISHED_LOOPBACK.items():
        run = find(bench, "loopback", workload, step, "gitmirror")
        if run is None or bench.sizes != FULL:  # the published figures are of the full sizes
            continue
        allow = max(spread(run), slowest - median)
        found.append(Target(f"loopback {workload} {step} vs published {median:.2f} s",
                            f"{run.wall:.2f} s (spread {allow:.2f} s)", f"<= {median + allow:.2f} s",
                            run.ok and run.wall <= median + allow))
    t = bench.extra.get("thousand")
    if t:
        met = t["seconds"] <= TARGET_SECONDS and t["mirrors_ok"] == t["count"]
        found.append(Target(f"no-op sync of 1,000 mirrors at {t['link']}", f"{t['seconds']:.2f} s for {t['count']:,} mirrors",
                            f"<= {TARGET_SECONDS:.0f} s", met if t["count"] == 1000 else None))
    return found


def targets_table(bench: Any) -> str:
    rows = ["| target (issue 15) | measured | target | met? |", "|---|---|---|---|"]
    for t in targets(bench):
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[t.met]
        rows.append(f"| {t.name} | {t.measured} | {t.target} | {verdict} |")
    return "\n".join(rows)


def timeline_lines(bench: Any) -> str:
    """Per gitmirror run on a link with latency: when each hub was first and last asked what."""
    lines = []
    for r in bench.runs:
        if r.tool != "gitmirror" or r.link == "loopback" or not r.phases or r.workload == "thousand":
            continue
        spans = sorted(r.phases.items(), key=lambda kv: kv[1][0])
        first = spans[0][1][0]
        last = max(s[1] for _, s in spans)
        shown = "; ".join(f"{route} {a:.2f}" + (f"-{b:.2f}" if b - a >= 0.005 else "") for route, (a, b) in spans)
        lines.append(f"- {r.link}, {r.workload} {r.step} ({r.seconds:.2f} s; connections src {r.connections.get('src', 0)}, "
                     f"dst {r.connections.get('dst', 0)}): first request {first:.2f} s; {shown}; "
                     f"exit {r.seconds - last:.2f} s after the last request")
    return "\n".join(lines)


def noop_lines(bench: Any) -> str:
    lines = []
    for r in bench.runs:
        if r.step == "no-op" and r.tool != "limit" and r.workload != "thousand":
            link = next((k for k in LINKS.values() if k.name == r.link), LINKS["loopback"])
            parts = ", ".join(f"{k} {v}" for k, v in sorted(r.requests_by_route.items()))
            lines.append(f"- {r.link}, {r.workload}, {r.tool}: {parts}; new connections src {r.connections.get('src', 0)}, "
                         f"dst {r.connections.get('dst', 0)}; round trips: src {side_rts(r, link, 'src')}, "
                         f"dst {side_rts(r, link, 'dst')}, the critical path {critical_path_rts(r, link)[1]}'s")
    return "\n".join(lines)


def thousand_lines(bench: Any) -> str:
    t = bench.extra.get("thousand")
    if not t:
        return ""
    routes = ", ".join(f"{k} {v}" for k, v in sorted(t["requests_by_route"].items()))
    return (f"No-op `gitmirror sync --parallel {t['parallel']}` over {t['count']:,} mirrors at {t['link']}: "
            f"{t['seconds']:.2f} s wall, {t['cpu_per_mirror'] * 1000:.1f} ms of the tool's CPU per mirror, "
            f"{t['requests_per_mirror']:.3f} requests per mirror ({routes}), peak RSS {_mb(t['peak_rss'])} MB, "
            f"{t['mirrors_ok']:,} mirrors up to date, {t['refs_changed']} refs changed.")


def trial_lines(bench: Any) -> str:
    lines = []
    for r in bench.runs:
        if r.trial_seconds:
            times = ", ".join(f"{t:.2f}" for t in r.trial_seconds)
            lines.append(f"- {r.link}, {r.workload}, {r.tool}: {times} (median {r.wall:.2f})")
    return "\n".join(lines)


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().split(" (")[0]
    except (OSError, subprocess.CalledProcessError):
        return f"{cmd[0]} ?"


def _section(title: str, body: str) -> list[str]:
    return [title, "", body, ""] if body else []


def markdown(bench: Any, command: str) -> str:
    """The generated block, markers included."""
    h = bench.extra.get("help_seconds", {})
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    links = "; ".join(f"{k.name}: {k.src_rtt * 1000:g} ms to the source, {k.dst_rtt * 1000:g} ms to the destination"
                      + (", HTTPS" if k.tls else "") for k in bench.links)
    lines = [
        BEGIN,
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, {mem:.0f} GiB memory, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {_version(['git', '--version'])}, {_version(['git', 'lfs', 'version'])}. "
        f"Caps: {bench.down / MB:g} MB/s down from the source hub, {bench.up / MB:g} MB/s up to the destination hub "
        f"(1 MB = 10^6 bytes). Links: {links}. (c) assumes {bench.hub_concurrency} requests in flight per hub. "
        f"Hubs' storage: {bench.hub_storage_note()}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        targets_table(bench),
        "",
        table(bench),
        "",
        *([f"First mirrors: the wall time shown (and b/a, b/c) is the median of {bench.trials} trials per tool on "
           f"loopback, {bench.link_trials} at the settings with latency, "
           "each into a fresh destination with fresh working directories, the tools alternating; "
           "the other columns are of the last trial. Every trial's wall time in seconds:", "",
           trial_lines(bench), ""] if max(bench.trials, bench.link_trials) > 1 else []),
        *_section("The limit (c), term by term (seconds):", limit_lines(bench)),
        *_section("The thousand workload:", thousand_lines(bench)),
        *_section("When each hub was asked what (gitmirror, seconds after the tool started: first-last request "
                  "of each route class; from the hubs' request logs):", timeline_lines(bench)),
        f"`gitmirror --help`: min {h.get('min', 0):.3f} s, median {h.get('median', 0):.3f} s over {bench.help_runs} runs.",
        "",
        *_section("HTTP requests of the no-op runs, by hub and route class:", noop_lines(bench)),
        END,
    ]
    return "\n".join(lines)
