"""gitmirror sync: many mirrors, mixed outcomes, no-op cost, locks, shards, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gitmirror import api
from gitmirror.errors import EXIT_PARTIAL, UsageError
from gitmirror.mirrors_file import MirrorEntry, in_shard, load_mirrors, parse_shard
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(420)


def small_history(seed: str) -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(8_000, seed)), "README.md": seed})
    b.tag("v1", message="one")
    return b


def hub_env(hf, ms, git_env, **extra) -> dict[str, str]:
    """The environment a user would have: both endpoints and alice's tokens."""
    return {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
            "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"), **extra}


@pytest.fixture(scope="module")
def hubs(sandbox):
    hf = sandbox.add_hub("huggingface")
    busy = sandbox.add_hub("huggingface")  # the one that answers 429s
    ms = sandbox.add_hub("modelscope")
    for hub in (hf, busy, ms):
        hub.add_user("alice", orgs=("org",))
    return {"hf": hf, "busy": busy, "ms": ms}


def test_twenty_mirrors_with_mixed_outcomes(hubs, git_env, tmp_path, unique_name):
    hf, busy, ms = hubs["hf"], hubs["busy"], hubs["ms"]
    env = hub_env(hf, ms, git_env, BUSY_TOKEN=busy.issue_token("alice"))
    cache = tmp_path / "cache"
    builders: dict[str, RepoBuilder] = {}
    lines = []
    kinds = ["up-to-date"] * 5 + ["new-commit"] * 4 + ["new-lfs"] * 4 + ["missing-source"] * 2 + ["diverged"] * 2
    entries = []
    for index, kind in enumerate(kinds):
        name = unique_name(kind)
        src, dst = f"hf://org/{name}", f"ms://org/{name}"
        if kind != "missing-source":
            builders[name] = small_history(name)
            builders[name].push_to_hub(hf, f"org/{name}")
            api.mirror(src, dst, env=env, cache_dir=cache, policy=FAST)
        entries.append((kind, name, MirrorEntry(src=src, dst=dst)))
    for kind, name, _ in entries:
        if kind == "new-commit":
            builders[name].commit({"notes.txt": "more"}, message="new commit")
            builders[name].push_to_hub(hf, f"org/{name}")
        elif kind == "new-lfs":
            builders[name].commit({"w2.bin": lfs(random_bytes(5_000, name + "new"))}, message="new weights")
            builders[name].push_to_hub(hf, f"org/{name}")
        elif kind == "diverged":
            other = RepoBuilder(default_branch="master")
            other.commit({"edit.txt": "edited on the mirror"})
            other.write(ms.repo_path(f"org/{name}"))
            builders[name].commit({"x.txt": "upstream"})
            builders[name].push_to_hub(hf, f"org/{name}")
    # Three mirrors from the busy hub, which answers bursts of 429 with Retry-After.
    for i in range(3):
        name = unique_name("busy")
        small_history(name).push_to_hub(busy, f"org/{name}")
        entries.append(("busy", name, MirrorEntry(src=f"{busy.endpoint}/org/{name}", dst=f"ms://org/{name}",
                                                  src_token_env="BUSY_TOKEN")))
    busy.faults.fail("*", path="", status=429, times=4, retry_after=0.2)
    mirrors_file = tmp_path / "mirrors.txt"
    mirrors_file.write_text("# twenty mirrors\n\n" + "\n".join(f"{e.src} {e.dst}" for _, _, e in entries[:17]) + "\n")
    toml_file = tmp_path / "mirrors.toml"
    toml_file.write_text("[defaults]\njobs = 4\n\n" + "".join(
        f'[[mirror]]\nsrc = "{e.src}"\ndst = "{e.dst}"\n'
        + (f'src_token_env = "{e.src_token_env}"\n' if e.src_token_env else "") + "\n" for _, _, e in entries))
    assert len(load_mirrors(mirrors_file)) == 17 and len(load_mirrors(toml_file)) == 20

    report_path = tmp_path / "report.json"
    metrics_path = tmp_path / "metrics.prom"
    done = subprocess.run(
        [sys.executable, "-m", "gitmirror", "sync", str(toml_file), "--jobs", "4", "--report", str(report_path),
         "--metrics", str(metrics_path), "--cache-dir", str(cache)],
        env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == EXIT_PARTIAL, done.stderr
    report = json.loads(report_path.read_text())
    by_src = {m["entry"]["src"]: m for m in report["mirrors"]}
    expected_status = {"up-to-date": "up-to-date", "new-commit": "updated", "new-lfs": "updated",
                       "missing-source": "failed", "diverged": "failed", "busy": "updated"}
    for kind, name, entry in entries:
        outcome = by_src[entry.src]
        assert outcome["status"] == expected_status[kind], (kind, outcome)
        if kind == "new-lfs":
            assert outcome["objects_moved"] == 1 and outcome["bytes_moved"] == 5_000
        if kind in ("up-to-date", "new-commit"):
            assert outcome["objects_moved"] == 0
        if kind == "diverged":
            assert outcome["exit_code"] == 6 and "--force" in outcome["reason"]
        if kind == "missing-source":
            assert outcome["exit_code"] == 3
    assert sum(by_src[e.src]["retries"] for k, _, e in entries if k == "busy") >= 4
    assert busy.counters.snapshot().status_count("git-info-refs", 429) >= 1
    # The destination is really updated (independent of the report).
    for kind, name, entry in entries:
        if kind in ("new-commit", "new-lfs"):
            assert ms.refs(f"org/{name}")["refs/heads/master"] == hf.refs(f"org/{name}")["refs/heads/main"]
    assert report["counts"] == {"up-to-date": 5, "updated": 11, "failed": 4}
    assert "failed" in done.stdout and "up-to-date" in done.stdout  # the table
    metrics = metrics_path.read_text()
    assert "gitmirror_sync_failed_mirrors 4" in metrics and "gitmirror_last_success_timestamp_seconds{" in metrics


def test_noop_sync_costs_only_ls_remote(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    entries = []
    for _ in range(3):
        name = unique_name("noop")
        small_history(name).push_to_hub(hf, f"org/{name}")
        entries.append(MirrorEntry(src=f"hf://org/{name}", dst=f"ms://org/{name}"))
    first = api.sync(entries, cache_dir=tmp_path / "cache", env=env, policy=FAST)
    assert [o.status for o in first.outcomes] == ["updated"] * 3
    hf.counters.reset()
    ms.counters.reset()
    again = api.sync(entries, cache_dir=tmp_path / "cache", env=env, policy=FAST)
    assert [o.status for o in again.outcomes] == ["up-to-date"] * 3
    for hub in (hf, ms):
        snap = hub.counters.snapshot()
        assert snap.count("git-info-refs") == 3
        assert snap.count("git-upload-pack") == snap.count("git-receive-pack") == snap.count("lfs-batch") == 0
    # ModelScope's git token costs one login call per mirror; nothing else reaches the API.
    assert hf.counters.snapshot().count("api") == 0
    assert ms.counters.snapshot().count("api") <= 3


def test_overlapping_runs_never_share_a_mirror(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    name = unique_name("overlap")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "big.bin": lfs(random_bytes(2_000_000, name))})
    builder.push_to_hub(hf, f"org/{name}")
    hf.faults.bandwidth(down=2_000_000)  # long enough for the two runs to overlap
    entries = [MirrorEntry(src=f"hf://org/{name}", dst=f"ms://org/{name}")]
    reports = []
    try:
        threads = [threading.Thread(target=lambda: reports.append(api.sync(entries, cache_dir=tmp_path / "cache",
                                                                               env=env, policy=FAST)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        hf.faults.clear()
    statuses = sorted(r.outcomes[0].status for r in reports)
    assert statuses == ["skipped", "updated"], [r.outcomes[0].reason for r in reports]
    assert all(r.exit_code == 0 for r in reports)
    assert ms.refs(f"org/{name}")["refs/heads/master"] == hf.refs(f"org/{name}")["refs/heads/main"]


def test_shards_are_disjoint_stable_and_cover_the_list():
    entries = [MirrorEntry(src=f"hf://o/r{i}", dst=f"ms://o/r{i}") for i in range(200)]
    for n in (1, 2, 3, 7):
        parts = [[e for e in entries if in_shard(e, k, n)] for k in range(n)]
        assert sum(len(p) for p in parts) == len(entries)
        assert set().union(*[{e.key for e in p} for p in parts]) == {e.key for e in entries}
        if n > 1:
            assert all(parts), "every shard gets some of 200 mirrors"
    assert parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "2"}) == (2, 4)
    for bad in ("4/4", "x/2", "1", "-1/3", "auto/2"):
        with pytest.raises(UsageError):
            parse_shard(bad, {})


def test_mirrors_file_errors(tmp_path):
    cases = {
        "one-word.txt": "hf://a/b\n",
        "dup.txt": "hf://a/b ms://a/b\nhf://a/b ms://a/b\n",
        "bad.toml": "[[mirror]]\nsrc = 1\n",
        "unknown.toml": '[[mirror]]\nsrc = "hf://a/b"\ndst = "ms://a/b"\nforse = true\n',
        "empty.txt": "# nothing\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(UsageError):
            load_mirrors(path)


def test_prune_cache_removes_unlisted_mirrors(hubs, git_env, tmp_path, unique_name):
    from gitmirror.sync import prune_cache

    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    entries = []
    for _ in range(2):
        name = unique_name("prune")
        small_history(name).push_to_hub(hf, f"org/{name}")
        entries.append(MirrorEntry(src=f"hf://org/{name}", dst=f"ms://org/{name}"))
    api.sync(entries, cache_dir=tmp_path / "cache", env=env, policy=FAST)
    repos = sorted((tmp_path / "cache" / "repos").glob("*.git"))
    assert len(repos) == 2
    removed = prune_cache(tmp_path / "cache", entries[:1], env)
    assert len(removed) == 1 and not removed[0].exists()
    assert api.mirror_key(entries[0].src, entries[0].dst, env) + ".git" in [p.name for p in (tmp_path / "cache" / "repos").glob("*.git")]


def test_force_pushed_source_repairs_the_cache_in_place(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    name = unique_name("rewrite")
    small_history(name).push_to_hub(hf, f"org/{name}")
    src, dst = f"hf://org/{name}", f"ms://org/{name}"
    api.mirror(src, dst, env=env, cache_dir=tmp_path / "cache", policy=FAST)
    workdir = tmp_path / "cache" / "repos" / f"{api.mirror_key(src, dst, env)}.git"
    marker = workdir / "gitmirror-test-marker"
    marker.write_text("this cache was not re-cloned")
    assert not list((tmp_path / "cache").rglob("lfs")), "the cache holds git objects only"

    rewritten = RepoBuilder()  # upstream squashes its history (a force-push)
    rewritten.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(7_000, name + "squash"))},
                     message="squashed")
    rewritten.write(hf.repo_path(f"org/{name}"), hf.repo_path(f"org/{name}") / "lfs" / "objects")
    result = api.mirror(src, dst, env=env, cache_dir=tmp_path / "cache", policy=FAST, force=True)
    assert marker.exists()
    assert ms.refs(f"org/{name}")["refs/heads/master"] == hf.refs(f"org/{name}")["refs/heads/main"]
    assert result.objects_moved == 1


def test_lock_of_a_killed_run_does_not_block(hubs, git_env, tmp_path, unique_name):
    import os
    import signal

    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    name = unique_name("killed")
    small_history(name).push_to_hub(hf, f"org/{name}")
    src, dst = f"hf://org/{name}", f"ms://org/{name}"
    repos = tmp_path / "cache" / "repos"
    repos.mkdir(parents=True)
    lock_path = repos / f"{api.mirror_key(src, dst, env)}.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
        "print('held', flush=True); time.sleep(600)"), str(lock_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        locked = api.sync([MirrorEntry(src=src, dst=dst)], cache_dir=tmp_path / "cache", env=env, policy=FAST)
        assert locked.outcomes[0].status == "skipped"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        after = api.sync([MirrorEntry(src=src, dst=dst)], cache_dir=tmp_path / "cache", env=env, policy=FAST)
        assert after.outcomes[0].status == "updated"
    finally:
        holder.kill()


# --- the command line as cron runs it: output to a log file, option names, token variables ---------------------------


def run_sync_cli(args, env, cwd: Path) -> subprocess.CompletedProcess:
    """``gitmirror sync`` with stdout and stderr going to files, as in a cron log (not a terminal)."""
    out, err = cwd / "stdout.log", cwd / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run([sys.executable, "-m", "gitmirror", "sync", *args], env=env, stdout=stdout,
                              stderr=stderr, timeout=240)
    return subprocess.CompletedProcess(done.args, done.returncode, out.read_text(), err.read_text())


def ms_refs(ms, name: str, env) -> dict[str, str]:
    from judges import auth_env, remote_refs

    token = ms.git_token_for(env["MODELSCOPE_API_TOKEN"])
    return remote_refs(ms.git_url(f"org/{name}"), auth_env(ms.endpoint, "oauth2", token, env))


def test_sync_log_has_whole_lines_and_the_old_jobs_spelling_still_works(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    env.pop("COLUMNS", None)
    name = unique_name("a-model-whose-name-alone-is-longer-than-a-terminal-of-eighty-columns-is-wide")
    src_refs = small_history(name).push_to_hub(hf, f"org/{name}")
    (tmp_path / "mirrors.txt").write_text(f"hf://org/{name} ms://org/{name}\n")
    done = run_sync_cli([str(tmp_path / "mirrors.txt"), "--jobs", "2", "--cache-dir", str(tmp_path / "cache")], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert ms_refs(ms, name, env) == {"refs/heads/master": src_refs["refs/heads/main"], "refs/tags/v1": src_refs["refs/tags/v1"]}
    # The old spelling: one note, then the run as with --parallel.
    notes = [line for line in done.stderr.splitlines() if "--jobs" in line]
    assert len(notes) == 1 and "--parallel" in notes[0]
    # The table row holds the mirror's whole name on one line; the summary counts one mirror.
    assert any(f"hf://org/{name} -> ms://org/{name}" in line and "updated" in line for line in done.stdout.splitlines()), done.stdout
    assert f"1 mirror: 1 updated in " in done.stdout


def test_sync_parallel_runs_mirrors_at_once(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    names = [unique_name("parallel") for _ in range(3)]
    expected = {}
    for name in names:
        refs = small_history(name).push_to_hub(hf, f"org/{name}")
        expected[name] = {"refs/heads/master": refs["refs/heads/main"], "refs/tags/v1": refs["refs/tags/v1"]}
    (tmp_path / "mirrors.txt").write_text("".join(f"hf://org/{n} ms://org/{n}\n" for n in names))
    done = run_sync_cli([str(tmp_path / "mirrors.txt"), "--parallel", "3", "--cache-dir", str(tmp_path / "cache")], env, tmp_path)
    assert done.returncode == 0, done.stderr
    for name in names:
        assert ms_refs(ms, name, env) == expected[name]
    assert "3 mirrors: 3 updated in " in done.stdout
    # One status line per mirror, each whole: nothing run together on stderr.
    lines = done.stderr.splitlines()
    assert sorted(lines) == sorted(f"gitmirror: hf://org/{n} -> ms://org/{n}: updated" for n in names), done.stderr
    assert "--parallel" in subprocess.run([sys.executable, "-m", "gitmirror", "sync", "--help"], capture_output=True,
                                          text=True, check=True).stdout


def test_a_token_variable_that_is_not_set_is_an_error_naming_it(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)  # HF_TOKEN is set: falling back to it would have worked
    name = unique_name("tokvar")
    small_history(name).push_to_hub(hf, f"org/{name}")
    mirrors = tmp_path / "mirrors.toml"
    mirrors.write_text(f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{name}"\nsrc_token_env = "HF_TOKEN_NOT_EXPORTED"\n')
    done = run_sync_cli([str(mirrors), "--cache-dir", str(tmp_path / "cache")], env, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error:") and "HF_TOKEN_NOT_EXPORTED" in lines[0]
    # Nothing was mirrored: the destination repository was not even created.
    from judges import auth_env

    ls = subprocess.run(["git", "ls-remote", ms.git_url(f"org/{name}")], capture_output=True, text=True, timeout=60,
                        env=auth_env(ms.endpoint, "oauth2", ms.git_token_for(env["MODELSCOPE_API_TOKEN"]), env))
    assert ls.returncode != 0 and not ls.stdout, ls.stdout
    # Set (even to the same token), the mirror runs.
    done = run_sync_cli([str(mirrors), "--cache-dir", str(tmp_path / "cache")],
                        {**env, "HF_TOKEN_NOT_EXPORTED": env["HF_TOKEN"]}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(ms_refs(ms, name, env)) == {"refs/heads/master", "refs/tags/v1"}


def test_status_lines_from_many_threads_never_run_together(monkeypatch):
    """print_outcome_line is called from sync's worker threads; a stream that lets other threads in
    between two writes (as a pipe to a slow log may) must still get whole lines."""
    import io
    import time

    from gitmirror import report
    from gitmirror.sync import MirrorOutcome

    class SlowStream(io.StringIO):
        def write(self, text):
            for char in text:  # a thread switch may come after any character
                super().write(char)
                time.sleep(0)
            return len(text)

        def isatty(self):
            return False

    stream = SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)
    outcomes = [MirrorOutcome(MirrorEntry(src=f"hf://org/m{i}", dst=f"ms://org/m{i}"), "updated") for i in range(16)]
    threads = [threading.Thread(target=report.print_outcome_line, args=(o,)) for o in outcomes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(stream.getvalue().splitlines()) == sorted(f"gitmirror: hf://org/m{i} -> ms://org/m{i}: updated" for i in range(16))


def test_the_python_api_also_refuses_an_unset_token_variable(hubs, git_env, tmp_path, unique_name):
    """api.sync checks token variables itself: the CLI is not the only way in."""
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    name = unique_name("apitokvar")
    small_history(name).push_to_hub(hf, f"org/{name}")
    entry = MirrorEntry(src=f"hf://org/{name}", dst=f"ms://org/{name}", src_token_env="HF_TOKEN_NOT_EXPORTED")
    with pytest.raises(UsageError) as err:
        api.sync([entry], cache_dir=tmp_path / "cache", env=env, policy=FAST)
    assert "HF_TOKEN_NOT_EXPORTED" in str(err.value)
    from judges import auth_env

    ls = subprocess.run(["git", "ls-remote", ms.git_url(f"org/{name}")], capture_output=True, text=True, timeout=60,
                        env=auth_env(ms.endpoint, "oauth2", ms.git_token_for(env["MODELSCOPE_API_TOKEN"]), env))
    assert ls.returncode != 0 and not ls.stdout, "nothing may be created or pushed"


def test_paths_may_be_str_as_well_as_path(hubs, git_env, tmp_path, unique_name):
    hf, ms = hubs["hf"], hubs["ms"]
    env = hub_env(hf, ms, git_env)
    name = unique_name("strpaths")
    small_history(name).push_to_hub(hf, f"org/{name}")
    result = api.mirror(f"hf://org/{name}", f"ms://org/{name}", env=env, cache_dir=str(tmp_path / "cache"),
                        lfs_cache=str(tmp_path / "lfs"), policy=FAST)
    assert result.verified
    assert set(ms_refs(ms, name, env)) == {"refs/heads/master", "refs/tags/v1"}
    assert list((tmp_path / "cache" / "repos").glob("*.git")), "the str cache_dir was used"
    assert result.objects_moved and any(p.is_file() for p in (tmp_path / "lfs").rglob("*")), "the str lfs_cache was used"
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"hf://org/{name} ms://org/{name}\n")
    report = api.sync(str(mirrors), cache_dir=str(tmp_path / "cache"), env=env, policy=FAST)
    assert [o.status for o in report.outcomes] == ["up-to-date"]
    verdict = api.verify(f"hf://org/{name}", f"ms://org/{name}", env=env, cache_dir=str(tmp_path / "cache"),
                         policy=FAST)
    assert verdict.in_sync
