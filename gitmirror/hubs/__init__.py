"""Adapters for the hosts gitmirror speaks to, and :func:`open_hub` to pick one for a spec.

Nothing here imports huggingface_hub or modelscope at module level: ``gitmirror --help`` must
start fast, and a mirror between two plain git hosts never needs either library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gitmirror.hubs._support import CallOptions, OnRetry
from gitmirror.hubs.base import GitAuth, Hub, RepoInfo

if TYPE_CHECKING:
    from gitmirror.hubs.logins import LoginCache
    from gitmirror.retry import RetryPolicy
    from gitmirror.specs import RepoSpec, Role

__all__ = ["GitAuth", "Hub", "RepoInfo", "open_hub"]

_TOKEN_LABELS = {"src": "--src-token", "dst": "--dst-token"}
_TOKEN_VARIABLES = {"src": "GITMIRROR_SRC_TOKEN", "dst": "GITMIRROR_DST_TOKEN"}


def open_hub(
    spec: "RepoSpec",
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    role: "Role | None" = None,
    policy: "RetryPolicy | None" = None,
    on_retry: OnRetry | None = None,
    logins: "LoginCache[Any] | None" = None,
    token_source: str | None = None,
) -> Hub:
    """The adapter for ``spec``, with credentials found in the documented order.

    ``token`` is an explicit token (``--src-token`` / ``--dst-token``); ``env`` defaults to the
    process environment. Without one, ``GITMIRROR_SRC_TOKEN`` / ``GITMIRROR_DST_TOKEN`` (by
    ``role``) come first, then each hub's own variables and stored logins. ``token_source`` says
    where an explicit token came from, for messages (default: the option of ``role``). ``policy`` and
    ``on_retry`` govern (and count) the adapter's own retried calls. ``logins`` shares hub logins
    (ModelScope's git token) across a run's adapters: one login per token per run.
    """
    from gitmirror import credentials

    env = os.environ if env is None else env
    explicit = credentials.explicit_token(token, token_source or _TOKEN_LABELS.get(role or "", "explicit token"))
    if explicit is None and role in _TOKEN_VARIABLES:
        # The environment's form of --src-token / --dst-token (not seen in `ps`), named as itself.
        variable = _TOKEN_VARIABLES[role]
        explicit = credentials.token_from(env.get(variable), f"environment variable {variable}")
    opts = CallOptions(policy=policy, on_retry=on_retry)
    if spec.host == "huggingface":
        from gitmirror.hubs.huggingface import HuggingFaceHub

        return HuggingFaceHub(spec, credentials.find_hf_token(explicit, env), opts)
    if spec.host == "modelscope":
        from gitmirror.hubs.modelscope import ModelScopeHub

        return ModelScopeHub(spec, credentials.find_ms_tokens(explicit, env), env, opts, logins)
    if spec.host == "git":
        from gitmirror.hubs.git import PlainGit

        return PlainGit(spec, explicit, env, opts)
    from gitmirror.errors import UsageError

    raise UsageError(f"unknown hub {spec.host!r} for {spec.display}", hint="use hf://, ms://, a git URL or a path")
