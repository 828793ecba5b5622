"""Where tokens come from, in a fixed order, and which source gave each one.

Order (first hit wins):

1. the explicit token (``--src-token`` / ``--dst-token``);
2. the environment (``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``; ``MODELSCOPE_API_TOKEN``);
3. the stored login of the hub's own tooling (huggingface_hub's token file under
   ``HF_TOKEN_PATH`` / ``HF_HOME``; modelscope's ``credentials/`` directory under
   ``MODELSCOPE_HOME`` or ``~/.modelscope``, including its ``git_token``);
4. for any other host, git's own credential helpers (``git credential fill``).

Every token found is registered with :func:`gitmirror.errors.register_secret` at once, so no
message can show it later. A :class:`Token` tells *where* it came from (for ``doctor``), and
its ``repr`` never shows the value.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gitmirror.errors import register_secret

log = logging.getLogger("gitmirror.credentials")

HF_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MS_ENV_VAR = "MODELSCOPE_API_TOKEN"
#: A credential helper that waits for a browser or a keyring unlock must not hang a cron job.
CREDENTIAL_FILL_TIMEOUT = 20.0


@dataclass(frozen=True)
class Token:
    """A secret and a human description of where it was found (never the value itself)."""

    value: str = field(repr=False)
    source: str
    #: User name to pair with the token for HTTP Basic auth, when the source says (git helpers).
    username: str | None = None


@dataclass(frozen=True)
class ModelScopeTokens:
    """ModelScope has two tokens: the SDK/API one, and the git one that login hands out."""

    sdk: Token | None = None
    #: Only set when it belongs with ``sdk`` (both from the same stored login).
    git: Token | None = None


def token_from(value: str | None, source: str, username: str | None = None) -> Token | None:
    """A :class:`Token` for a non-empty value, registered as a secret at once; None for nothing."""
    value = (value or "").strip()
    if not value:
        return None
    register_secret(value)
    return Token(value=value, source=source, username=username)


def explicit_token(value: str | None, label: str = "--token") -> Token | None:
    """Wrap a token the user passed on the command line or to the Python API."""
    return token_from(value, label)


def home_dir(env: Mapping[str, str]) -> Path:
    """``$HOME`` as ``env`` says (the process's home when it does not)."""
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _expand(path: str, env: Mapping[str, str]) -> Path:
    if path == "~" or path.startswith("~/"):
        return home_dir(env) / path[2:]
    return Path(path)


# --- Hugging Face ---------------------------------------------------------------------------


def hf_token_path(env: Mapping[str, str]) -> Path:
    """The file huggingface_hub's ``get_token()`` reads, resolved from ``env`` (same rules)."""
    if env.get("HF_TOKEN_PATH"):
        return _expand(env["HF_TOKEN_PATH"], env)
    if env.get("HF_HOME"):
        return _expand(env["HF_HOME"], env) / "token"
    cache = _expand(env["XDG_CACHE_HOME"], env) if env.get("XDG_CACHE_HOME") else home_dir(env) / ".cache"
    return cache / "huggingface" / "token"


def find_hf_token(explicit: Token | None = None, env: Mapping[str, str] | None = None) -> Token | None:
    """Explicit, then ``HF_TOKEN`` / ``HUGGING_FACE_HUB_TOKEN``, then the stored login file.

    The file is read here rather than through ``huggingface_hub.get_token()`` because that
    function resolves its path once, at import, from the process environment; reading it with
    the same rules from ``env`` keeps discovery testable and import-free (fast ``--help``).
    """
    if explicit is not None:
        return explicit
    env = os.environ if env is None else env
    for name in HF_ENV_VARS:
        token = token_from(env.get(name), f"environment variable {name}")
        if token:
            return token
    path = hf_token_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return token_from(text, f"stored Hugging Face login ({path})")


# --- ModelScope -----------------------------------------------------------------------------


def ms_credentials_dir(env: Mapping[str, str]) -> Path:
    """``$MODELSCOPE_HOME/credentials`` or ``~/.modelscope/credentials`` (what modelscope_hub uses)."""
    home = _expand(env["MODELSCOPE_HOME"], env) if env.get("MODELSCOPE_HOME") else home_dir(env) / ".modelscope"
    return home / "credentials"


def _stored_ms_sdk_token(config_dir: Path) -> str | None:
    # The SDK keeps its token as the m_session_id cookie of a pickled cookie jar; let the SDK's
    # own config class read it (expiry check included) instead of unpickling it ourselves.
    if not (config_dir / "credentials" / "cookies").is_file():
        return None
    from modelscope_hub.config import HubConfig

    return HubConfig(endpoint="https://modelscope.invalid", token="", config_dir=config_dir).load_token()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return None


def find_ms_tokens(explicit: Token | None = None, env: Mapping[str, str] | None = None) -> ModelScopeTokens:
    """Explicit, then ``MODELSCOPE_API_TOKEN``, then the stored login (SDK token and git token).

    A stored ``git_token`` is only used together with the stored SDK token (or alone when no
    SDK token is given anywhere): pairing it with another account's SDK token would push as
    the wrong user.
    """
    if explicit is not None:
        return ModelScopeTokens(sdk=explicit)
    env = os.environ if env is None else env
    from_env = token_from(env.get(MS_ENV_VAR), f"environment variable {MS_ENV_VAR}")
    if from_env:
        return ModelScopeTokens(sdk=from_env)
    cred_dir = ms_credentials_dir(env)
    sdk = token_from(_stored_ms_sdk_token(cred_dir.parent), f"stored ModelScope login ({cred_dir})")
    git = token_from(_read_text(cred_dir / "git_token"), f"stored ModelScope git token ({cred_dir / 'git_token'})")
    return ModelScopeTokens(sdk=sdk, git=git)


# --- git credential helpers -----------------------------------------------------------------


def credential_fill_input(url: str) -> str | None:
    """The ``git credential`` description of an http(s) URL (no secrets in it), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    lines = [f"protocol={parts.scheme}", f"host={host}"]
    if parts.path.strip("/"):
        lines.append(f"path={parts.path.lstrip('/')}")
    if parts.username:
        lines.append(f"username={parts.username}")
    return "\n".join(lines) + "\n\n"


def parse_credential_output(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value
    return values


def _fill_env(env: Mapping[str, str]) -> dict[str, str]:
    child = dict(env)
    # Never prompt: no terminal prompt, no askpass program (an empty GIT_ASKPASS disables it),
    # no Git Credential Manager dialog. A helper that has nothing simply yields nothing.
    child.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GCM_INTERACTIVE": "never"})
    return child


def find_git_credential(url: str, env: Mapping[str, str] | None = None) -> Token | None:
    """Ask git's configured credential helpers for ``url``; the query goes on stdin, never argv."""
    request = credential_fill_input(url)
    if request is None:
        return None
    env = os.environ if env is None else env
    try:
        done = subprocess.run(
            ["git", "credential", "fill"],
            input=request,
            capture_output=True,
            text=True,
            env=_fill_env(env),
            timeout=CREDENTIAL_FILL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("git credential fill gave nothing: %s", type(exc).__name__)
        return None
    if done.returncode != 0:
        return None  # no helper had it and prompting is off
    values = parse_credential_output(done.stdout)
    return token_from(values.get("password"), "git credential helper", username=values.get("username") or None)


def describe(token: Token | None) -> str:
    """What ``doctor`` shows: the source, never the value."""
    return token.source if token is not None else "none (anonymous)"


def summary(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each hub's token would come from right now, for ``doctor`` (sources only, no values)."""
    env = os.environ if env is None else env
    ms = find_ms_tokens(None, env)
    return {
        "huggingface": describe(find_hf_token(None, env)),
        "modelscope": describe(ms.sdk),
        "modelscope git": ms.git.source if ms.git else ("by login with the ModelScope token" if ms.sdk else "none"),
        "other git hosts": "git credential helpers, asked per URL (or --src-token / --dst-token)",
    }
