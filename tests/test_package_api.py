"""The top-level Python API: lazy names, docstrings, one real mirror through ``gitmirror.mirror``;
and a fast ``gitmirror --help``."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from gitmirror.retry import FAST
from gitmirror.sandbox.seed import seed_sample_model

pytestmark = pytest.mark.timeout(300)

#: Top-level packages that ``--help`` must not import (each costs tens of milliseconds or more).
HEAVY = ["git", "requests", "urllib3", "rich", "huggingface_hub", "modelscope_hub", "tenacity"]


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_and_help_load_nothing_heavy():
    code = (
        "import json, sys\n"
        "import gitmirror, gitmirror.cli\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m == 'gitmirror.api')))\n"
    )
    assert json.loads(run_python(code)) == []


def test_help_is_fast():
    # CPU time (user + sys) of the child, not wall time: a busy test machine must not make this flaky.
    best = float("inf")
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "gitmirror", "--help"], capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    assert best < 0.3, f"gitmirror --help took {best:.2f} s of CPU"


def test_lazy_names_resolve_with_docstrings():
    code = (
        "import json, sys, gitmirror\n"
        "names = ['mirror', 'verify', 'sync', 'MirrorResult', 'VerifyResult', 'SyncReport', 'MirrorPlan']\n"
        "out = {n: (getattr(gitmirror, n).__module__, bool(getattr(gitmirror, n).__doc__)) for n in names}\n"
        "from gitmirror.sync import SyncReport  # the submodule of the same name must not replace the function\n"
        "import gitmirror.sync\n"
        "out['sync_after_submodule'] = (gitmirror.sync.__module__, callable(gitmirror.sync))\n"
        "out['in_dir'] = all(n in dir(gitmirror) for n in names)\n"
        "print(json.dumps(out))\n"
    )
    out = json.loads(run_python(code))
    for name in ("mirror", "verify", "sync"):
        assert out[name] == ["gitmirror.api", True]
    assert out["VerifyResult"] == ["gitmirror.verification", True]
    assert out["MirrorResult"] == ["gitmirror.execute", True]
    assert out["SyncReport"] == ["gitmirror.sync", True]
    assert out["sync_after_submodule"] == ["gitmirror.api", True]
    assert out["in_dir"] is True


def test_unknown_attribute_is_an_attribute_error():
    import gitmirror

    with pytest.raises(AttributeError):
        gitmirror.no_such_thing  # noqa: B018
    assert not hasattr(gitmirror, "no_such_thing")


def test_mirror_verify_and_sync_from_the_package(hub_pair, git_env, tmp_path, unique_name):
    import gitmirror

    hf, ms = hub_pair()
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}
    name = unique_name("api")
    seed_sample_model(hf, f"org/{name}")

    result = gitmirror.mirror(f"hf://org/{name}", f"ms://org/{name}", env=env, cache_dir=tmp_path / "cache", policy=FAST)
    assert isinstance(result, gitmirror.MirrorResult)
    assert result.verified and result.refs_created == 3 and result.objects_moved == 4

    check = gitmirror.verify(f"hf://org/{name}", f"ms://org/{name}", env=env, cache_dir=tmp_path / "cache", policy=FAST)
    assert isinstance(check, gitmirror.VerifyResult) and check.in_sync

    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"hf://org/{name} ms://org/{name}\n")
    report = gitmirror.sync(mirrors, env=env, cache_dir=tmp_path / "cache", policy=FAST)
    assert isinstance(report, gitmirror.SyncReport) and report.exit_code == 0
