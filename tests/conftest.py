"""Shared fixtures: a running sandbox, an isolated git environment, and git helpers.

* ``sandbox`` - a started :class:`gitmirror.sandbox.Sandbox` (one per xdist worker); add your
  own hubs with ``sandbox.add_hub(kind)`` (cheap) and use ``unique_name`` for repo names when
  sharing a hub.
* ``git_env`` - an isolated HOME / XDG with a git identity and ``git lfs install --skip-repo``
  done there, no system or user config leaking in; set in ``os.environ`` for the test and
  returned as a dict.
* ``git`` - ``git("clone", url, cwd=path)`` runs git with that environment, raising on failure.
* ``hub_pair(hf={...}, ms={...})`` - a fresh Hugging Face hub and ModelScope hub (``add_hub``
  options as dicts), each with user "alice" in org "org": the setup most mirror tests start from.
* ``sandbox_tls`` - a started sandbox whose every port speaks HTTPS only (``Sandbox(tls=True)``),
  its certificates from a local CA (``sandbox_tls.ca_file``); add hubs as with ``sandbox``.
  Hub options of both: ``rtt=`` seconds of round-trip time per request (one more per new
  connection, two with TLS), set per hub so a source and a destination differ.
* ``tls_git_env`` - ``git_env`` plus ``sandbox_tls.tls_env()``: git, git-lfs, gitmirror and the hub
  SDKs trust that CA (``GIT_SSL_CAINFO``, ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``), also set in
  ``os.environ`` for the test (huggingface_hub's shared client is made anew before and after).
* ``argv_log`` - ``(bindir, log)``: a git wrapper for the front of PATH that appends every argv
  gitmirror gives git to ``log`` (to prove no token is ever in one).
* ``auth_env(url, token, user="user", base=None)`` - env additions that send ``token`` as Basic
  auth to ``url`` (and only there) through ``http.<url>.extraHeader``; no token in argv or files.
  For two hubs: ``a = auth_env(u1, t1); env = {**a, **auth_env(u2, t2, base=a)}``.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from gitmirror.sandbox import Sandbox

GIT_TIMEOUT = 120


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(root=tmp_path_factory.mktemp("sandbox")) as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(root=tmp_path_factory.mktemp("sandbox-tls"), tls=True) as sb:
        yield sb


@pytest.fixture(scope="session")
def hub_pair(sandbox: Sandbox) -> Callable[..., tuple[Any, Any]]:
    def make(hf: dict[str, Any] | None = None, ms: dict[str, Any] | None = None) -> tuple[Any, Any]:
        hubs = sandbox.add_hub("huggingface", **(hf or {})), sandbox.add_hub("modelscope", **(ms or {}))
        for hub in hubs:
            hub.add_user("alice", orgs=("org",))
        return hubs
    return make


@pytest.fixture
def argv_log(tmp_path: Path) -> tuple[Path, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "git-argv.log"
    real = shutil.which("git")
    wrapper = bindir / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return bindir, log


_counter = itertools.count(1)


def make_unique_name(prefix: str = "repo") -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def unique_name() -> Callable[..., str]:
    """``unique_name("model")`` -> ``"model-3-1a2b3c"``: distinct across tests and workers."""
    return make_unique_name


@pytest.fixture(scope="session")
def _git_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME with identity and the LFS filters configured, made once per session."""
    home = tmp_path_factory.mktemp("git-home-template")
    env = _base_env(home)
    (home / ".config").mkdir()
    for key, value in (("user.name", "Sandbox Tester"), ("user.email", "tester@sandbox.invalid"),
                       ("init.defaultBranch", "main"), ("protocol.version", "2"),
                       ("advice.detachedHead", "false")):
        subprocess.run(["git", "config", "--global", key, value], env=env, check=True, timeout=GIT_TIMEOUT)
    subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, capture_output=True,
                   timeout=GIT_TIMEOUT)
    return home


def _base_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("GIT_", "HF_", "HUGGING", "MODELSCOPE")) and k not in ("XDG_CONFIG_HOME",)}
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "LANG": "C.UTF-8",
        "HF_HOME": str(home / ".cache" / "huggingface"),
        "MODELSCOPE_HOME": str(home / ".modelscope"),
    }


@pytest.fixture
def git_env(tmp_path: Path, _git_home_template: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    home = tmp_path / "home"
    shutil.copytree(_git_home_template, home)
    env = _base_env(home)
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def tls_git_env(git_env: dict[str, str], sandbox_tls: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from huggingface_hub import close_session

    additions = sandbox_tls.tls_env()
    for key, value in additions.items():
        monkeypatch.setenv(key, value)
    # huggingface_hub keeps one httpx2 client per process, with the CA settings of when it was
    # made: a test before this one must not lend it its trust store, nor this one the next.
    close_session()
    yield {**git_env, **additions}
    close_session()


def run_git(env: dict[str, str], *args: str, cwd: str | Path | None = None, check: bool = True,
            input: bytes | None = None, timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run git with ``env``; on failure raise with its stderr (tests read it)."""
    done = subprocess.run(["git", *args], cwd=cwd, env=env, input=input.decode() if input else None,
                          capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


@pytest.fixture
def git(git_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def call(*args: str, cwd: str | Path | None = None, check: bool = True, env: dict[str, str] | None = None,
             **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_git({**git_env, **(env or {})}, *args, cwd=cwd, check=check, **kwargs)
    return call


def auth_env_for(url: str, token: str, user: str = "user", base: dict[str, str] | None = None) -> dict[str, str]:
    """Env additions (GIT_CONFIG_COUNT/KEY/VALUE) sending Basic ``user:token`` to ``url`` only."""
    base = base or {}
    index = int(base.get("GIT_CONFIG_COUNT", "0"))
    header = "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    prefix = url.rstrip("/") + "/"
    return {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"http.{prefix}.extraHeader",
        f"GIT_CONFIG_VALUE_{index}": header,
    }


@pytest.fixture
def auth_env() -> Callable[..., dict[str, str]]:
    return auth_env_for


@pytest.fixture(scope="session")
def installed_gitmirror(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """gitmirror built and installed as the Dockerfile does (a wheel, scripts/install-venv.sh) into a
    fresh virtualenv; once per test run, shared by xdist workers. Keys: ``gitmirror`` (the executable's
    absolute path), ``bin``, ``prefix``, ``wheel``, ``seconds`` (build and install), ``log``."""
    from installer import installed_once

    base = tmp_path_factory.getbasetemp()
    return installed_once(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 200 KB tmpfs to fill (a full disk for real); skipped where mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
