"""Local faults are local, and named (issue 13, section 5).

A full disk, an unwritable cache directory, destination path or report file is this machine's
problem: exit 9 at once, one line naming the path, no retry (a retry would only download again).
A destination whose LFS API answers 404 (LFS switched off there) is a destination-side refusal,
never "the source does not exist". A connection cut by our own low-speed limit is transient.
"""

from __future__ import annotations

import builtins
import dataclasses
import errno
import os
import subprocess
from pathlib import Path

import pytest

from gitmirror.errors import (
    EXIT_ENVIRONMENT,
    EnvironmentProblem,
    IntegrityError,
    PermissionDeniedError,
    TransientError,
    error_for_git,
    error_for_oserror,
)
from gitmirror.retry import FAST
from mirror_pairs import HfToMs, hf_to_ms

pytestmark = pytest.mark.timeout(240)

N_OBJECTS = 4


@pytest.fixture
def pair(hub_pair, git_env, tmp_path, unique_name) -> HfToMs:
    """An HF source with a few LFS objects (150 KB each), a ModelScope destination."""
    return hf_to_ms(hub_pair, git_env, tmp_path, unique_name("local"), [150_000 + i for i in range(N_OBJECTS)])


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("gitmirror: LFS ")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gitmirror: error: ")
    return lines[0]


# --- the one helper ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"), (errno.EACCES, "permission denied"),
     (errno.EROFS, "read-only"), (errno.ENOTDIR, "not a directory"), (errno.EIO, "input/output")],
)
def test_a_local_oserror_is_exit_9_naming_the_path(code, words):
    exc = OSError(code, os.strerror(code))
    error = error_for_oserror(exc, "writing to the local LFS store failed", "/data/lfs/ab/cd/abcd.part")
    assert isinstance(error, EnvironmentProblem) and error.exit_code == EXIT_ENVIRONMENT
    assert not error.transient
    text = str(error)
    assert "\n" not in text and "/data/lfs/ab/cd/abcd.part" in text and words in text.lower()


def test_the_oserrors_own_file_name_is_used_when_no_path_is_given():
    exc = PermissionError(errno.EACCES, "Permission denied", "/var/cache/gitmirror/repos")
    assert "/var/cache/gitmirror/repos" in str(error_for_oserror(exc, "cannot use the cache directory"))


# --- a full disk under --lfs-cache -----------------------------------------------------------------

class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes were written through every such
    file together: the write call itself fails, as on a full disk."""

    def __init__(self, fh, room: list[int]) -> None:
        self._fh, self._room = fh, room

    def write(self, data):
        if len(data) > self._room[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room[0] -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)


def _full_disk_after(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files the LFS store opens for writing (``open``: the --lfs-cache fills) get ``limit`` bytes."""
    from gitmirror.lfs import store_local

    real_open, room = builtins.open, [limit]

    def fake_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FullDisk(fh, room) if any(m in mode for m in "wa") else fh

    monkeypatch.setattr(store_local, "open", fake_open, raising=False)


def test_full_lfs_cache_is_exit_9_at_once_without_downloading_again(pair, tmp_path, monkeypatch):
    from gitmirror.lfs import store_local

    _full_disk_after(100_000, monkeypatch)
    with pytest.raises(EnvironmentProblem) as info:
        pair.run(lfs_cache=tmp_path / "lfs-cache", jobs=1)
    text = str(info.value)
    assert "no space left" in text.lower() and str(tmp_path / "lfs-cache") in text and "\n" not in text
    downloads = pair.src_hub.counters.snapshot().count("lfs-download")
    assert downloads == 1, f"a full disk was retried: {downloads} downloads"
    assert pair.dst_master() is None, "a ref moved without its objects"

    monkeypatch.delattr(store_local, "open")  # space freed: the rerun completes
    pair.run(lfs_cache=tmp_path / "lfs-cache", jobs=1)
    pair.assert_mirrored()


def test_full_disk_writing_a_local_destination_is_exit_9(pair, tmp_path, monkeypatch):
    """The other local write: LFS objects stored into a local bare repository (os.fdopen + write)."""
    from gitmirror.lfs import store_local

    real_fdopen, room = os.fdopen, [0]

    def full_fdopen(fd, mode="r", *args, **kwargs):
        fh = real_fdopen(fd, mode, *args, **kwargs)
        return FullDisk(fh, room) if "w" in mode else fh

    monkeypatch.setattr(store_local.os, "fdopen", full_fdopen)
    dst = tmp_path / "backup.git"
    with pytest.raises(EnvironmentProblem) as info:
        pair.run(dst=str(dst), jobs=1)
    assert "no space left" in str(info.value).lower() and str(dst) in str(info.value)
    assert pair.src_hub.counters.snapshot().count("lfs-download") == 1, "a full disk was retried"
    monkeypatch.setattr(store_local.os, "fdopen", real_fdopen)
    pair.run(dst=str(dst))
    heads = subprocess.run(["git", "--git-dir", str(dst), "rev-parse", "refs/heads/main"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert heads == pair.src_hub.refs(pair.repo)["refs/heads/main"]
    for oid, data in pair.objects.items():
        assert (dst / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).read_bytes() == data


def test_a_really_full_lfs_cache_through_the_cli(pair, tiny_disk):
    """The same on a real full file system (a 200 KB tmpfs; skipped where mounting is not allowed)."""
    done = pair.cli("clone-push", "-q", "-j", "1", "--lfs-cache", str(tiny_disk), pair.src, pair.dst)
    assert done.returncode == 9, done.stderr
    line = error_line(done)
    assert "no space left" in line.lower() and str(tiny_disk) in line
    assert pair.src_hub.counters.snapshot().count("lfs-download") <= 2, "a full disk was retried"


# --- unwritable paths (tests run as root: a path under a regular file fails for root too) ------------

@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return blocker


def test_unwritable_cache_directory(pair, a_file):
    done = pair.cli("clone-push", "-q", "--cache-dir", str(a_file / "cache"), pair.src, pair.dst)
    assert done.returncode == 9, done.stderr
    line = error_line(done)
    assert str(a_file) in line and "not a directory" in line.lower() and "unexpected" not in line
    assert pair.dst_master() is None


def test_unwritable_lfs_cache_directory(pair, a_file):
    done = pair.cli("clone-push", "-q", "--lfs-cache", str(a_file / "lfs"), pair.src, pair.dst)
    assert done.returncode == 9, done.stderr
    assert str(a_file) in error_line(done)
    assert pair.src_hub.counters.snapshot().count("lfs-download") == 0
    assert pair.dst_master() is None


def test_unwritable_local_destination_path(pair, a_file):
    done = pair.cli("clone-push", "-q", pair.src, str(a_file / "backup.git"))
    assert done.returncode == 9, done.stderr
    line = error_line(done)
    assert str(a_file / "backup.git") in line and "not a directory" in line.lower()


@pytest.mark.parametrize("option", ["--report", "--metrics"])
def test_unwritable_report_file(pair, a_file, tmp_path, option):
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"{pair.src} {pair.dst}\n")
    target = a_file / "out.json"
    done = pair.cli("sync", str(mirrors), option, str(target))
    assert done.returncode == 9, done.stderr
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("gitmirror: error: ")]
    assert len(line) == 1 and str(target) in line[0] and "unexpected" not in line[0], done.stderr
    pair.assert_mirrored()  # the mirror itself ran; only the report could not be written


# --- a destination whose LFS API answers 404 ---------------------------------------------------------

def test_destination_lfs_switched_off_is_a_destination_refusal(pair):
    pair.dst_hub.faults.fail(route="lfs-batch", status=404, times=None)
    with pytest.raises(PermissionDeniedError) as info:
        pair.run()
    error = info.value
    assert error.exit_code == 5 and error.status == 404
    assert "LFS may be disabled" in str(error) and "does not exist" not in str(error)
    assert pair.dst_master() is None, "refs pushed without their objects"
    assert pair.dst_hub.counters.snapshot().status_count("lfs-batch", 404) == 1, "a 404 was retried"
    pair.dst_hub.faults.clear()
    pair.run()
    pair.assert_mirrored()


def test_destination_lfs_switched_off_through_the_cli(pair):
    pair.dst_hub.faults.fail(route="lfs-batch", status=404, times=None)
    done = pair.cli("clone-push", "-q", pair.src, pair.dst)
    assert done.returncode == 5, done.stderr
    line = error_line(done)
    assert "LFS may be disabled" in line and "destination" in line


def test_source_lfs_switched_off_is_content_missing_at_the_source(pair):
    pair.src_hub.faults.fail(route="lfs-batch", status=404, times=None)
    with pytest.raises(IntegrityError) as info:
        pair.run()
    assert info.value.exit_code == 7 and "LFS may be disabled" in str(info.value)
    assert pair.dst_master() is None


# --- our own low-speed limit ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "stderr",
    [
        # git's words when http.lowSpeedLimit/Time cut a request (curl 28), with the URL quoted
        "fatal: unable to access 'http://127.0.0.1:4242/org/vit-base-512.git/': "
        "Operation too slow. Less than 1 bytes/sec transferred the last 1 seconds",
        "error: RPC failed; curl 28 Operation too slow. Less than 1 bytes/sec transferred the last 20 seconds\n"
        "fatal: expected flush after ref listing",
    ],
)
def test_operation_too_slow_is_transient(stderr):
    error = error_for_git(stderr, "listing refs of hf://org/vit-base-512")
    assert isinstance(error, TransientError) and error.exit_code == 8


@pytest.mark.parametrize("route", ["git-info-refs", "git-upload-pack"])
def test_a_stall_cut_by_our_low_speed_limit_is_retried_then_exit_8(pair, route):
    """Every request of the source's git route stalls past the read timeout: git's low-speed limit
    cuts each one, each is retried, and the run ends with exit 8 (not 1) once the retries are spent."""
    policy = dataclasses.replace(FAST, read_timeout=1.0, attempts=2)
    pair.src_hub.faults.stall(route=route, seconds=4, times=None)
    with pytest.raises(TransientError) as info:
        pair.run(policy=policy)
    assert info.value.exit_code == 8
    if route == "git-info-refs":
        # The refs are listed in-process (gitmirror/refadvert.py), cut by our own read timeout; the
        # message names the step and the timeout. On upload-pack git's last word is "expected flush
        # after ref listing" (git's own "Operation too slow" is tested in the unit test above).
        message = str(info.value).lower()
        assert "listing refs of" in message and "timed out" in message
    assert pair.src_hub.counters.snapshot().count(route) >= 2, "the cut was not retried"
    assert pair.dst_master() is None


def test_a_passing_stall_on_the_refs_listing_is_survived(pair):
    policy = dataclasses.replace(FAST, read_timeout=1.0)
    rule = pair.src_hub.faults.stall(route="git-info-refs", seconds=4, times=3)  # curl retries once itself
    result = pair.run(policy=policy)
    pair.assert_mirrored()
    assert rule.fired == 3 and result.retries >= 1
