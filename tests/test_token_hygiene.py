"""No token leaks: not in a child's argv, logs, reports, errors, cache files or URLs; TLS stays on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gitmirror.sandbox.seed import RepoBuilder, seed_sample_model

pytestmark = pytest.mark.timeout(420)

PACKAGE = Path(__file__).resolve().parent.parent / "gitmirror"


def test_every_command_keeps_every_token_secret(hub_pair, git_env, tmp_path, unique_name, argv_log):
    hf, ms = hub_pair()
    hf_token, ms_token = hf.issue_token("alice"), ms.issue_token("alice")
    ms_git_token = ms.git_token_for(ms_token)
    name = unique_name("secret")
    sample = seed_sample_model(hf, f"org/{name}", private=True)

    bindir, argv_log = argv_log
    cache = tmp_path / "cache"
    env = {**git_env, "PATH": f"{bindir}:{git_env['PATH']}", "HF_ENDPOINT": hf.endpoint,
           "MODELSCOPE_ENDPOINT": ms.endpoint, "HF_TOKEN": hf_token, "MODELSCOPE_API_TOKEN": ms_token,
           "GITMIRROR_CACHE": str(cache)}
    src, dst = f"hf://org/{name}", f"ms://org/{name}"
    mirrors = tmp_path / "mirrors.txt"
    mirrors.write_text(f"{src} {dst}\nhf://org/{name}-missing ms://org/{name}-missing\n")
    report, metrics = tmp_path / "report.json", tmp_path / "metrics.prom"

    commands = [
        ["clone-push", "--dry-run", "--log-level", "DEBUG", src, dst],
        ["clone-push", "--json", "--log-level", "DEBUG", src, dst],
        ["clone-push", "--log-level", "DEBUG", src, dst],  # no-op
        ["verify", "--json", "--log-level", "DEBUG", src, dst],
        ["sync", str(mirrors), "--report", str(report), "--metrics", str(metrics), "--log-level", "DEBUG"],
        ["clone-push", "--log-level", "DEBUG", f"hf://org/{name}-missing", dst],  # failure: not found
        ["clone-push", "--log-level", "DEBUG", "--dst-token", hf_token, src, f"{ms.endpoint}/models/org/{name}.git"],
    ]
    outputs = []
    for args in commands:
        done = subprocess.run([sys.executable, "-m", "gitmirror", *args], env=env, capture_output=True, text=True,
                              timeout=240)
        outputs += [done.stdout, done.stderr]
        assert done.returncode in (0, 3, 4, 11), (args, done.stderr[-2000:])
    # Diverge the destination, then the failure path of a rejected update.
    other = RepoBuilder(default_branch="master")
    other.commit({"x": "y"})
    other.write(ms.repo_path(f"org/{name}"))
    sample.builder.commit({"z": "upstream"})
    sample.builder.push_to_hub(hf, f"org/{name}")
    done = subprocess.run([sys.executable, "-m", "gitmirror", "clone-push", "--log-level", "DEBUG", src, dst], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 6
    outputs += [done.stdout, done.stderr]

    texts = {"outputs": "\n".join(outputs), "argv": argv_log.read_text(), "report": report.read_text(),
             "metrics": metrics.read_text()}
    for path in cache.rglob("*"):
        if path.is_file() and path.stat().st_size < 2_000_000:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any(p.endswith("config") for p in texts), "the cache's git config was read"
    assert texts["argv"].count("\n") >= 10, "git was called through the wrapper"
    assert "DEBUG" in texts["outputs"], "debug logging was on"
    for secret in (hf_token, ms_token, ms_git_token):
        for where, text in texts.items():
            assert secret not in text, f"a token leaked into {where}"
    assert not re.search(r"https?://[^/\s:@]+:[^/\s@]+@", texts["outputs"]), "a URL with credentials was printed"


def test_tls_verification_is_never_turned_off():
    forbidden = re.compile(r"verify\s*=\s*False|sslVerify|GIT_SSL_NO_VERIFY|CERT_NONE|check_hostname\s*=\s*False|"
                           r"disable_warnings|InsecureRequestWarning")
    offenders = [f"{path}:{n}" for path in PACKAGE.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if forbidden.search(line)]
    assert offenders == []


def test_no_token_in_urls_or_argv_in_the_code():
    """Static guard: git is never given a URL with user-info, and no code builds 'user:token@'."""
    pattern = re.compile(r"""f["']https?://\{[^}]*\}:\{[^}]*\}@|oauth2:\{""")
    offenders = [f"{path}:{n}" for path in PACKAGE.rglob("*.py") if "sandbox" not in path.parts
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
