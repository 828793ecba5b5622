"""`--dry-run` that foresees a failure prints the plan, then exits with that failure's code.

Diverged refs without --force -> 6 (the plan knows); LFS objects the source cannot give -> 7 (the
dry run asks the source's batch API for downloads, moving no bytes and asking the destination
nothing). Judged by exit codes, the JSON, and the hubs' counters and state: nothing moved.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitmirror.errors import DivergedError, IntegrityError, PermissionDeniedError
from gitmirror.plan import ForeseenFailure, MirrorPlan, RefAction, RefUpdate
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(240)


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True, timeout=200)


def history(name: str) -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "a.bin": lfs(random_bytes(20_000, f"{name}-a"))})
    b.commit({"b.bin": lfs(random_bytes(15_000, f"{name}-b")), "c.bin": lfs(random_bytes(9_000, f"{name}-c"))})
    return b


@pytest.fixture
def hubs(hub_pair, git_env, tmp_path):
    hf, ms = hub_pair()
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice"),
           "GITMIRROR_CACHE": str(tmp_path / "cache"), "COLUMNS": "300"}
    return hf, ms, env


def test_dry_run_of_a_diverged_destination_exits_6(hubs, unique_name):
    hf, ms, env = hubs
    name = unique_name("drydiv")
    history(name).push_to_hub(hf, f"org/{name}")
    src, dst = f"hf://org/{name}", f"ms://org/{name}"
    assert cli(["clone-push", src, dst], env).returncode == 0
    other = RepoBuilder(default_branch="master")
    other.commit({"local.txt": "made on the destination\n"})
    before = other.write(ms.repo_path(f"org/{name}"))
    ms.counters.reset()

    dry = cli(["clone-push", "--dry-run", src, dst], env)
    assert dry.returncode == 6, dry.stderr
    assert "refs/heads/master" in dry.stdout and "diverged" in dry.stdout  # the plan still prints
    assert "Nothing to do" not in dry.stdout, "a plan that foresees a failure is not 'up to date'"

    quiet = cli(["clone-push", "--dry-run", "-q", src, dst], env)
    assert quiet.returncode == 6, quiet.stderr
    lines = quiet.stdout.splitlines()
    assert lines[0].startswith(f"{src} -> {dst}: would move 0 ref(s)"), quiet.stdout
    assert "the run would fail (exit 6)" in quiet.stdout and not any(c in quiet.stdout for c in "┃│━"), quiet.stdout
    assert dry.stderr.strip().startswith("gitmirror: error: the run would fail:") and "--force" in dry.stderr

    as_json = cli(["clone-push", "--dry-run", "--json", src, dst], env)
    assert as_json.returncode == 6
    report = json.loads(as_json.stdout)
    assert report["dry_run"] and report["plan"]["updates"][0]["action"] == "diverged"
    assert report["error"]["exit_code"] == 6 and report["error"]["refs"] == ["refs/heads/master"]
    assert [f["class"] for f in report["plan"]["foreseen_failures"]] == ["DivergedError"]

    forced = cli(["clone-push", "--dry-run", "--force", src, dst], env)
    assert forced.returncode == 0, forced.stderr
    assert ms.refs(f"org/{name}") == before
    snap = ms.counters.snapshot()
    assert snap.count("git-receive-pack") == 0 and snap.count("lfs-batch") == 0


def test_dry_run_of_a_source_lacking_objects_exits_7(hubs, unique_name):
    hf, ms, env = hubs
    name = unique_name("drylack")
    builder = history(name)
    lost = sorted(builder.lfs_files())[0]
    builder.push_to_hub(hf, f"org/{name}", skip_lfs=[lost])
    src, dst = f"hf://org/{name}", f"ms://org/{name}"
    ms.create_repo(f"org/{name}")
    hf.counters.reset()
    ms.counters.reset()

    dry = cli(["clone-push", "--dry-run", "--json", src, dst], env)

    assert dry.returncode == 7, dry.stderr
    report = json.loads(dry.stdout)
    assert report["error"]["class"] == "IntegrityError" and lost in report["error"]["message"]
    assert report["plan"]["foreseen_failures"][0]["stage"] == "lfs"
    assert len(report["plan"]["lfs_objects"]) == 3  # the plan is there
    src_snap, dst_snap = hf.counters.snapshot(), ms.counters.snapshot()
    assert src_snap.count("lfs-batch") == 1 and src_snap.bytes_out.get("lfs-download", 0) == 0  # asked, nothing read
    assert dst_snap.count("lfs-batch") == 0 and dst_snap.count("git-receive-pack") == 0
    assert ms.refs(f"org/{name}") == {} and ms.lfs_objects(f"org/{name}") == set()

    table = cli(["clone-push", "--dry-run", src, dst], env)
    assert table.returncode == 7 and "the run would fail (exit 7)" in table.stdout, table.stdout

    # The run itself fails as foreseen.
    real = cli(["clone-push", src, dst], env)
    assert real.returncode == 7, real.stderr


def test_dry_run_with_nothing_foreseen_exits_0(hubs, unique_name):
    hf, ms, env = hubs
    name = unique_name("dryok")
    history(name).push_to_hub(hf, f"org/{name}")
    dry = cli(["clone-push", "--dry-run", "--json", f"hf://org/{name}", f"ms://org/{name}"], env)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert "error" not in report and report["plan"]["foreseen_failures"] == []
    assert report["plan"]["lfs_scope"] == "history" and len(report["plan"]["lfs_objects"]) == 3
    assert {u["action"] for u in report["plan"]["updates"]} == {"create"}  # planned as a new repository
    with pytest.raises(KeyError):  # and nothing was created: no repository, no refs, no objects
        ms.repo(f"org/{name}")


def test_sync_dry_run_reports_a_foreseen_failure_as_failed(hubs, unique_name, tmp_path):
    hf, ms, env = hubs
    fine, lacking = unique_name("syncok"), unique_name("synclack")
    history(fine).push_to_hub(hf, f"org/{fine}")
    builder = history(lacking)
    builder.push_to_hub(hf, f"org/{lacking}", skip_lfs=[sorted(builder.lfs_files())[0]])
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"hf://org/{fine} ms://org/{fine}\nhf://org/{lacking} ms://org/{lacking}\n")

    done = cli(["sync", "--dry-run", "--json", str(mirrors)], env)

    assert done.returncode == 11, done.stderr
    outcomes = {m["entry"]["src"]: m for m in json.loads(done.stdout)["mirrors"]}
    assert outcomes[f"hf://org/{fine}"]["status"] == "updated"
    failed = outcomes[f"hf://org/{lacking}"]
    assert failed["status"] == "failed" and failed["exit_code"] == 7 and "would fail" in failed["reason"]
    for name in (fine, lacking):
        with pytest.raises(KeyError):  # a dry run creates no repository: no refs, no objects
            ms.repo(f"org/{name}")


def _update(action: RefAction) -> RefUpdate:
    return RefUpdate("refs/heads/main", "refs/heads/main", "a" * 40, "b" * 40, action)


def test_foreseen_failures_come_in_run_order():
    """The hook for checks of the destination's rules: a push-stage failure in ``failures``. The
    dry run exits with the code of the failure the run would meet first."""
    refused = ForeseenFailure(PermissionDeniedError("refs/heads/x: the hub refuses this ref name"), "push", ("refs/heads/x",))
    lacking = ForeseenFailure(IntegrityError("the source lacks an LFS object"), "lfs")
    plan = MirrorPlan("s", "d", (_update(RefAction.FAST_FORWARD),), failures=(refused, lacking))
    assert [f.stage for f in plan.foreseen] == ["lfs", "push"] and plan.exit_code == 7
    assert MirrorPlan("s", "d", (_update(RefAction.FAST_FORWARD),), failures=(refused,)).exit_code == 5

    diverged = MirrorPlan("s", "d", (_update(RefAction.DIVERGED),), failures=(refused, lacking))
    assert isinstance(diverged.foreseen[0].error, DivergedError) and diverged.exit_code == 6
    assert diverged.to_dict()["foreseen_failures"][0] == {
        "message": str(diverged.foreseen[0].error), "exit_code": 6, "class": "DivergedError", "stage": "plan",
        "refs": ["refs/heads/main"]}
    assert MirrorPlan("s", "d", (_update(RefAction.UP_TO_DATE),)).exit_code == 0
