"""Progress off a terminal (cron, CI): a plain line every few seconds, tested with a fake clock,
and fed by a real mirror's transfer events."""

from __future__ import annotations

import io
import re

import pytest

from gitmirror import api, progress
from gitmirror.lfs import LfsObject, TransferEvent
from gitmirror.progress import PlainProgress, progress_reporter
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import seed_sample_model

LINE = re.compile(r"^gitmirror: LFS (\d+)/(\d+) objects, \S+ \S+/\S+ \S+, \S+ \S+/s$")


class FakeClock:
    """Stands in for the ``time`` module inside gitmirror.progress: time moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress, "time", fake)
    return fake


def obj(n: int, size: int = 1_000_000) -> LfsObject:
    return LfsObject(f"{n:064x}", size)


def lines_of(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_one_line_per_interval_with_a_fake_clock(clock):
    out = io.StringIO()
    reporter = PlainProgress(out, interval=5.0)
    # 10 objects of 1 MB, each taking 6 s in 0.5 s steps: 120 events over a minute.
    for n in range(10):
        reporter(TransferEvent("started", obj(n)))
        for _ in range(12):
            clock.now += 0.5
            reporter(TransferEvent("advanced", obj(n), 1_000_000 // 12))
        reporter(TransferEvent("done", obj(n)))
    lines = lines_of(out)
    # 60 s at one line per 5 s: 12 lines, give or take the first one (written at once or after an interval).
    assert 11 <= len(lines) <= 13, lines
    assert all(LINE.match(line) for line in lines), lines
    done = [int(LINE.match(line).group(1)) for line in lines]
    assert done == sorted(done) and done[-1] >= 9


def test_quiet_between_intervals_and_a_failure_is_written_at_once(clock):
    out = io.StringIO()
    reporter = PlainProgress(out, interval=5.0)
    reporter(TransferEvent("started", obj(1)))
    clock.now += 5.0
    reporter(TransferEvent("advanced", obj(1), 10))
    before = len(lines_of(out))
    for _ in range(20):  # 2 s of events: no new line
        clock.now += 0.1
        reporter(TransferEvent("advanced", obj(1), 10))
    assert len(lines_of(out)) == before
    reporter(TransferEvent("failed", obj(1), message="boom"))
    assert len(lines_of(out)) == before + 1


def test_objects_the_destination_has_count_as_seen_and_done(clock):
    out = io.StringIO()
    reporter = PlainProgress(out, interval=0.0)
    for n in range(3):  # present on the destination: only "skipped"
        reporter(TransferEvent("skipped", obj(n)))
    reporter(TransferEvent("started", obj(9)))
    reporter(TransferEvent("advanced", obj(9), 1_000_000))
    reporter(TransferEvent("done", obj(9)))
    done, seen = LINE.match(lines_of(out)[-1]).groups()
    assert (int(done), int(seen)) == (4, 4)


def test_a_retry_takes_its_bytes_back(clock):
    reporter = PlainProgress(io.StringIO(), interval=0.0)
    reporter(TransferEvent("started", obj(1, 100)))
    reporter(TransferEvent("advanced", obj(1, 100), 60))
    reporter(TransferEvent("retrying", obj(1, 100), 60))
    reporter(TransferEvent("advanced", obj(1, 100), 100))
    reporter(TransferEvent("done", obj(1, 100)))
    t = reporter.totals
    assert (t.objects_done, t.objects_seen, t.bytes_done, t.bytes_seen) == (1, 1, 100, 100)


def test_reporter_off_a_terminal_is_plain_and_off_when_quiet():
    stream = io.StringIO()  # not a tty
    with progress_reporter(enabled=True, stream=stream) as reporter:
        assert isinstance(reporter, PlainProgress)
    with progress_reporter(enabled=False, stream=stream) as reporter:
        assert reporter is None


@pytest.mark.timeout(300)
def test_a_real_mirror_feeds_consistent_lines(hub_pair, git_env, tmp_path, unique_name):
    hf, ms = hub_pair()
    name = unique_name("progress")
    sample = seed_sample_model(hf, f"org/{name}")
    ms.create_repo(f"org/{name}")
    # One object is already on the destination: it arrives as "skipped".
    some = next(iter(sample.builder.lfs_files().values()))
    ms.put_lfs_object(f"org/{name}", some.data)
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}
    out = io.StringIO()
    reporter = PlainProgress(out, interval=0.0)  # a line for every event

    result = api.mirror(f"hf://org/{name}", f"ms://org/{name}", env=env, cache_dir=tmp_path / "cache",
                        policy=FAST, progress=reporter)

    lines = lines_of(out)
    assert lines and all(LINE.match(line) for line in lines), lines
    done, seen = map(int, LINE.match(lines[-1]).groups())
    total = result.objects_moved + result.objects_present
    assert result.objects_present == 1 and done == seen == total
    assert reporter.totals.bytes_done == result.bytes_moved
