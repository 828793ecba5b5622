"""Imports done ahead of need, in a helper thread.

A run spends its first tenths of a second waiting for git and the hubs. The modules its later
steps need (the cache lock, the summary's tables) load meanwhile instead of on the way: importing
``filelock`` alone costs about 70 ms (it loads asyncio), rich's console and table about as much.
A failed import here is ignored; the real import reports it where the module is used.
"""

from __future__ import annotations

import importlib
import threading


def preload(*modules: str) -> threading.Thread:
    """Start importing ``modules`` in a helper thread; return it (joining is never needed)."""

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - an optimisation only
                pass

    thread = threading.Thread(target=load, name="gitmirror-preload")
    thread.start()
    return thread
