"""Work done ahead of need, in a helper thread: mostly imports.

A run spends its first tenths of a second waiting for git and the hubs. What its later steps need
loads meanwhile instead of on the way: the destination hub's SDK for creating it (a few tenths of
a second), the cache lock (``filelock`` alone costs about 70 ms: it loads asyncio), rich's console
and table for the summary (about as much). Each step is an optimisation only: a failure is logged
at debug level and left for the real use to report.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("gitmirror.preload")


def in_background(*steps: Callable[[], object]) -> threading.Thread:
    """Start running ``steps`` one after another in a helper thread; return it (joining is never needed)."""

    def run() -> None:
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - an optimisation only
                log.debug("preparing ahead failed: %r", step, exc_info=True)

    thread = threading.Thread(target=run, name="gitmirror-preload")
    thread.start()
    return thread


def preload(*modules: str) -> threading.Thread:
    """Start importing ``modules`` in a helper thread."""
    return in_background(*(functools.partial(importlib.import_module, name) for name in modules))
