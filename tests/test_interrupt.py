"""Ctrl-C (issue 13, section 6): from any phase, children ended, exit 130 within 2 s, rerun resumes.

The real CLI runs in a subprocess; SIGINT goes to gitmirror's process only (as from `kill -INT`,
a supervisor, or a terminal whose Ctrl-C reaches only the foreground process), so gitmirror itself
must end the git processes it started. The judge: the exit code and time, /proc (no process
gitmirror started is left), and after a rerun the destination's refs and LFS bytes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(240)

EXIT_WITHIN = 2.0


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (children of each thread, recursively)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = {int(c) for c in children.read_text().split()}
            except (OSError, ValueError):
                continue
            todo += list(kids - found)
            found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def pair(hub_pair, git_env, tmp_path, unique_name):
    """A source with a few MB of history and LFS objects, a fresh ModelScope destination."""
    hf, ms = hub_pair()
    name = unique_name("interrupt")
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# interrupt me\n",
                    "plain.dat": random_bytes(1_500_000, name + "plain")})
    for i in range(6):
        builder.commit({f"w{i}.bin": lfs(random_bytes(400_000, f"{name}-{i}"))}, message=f"weights {i}")
    builder.push_to_hub(hf, f"org/{name}")
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache")}

    class Pair:
        src_hub, dst_hub, repo = hf, ms, f"org/{name}"
        args = ["clone-push", "-q", f"hf://org/{name}", f"ms://org/{name}"]
        objects = {hashlib.sha256(f.data).hexdigest(): f.data for f in builder.lfs_files().values()}

        def start(self, args: list[str] | None = None) -> subprocess.Popen[str]:
            return subprocess.Popen([sys.executable, "-m", "gitmirror", *(args or self.args)], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

        def rerun(self) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "gitmirror", *self.args], env=env, text=True,
                                  capture_output=True, timeout=180)

        def assert_mirrored(self):
            assert ms.refs(self.repo)["refs/heads/master"] == hf.refs(self.repo)["refs/heads/main"]
            for oid, data in self.objects.items():
                assert ms.lfs_object_path(self.repo, oid).read_bytes() == data

    return Pair()


def interrupt(proc: subprocess.Popen[str], twice: bool = False) -> tuple[float, set[int], str]:
    """SIGINT to gitmirror alone; returns (seconds to exit, the processes it had started, stderr)."""
    started_children = descendants(proc.pid)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    if twice:
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)  # the impatient user's second Ctrl-C
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - sent
    return took, started_children, proc.stderr.read() if proc.stderr else ""


def assert_clean_exit(proc, took, children, stderr):
    assert proc.returncode == 130, stderr
    assert took < EXIT_WITHIN, f"took {took:.2f} s to exit after Ctrl-C"
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    time.sleep(0.2)  # orphans are reaped by init
    left = [f"{pid}: {cmdline(pid)}" for pid in children if alive(pid)]
    assert not left, f"processes outlived gitmirror: {left}"


@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
def test_ctrl_c_while_git_runs(pair, twice):
    rule = pair.src_hub.faults.stall(route="git-upload-pack", seconds=30, times=1)
    proc = pair.start()
    wait_for(lambda: rule.fired >= 1 or proc.poll() is not None, what="git to reach the source")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    wait_for(lambda: any("git" in cmdline(p) for p in descendants(proc.pid)), what="a git child")
    assert any(alive(p) for p in descendants(proc.pid))
    took, children, stderr = interrupt(proc, twice=twice)
    assert_clean_exit(proc, took, children, stderr)
    assert children, "git was running at the interrupt"

    pair.src_hub.faults.clear()
    done = pair.rerun()
    assert done.returncode == 0, done.stderr
    pair.assert_mirrored()


@pytest.mark.parametrize("command", ["clone-push", "sync"])
def test_ctrl_c_during_the_lfs_transfer(pair, command, tmp_path):
    pair.dst_hub.faults.bandwidth(up=150_000)  # 2.4 MB of objects: ~16 s of uploads
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"{pair.args[-2]} {pair.args[-1]}\n")
    proc = pair.start(None if command == "clone-push" else ["sync", str(mirrors)])
    wait_for(lambda: pair.dst_hub.counters.snapshot().count("lfs-upload") >= 1 or proc.poll() is not None,
             what="the first LFS upload")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(0.5)
    took, children, stderr = interrupt(proc)
    assert_clean_exit(proc, took, children, stderr)
    assert "refs/heads/master" not in pair.dst_hub.refs(pair.repo), "refs moved before their objects"

    pair.dst_hub.faults.clear()
    done = pair.rerun()
    assert done.returncode == 0, done.stderr
    pair.assert_mirrored()


def test_ctrl_c_in_a_sync_still_reports_the_mirrors_that_finished(pair, tmp_path):
    """A sync cut short by Ctrl-C writes its --report and --metrics for the mirrors that completed
    before it (marked interrupted, exit code 130), so a cron log does not lose their updates."""
    pair.dst_hub.faults.bandwidth(up=150_000)  # the second mirror's uploads take ~16 s
    backup = tmp_path / "backup.git"
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"{pair.args[-2]} {backup}\n{pair.args[-2]} {pair.args[-1]}\n")
    report_file, metrics_file = tmp_path / "report.json", tmp_path / "gitmirror.prom"
    proc = pair.start(["sync", str(mirrors), "--parallel", "1", "--report", str(report_file),
                       "--metrics", str(metrics_file)])
    wait_for(lambda: pair.dst_hub.counters.snapshot().count("lfs-upload") >= 1 or proc.poll() is not None,
             what="the second mirror's first LFS upload")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    took, children, stderr = interrupt(proc)
    assert_clean_exit(proc, took, children, stderr)
    written = json.loads(report_file.read_text())
    assert written["interrupted"] is True and written["exit_code"] == 130
    assert [(m["entry"]["dst"], m["status"]) for m in written["mirrors"]] == [(str(backup), "updated")]
    assert str(backup) in metrics_file.read_text()
    # The finished mirror really is complete: its refs are the source's.
    assert subprocess.run(["git", "--git-dir", str(backup), "rev-parse", "refs/heads/main"], capture_output=True,
                          text=True, check=True).stdout.strip() == pair.src_hub.refs(pair.repo)["refs/heads/main"]
