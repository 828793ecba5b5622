"""Rate limits (issue 13, section 6): waits a server asks for are honoured, said, and bounded.

Hugging Face's ``RateLimit: "api";r=0;t=N`` is honoured as well as ``Retry-After``; a long wait is
said on one WARNING line (the default level); a wait beyond the policy's single-wait limit or the
run's wait budget fails at once with exit 8; a ModelScope ``Success: false`` answer with the
``RateLimitExceed`` code is a 429; in ``sync`` a hub that asked for a pause is backed off whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import pytest

from gitmirror.errors import EXIT_TRANSIENT, RateLimitedError, TransientError, error_for_status
from gitmirror.retry import FAST, RetryPolicy, WaitLedger, parse_ratelimit, retry_after_from, retrying
from mirror_pairs import HfToMs, hf_to_ms

pytestmark = pytest.mark.timeout(240)


# --- reading the headers ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"RateLimit": '"api";r=0;t=55'}, 55.0),
        ({"ratelimit": '"api";r=0;t=55', "ratelimit-policy": '"fixed window";"api";q=500;w=300'}, 55.0),
        ({"RateLimit": '"api";r=12;t=55'}, None),  # requests left: nothing to wait for
        ({"RateLimit": '"api";r=0;t=200', "Retry-After": "3"}, 200.0),  # as huggingface_hub: RateLimit first
        ({"RateLimit": '"api";r=5;t=200', "Retry-After": "3"}, 3.0),
        ({"Retry-After": "7"}, 7.0),
        ({"RateLimit": "garbage"}, None),
        ({}, None),
    ],
)
def test_the_wait_a_response_asks_for(headers, seconds):
    class Headers(dict):  # case-insensitive, as every HTTP client's headers are
        def get(self, key, default=None):
            return next((v for k, v in self.items() if k.lower() == key.lower()), default)

    assert retry_after_from(Headers(headers)) == seconds


def test_ratelimit_parsing_agrees_with_huggingface_hub():
    from huggingface_hub.utils import parse_ratelimit_headers

    for value in ('"api";r=0;t=55', '"resolvers";r=0;t=1', '"pages" ; r = 0 ; t = 299'):
        assert parse_ratelimit(value) == parse_ratelimit_headers({"RateLimit": value}).reset_in_seconds


# --- the limits of waiting -----------------------------------------------------------------------------

def _rate_limited(seconds: float) -> TransientError:
    return error_for_status(429, "LFS upload batch at example: HTTP 429", retry_after=seconds)  # type: ignore[return-value]


def _run(policy: RetryPolicy, asked: list[float]) -> int:
    tries = 0
    for attempt in retrying("LFS upload batch at example", policy):
        with attempt:
            tries += 1
            if asked:
                raise _rate_limited(asked.pop(0))
    return tries


def test_a_wait_longer_than_the_policy_allows_fails_at_once_with_exit_8():
    policy = dataclasses.replace(FAST, max_retry_after=10.0)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        _run(policy, [200.0])
    assert time.monotonic() - started < 1.0, "it waited instead of failing at once"
    error = info.value
    assert error.exit_code == EXIT_TRANSIENT and error.status == 429 and not error.transient
    assert "200 s" in str(error) and "10 s" in str(error)


def test_the_runs_wait_budget_is_shared_and_then_fails_at_once():
    policy = dataclasses.replace(FAST, wait_budget=0.5)
    assert _run(policy, [0.3]) == 2  # within the budget: waited, then succeeded
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        _run(policy, [0.3])  # another step of the same run: 0.3 more would pass 0.5
    assert time.monotonic() - started < 0.25
    assert "budget" in str(info.value)
    assert _run(policy.for_run(), [0.3]) == 2  # the next run starts a budget of its own


def test_the_default_policy_waits_up_to_the_hubs_window():
    assert RetryPolicy().max_retry_after >= 300 and RetryPolicy().wait_budget >= 300


def test_overlapping_waits_count_once():
    now = [100.0]
    ledger = WaitLedger(clock=lambda: now[0])
    for _ in range(8):  # eight workers told "wait 30 s" at the same moment
        assert ledger.take(30.0, budget=60.0)
    assert ledger.spent == 30.0
    now[0] += 30.0
    assert ledger.take(30.0, budget=60.0) and ledger.spent == 60.0
    now[0] += 30.0
    assert not ledger.take(1.0, budget=60.0), "the budget is spent"


def test_a_long_wait_is_said_at_the_default_level(caplog):
    caplog.set_level(logging.WARNING, logger="gitmirror")
    assert _run(FAST, [1.0]) == 2
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and said[0].startswith("waiting 1 s: the server asked us to slow down (HTTP 429)")


# --- against the sandbox hubs ---------------------------------------------------------------------------

@pytest.fixture
def pair(hub_pair, git_env, tmp_path, unique_name) -> HfToMs:
    """A private HF source (its visibility comes from the hub's API) and a ModelScope destination."""
    return hf_to_ms(hub_pair, git_env, tmp_path, unique_name("ratelimit"), [30_000, 30_001, 30_002], private=True)


def test_huggingface_ratelimit_header_on_lfs_is_honoured_and_said(pair, caplog):
    caplog.set_level(logging.WARNING, logger="gitmirror")
    pair.src_hub.faults.fail(route="lfs-batch", status=429, times=1, headers={"RateLimit": '"api";r=0;t=1'})
    heard = []
    started = time.monotonic()
    pair.run(on_retry=lambda what, exc: heard.append(exc))
    assert time.monotonic() - started >= 1.0, "the RateLimit header's t was not waited out"
    pair.assert_mirrored()
    assert [e.retry_after for e in heard if getattr(e, "status", None) == 429] == [1.0]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting ")]
    assert len(said) == 1 and "slow down (HTTP 429)" in said[0]


def test_huggingface_ratelimit_header_on_the_api_is_honoured(pair):
    """A private source: its visibility comes from the hub's API, which answers 429 once."""
    pair.src_hub.faults.fail(route="api", status=429, times=1, headers={"RateLimit": '"api";r=0;t=1'})
    heard = []
    pair.run(on_retry=lambda what, exc: heard.append(exc))
    pair.assert_mirrored()
    assert pair.src_hub.counters.snapshot().status_count("api", 429) == 1
    assert [e.retry_after for e in heard if getattr(e, "status", None) == 429] == [1.0]


def test_a_pause_beyond_the_limit_fails_the_run_at_once_with_exit_8(pair):
    pair.dst_hub.faults.fail(route="lfs-batch", status=429, times=None, retry_after=250)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        pair.run(policy=dataclasses.replace(FAST, max_retry_after=60.0))
    assert time.monotonic() - started < 30, "it waited"
    assert info.value.exit_code == EXIT_TRANSIENT and "250 s" in str(info.value)
    assert "refs/heads/master" not in pair.dst_hub.refs(pair.repo), "refs pushed without their objects"


ENVELOPE = json.dumps({"Code": "RateLimitExceed", "Message": "Too many requests, slow down", "Success": False,
                       "RequestId": "r-1"})


def test_modelscope_rate_limit_envelope_is_a_429_not_a_refusal(pair):
    """A 200 answer whose body says Success: false with RateLimitExceed (the login, the first API call)."""
    pair.dst_hub.faults.fail(route="api", status=200, times=2, body=ENVELOPE, content_type="application/json",
                             headers={"Retry-After": "0.3"})
    heard = []
    pair.run(on_retry=lambda what, exc: heard.append(exc))
    pair.assert_mirrored()
    limited = [e for e in heard if getattr(e, "status", None) == 429]
    assert len(limited) == 2 and all(e.retry_after == pytest.approx(0.3) for e in limited)


def test_modelscope_envelope_rate_limit_that_outlasts_the_retries_is_exit_8(pair):
    pair.dst_hub.faults.fail(route="api", status=200, times=None, body=ENVELOPE, content_type="application/json")
    with pytest.raises(TransientError) as info:
        pair.run(policy=dataclasses.replace(FAST, attempts=2))
    assert info.value.exit_code == EXIT_TRANSIENT and info.value.status == 429


# --- sync backs the whole hub off -----------------------------------------------------------------------

def test_sync_backs_the_hub_off_after_a_pause_it_could_not_wait(monkeypatch):
    import importlib

    from gitmirror.mirrors_file import MirrorEntry

    sync = importlib.import_module("gitmirror.sync")  # the package exports a function of that name

    def refused(*args, **kwargs):
        raise RateLimitedError("LFS upload batch: the server asked us to wait 250 s", retry_after=250.0)

    monkeypatch.setattr(sync, "run_mirror", refused)
    clock = [1000.0]
    pacer = sync.HostPacer(clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    entry = MirrorEntry(src="https://src.example/org/m.git", dst="https://dst.example/org/m.git")
    outcome = sync.run_one(entry, pacer=pacer, cache_dir=None, policy=FAST, env={})
    assert outcome.status == "failed" and outcome.exit_code == EXIT_TRANSIENT
    started = clock[0]
    pacer.wait(["https://dst.example"])  # the next mirror on that hub waits out the pause
    assert clock[0] - started >= 249


def test_modelscope_rate_limit_envelope_on_an_sdk_call_is_a_429(pair):
    """The same answer to a call made through modelscope_hub (its OpenAPI surface, lower-case keys)."""
    body = json.dumps({"success": False, "code": "RateLimitExceed", "message": "slow down", "request_id": "r-2"})
    rule = pair.dst_hub.faults.fail("GET", r"^/openapi/v1/", route="api", status=200, times=1, body=body,
                                    content_type="application/json")
    heard = []
    pair.run(on_retry=lambda what, exc: heard.append(exc))
    pair.assert_mirrored()
    assert rule.fired == 1, "no SDK call met the fault"
    assert [getattr(e, "status", None) for e in heard].count(429) == 1
