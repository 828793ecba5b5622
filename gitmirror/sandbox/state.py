"""What a sandbox hub knows: users, organisations, tokens and repositories.

Plain data with one lock; no HTTP and no git here. The hub (``hub.py``) owns one
:class:`HubState` and creates the bare repositories on disk; kinds read and change the state
through the methods below (they are thread-safe: the server answers requests in threads).

Also the plain values every other sandbox module passes around (:class:`RepoKey`,
:class:`Principal`, ``REPO_TYPES``). This module imports no other sandbox module: it is the
bottom of the sandbox's import graph.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_TYPES = ("model", "dataset", "space")
SCOPES = ("read", "write")


@dataclass(frozen=True)
class RepoKey:
    """A repository on a hub: its type (``model``/``dataset``/``space``) and ``owner/name``."""

    repo_type: str
    repo_id: str

    @property
    def owner(self) -> str:
        return self.repo_id.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.repo_id.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.repo_type}:{self.repo_id}"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by :meth:`gitmirror.sandbox.kinds.HubKind.authenticate`."""

    user: str
    scope: str  # "read" | "write"
    purpose: str = "api"  # which kind of token authenticated ("api" or "git")

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


@dataclass
class User:
    name: str
    email: str
    orgs: set[str] = field(default_factory=set)
    fullname: str = ""


@dataclass(frozen=True)
class TokenRecord:
    """A token the hub issued. ``purpose`` tells which door it opens: ``"api"`` tokens are
    the ones a user copies from the web page; ``"git"`` tokens are what ModelScope's login
    returns for git. A kind decides which purposes it accepts where."""

    value: str = field(repr=False)
    user: str
    scope: str  # "read" | "write"
    purpose: str = "api"
    created_at: float = field(default_factory=time.time)


@dataclass
class RepoRecord:
    key: RepoKey
    path: Path  # the bare repository on disk
    private: bool = False
    gated: str | bool = False  # False, "auto" or "manual", as the HF API reports it
    accepted: set[str] = field(default_factory=set)  # users who accepted the gate
    created_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific (license, visibility...)

    @property
    def owner(self) -> str:
        return self.key.owner


class HubState:
    """Users, orgs, tokens and the repository registry of one hub."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.orgs: set[str] = set()
        self.tokens: dict[str, TokenRecord] = {}
        self.repos: dict[RepoKey, RepoRecord] = {}

    # -- users and orgs -------------------------------------------------------------------
    def add_user(self, name: str, orgs: tuple[str, ...] | list[str] = (), email: str | None = None) -> User:
        with self.lock:
            user = self.users.get(name)
            if user is None:
                user = User(name=name, email=email or f"{name}@users.sandbox.invalid", fullname=name)
                self.users[name] = user
            for org in orgs:
                self.orgs.add(org)
                user.orgs.add(org)
            return user

    def add_org(self, name: str, members: tuple[str, ...] | list[str] = ()) -> None:
        with self.lock:
            self.orgs.add(name)
            for member in members:
                self.add_user(member).orgs.add(name)

    def is_member(self, user: str | None, owner: str) -> bool:
        """True when ``user`` may act for ``owner`` (itself or one of its orgs)."""
        if user is None:
            return False
        with self.lock:
            found = self.users.get(user)
            return user == owner or (found is not None and owner in found.orgs)

    # -- tokens ---------------------------------------------------------------------------
    def new_token(self, user: str, scope: str = "write", purpose: str = "api", prefix: str = "sbx_") -> str:
        """Issue a random token. The prefix keeps sandbox tokens unlike any real hub's."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
        with self.lock:
            if user not in self.users:
                raise KeyError(f"no such user: {user}")
            value = prefix + secrets.token_hex(20)
            self.tokens[value] = TokenRecord(value=value, user=user, scope=scope, purpose=purpose)
            return value

    def lookup_token(self, value: str | None) -> TokenRecord | None:
        if not value:
            return None
        with self.lock:
            return self.tokens.get(value)

    def revoke_token(self, value: str) -> None:
        with self.lock:
            self.tokens.pop(value, None)

    def all_token_values(self) -> list[str]:
        with self.lock:
            return list(self.tokens)

    # -- repositories ---------------------------------------------------------------------
    def get_repo(self, key: RepoKey) -> RepoRecord | None:
        with self.lock:
            return self.repos.get(key)

    def register_repo(self, record: RepoRecord) -> RepoRecord:
        with self.lock:
            if record.key in self.repos:
                raise FileExistsError(f"repository exists: {record.key}")
            self.repos[record.key] = record
            return record

    def list_repos(self) -> list[RepoRecord]:
        with self.lock:
            return list(self.repos.values())
