"""A no-op sync over many mirrors keeps its connections (issue 15, "A thousand mirrors"): each hub
is reached over a handful of kept-alive connections for the whole run, not one new connection
(with TLS, two more round trips) per mirror, and a mirror costs two requests: its two listings;
and it starts no git per mirror (git is checked once for the run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gitmirror import api
from gitmirror.mirrors_file import MirrorEntry
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import RepoBuilder
from judges import auth_env, modelscope_view, remote_refs

pytestmark = pytest.mark.timeout(300)

MIRRORS = 12
PARALLEL = 3


def _connections(hub) -> int:
    """New connections the hub accepted on its git/API port since the last reset."""
    return hub.counters.snapshot().features.get("connection-hub", 0)


def _counting_git(bindir: Path, log: Path) -> None:
    """A ``git`` first on PATH that notes each run's arguments in ``log``, then runs the real git."""
    real = shutil.which("git")
    bindir.mkdir()
    shim = bindir / "git"
    shim.write_text(f"#!/bin/sh\necho \"$*\" >> '{log}'\nexec '{real}' \"$@\"\n")
    shim.chmod(0o755)


def test_a_noop_sync_reuses_connections_to_both_hubs_across_mirrors(sandbox, git_env, tmp_path, unique_name,
                                                                     monkeypatch):
    hf, ms = sandbox.add_hub("huggingface"), sandbox.add_hub("modelscope")
    for hub in (hf, ms):
        hub.add_user("alice", orgs=("org",))
    names = []
    for _ in range(MIRRORS):
        name = unique_name("keep")
        builder = RepoBuilder()
        builder.commit({"README.md": name})
        builder.push_to_hub(hf, f"org/{name}")
        names.append(name)
    ms_token = ms.issue_token("alice")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms_token}
    entries = [MirrorEntry(src=f"hf://org/{n}", dst=f"ms://org/{n}") for n in names]
    first = api.sync(entries, jobs=PARALLEL, cache_dir=tmp_path / "cache", env=env, policy=FAST)
    assert [o.status for o in first.outcomes] == ["updated"] * MIRRORS, [o.reason for o in first.outcomes]

    for hub in (hf, ms):
        hub.counters.reset()
    log = tmp_path / "git-runs.log"
    _counting_git(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    again = api.sync(entries, jobs=PARALLEL, cache_dir=tmp_path / "cache", env=env, policy=FAST)

    assert [o.status for o in again.outcomes] == ["up-to-date"] * MIRRORS, [o.reason for o in again.outcomes]
    src, dst = hf.counters.snapshot(), ms.counters.snapshot()
    # Two listings per mirror and one ModelScope login for the run: nothing else.
    assert src.total_requests() == MIRRORS and src.count("git-info-refs") == MIRRORS
    assert dst.count("git-info-refs") == MIRRORS and dst.total_requests() == MIRRORS + 1
    # At most one kept connection per thread that lists (mirror workers, listing helpers) and one
    # for the login; one per mirror would be MIRRORS.
    assert _connections(hf) <= PARALLEL, _connections(hf)
    assert _connections(ms) <= PARALLEL + 1, _connections(ms)
    # git is checked once for the run (a `git version` per mirror was a third of a no-op's CPU),
    # and a no-op mirror runs no git at all.
    runs = log.read_text().splitlines() if log.exists() else []
    assert runs.count("version") == 1, runs
    assert len(runs) <= 2, runs
    monkeypatch.undo()
    judge = auth_env(ms.endpoint, "oauth2", ms.git_token_for(ms_token), git_env)
    for name in names:  # and the destinations are the sources' mirrors
        src_refs = remote_refs(hf.git_url(f"org/{name}"), git_env)
        assert remote_refs(ms.git_url(f"org/{name}"), judge) == modelscope_view(src_refs)
