"""gitmirror: mirror Git repositories with their LFS content between hubs, with the whole history.

The Python API (the command line is a thin shell over it)::

    import gitmirror

    result = gitmirror.mirror("hf://Qwen/Qwen3-0.6B", "ms://my-org/Qwen3-0.6B")
    print(result.refs_created, result.objects_moved, result.bytes_moved)
    if not gitmirror.verify("hf://Qwen/Qwen3-0.6B", "ms://my-org/Qwen3-0.6B").in_sync:
        ...
    gitmirror.snapshot("hf://org/model", "ms://org/model")  # the latest files as one commit
    report = gitmirror.sync("mirrors.toml", jobs=4)   # report.exit_code: 0, or 11 if some failed

Failures raise a :class:`gitmirror.errors.GitMirrorError` subclass; each has an ``exit_code``.

The names below are imported on first use (a module ``__getattr__``), so ``import gitmirror``
and ``gitmirror --help`` stay fast: git, requests and the hubs' SDKs load only when needed.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {
    "mirror": "gitmirror.api",
    "verify": "gitmirror.api",
    "sync": "gitmirror.api",
    "snapshot": "gitmirror.api",
    "VerifyResult": "gitmirror.verification",
    "RunOptions": "gitmirror.runner",
    "MirrorResult": "gitmirror.execute",
    "MirrorPlan": "gitmirror.plan",
    "RefUpdate": "gitmirror.plan",
    "RefAction": "gitmirror.plan",
    "SyncReport": "gitmirror.sync",
    "MirrorOutcome": "gitmirror.sync",
    "RetryPolicy": "gitmirror.retry",
    "GitMirrorError": "gitmirror.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these come from __getattr__
    from gitmirror.api import mirror, snapshot, sync, verify
    from gitmirror.errors import GitMirrorError
    from gitmirror.execute import MirrorResult
    from gitmirror.plan import MirrorPlan, RefAction, RefUpdate
    from gitmirror.retry import RetryPolicy
    from gitmirror.runner import RunOptions
    from gitmirror.sync import MirrorOutcome, SyncReport
    from gitmirror.verification import VerifyResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitmirror' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    # Cache it, so the import machinery is not consulted again for this name.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """The package module, guarding its API names against same-named submodules.

    ``gitmirror.sync`` is the API function, but ``gitmirror/sync.py`` is also a submodule, and
    importing a submodule sets it as an attribute of its package. Without this guard the first
    ``from gitmirror.sync import ...`` anywhere would turn ``gitmirror.sync`` into a module.
    The submodule stays importable by its full name (``from gitmirror.sync import SyncReport``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
