"""The limit (c) of a step, counting round trips as well as bytes, and the targets of issue 15.

(c) is a lower bound for any client of the same hubs over the same link, built from the step's real
object counts (see :func:`limit` and docs/benchmarks.md, "The limit (c)").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench_hubs import Link
from bench_measure import Run, side_requests

#: Objects per LFS batch request: the most clients send and hubs take (git-lfs; the sandbox answers 413 above it).
BATCH_OBJECTS = 100

#: Requests one hub is assumed to take in flight from one client. No hub documents a bound on
#: concurrent requests (their rate limits count requests per 5-minute window: the reference notes on
#: the hubs, "Rate limits"); the reference client, git-lfs, keeps 8 transfers
#: in flight (same notes, "The reference client"), and issue 15 asks for "tens, bounded per hub".
#: 32 is that bound; ``--hub-concurrency`` changes it.
HUB_CONCURRENCY = 32


@dataclass(frozen=True)
class StepWork:
    """What a step has to move, from the source repository's real contents.

    ``lfs_bytes``/``objects``: the LFS objects new in this step; ``history``: new commits to fetch
    and push; ``login``: the destination trades its API token for git's first (ModelScope's
    ``POST /api/v1/login``, one request before its listing can be made); ``verify``: the
    destination's upload answers carry a ``verify`` action, one more request per object that the
    protocol makes mandatory (reference notes, "Batch ... A verify action means").
    """

    lfs_bytes: int
    objects: int
    history: bool
    login: bool = True
    verify: bool = True


def connection_rts(link: Link) -> int:
    """Round trips before a new connection's first request: TCP's, and TLS 1.3's one more."""
    return 2 if link.tls else 1


def limit(work: StepWork, link: Link, down: int, up: int, concurrency: int = HUB_CONCURRENCY) -> dict[str, float]:
    """The terms of (c) in seconds (their sum is the limit), for ``work`` over ``link`` with caps
    ``down``/``up`` bytes per second.

    * ``bytes``: LFS bytes / min(down, up): every byte crosses both links, streamed.
    * ``listing``: both sides listed at once; per side a connection and the ref advertisement,
      the destination's login before its listing: max(src_rtt x (c + 1), dst_rtt x (c + 1 + login)).
    * ``fetch``: the source's ``git-upload-pack`` POST, when history moves (one round trip).
    * ``lfs``: per side, the batch calls (100 objects each) and one request per object (download at
      the source; upload, and verify when asked, at the destination), ``concurrency`` in flight:
      ceil(requests / concurrency) x that side's RTT; the sides overlap, so the longer side counts,
      plus one source RTT before the first upload can start, the set-up of a connection to the
      source's object store (another origin than its API: the sandbox's storage port, Hugging
      Face's CDN) before the first download, and the last object's ``verify`` (one destination
      RTT, after its last byte).
    * ``push``: the destination's ``git-receive-pack`` advertisement and POST (two round trips).

    The round trips a client cannot avoid only: no retries, no final check, no start-up.
    """
    c = connection_rts(link)
    parts = {
        "bytes": work.lfs_bytes / min(down, up),
        "listing": max(link.src_rtt * (c + 1), link.dst_rtt * (c + 1 + int(work.login))),
        "fetch": link.src_rtt if work.history else 0.0,
        "lfs": 0.0,
        "push": 2 * link.dst_rtt if work.history else 0.0,
    }
    if work.objects:
        batches = math.ceil(work.objects / BATCH_OBJECTS)
        src_requests = batches + work.objects
        dst_requests = batches + work.objects * (2 if work.verify else 1)
        parts["lfs"] = (max(math.ceil(src_requests / concurrency) * link.src_rtt,
                            math.ceil(dst_requests / concurrency) * link.dst_rtt) + link.src_rtt
                        + c * link.src_rtt + (link.dst_rtt if work.verify else 0.0))
    return parts


def side_rts(run: Run, link: Link, side: str) -> int:
    """Round trips one side of ``run`` cost if its requests went one after another (as a no-op's
    do: the destination's login, then its listing): its new connections' set-up and its requests."""
    return run.connections.get(side, 0) * connection_rts(link) + side_requests(run, side)


def critical_path_rts(run: Run, link: Link) -> tuple[int, str]:
    """``(round trips, side)`` of a no-op's critical path: both sides are listed at once, so the
    side whose round trips take longer (count x its RTT; on loopback, the larger count)."""
    rtt = {"src": link.src_rtt, "dst": link.dst_rtt}
    side = max(("src", "dst"), key=lambda s: (side_rts(run, link, s) * rtt[s], side_rts(run, link, s)))
    return side_rts(run, link, side), side


@dataclass(frozen=True)
class Target:
    """One target of issue 15, as measured in this run."""

    name: str
    measured: str
    target: str
    met: bool | None  # None: not measured in this run


#: gitmirror's loopback wall times published in docs/benchmarks.md by the run of 2026-11-28 before
#: this one (median, slowest trial); the loopback target compares against them.
PUBLISHED_LOOPBACK = {
    ("model", "first"): (15.92, 16.04),
    ("many", "first"): (5.33, 5.52),
    ("model", "incremental"): (1.54, 1.54),
    ("many", "incremental"): (1.07, 1.07),
    ("model", "no-op"): (0.54, 0.54),
    ("many", "no-op"): (0.47, 0.47),
}


def spread(run: Run) -> float:
    """Run-to-run spread of a measurement: max - min of its trials, else 10 % of it (single runs of
    the same code differed by 10-20 % on this machine)."""
    trials = run.trial_seconds
    return max(trials) - min(trials) if len(trials) > 1 else 0.10 * run.wall
