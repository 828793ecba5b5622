"""gitmirror as people install it: a wheel and an sdist built with the standard build frontend, the
wheel installed (not editable) into a fresh virtualenv the way the Dockerfile does it, and that
installation's own ``gitmirror`` executable mirroring a repository on the sandbox.

The build and install need what ``scripts/setup.sh`` needs (the package index, or pip's cache).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import gitmirror
from gitmirror.sandbox.seed import seed_sample_model

from installer import ROOT, clean_env, copy_build_context, dockerfile_stages, dockerignore_patterns
from judges import auth_env, clone_and_check_lfs, modelscope_view, remote_refs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: The wheel test's budget: building the wheel and installing it with its dependencies.
INSTALL_BUDGET_SECONDS = 180


def test_sdist_and_wheel_build_cleanly(tmp_path):
    """`python -m build` (sdist, then the wheel from it) without a deprecation warning, with the metadata
    a package index and pip read: name, the version from gitmirror.__version__, the SPDX license, the
    entry point, the dependencies."""
    source = tmp_path / "src"
    copy_build_context(source)
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300, env=clean_env())
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "deprecat" not in output.lower(), output
    version = gitmirror.__version__
    wheel = tmp_path / "dist" / f"gitmirror-{version}-py3-none-any.whl"
    sdist = tmp_path / "dist" / f"gitmirror-{version}.tar.gz"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        metadata = whl.read(f"gitmirror-{version}.dist-info/METADATA").decode()
        entry_points = whl.read(f"gitmirror-{version}.dist-info/entry_points.txt").decode()
    assert f"\nVersion: {version}\n" in metadata and "\nLicense-Expression: Apache-2.0\n" in metadata
    assert "Requires-Dist: huggingface_hub" in metadata and "Requires-Dist: rich" in metadata
    assert "gitmirror = gitmirror.cli:main" in entry_points
    assert {"gitmirror/cli.py", "gitmirror/sandbox/server.py", "gitmirror/hubs/huggingface.py"} <= set(names)
    assert not any(n.startswith("tests/") for n in names)
    assert f"gitmirror-{version}.dist-info/licenses/LICENSE" in names, "the license text ships with the wheel"
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "gitmirror/cli.py", "LICENSE"} <= members


def test_the_wheel_installed_in_a_fresh_virtualenv_mirrors(installed_gitmirror, hub_pair, git_env, tmp_path, unique_name):
    installed = installed_gitmirror
    assert installed["seconds"] < INSTALL_BUDGET_SECONDS, installed["log"]
    prefix, exe = Path(installed["prefix"]), Path(installed["gitmirror"])
    # A virtualenv of its own: no system site-packages, and gitmirror from the wheel, not this checkout.
    assert "include-system-site-packages = false" in (prefix / "pyvenv.cfg").read_text()
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import gitmirror, importlib.metadata as m; d = m.distribution('gitmirror'); "
         "print(gitmirror.__file__); print(d.version); print(d.read_text('direct_url.json') or '{}')"],
        capture_output=True, text=True, check=True, env=clean_env(), cwd=tmp_path).stdout.splitlines()
    assert Path(where[0]).is_relative_to(prefix) and where[1] == gitmirror.__version__
    assert not json.loads(where[2]).get("dir_info", {}).get("editable"), where[2]

    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True, env=clean_env())
    lines = version.stdout.splitlines()
    assert lines[0].startswith(f"gitmirror {gitmirror.__version__} ") and re.fullmatch(r"git \d+\.\d+.*", lines[1])
    assert re.fullmatch(r"git-lfs \d+\.\d+.*", lines[2]), version.stdout

    # One mirror, run by the installed executable, judged by git and git-lfs.
    hf, ms = hub_pair()
    hf_token, ms_token = hf.issue_token("alice"), ms.issue_token("alice")
    name = unique_name("wheel")
    seeded = seed_sample_model(hf, f"org/{name}", private=True)
    env = clean_env(**{k: v for k, v in git_env.items() if k != "PYTHONPATH"}, HF_ENDPOINT=hf.endpoint,
                    MODELSCOPE_ENDPOINT=ms.endpoint, HF_TOKEN=hf_token, MODELSCOPE_API_TOKEN=ms_token,
                    GITMIRROR_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(exe), "clone-push", f"hf://org/{name}", f"ms://org/{name}"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    judge_env = auth_env(ms.endpoint, "oauth2", ms.git_token_for(ms_token), git_env)
    url = ms.git_url(f"org/{name}")
    assert remote_refs(url, judge_env) == modelscope_view(seeded.refs)
    objects = {hashlib.sha256(c.data).hexdigest(): c.data for commit in seeded.builder.commits
               for c in commit.files.values() if hasattr(c, "data")}
    assert objects
    clone_and_check_lfs(url, judge_env, tmp_path, objects)


def test_dockerfile_is_a_slim_non_root_image_with_git_lfs_and_a_cache_volume():
    args, stages = dockerfile_stages()
    final = stages[-1]
    base = final.base.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base
    # The wheel comes from the standard build frontend in a build stage.
    assert any("python -m build --wheel" in run for run in stages[0].all("RUN"))
    apt = next(run for run in final.all("RUN") if "apt-get install" in run)
    assert {"git", "git-lfs", "ca-certificates"} <= set(apt.split()) and "rm -rf /var/lib/apt/lists/*" in apt
    user = final.all("USER")[-1]
    assert user not in ("root", "0") and any(f"useradd" in run and user in run.split() for run in final.all("RUN"))
    env = " ".join(final.all("ENV"))
    cache = re.search(r"GITMIRROR_CACHE=(\S+)", env).group(1)
    assert json.loads(final.all("VOLUME")[-1]) == [cache]
    assert any(f"chown {user}:{user} {cache}" in run for run in final.all("RUN"))
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["gitmirror"]
    install = next(run for run in final.all("RUN") if "install-venv.sh" in run)
    prefix = install.split("install-venv.sh", 1)[1].split()[0]
    assert f"PATH={prefix}/bin:$PATH" in env
    # The context keeps out local state, and keeps what the build reads.
    ignored = dockerignore_patterns()
    assert {".git", ".venv"} <= set(ignored) and not {"README.md", "pyproject.toml", "gitmirror", "scripts"} & set(ignored)


def test_install_script_refuses_wrong_usage(tmp_path):
    done = subprocess.run(["sh", str(ROOT / "scripts" / "install-venv.sh"), str(tmp_path / "x")], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "usage:" in done.stderr and not (tmp_path / "x").exists()
