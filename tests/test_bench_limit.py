"""The limit (c) of scripts/bench_limit.py: bytes at the slower cap plus the round trips no client
can avoid, from a step's object counts (docs/benchmarks.md, "The limit (c)")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from bench_hubs import LINKS, Link, parse_links  # noqa: E402
from bench_limit import StepWork, critical_path_rts, limit  # noqa: E402
from bench_measure import Run  # noqa: E402

MB = 1_000_000


def test_loopback_limit_is_the_bytes_alone():
    parts = limit(StepWork(1_490 * MB, 8, history=True), LINKS["loopback"], 100 * MB, 100 * MB)
    assert sum(parts.values()) == pytest.approx(14.90)


def test_many_files_at_50_50_counts_batches_and_requests_per_object_at_the_hubs_concurrency():
    parts = limit(StepWork(33 * MB, 2000, history=True), LINKS["50/50"], 100 * MB, 100 * MB, concurrency=32)
    assert parts["bytes"] == pytest.approx(0.33)
    assert parts["listing"] == pytest.approx(0.05 * 4)  # TCP, TLS, login, listing at the destination
    assert parts["fetch"] == pytest.approx(0.05) and parts["push"] == pytest.approx(0.10)
    # destination: 20 batches + 2,000 uploads + 2,000 verifies = 4,020 requests, 32 at a time: 126 RTTs,
    # and one source RTT before the first upload can start, the TCP and TLS set-up of the connection
    # to the source's object store, and the last verify after its last byte
    assert parts["lfs"] == pytest.approx(126 * 0.05 + 0.05 + 2 * 0.05 + 0.05)


def test_a_noop_limit_is_the_slower_sides_listing():
    parts = limit(StepWork(0, 0, history=False), LINKS["150/30"], 100 * MB, 100 * MB)
    assert parts == pytest.approx({"bytes": 0, "listing": 0.45, "fetch": 0, "lfs": 0, "push": 0})


def test_the_critical_path_is_the_side_whose_round_trips_take_longer():
    run = Run("m", "no-op", "gitmirror", requests_by_route={"src:git-info-refs": 1, "dst:api": 1, "dst:git-info-refs": 1},
              connections={"src": 1, "dst": 2})
    # source: 2 (TCP + TLS) + 1 = 3 round trips of 150 ms; destination 2 x 2 + 2 = 6 of 30 ms
    assert critical_path_rts(run, LINKS["150/30"]) == (3, "src")
    assert critical_path_rts(run, Link("x", 0.03, 0.15, True)) == (6, "dst")


def test_link_settings_parse_by_name_or_as_milliseconds():
    assert [k.name for k in parse_links("loopback,150/30")] == ["loopback", "150/30 TLS"]
    assert parse_links("80/20") == [Link("80/20 TLS", 0.08, 0.02, True)]
