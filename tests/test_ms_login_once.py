"""One ModelScope login per token per run (issue 15, "A thousand mirrors"): a sync shares the git
token that ``POST /api/v1/login`` hands out across its mirrors, a refusal as well."""

from __future__ import annotations

import functools
import threading

import pytest

from gitmirror import api
from gitmirror.errors import PermissionDeniedError, TransientError
from gitmirror.hubs.logins import LoginCache, login_key
from gitmirror.mirrors_file import MirrorEntry
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import RepoBuilder
from judges import auth_env, modelscope_view, remote_refs

pytestmark = pytest.mark.timeout(420)

LOGIN = "POST /api/v1/login"


@pytest.fixture(scope="module")
def hubs(sandbox):
    hf, ms = sandbox.add_hub("huggingface"), sandbox.add_hub("modelscope")
    for hub in (hf, ms):
        hub.add_user("alice", orgs=("org",))
    return hf, ms


def _sources(hf, unique_name, count: int) -> list[str]:
    names = []
    for _ in range(count):
        name = unique_name("login")
        builder = RepoBuilder()
        builder.commit({"README.md": name})
        builder.tag("v1", message="one")
        builder.push_to_hub(hf, f"org/{name}")
        names.append(name)
    return names


def _sync(hf, ms, git_env, tmp_path, unique_name, token: str, count: int, jobs: int):
    """Sources on ``hf``, a sync of ``count`` mirrors to ``ms`` with the ModelScope ``token``."""
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": token}
    names = _sources(hf, unique_name, count)
    entries = [MirrorEntry(src=f"hf://org/{n}", dst=f"ms://org/{n}") for n in names]
    ms.counters.reset()
    run = functools.partial(api.sync, entries, jobs=jobs, cache_dir=tmp_path / "cache", env=env, policy=FAST)
    return names, run(), run


def test_a_sync_of_five_modelscope_mirrors_logs_in_once(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs
    token = ms.issue_token("alice")
    names, report, rerun = _sync(hf, ms, git_env, tmp_path, unique_name, token, 5, 3)
    assert [o.status for o in report.outcomes] == ["updated"] * 5, [o.reason for o in report.outcomes]
    assert ms.counters.snapshot().paths.get(LOGIN, 0) == 1
    judge = auth_env(ms.endpoint, "oauth2", ms.git_token_for(token), git_env)
    for name in names:  # every mirror pushed with the one shared git token
        src = remote_refs(hf.git_url(f"org/{name}"), git_env)
        assert remote_refs(ms.git_url(f"org/{name}"), judge) == modelscope_view(src)
    # A second run logs in again (once): the cache belongs to a run, not to the process.
    ms.counters.reset()
    again = rerun()
    assert [o.status for o in again.outcomes] == ["up-to-date"] * 5
    assert ms.counters.snapshot().paths.get(LOGIN, 0) == 1


def test_a_refused_login_is_asked_once_and_fails_every_mirror(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs
    read_only = ms.issue_token("alice", scope="read")
    names, report, _ = _sync(hf, ms, git_env, tmp_path, unique_name, read_only, 4, 2)
    assert [o.status for o in report.outcomes] == ["failed"] * 4
    assert {o.exit_code for o in report.outcomes} == {PermissionDeniedError.exit_code}
    assert all("read-only" in o.reason for o in report.outcomes)
    assert ms.counters.snapshot().paths.get(LOGIN, 0) == 1
    for name in names:  # nothing was created with the refused token
        assert ms.state.get_repo(ms.key(f"org/{name}")) is None


def test_login_cache_shares_per_key_and_forgets_a_transient_failure():
    cache: LoginCache[str] = LoginCache()
    calls: list[str] = []
    gate = threading.Event()

    def login() -> str:
        calls.append("x")
        gate.wait(5)
        return "git-token"

    key = login_key("http://127.0.0.1:1/", "sdk-secret")
    assert "sdk-secret" not in repr(key) and "sdk-secret" not in repr(cache)
    threads = [threading.Thread(target=lambda: cache.get(key, login)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == ["x"] and cache.logins == 1
    other = login_key("http://127.0.0.1:1", "another-secret")
    assert cache.get(other, lambda: "second") == "second" and cache.logins == 2

    def flaky() -> str:
        raise TransientError("503")

    third = login_key("http://127.0.0.1:2", "sdk-secret")
    with pytest.raises(TransientError):
        cache.get(third, flaky)
    assert cache.get(third, lambda: "later") == "later"
