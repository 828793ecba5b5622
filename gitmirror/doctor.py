"""``gitmirror doctor``: is this machine ready to mirror? git, tokens, endpoints, cache, disk.

Each check gives one :class:`Check` row: what was found, and for a failure, what to do. Checks
are independent (one failing does not hide the others), quick (short timeouts, no retries) and
never show a token: only where it came from (the adapters' ``credential_source``).

A missing token is a warning, not a failure: a public Hugging Face source needs none, and
doctor cannot know which way you mirror. ``require=("ms",)`` (``--require ms``) makes a
missing ModelScope token a failure, for a machine that is meant to push there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmirror.errors import EXIT_AUTH, EXIT_ENVIRONMENT, EXIT_OK, GitMirrorError, scrub

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub

#: Seconds for any one network check (connect and read). Doctor must answer quickly.
DEFAULT_TIMEOUT = 8.0
#: Below this much free space in the cache directory, warn: big histories need room for git objects.
LOW_DISK_BYTES = 1024**3
#: Placeholder repositories: adapters need one to exist, but doctor never asks about it.
_PROBE_REPO = "gitmirror-doctor/probe"

HUBS = {"hf": ("Hugging Face", "hf://"), "ms": ("ModelScope", "ms://")}


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"  # worth knowing, does not fail the run
    FAIL = "fail"
    SKIP = "skipped"  # could not be checked because an earlier check failed


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    #: Which exit code a failure of this check maps to (auth for tokens, environment for the rest).
    kind: str = "environment"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass
class DoctorReport:
    """All checks, in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """0 when nothing failed; 9 when anything on the machine or network did; else 4 (tokens only)."""
        if self.ok:
            return EXIT_OK
        if any(c.kind == "environment" for c in self.failed):
            return EXIT_ENVIRONMENT
        return EXIT_AUTH

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "exit_code": self.exit_code, "checks": [c.to_dict() for c in self.checks]}


def _fail(name: str, detail: str, fix: str, kind: str = "environment") -> Check:
    return Check(name, Status.FAIL, scrub(detail), fix, kind)


def _message(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, GitMirrorError) else f"{type(exc).__name__}: {exc}"
    return scrub(" ".join(str(text).split()))


# --- the machine ------------------------------------------------------------------------------


def check_git() -> Check:
    from gitmirror import gitrepo

    try:
        version = gitrepo.check_git()
    except GitMirrorError as exc:
        return _fail("git", _message(exc), exc.hint or "install git 2.31 or newer")
    return Check("git", Status.OK, "git " + ".".join(map(str, version)))


def check_git_lfs(env: Mapping[str, str], timeout: float) -> Check:
    # gitmirror speaks the LFS protocol itself; git-lfs only helps to inspect clones.
    try:
        done = subprocess.run(["git", "lfs", "version"], capture_output=True, text=True, timeout=timeout,
                              env=dict(env), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("git-lfs", Status.WARN, f"not usable ({type(exc).__name__})",
                     "optional: install git-lfs to check clones with `git lfs fsck`")
    if done.returncode != 0:
        return Check("git-lfs", Status.WARN, "not installed (optional: gitmirror moves LFS objects itself)",
                     "optional: install git-lfs to check clones with `git lfs fsck`")
    return Check("git-lfs", Status.OK, done.stdout.strip().split(" (")[0])


def check_cache(cache_dir: Path) -> list[Check]:
    """The cache directory can be created and written, and has room."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".doctor-", delete=True) as probe:
            probe.write(b"gitmirror doctor\n")
            probe.flush()
    except OSError as exc:
        return [
            _fail("cache directory", f"{cache_dir} is not writable ({exc.strerror or type(exc).__name__})",
                  "choose another with --cache-dir or GITMIRROR_CACHE, or fix its permissions"),
            Check("free disk", Status.SKIP, "the cache directory is not usable"),
        ]
    writable = Check("cache directory", Status.OK, f"{cache_dir} is writable")
    free = shutil.disk_usage(cache_dir).free
    from gitmirror.report import human_bytes

    if free < LOW_DISK_BYTES:
        return [writable, Check("free disk", Status.WARN, f"{human_bytes(free)} free in {cache_dir}",
                                "free some space or use --cache-dir on a larger disk: the cache keeps git history")]
    return [writable, Check("free disk", Status.OK, f"{human_bytes(free)} free")]


# --- the hubs -------------------------------------------------------------------------------------


#: A route of each hub's API that answers a request without a token (401 Unauthorized on the real
#: hubs): an answer from it says the endpoint is that hub, where the site's front page would not (any
#: web server, a proxy's or a captive portal's too, answers something at "/"). Not whoami on Hugging
#: Face: the token row asks that one, and a stall there must show on the token's row.
API_PROBES = {"Hugging Face": f"/api/models/{_PROBE_REPO}", "ModelScope": "/openapi/v1/users/me"}


def check_endpoint(label: str, endpoint: str, timeout: float, env_var: str) -> Check:
    """The hub's API answers at ``endpoint``: a 2xx, 401 or 403 from its probe route passes; a 404,
    a redirect or a 5xx fails (not the hub, or the hub is failing); no answer at all fails."""
    import requests

    probe = API_PROBES.get(label, "/")
    started = time.monotonic()
    try:
        # No credentials, and the body is never read: only the status matters.
        with requests.get(endpoint.rstrip("/") + probe, timeout=(timeout, timeout), allow_redirects=False,
                          stream=True) as response:
            status, location = response.status_code, response.headers.get("Location", "")
    except requests.RequestException as exc:
        return _fail(f"{label} endpoint", f"cannot reach {endpoint} ({type(exc).__name__})",
                     f"check the network, the proxy (HTTPS_PROXY) and {env_var}")
    ms = (time.monotonic() - started) * 1000
    name = f"{label} endpoint"
    detail = f"{endpoint} answered HTTP {status} to {probe} in {ms:.0f} ms"
    if status < 300 or status in (401, 403):
        return Check(name, Status.OK, detail)
    if status == 429:
        return Check(name, Status.WARN, f"{detail} (rate limited)", "wait a while, or check who else uses this address")
    if 300 <= status < 400:
        return _fail(name, f"{detail}, redirected to {location or 'nowhere said'}",
                     f"set {env_var} to the hub's own address (a proxy or a login page is in the way?)")
    if status >= 500:
        return _fail(name, f"{detail} (a server error)", "the hub or a proxy in front of it is failing; run doctor again later")
    return _fail(name, f"{detail}: no {label} API there",
                 f"check {env_var}: it must be the {label} hub's base address")


def _token_row(label: str, hub: "Hub", required: bool, env_var: str, whoami: Callable[[], str]) -> Check:
    name = f"{label} token"
    source = hub.credential_source
    if source.startswith("none"):
        status = Status.FAIL if required else Status.WARN
        need = "required here (--require)" if required else "only needed for private or gated repositories and to write"
        return Check(name, status, f"none found ({need})", f"set {env_var}", kind="auth")
    try:
        account = whoami()
    except GitMirrorError as exc:
        if exc.transient:
            # A timeout or a 5xx says nothing about the token: a network failure, not an auth one.
            return _fail(name, f"from {source}: could not be checked: {_message(exc)}",
                         "the hub answered too slowly or failed; check the network and run doctor again")
        return _fail(name, f"from {source}: {_message(exc)}", exc.hint or f"set {env_var} to a valid token", "auth")
    return Check(name, Status.OK, f"from {source}: works (account {account})")


def check_huggingface(env: Mapping[str, str], timeout: float, required: bool, policy: Any) -> list[Check]:
    hub = _open("hf", env, policy)
    endpoint = check_endpoint("Hugging Face", hub.spec.endpoint or "", timeout, "HF_ENDPOINT")
    if endpoint.status is Status.FAIL:
        return [endpoint, Check("Hugging Face token", Status.SKIP, f"{hub.credential_source}; the endpoint is unreachable", kind="auth")]
    return [endpoint, _token_row("Hugging Face", hub, required, "HF_TOKEN", hub.whoami)]  # type: ignore[attr-defined]


def check_modelscope(env: Mapping[str, str], timeout: float, required: bool, policy: Any) -> list[Check]:
    hub = _open("ms", env, policy)
    endpoint = check_endpoint("ModelScope", hub.spec.endpoint or "", timeout, "MODELSCOPE_ENDPOINT")
    if endpoint.status is Status.FAIL:
        skipped = f"{hub.credential_source}; the endpoint is unreachable"
        return [endpoint, Check("ModelScope token", Status.SKIP, skipped, kind="auth"),
                Check("ModelScope git token", Status.SKIP, "the endpoint is unreachable", kind="auth")]
    token = _token_row("ModelScope", hub, required, "MODELSCOPE_API_TOKEN", hub.whoami)  # type: ignore[attr-defined]
    return [endpoint, token, _git_token_row(hub, token)]


def _git_token_row(hub: "Hub", sdk_row: Check) -> Check:
    name = "ModelScope git token"
    if sdk_row.status is not Status.OK:
        return Check(name, Status.SKIP, "needs a working ModelScope token first", kind="auth")
    try:
        source = hub.git_token_source()  # type: ignore[attr-defined]
    except GitMirrorError as exc:
        if exc.transient:
            return _fail(name, f"could not be checked: {_message(exc)}", "check the network and run doctor again")
        return _fail(name, _message(exc), exc.hint or "use an access token with write permission", "auth")
    return Check(name, Status.OK, f"obtained ({source}); git uses it as user oauth2")


def _open(hub: str, env: Mapping[str, str], policy: Any) -> "Hub":
    from gitmirror.hubs import open_hub
    from gitmirror.specs import parse_spec

    spec = parse_spec(HUBS[hub][1] + _PROBE_REPO, "src", env)
    return open_hub(spec, token=None, env=env, policy=policy)


# --- all of it --------------------------------------------------------------------------------------


def run_checks(
    *,
    cache_dir: Path | None = None,
    require: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> DoctorReport:
    """Run every check and return the rows; never raises for a failed check.

    ``require`` names hubs (``"hf"``, ``"ms"``) whose token must be present; ``timeout`` bounds
    each network check; ``env`` replaces ``os.environ`` for finding tokens and endpoints.
    """
    from gitmirror.cache import default_cache_dir
    from gitmirror.retry import RetryPolicy

    env = os.environ if env is None else env
    # One attempt, short timeouts: doctor reports a fault, it does not wait it out.
    policy = RetryPolicy(attempts=1, connect_timeout=timeout, read_timeout=timeout)
    report = DoctorReport()
    report.checks.append(check_git())
    report.checks.append(check_git_lfs(env, timeout))
    report.checks.extend(check_cache(cache_dir or default_cache_dir(env)))
    # The two hubs are checked at the same time: with a slow network, doctor then takes one
    # hub's timeouts, not both.
    with ThreadPoolExecutor(max_workers=2) as pool:
        hf = pool.submit(check_huggingface, env, timeout, "hf" in require, policy)
        ms = pool.submit(check_modelscope, env, timeout, "ms" in require, policy)
        report.checks.extend(hf.result() + ms.result())
    return report


def print_report(report: DoctorReport) -> None:
    from rich.table import Table

    from gitmirror.report import make_console

    styles = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}
    table = Table(title="gitmirror doctor", title_justify="left")
    for column in ("check", "status", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        table.add_row(c.name, f"[{styles[c.status]}]{c.status.value}[/]", c.detail, c.fix)
    console = make_console(soft_wrap=False)
    console.print(table)
    if report.ok:
        console.print("All checks passed.")
    else:
        console.print(f"[bold red]{len(report.failed)} check(s) failed[/]: see 'what to do' (exit code {report.exit_code}).")
