"""git's own progress in the fetch and the push: the parser on fixed strings and on what a real
``git fetch --progress`` / ``git push --progress`` prints against a sandbox hub, the display in
the CLI (plain lines off a terminal, rich bars on one), and failures classified as before."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitmirror import gitrepo, progress
from gitmirror.errors import AuthError, DivergedError, GitMirrorError, RepoNotFoundError, TransientError
from gitmirror.gitprogress import GitProgress, ProgressReader, binary_size, describe, parse_record, parse_size
from gitmirror.lfs import LfsObject, TransferEvent
from gitmirror.progress import PlainProgress, RichProgress
from gitmirror.remote import GitAuth, PushSpec, Remote
from gitmirror.sandbox.seed import RepoBuilder, random_bytes

from judges import auth_env, remote_refs

pytestmark = pytest.mark.timeout(300)

MiB = 1 << 20


# --- the parser on fixed strings -------------------------------------------------------------------

@pytest.mark.parametrize("number, unit, expected", [
    ("12.00", "MiB", 12 * MiB), ("906.82", "KiB", round(906.82 * 1024)), ("1.50", "GiB", 3 << 29),
    ("1", "byte", 1), ("512", "bytes", 512),
])
def test_git_units(number, unit, expected):
    assert parse_size(number, unit) == expected


def test_a_record_with_counts_bytes_and_rate():
    event = parse_record("Receiving objects:  45% (450/1000), 12.00 MiB | 5.00 MiB/s")
    assert event == GitProgress("Receiving objects", 450, 1000, 12 * MiB, 5.0 * MiB, remote=False, finished=False)
    assert event.percent == 45
    assert describe(event) == "Receiving objects 45% 450/1000 12.0 MiB 5.0 MiB/s"
    small = parse_record("Writing objects: 100% (3/3), 1 byte | 1 byte/s, done.", finished=True)
    assert (small.nbytes, small.rate, small.finished) == (1, 1.0, True)
    assert describe(small) == "Writing objects 100% 3/3 1 bytes done"


def test_server_records_and_counts_without_total():
    # The sideband pads a server's record with spaces on a pipe, with ESC[K on a terminal.
    counting = parse_record("remote: Counting objects:   5% (30/600)        ")
    assert counting == GitProgress("Counting objects", 30, 600, remote=True)
    enumerating = parse_record("remote: Enumerating objects: 600, done.\x1b[K", finished=True)
    assert enumerating == GitProgress("Enumerating objects", 600, None, remote=True, finished=True)
    assert enumerating.percent is None and describe(enumerating) == "Enumerating objects (server) 600 done"
    thin = parse_record("Resolving deltas: 100% (7/7), completed with 3 local objects.", finished=True)
    assert (thin.phase, thin.done, thin.total, thin.finished) == ("Resolving deltas", 7, 7, True)


@pytest.mark.parametrize("line", [
    "fatal: repository 'http://127.0.0.1:4040/org-404/m.git/' not found",
    "error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500",
    "remote: ERROR: 403",
    "remote: Offending files: 12",
    "warning: redirecting to http://example.invalid/x.git/",
    "To http://127.0.0.1:4040/org/m.git",
    "",
])
def test_lines_that_are_not_progress(line):
    assert parse_record(line) is None


def test_binary_sizes():
    assert [binary_size(n) for n in (0, 1023, 1024, 1536, 12 * MiB, 3 << 29)] == \
        ["0 bytes", "1023 bytes", "1.0 KiB", "1.5 KiB", "12.0 MiB", "1.5 GiB"]


STDERR = (
    b"remote: Enumerating objects: 600, done.        \n"
    b"remote: Counting objects:  50% (300/600)        \rremote: Counting objects: 100% (600/600), done.        \n"
    b"remote: Total 600 (delta 10), reused 0 (delta 0), pack-reused 0        \n"
    b"warning: the server said something\n"
    b"Receiving objects:  10% (60/600)\rReceiving objects:  90% (540/600), 800.00 KiB | 1.50 MiB/s\r"
    b"Receiving objects: 100% (600/600), 906.82 KiB | 1.60 MiB/s, done.\n"
    b"Resolving deltas: 100% (10/10), done.\n"
    b"From http://127.0.0.1:4040/org/m\n"
    b" * [new branch]      main       -> refs/src/heads/main\n"
    b" + 1a2b3c4...5d6e7f8 dev        -> refs/src/heads/dev  (forced update)\n"
    b"Delta compression using up to 2 threads\n"
    b"fatal: the remote end hung up unexpectedly\n"
)


@pytest.mark.parametrize("size", [1, 7, 64, len(STDERR)])
def test_reader_in_chunks_of_any_size(size):
    events: list[GitProgress] = []
    reader = ProgressReader(events.append)
    for start in range(0, len(STDERR), size):
        reader.feed(STDERR[start:start + size])
    reader.close()
    assert [(e.phase, e.remote, e.done, e.total, e.finished) for e in events] == [
        ("Enumerating objects", True, 600, None, True),
        ("Counting objects", True, 300, 600, False),
        ("Counting objects", True, 600, 600, True),
        ("Receiving objects", False, 60, 600, False),
        ("Receiving objects", False, 540, 600, False),
        ("Receiving objects", False, 600, 600, True),
        ("Resolving deltas", False, 10, 10, True),
    ]
    assert events[5].nbytes == round(906.82 * 1024) and events[4].rate == 1.5 * MiB
    # What git writes without --progress (and, for a fetch, with --quiet) is kept, byte for byte.
    assert reader.messages() == b"warning: the server said something\nfatal: the remote end hung up unexpectedly\n"


def test_a_record_split_over_two_lines():
    # git splits a record narrower than COLUMNS: the title, then the counters indented.
    events: list[GitProgress] = []
    reader = ProgressReader(events.append)
    reader.feed(b"Receiving objects:                   \n  45% (450/1000), 1.00 MiB | 1.00 MiB/s\r"
                b"  100% (1000/1000), 2.00 MiB | 1.00 MiB/s, done.\nNote:\nsomething else\n")
    reader.close()
    assert [(e.phase, e.done, e.nbytes, e.finished) for e in events] == [
        ("Receiving objects", 450, MiB, False), ("Receiving objects", 1000, 2 * MiB, True)]
    assert reader.messages() == b"Note:\nsomething else\n"


def test_a_failing_listener_is_dropped_and_messages_are_kept():
    calls = []

    def broken(event):
        calls.append(event)
        raise RuntimeError("display gone")

    reader = ProgressReader(broken)
    reader.feed(STDERR)
    reader.close()
    assert len(calls) == 1
    assert reader.messages().endswith(b"fatal: the remote end hung up unexpectedly\n")


# --- live: what git prints against a sandbox hub ----------------------------------------------------

def history(commits: int = 80) -> RepoBuilder:
    """7 objects a commit (several hundred in all); the growing notes file makes deltas."""
    builder = RepoBuilder()
    notes = b""
    for i in range(commits):
        notes += b"".join(b"line %d of commit %d, some words to compress\n" % (n, i) for n in range(40))
        builder.commit({"notes.txt": notes, f"data/{i}.bin": random_bytes(2000 + 50 * i, seed=f"p{i}"),
                        f"more/{i}.bin": random_bytes(1000, seed=f"q{i}")})
    return builder


def seed(hub, name: str, commits: int = 80) -> str:
    """:func:`history` in ``hub``'s repository ``name``, its pack made with deltas (fast-import's
    has none, and a server reuses what it has); returns the tip."""
    tip = history(commits).push_to_hub(hub, name)["refs/heads/main"]
    # No bitmap: with one the server skips counting and compressing, and this test wants every phase.
    subprocess.run(["git", "-c", "repack.writeBitmaps=false", "repack", "-a", "-d", "-f", "-q"], cwd=hub.repo_path(name), check=True, timeout=120)
    return tip


def object_count(git_dir: Path, *tips: str) -> int:
    out = subprocess.run(["git", "rev-list", "--objects", *tips], cwd=git_dir, capture_output=True, text=True,
                         check=True).stdout
    return len(out.splitlines())


def finals(events: list[GitProgress]) -> dict[tuple[str, bool], GitProgress]:
    """The last record of each phase, by (phase, remote)."""
    return {(e.phase, e.remote): e for e in events}


def phase_order(events: list[GitProgress]) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []
    for e in events:
        if (e.phase, e.remote) not in seen:
            seen.append((e.phase, e.remote))
    return seen


@pytest.fixture
def git_hub(sandbox):
    hub = sandbox.add_hub("git")
    hub.add_user("alice", orgs=("org",))
    return hub


def test_live_fetch_progress(git_hub, git_env, tmp_path, unique_name):
    name = f"org/{unique_name('fetch')}"
    tip = seed(git_hub, name)
    cache = gitrepo.open_cache(tmp_path / "cache.git")
    events: list[GitProgress] = []
    ref_at_first_event: list[dict[str, str]] = []

    def listen(event: GitProgress) -> None:
        if not events:  # streamed: git has not stored the ref yet when its progress arrives
            ref_at_first_event.append(gitrepo.cached_refs(cache))
        events.append(event)

    messages = Remote(git_hub.git_url(name)).fetch(cache, ["refs/heads/main"], progress=listen)

    assert gitrepo.cached_refs(cache)["refs/src/heads/main"] == tip
    assert ref_at_first_event == [{}]
    order = phase_order(events)
    expected = [("Enumerating objects", True), ("Counting objects", True), ("Compressing objects", True),
                ("Receiving objects", False), ("Resolving deltas", False)]
    assert [p for p in order if p in expected] == expected, order
    last = finals(events)
    objects = object_count(cache, tip)
    assert objects >= 500
    receiving = last[("Receiving objects", False)]
    assert receiving.finished and receiving.done == receiving.total == objects
    assert last[("Counting objects", True)].total == objects
    assert last[("Enumerating objects", True)].done == objects
    pack = sum(p.stat().st_size for p in (cache / "objects" / "pack").glob("*.pack"))
    assert receiving.nbytes is not None and abs(receiving.nbytes - pack) <= 0.01 * pack  # git shows 2 decimals
    assert last[("Resolving deltas", False)].total > 0
    for phase in order:  # counts only grow within a phase
        done = [e.done for e in events if (e.phase, e.remote) == phase]
        assert done == sorted(done), phase
    # The messages are those of the same fetch without progress: none.
    again = gitrepo.open_cache(tmp_path / "quiet.git")
    assert messages == Remote(git_hub.git_url(name)).fetch(again, ["refs/heads/main"]) == ""


def test_live_push_progress(git_hub, git_env, tmp_path, unique_name):
    name = f"org/{unique_name('push')}"
    tip = seed(git_hub, name)
    cache = gitrepo.open_cache(tmp_path / "cache.git")
    Remote(git_hub.git_url(name)).fetch(cache, ["refs/heads/main"])
    target = f"org/{unique_name('pushed')}"
    git_hub.create_repo(target)
    token = git_hub.issue_token("alice")
    remote = Remote(git_hub.git_url(target), GitAuth("alice", token))
    events: list[GitProgress] = []

    remote.push(cache, [PushSpec("refs/heads/main", tip)], progress=events.append)

    assert remote_refs(git_hub.git_url(target), auth_env(git_hub.git_url(target), "alice", token, git_env)) \
        == {"refs/heads/main": tip}
    order = phase_order(events)
    expected = [("Enumerating objects", False), ("Counting objects", False), ("Compressing objects", False),
                ("Writing objects", False)]
    assert [p for p in order if p in expected] == expected, order
    writing = finals(events)[("Writing objects", False)]
    assert writing.finished and writing.done == writing.total == object_count(cache, tip)
    assert writing.nbytes and writing.nbytes > 0


def test_a_failing_listener_does_not_fail_the_fetch(git_hub, git_env, tmp_path, unique_name):
    name = f"org/{unique_name('broken')}"
    tip = seed(git_hub, name, 10)
    cache = gitrepo.open_cache(tmp_path / "cache.git")

    def broken(event):
        raise RuntimeError("display gone")

    Remote(git_hub.git_url(name)).fetch(cache, ["refs/heads/main"], progress=broken)
    assert gitrepo.cached_refs(cache)["refs/src/heads/main"] == tip


# --- the wait for git: its timeout and its process tree, as without progress ---------------------

def test_timeout_with_progress_kills_the_tree(git_env, tmp_path):
    marker = tmp_path / "still-running"
    # An alias runs a shell below git: the tree, not git alone, must end when the time is up.
    hang = ["-c", f"alias.hang=!sleep 30; touch {marker}", "hang"]
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not finish within 1 s"):
        gitrepo.run_git(hang, cwd=tmp_path, what="waiting", timeout=1, progress=lambda e: None)
    assert time.monotonic() - started < 10
    assert gitrepo.kill_git_children() == 0  # nothing of it is left
    heard: list[GitProgress] = []
    messages: list[str] = []
    say = "!echo said; echo 'Counting objects: 100% (1/1), done.' >&2; echo 'warning: kept' >&2"
    out = gitrepo.run_git(["-c", f"alias.say={say}", "say"], cwd=tmp_path, what="saying", messages=messages,
                          progress=heard.append)
    assert out == b"said\n" and messages == ["warning: kept\n"] and not marker.exists()
    assert heard == [GitProgress("Counting objects", 1, 1, finished=True)]


# --- failures classify as before -------------------------------------------------------------------

def failure(call) -> GitMirrorError:
    with pytest.raises(GitMirrorError) as caught:
        call()
    return caught.value


def test_failing_fetch_classifies_as_without_progress(git_hub, git_env, tmp_path, unique_name):
    from gitmirror.retry import FAST

    url = git_hub.git_url(f"org/{unique_name('nowhere')}")
    # Anonymous, the hub hides a missing repository behind a 401; with a token it says 404.
    for auth, expected in ((None, AuthError), (GitAuth("alice", git_hub.issue_token("alice")), RepoNotFoundError)):
        missing = Remote(url, auth, policy=FAST)
        quiet = failure(lambda: missing.fetch(gitrepo.open_cache(tmp_path / "a.git"), ["refs/heads/main"]))
        shown = failure(lambda: missing.fetch(gitrepo.open_cache(tmp_path / "b.git"), ["refs/heads/main"],
                                              progress=lambda e: None))
        assert type(quiet) is type(shown) is expected and str(quiet) == str(shown)

    name = f"org/{unique_name('flaky')}"
    history(5).push_to_hub(git_hub, name)
    flaky = Remote(git_hub.git_url(name), policy=FAST)
    errors = []
    for n, listener in enumerate((None, lambda e: None)):
        git_hub.faults.fail("POST", r"git-upload-pack$", status=500, times=None)
        try:
            errors.append(failure(lambda: flaky.fetch(gitrepo.open_cache(tmp_path / f"c{n}.git"), ["refs/heads/main"],
                                                      progress=listener)))
        finally:
            git_hub.faults.clear()
    assert type(errors[0]) is type(errors[1]) is TransientError and str(errors[0]) == str(errors[1])


def test_failing_push_classifies_as_without_progress(git_hub, git_env, tmp_path, unique_name):
    name = f"org/{unique_name('src')}"
    builder = history(6)
    tip = builder.push_to_hub(git_hub, name)["refs/heads/main"]
    cache = gitrepo.open_cache(tmp_path / "cache.git")
    Remote(git_hub.git_url(name)).fetch(cache, ["refs/heads/main"])
    # The destination has another history: a leased push expecting it empty is refused.
    target = f"org/{unique_name('dst')}"
    other = RepoBuilder()
    other.commit({"README.md": b"theirs\n"})
    other.push_to_hub(git_hub, target)
    token = git_hub.issue_token("alice")
    remote = Remote(git_hub.git_url(target), GitAuth("alice", token))
    spec = [PushSpec("refs/heads/main", tip, force=True, expect_old=None)]
    quiet = failure(lambda: remote.push(cache, spec))
    shown = failure(lambda: remote.push(cache, spec, progress=lambda e: None))
    assert type(quiet) is type(shown) is DivergedError and str(quiet) == str(shown)
    assert remote_refs(git_hub.git_url(target), auth_env(git_hub.git_url(target), "alice", token, git_env)) \
        == {"refs/heads/main": other.tip().sha}


# --- the display -----------------------------------------------------------------------------------

class RunningClock:
    """Stands in for ``time`` in gitmirror.progress: each reading is an interval later, so the
    plain reporter writes every event."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 60.0
        return self.now


def test_plain_lines_name_the_step_and_phase(monkeypatch):
    monkeypatch.setattr(progress, "time", RunningClock())
    out = io.StringIO()
    reporter = PlainProgress(out)
    reporter.git("fetching source", GitProgress("Receiving objects", 450, 1000, 12 * MiB))
    reporter.git("pushing", GitProgress("Writing objects", 1000, 1000, 3 * MiB, finished=True))
    assert out.getvalue().splitlines() == ["gitmirror: fetching source: Receiving objects 45% 450/1000 12.0 MiB",
                                           "gitmirror: pushing: Writing objects 100% 1000/1000 3.0 MiB done"]


def test_plain_lines_keep_their_interval():
    out = io.StringIO()
    reporter = PlainProgress(out, interval=3600.0)
    for n in range(100):
        reporter.git("fetching source", GitProgress("Receiving objects", n, 100))
    assert out.getvalue() == ""


def test_rich_bars_show_the_git_phase_then_lfs():
    from rich.console import Console

    def screen(reporter: RichProgress) -> str:
        console = Console(file=io.StringIO(), force_terminal=False, width=200)
        console.print(reporter.progress.get_renderable())
        return console.file.getvalue()

    reporter = RichProgress()
    assert "0/0" not in screen(reporter)  # nothing frozen at 0/0 before anything moves
    reporter.git("fetching source", GitProgress("Receiving objects", 450, 1000, 12 * MiB, 5.0 * MiB))
    shown = screen(reporter)
    assert "fetching source: Receiving objects 45% 450/1000 12.0 MiB 5.0 MiB/s" in shown and "LFS" not in shown
    obj = LfsObject("ab" * 32, 100)
    reporter(TransferEvent("started", obj))
    shown = screen(reporter)
    assert "LFS objects 0/1" in shown and "fetching source" not in shown
    reporter.git("pushing", GitProgress("Writing objects", 10, 20))
    assert "pushing: Writing objects 50% 10/20" in screen(reporter)


# --- the CLI ---------------------------------------------------------------------------------------

def cli_run(args: list[str], env: dict[str, str], monkeypatch) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from gitmirror.cli import cli

    monkeypatch.setattr(progress, "time", RunningClock())
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def seeded(git_hub, unique_name) -> tuple[str, str, str, int]:
    """A source with a history of several hundred objects, an empty destination; their URLs, the
    source's tip and its object count."""
    name = f"org/{unique_name('cli')}"
    tip = seed(git_hub, name)
    target = f"org/{unique_name('cli-dst')}"
    git_hub.create_repo(target)
    return git_hub.git_url(name), git_hub.git_url(target), tip, object_count(git_hub.repo_path(name), tip)


def dst_refs(dst: str, token: str, git_env: dict[str, str]) -> dict[str, str]:
    return remote_refs(dst, auth_env(dst, "alice", token, git_env))


def test_cli_shows_the_git_phases(git_hub, git_env, tmp_path, unique_name, monkeypatch):
    src, dst, tip, objects = seeded(git_hub, unique_name)
    env = {**git_env, "GITMIRROR_DST_TOKEN": git_hub.issue_token("alice")}
    code, _, err = cli_run(["clone-push", src, dst, "--cache-dir", str(tmp_path / "cache")], env, monkeypatch)
    assert code == 0, err
    assert dst_refs(dst, env["GITMIRROR_DST_TOKEN"], git_env) == {"refs/heads/main": tip}
    lines = err.splitlines()
    assert f"gitmirror: fetching source: Receiving objects 100% {objects}/{objects}" in "\n".join(lines), err
    assert any(re.fullmatch(rf"gitmirror: fetching source: Receiving objects 100% {objects}/{objects} "
                            r"\d+\.\d (KiB|MiB) done", line) for line in lines), err
    assert any(line.startswith("gitmirror: fetching source: Counting objects (server) ") for line in lines), err
    assert any(re.fullmatch(rf"gitmirror: pushing: Writing objects 100% {objects}/{objects} \S+ \S+ done", line)
               for line in lines), err


@pytest.mark.parametrize("flag", ["-q", "--json"])
def test_cli_quiet_and_json_show_no_git_progress(flag, git_hub, git_env, tmp_path, unique_name, monkeypatch):
    src, dst, tip, _ = seeded(git_hub, unique_name)
    env = {**git_env, "GITMIRROR_DST_TOKEN": git_hub.issue_token("alice")}
    code, out, err = cli_run(["clone-push", src, dst, flag, "--cache-dir", str(tmp_path / "cache")], env, monkeypatch)
    assert code == 0, err
    assert "objects" not in err and "gitmirror:" not in err, err
    if flag == "--json":
        assert json.loads(out)["refs"]["created"] == 1
    assert dst_refs(dst, env["GITMIRROR_DST_TOKEN"], git_env) == {"refs/heads/main": tip}


def read_pty(fd: int, proc: subprocess.Popen, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def test_a_terminal_sees_the_git_phases(git_hub, git_env, tmp_path, unique_name):
    """On a terminal (a pty) the rich display names git's phases while the fetch and the push run:
    both are slowed by the hub's bandwidth cap so that several frames are drawn."""
    src, dst, tip, _ = seeded(git_hub, unique_name)
    env = {**git_env, "GITMIRROR_DST_TOKEN": git_hub.issue_token("alice"), "COLUMNS": "200", "TERM": "xterm",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    git_hub.faults.bandwidth(down=400_000, up=400_000)  # about 1.5 s each way for this history
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "gitmirror", "clone-push", src, dst, "--cache-dir",
                                 str(tmp_path / "cache")], env=env, stdin=subprocess.DEVNULL, stdout=slave,
                                stderr=slave, close_fds=True)
        os.close(slave)
        raw = read_pty(master, proc, timeout=180)
        assert proc.wait(timeout=60) == 0, raw[-2000:]
    finally:
        git_hub.faults.clear()
        os.close(master)
    screen = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", raw).decode("utf-8", "replace")
    assert "fetching source: Receiving objects" in screen, screen[-3000:]
    assert "pushing: Writing objects" in screen, screen[-3000:]
    assert dst_refs(dst, env["GITMIRROR_DST_TOKEN"], git_env) == {"refs/heads/main": tip}


def test_cli_shows_the_source_fetch_of_a_snapshot(git_hub, git_env, tmp_path, unique_name, monkeypatch):
    src, dst, tip, objects = seeded(git_hub, unique_name)
    env = {**git_env, "GITMIRROR_DST_TOKEN": git_hub.issue_token("alice")}
    code, _, err = cli_run(["clone-push", "--snapshot", src, dst, "--cache-dir", str(tmp_path / "cache")], env,
                           monkeypatch)
    assert code == 0, err
    assert "refs/heads/main" in dst_refs(dst, env["GITMIRROR_DST_TOKEN"], git_env)
    assert f"gitmirror: fetching source: Receiving objects 100% {objects}/{objects}" in err, err
