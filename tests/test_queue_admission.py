"""What the transfer queue runs at once (gitmirror/lfs/admission.py, gitmirror/lfs/queue.py):
requests in flight counted where the server answers them, object bytes in flight counted where the
source hands them out, verify calls off the workers' path but always before ``transfer`` returns,
and a failed verify stopping the mirror before any ref is pushed."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import pytest

from gitmirror import api
from gitmirror.errors import IntegrityError
from gitmirror.lfs import CHUNK, HttpLfsStore, LocalLfsStore, transfer
from gitmirror.lfs.admission import ByteBudget, HubSlots, Limits, parse_size
from gitmirror.retry import FAST
from lfsfake import ENDPOINT, FakeLfs, json_response, local_with
from mirror_pairs import HfToMs, hf_to_ms


class Server:
    """A FakeLfs whose every answer takes ``delay`` seconds (``verify_delay`` for verify), counting
    the requests being answered at once (``peak``) and when each verify answered."""

    def __init__(self, delay: float = 0.02, verify_delay: float | None = None) -> None:
        self.fake = FakeLfs()
        self.delay = delay
        self.verify_delay = delay if verify_delay is None else verify_delay
        self.verify_statuses: list[int] = []  # answered first, one a verify
        self.verified_at: dict[str, float] = {}
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, req):
        is_verify = req.method == "POST" and req.path.startswith("/verify")
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.verify_delay if is_verify else self.delay)
            if is_verify:
                with self.lock:
                    status = self.verify_statuses.pop(0) if self.verify_statuses else None
                if status:
                    return json_response(status, {"message": "verify trouble"})
                answer = self.fake(req)
                self.verified_at[req.json()["oid"]] = time.monotonic()
                return answer
            return self.fake(req)
        finally:
            with self.lock:
                self.in_flight -= 1

    def transport(self):
        from lfsfake import MockTransport

        return MockTransport(self)

    def store(self) -> HttpLfsStore:
        return HttpLfsStore(ENDPOINT, {"Authorization": "Bearer t"}, policy=FAST)


class CountingSource(LocalLfsStore):
    """A local store counting the objects (and their bytes) being read at once."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.lock = threading.Lock()
        self.reading_now = self.bytes_now = self.peak_count = self.peak_bytes = 0

    @contextmanager
    def reading(self, ticket, http, offset=0):
        with self.lock:
            self.reading_now += 1
            self.bytes_now += ticket.obj.size
            self.peak_count = max(self.peak_count, self.reading_now)
            self.peak_bytes = max(self.peak_bytes, self.bytes_now)
        try:
            with super().reading(ticket, http, offset) as chunks:
                yield chunks
        finally:
            with self.lock:
                self.reading_now -= 1
                self.bytes_now -= ticket.obj.size


def small_objects(tmp_path, n: int, size: int = 2000):
    return local_with(tmp_path, [os.urandom(size) for _ in range(n)])


def assert_stored(server: Server, local: LocalLfsStore, objs) -> None:
    for obj in objs:
        assert server.fake.objects[obj.oid] == local.path_of(obj.oid).read_bytes()


# -- requests in flight at a hub ---------------------------------------------------------------------


def test_many_small_objects_keep_more_requests_in_flight_than_eight_workers(tmp_path):
    """The default moves small objects many at once: more than the old 8 workers' requests are
    answered at once by the destination, never more than the per-hub bound."""
    server = Server(delay=0.03)
    local, objs = small_objects(tmp_path, 150)
    report = transfer(objs, local, server.store(), transport=server.transport(), policy=FAST)
    assert report.moved == 150 and not report.failures
    assert_stored(server, local, objs)
    assert 8 < server.peak <= Limits().requests_per_hub, server.peak


@pytest.mark.parametrize("bound", [1, 5])
def test_requests_in_flight_never_pass_the_bound(tmp_path, bound):
    server = Server(delay=0.01)
    local, objs = small_objects(tmp_path, 40)
    report = transfer(objs, local, server.store(), transport=server.transport(), policy=FAST,
                      limits=Limits(requests_per_hub=bound))
    assert report.moved == 40
    assert_stored(server, local, objs)
    assert server.peak == bound, server.peak  # reached, never passed


def test_an_explicit_jobs_caps_objects_at_once(tmp_path):
    """--jobs keeps its old meaning: objects transferred at once (their bytes read from the source
    at once; the verify calls of objects already sent may still be under way)."""
    server = Server(delay=0.02)
    local, objs = small_objects(tmp_path, 20)
    src = CountingSource(local.objects_dir)
    transfer(objs, src, server.store(), transport=server.transport(), policy=FAST, jobs=1)
    assert_stored(server, local, objs)
    assert src.peak_count == 1


# -- bytes in flight -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("budget", "most_at_once"), [(7 * CHUNK, 2), (2 * CHUNK, 1)])
def test_large_objects_are_admitted_by_bytes_in_flight(tmp_path, budget, most_at_once):
    """3 MiB objects under a 7 MiB budget: two at once, never three; under a 2 MiB budget each
    moves alone. Counted where the source hands the bytes out."""
    server = Server(delay=0.05)
    local, objs = local_with(tmp_path, [os.urandom(3 * CHUNK) for _ in range(5)])
    src = CountingSource(local.objects_dir)
    report = transfer(objs, src, server.store(), transport=server.transport(), policy=FAST,
                      limits=Limits(bytes_in_flight=budget))
    assert report.moved == 5
    assert_stored(server, local, objs)
    assert src.peak_count == most_at_once, src.peak_count
    assert src.peak_bytes <= max(budget, 3 * CHUNK)


# -- verify ----------------------------------------------------------------------------------------------


def test_verify_is_off_the_workers_path_and_done_before_transfer_returns(tmp_path):
    """One object worker, verifies of 0.2 s each: one after another they would take 2 s for 10
    objects; they overlap. No object is reported done before its verify answered, and transfer
    returns after the last one."""
    server = Server(delay=0.005, verify_delay=0.2)
    local, objs = small_objects(tmp_path, 10)
    done_at: dict[str, float] = {}

    def progress(event):
        if event.kind == "done":
            done_at[event.obj.oid] = time.monotonic()

    started = time.monotonic()
    report = transfer(objs, local, server.store(), transport=server.transport(), policy=FAST, jobs=1,
                      progress=progress)
    returned = time.monotonic()
    assert report.moved == 10
    assert_stored(server, local, objs)
    assert set(server.verified_at) == set(done_at) == {o.oid for o in objs}
    assert all(done_at[oid] >= server.verified_at[oid] for oid in done_at)
    assert returned >= max(server.verified_at.values())
    assert returned - started < 1.2, returned - started


def test_a_verify_refused_fails_the_transfer(tmp_path):
    server = Server(delay=0.0)
    server.verify_statuses = [422]  # the server refuses what it got
    local, objs = small_objects(tmp_path, 3)
    with pytest.raises(IntegrityError) as info:
        transfer(objs, local, server.store(), transport=server.transport(), policy=FAST)
    report = info.value.report
    assert len(report.failures) == 1 and report.moved == 2


def test_a_transient_verify_failure_is_one_retry_of_its_object(tmp_path):
    """A 503 on verify fails that try: the object's loop asks the batch API again (which now
    says the object is there), counted once in the report and once to on_retry."""
    server = Server(delay=0.0)
    server.verify_statuses = [503]
    local, objs = small_objects(tmp_path, 1)
    told = []
    report = transfer(objs, local, server.store(), transport=server.transport(), policy=FAST,
                      on_retry=lambda what, exc: told.append(what))
    assert_stored(server, local, objs)
    assert report.retries == len(told) == 1
    assert report.moved + report.already_present == 1 and not report.failures
    assert server.fake.count("POST", "/repo.git/info/lfs/objects/batch") == 2


@pytest.fixture
def pair(hub_pair, git_env, tmp_path, unique_name) -> HfToMs:
    return hf_to_ms(hub_pair, git_env, tmp_path, unique_name("queue-verify"), [3000, 40_000, 5000])


def test_a_failed_verify_stops_the_mirror_before_any_push(pair):
    pair.dst_hub.faults.fail(route="lfs-verify", status=422, times=None)
    with pytest.raises(IntegrityError):
        pair.run()
    assert pair.dst_master() is None, "refs pushed before every verify answered"
    pair.dst_hub.faults.clear()
    pair.run()
    pair.assert_mirrored()


def test_the_options_reach_the_transfer_through_the_api(pair, monkeypatch):
    seen = []
    real = transfer

    def spy(*args, **kwargs):
        seen.append((kwargs.get("jobs"), kwargs.get("limits")))
        return real(*args, **kwargs)

    monkeypatch.setattr("gitmirror.lfs.transfer", spy)
    pair.run(jobs=3, requests_per_hub=7, bytes_in_flight=1 << 20)
    pair.assert_mirrored()
    assert seen == [(None, Limits(requests_per_hub=7, bytes_in_flight=1 << 20, jobs=3))]
    assert api.mirror.__kwdefaults__["jobs"] is None  # adaptive unless given


# -- the bounds themselves --------------------------------------------------------------------------------


def test_slots_at_one_hub_taken_twice_do_not_wait_forever():
    """A copy within one hub takes two slots there at once; with a bound of 1 it still runs."""
    slots = HubSlots(1)
    finished = []

    def copy():
        with slots.hold("h", "h"):
            time.sleep(0.01)
        finished.append(1)

    threads = [threading.Thread(target=copy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert len(finished) == 4 and slots.held == {"h": 0}


def test_byte_budget_admits_a_large_object_alone():
    budget = ByteBudget(100)
    with budget.admit(500):
        assert budget.in_flight == 500
    with budget.admit(60):
        blocked = threading.Event()

        def second():
            with budget.admit(60):
                blocked.set()

        t = threading.Thread(target=second)
        t.start()
        assert not blocked.wait(0.2), "160 bytes admitted under a budget of 100"
    t.join(timeout=5)
    assert blocked.is_set() and budget.peak == 500 and budget.in_flight == 0


def test_limits_and_sizes():
    assert Limits().workers == Limits().requests_per_hub and Limits(jobs=3).workers == 3
    assert Limits.of(None, None, None) == Limits()
    with pytest.raises(ValueError):
        Limits(requests_per_hub=0)
    assert parse_size("512M") == 512 << 20 and parse_size("2GiB") == 2 << 30 and parse_size("1000") == 1000
    for bad in ("0", "1.5G", "lots", ""):
        with pytest.raises(ValueError):
            parse_size(bad)


# -- the options where users give them ----------------------------------------------------------------------


def test_mirrors_file_takes_the_bounds_and_refuses_zero(tmp_path):
    from gitmirror.errors import UsageError
    from gitmirror.mirrors_file import load_mirrors

    path = tmp_path / "mirrors.toml"
    path.write_text('[defaults]\nrequests_per_hub = 16\n\n[[mirror]]\nsrc = "hf://a/b"\ndst = "ms://a/b"\n'
                    'bytes_in_flight = 1048576\njobs = 4\n\n[[mirror]]\nsrc = "hf://c/d"\ndst = "ms://c/d"\n')
    first, second = load_mirrors(path)
    assert (first.requests_per_hub, first.bytes_in_flight, first.jobs) == (16, 1 << 20, 4)
    assert (second.requests_per_hub, second.bytes_in_flight, second.jobs) == (16, None, None)
    path.write_text('[[mirror]]\nsrc = "hf://a/b"\ndst = "ms://a/b"\nrequests_per_hub = 0\n')
    with pytest.raises(UsageError, match="requests_per_hub must be at least 1"):
        load_mirrors(path)


def test_cli_refuses_a_bad_size_before_doing_anything(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gitmirror", "clone-push", "a/b", "c/d", "--bytes-in-flight", "lots",
                           "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--bytes-in-flight" in done.stderr
    assert not (tmp_path / "cache").exists()


# -- on the sandbox hubs, with a round-trip time -----------------------------------------------------------


def test_small_objects_overlap_their_round_trips_on_the_sandbox(sandbox, unique_name):
    """64 small objects between two sandbox hubs 100 ms away: with 8 workers making download,
    upload and verify one after another, the transfer could not take less than 64 x 3 x 0.1 / 8
    = 2.4 s; with the requests in flight it takes a fraction of that. Judged on the destination's
    storage."""
    from test_lfs_sandbox import make_side

    src = make_side(sandbox, unique_name, "git", "read", rtt=0.1)
    dst = make_side(sandbox, unique_name, "git", "write", rtt=0.1)
    objs = [src.seed(os.urandom(2048 + i)) for i in range(64)]
    report = transfer(objs, src.store, dst.store, policy=FAST)
    assert report.moved == 64 and all(dst.has(obj) for obj in objs)
    assert 0.2 <= report.seconds < 2.4, report.seconds  # at least the two batch round trips
