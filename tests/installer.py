"""Install gitmirror as the Dockerfile does, without an image: its RUN steps, in fresh virtualenvs.

Images cannot be built or pulled on the test machines, so the Dockerfile is read and its steps are
played under a work directory standing in for the image's file system (``/tmp``, ``/opt``, ``/dist``,
``/src`` map to ``WORK/tmp`` ...). A fresh virtualenv stands in for the base image's ``python``; the
build stage's context is this checkout filtered by ``.dockerignore``. The system steps (apt-get,
useradd) are not run: tests check them by reading the Dockerfile.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: How long one install step may take (a fresh virtualenv getting gitmirror's dependencies).
STEP_TIMEOUT = 300
_IMAGE_DIRS = re.compile(r"(?<![\w.$/-])/(tmp|opt|dist|src)(?=/|\b)")


@dataclass
class Stage:
    base: str
    name: str | None = None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile_stages(path: Path = ROOT / "Dockerfile") -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            words = rest.split()
            stages.append(Stage(base=words[0], name=words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def dockerignore_patterns(root: Path = ROOT) -> list[str]:
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(prefix.split("/")[-1], bare)):
                return True
    return False


def copy_build_context(dest: Path, root: Path = ROOT) -> list[str]:
    """``COPY . .``: the checkout's files (tracked, or new and not git-ignored) less .dockerignore's."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
    patterns = dockerignore_patterns(root)
    copied = []
    for relative in sorted(p for p in listing.split("\0") if p):
        source = root / relative
        if not source.is_file() or _ignored(relative, patterns):
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(relative)
    return copied


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would make another Python see this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    return {**env, **extra}


def _run(command: str, cwd: Path, env: dict[str, str], log: list[str]) -> None:
    started = time.monotonic()
    done = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT)
    log.append(f"$ {command}\n{done.stdout}{done.stderr}({time.monotonic() - started:.1f} s, exit {done.returncode})")
    if done.returncode != 0:
        raise AssertionError("\n".join(log))


def install_as_the_dockerfile_does(work: Path) -> dict:
    """Play the Dockerfile's build and install steps under ``work``; returns where gitmirror landed."""
    started = time.monotonic()
    _, stages = dockerfile_stages()
    build, final = stages[0], stages[-1]
    log: list[str] = []
    image = work / "image-python"  # the base image's python
    subprocess.run([sys.executable, "-m", "venv", str(image)], check=True, timeout=STEP_TIMEOUT, env=clean_env())
    env = clean_env(PATH=f"{image / 'bin'}{os.pathsep}{os.environ['PATH']}")

    def in_image(text: str) -> str:
        return _IMAGE_DIRS.sub(lambda m: f"{work}/{m.group(1)}", text)

    # Stage 1: COPY . . into WORKDIR, then its RUN lines (the wheel, by python -m build).
    workdir = Path(in_image(build.all("WORKDIR")[0]))
    copy_build_context(workdir)
    for command in build.all("RUN"):
        _run(in_image(command), workdir, env, log)
    # Stage 2: the COPY steps and the RUN that installs the wheel (apt-get and useradd need the image).
    for args in final.all("COPY"):
        words = args.split()
        source_root = work if words[0].startswith("--from=") else ROOT
        source, dest = (words[1:] if words[0].startswith("--from=") else words)
        target = Path(in_image(dest))
        from_path = source_root / source.strip("/") if source_root is work else ROOT / source
        if from_path.is_dir():
            shutil.copytree(from_path, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(from_path, target)
    installs = [c for c in final.all("RUN") if "install-venv.sh" in c]
    assert len(installs) == 1, final.all("RUN")
    _run(in_image(installs[0]), work, env, log)
    path_env = next(a for a in final.all("ENV") if a.startswith("PATH="))
    bindir = Path(in_image(path_env.removeprefix("PATH=").split(":")[0]))
    wheels = sorted((work / "dist").glob("gitmirror-*.whl"))
    return {"bin": str(bindir), "gitmirror": str(bindir / "gitmirror"), "prefix": str(bindir.parent),
            "wheel": str(wheels[0]) if wheels else "", "seconds": round(time.monotonic() - started, 1),
            "log": "\n".join(log)}


def installed_once(shared: Path) -> dict:
    """:func:`install_as_the_dockerfile_does` once for the whole test run, also across xdist workers."""
    from filelock import FileLock

    work = shared / "installed-gitmirror"
    done = shared / "installed-gitmirror.json"
    with FileLock(str(shared / "installed-gitmirror.lock")):
        if not done.exists():
            shutil.rmtree(work, ignore_errors=True)
            done.write_text(json.dumps(install_as_the_dockerfile_does(work)))
    return json.loads(done.read_text())
