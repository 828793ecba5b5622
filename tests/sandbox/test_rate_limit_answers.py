"""The sandbox's rate-limit refusals have the real hubs' shape, judged by the hubs' own SDK code.

Hugging Face: 429 with ``RateLimit`` / ``RateLimit-Policy`` (5-minute windows; hub-docs
``rate-limits.md``), read here by huggingface_hub's ``parse_ratelimit_headers``. ModelScope: a 200
whose body says ``Success: false`` with the ``RateLimitExceed`` code, read here by modelscope_hub's
own decoder, which raises its ``RateLimitError``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import requests


def call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def batch_url(hub, repo: str) -> str:
    return f"{hub.lfs_url(repo)}/objects/batch"


@pytest.fixture
def hf(sandbox, unique_name):
    hub = sandbox.add_hub("huggingface", name=unique_name("hf"))
    hub.add_user("alice")
    repo = "alice/" + unique_name("m")
    hub.create_repo(repo)
    return hub, repo


def test_huggingface_429_carries_ratelimit_headers_in_five_minute_windows(hf):
    from huggingface_hub.utils import parse_ratelimit_headers

    hub, repo = hf
    rule = hub.faults.rate_limit(route="lfs-batch", reset=7, quota=500)
    status, headers, body = call(batch_url(hub, repo), "POST", b"{}")
    assert status == 429
    assert headers["RateLimit"] == '"api";r=0;t=7'
    assert headers["RateLimit-Policy"] == '"fixed window";"api";q=500;w=300'
    assert "Retry-After" not in headers  # the hub may leave it out; RateLimit says when
    info = parse_ratelimit_headers(headers)
    assert (info.resource_type, info.remaining, info.reset_in_seconds, info.limit, info.window_seconds) == \
        ("api", 0, 7, 500, 300)
    assert "error" in json.loads(body)
    assert rule.fired == 1
    assert call(batch_url(hub, repo), "POST", b"{}")[0] != 429  # times=1: the next request goes through
    snap = hub.counters.snapshot()
    assert snap.status_count("lfs-batch", 429) == 1


def test_huggingface_429_may_add_retry_after(hf):
    hub, repo = hf
    hub.faults.rate_limit(route="lfs-batch", reset=4, retry_after=4, times=2)
    for _ in range(2):
        status, headers, _ = call(batch_url(hub, repo), "POST", b"{}")
        assert status == 429 and headers["Retry-After"] == "4" and headers["RateLimit"] == '"api";r=0;t=4'


def test_rate_limit_set_over_the_control_endpoint(hf):
    hub, repo = hf
    status, _, body = call(f"{hub.endpoint}/_sandbox/faults", "POST",
                           json.dumps({"action": "rate_limit", "route": "lfs-batch", "reset": 3,
                                       "quota": 10}).encode())
    assert status == 200 and json.loads(body)["limit"]["quota"] == 10
    status, headers, _ = call(batch_url(hub, repo), "POST", b"{}")
    assert status == 429 and headers["RateLimit-Policy"] == '"fixed window";"api";q=10;w=300'


def test_modelscope_success_false_rate_limit_body(sandbox, unique_name):
    from modelscope_hub._openapi import OpenAPIClient
    from modelscope_hub.errors import RateLimitError

    hub = sandbox.add_hub("modelscope", name=unique_name("ms"))
    hub.faults.rate_limit(route="api", style="modelscope")
    url = f"{hub.endpoint}/openapi/v1/users/me"
    status, headers, body = call(url)
    assert status == 200 and "RateLimit" not in headers
    doc = json.loads(body)
    assert doc["Success"] is False and doc["Code"] == "RateLimitExceed" and doc["Message"]
    # modelscope_hub's own reading of such a 200: its RateLimitError.
    answer = requests.Response()
    answer.status_code, answer._content, answer.url = 200, body, url
    answer.headers.update(headers)
    answer.request = requests.Request("GET", url).prepare()
    with pytest.raises(RateLimitError):
        OpenAPIClient._decode_mcp_list_response(answer)
    assert b"RateLimitExceed" not in call(url)[2]  # times=1: the next request is answered as usual


def test_a_rate_limit_style_the_hubs_do_not_have_is_refused(sandbox, unique_name):
    hub = sandbox.add_hub("git", name=unique_name("git"))
    with pytest.raises(ValueError):
        hub.faults.rate_limit(style="gitlab")
