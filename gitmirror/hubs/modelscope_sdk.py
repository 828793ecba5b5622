"""The ModelScope SDK (modelscope_hub's ``HubApi``) as gitmirror builds it: bound to one endpoint and
exactly one token, its own retries off (gitmirror.retry alone decides, counted), and every JSON
answer checked for ModelScope's ``{Success: false}`` envelope, which the SDK would take for success.

The SDK is built on an explicit ``HubConfig`` whose config directory comes from the environment
mapping we were given (``MODELSCOPE_HOME`` or ``$HOME/.modelscope``): the SDK writes a session id
there merely to build its user agent, and tests point it at a temporary directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitmirror.credentials import Token, home_dir, ms_credentials_dir
from gitmirror.errors import ProtocolError
from gitmirror.retry import RetryPolicy, retry_after_from


class EnvelopeFailure(Exception):
    """A 200 answer whose body says ``Success: false`` (the SDK would take it for success)."""

    def __init__(self, message: str, code: Any, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


def _config_dir(env: Mapping[str, str]) -> Path:
    return ms_credentials_dir(env).parent


def _cache_dir(env: Mapping[str, str]) -> Path:
    # The SDK creates its cache directory whenever it writes its session id; derive it from
    # the same environment as everything else, not from the process's real HOME.
    if env.get("MODELSCOPE_CACHE"):
        return Path(env["MODELSCOPE_CACHE"]).expanduser()
    return home_dir(env) / ".cache" / "modelscope"


def check_envelope(response: Any, *args: Any, **kwargs: Any) -> None:
    """requests response hook: a 200 whose JSON says ``Success: false`` is a failure.

    The SDK unwraps ``Data`` from such answers and carries on; an HTML page where JSON was
    expected (a proxy's error page) is turned into an error here too.
    """
    if response.status_code >= 300 or not response.content:
        return
    if "/info/lfs" in response.url or "/resolve/" in response.url or "/repo?" in response.url:
        return  # file and LFS traffic is not the JSON API
    try:
        body = response.json()
    except ValueError:
        raise ProtocolError(f"{_origin(response.url)} answered with something that is not JSON") from None
    if not isinstance(body, dict):
        return
    success = body.get("Success", body.get("success"))
    if success is False:
        message = body.get("Message") or body.get("message") or "request refused"
        raise EnvelopeFailure(str(message), body.get("Code", body.get("code")), response.status_code,
                              retry_after_from(response.headers))


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def build_sdk(endpoint: str, token: Token | None, env: Mapping[str, str], policy: "RetryPolicy | None" = None) -> Any:
    """A modelscope_hub HubApi bound to ``endpoint`` and exactly ``token`` (no implicit fallback).

    ``token=""`` tells the SDK "anonymous" (``None`` would make it read MODELSCOPE_API_TOKEN
    or the stored login behind our back). The SDK's own retries are off, so gitmirror.retry
    alone decides, and every response passes :func:`check_envelope`.
    """
    import requests
    from modelscope_hub import HubApi
    from modelscope_hub._legacy_api import LegacyClient
    from modelscope_hub._openapi import OpenAPIClient
    from modelscope_hub.config import HubConfig
    from modelscope_hub.utils import build_user_agent

    value = token.value if token else ""
    config = HubConfig(endpoint=endpoint, token=value, config_dir=_config_dir(env), cache_dir=_cache_dir(env))
    user_agent = build_user_agent(config=config, extra={"invoked_by": "gitmirror"})
    api = HubApi(config=config)
    session = requests.Session()
    session.hooks["response"].append(check_envelope)
    # The SDK builds these lazily with its default retry counts; modelscope's own HubApi shim
    # replaces the legacy client the same way to change its retries.
    read_timeout = (policy or RetryPolicy()).read_timeout  # a stalled answer is cut, then retried by us
    api._openapi = OpenAPIClient(
        config, session=session, timeout=read_timeout, max_retries=1, user_agent={"invoked_by": "gitmirror"}
    )
    legacy = LegacyClient(
        token=value, endpoint=config.endpoint, timeout=max(1, int(read_timeout)), max_retries=0, user_agent=user_agent
    )
    for legacy_session in (getattr(legacy, "_session", None), getattr(legacy, "_read_session", None)):
        if legacy_session is not None:
            legacy_session.hooks["response"].append(check_envelope)
    api._legacy = legacy
    return api
