"""The mirrors file that ``gitmirror sync`` reads: TOML, or the original scripts' plain list.

TOML::

    [defaults]            # optional; any per-mirror option, for every entry (a snapshot's too)
    jobs = 8                       # LFS objects at once, at most (default: adaptive)
    requests_per_hub = 32          # LFS requests in flight at each hub
    bytes_in_flight = 1073741824   # sizes of the LFS objects transferred at once (bytes)

    [[mirror]]
    src = "hf://Qwen/Qwen3-0.6B"
    dst = "ms://my-org/Qwen3-0.6B"
    refs = ["refs/pr/*"]
    force = false
    map = ["dev:develop"]
    private = true
    repair = false                      # true: check every LFS object of the history each run
    src_token_env = "HF_TOKEN_ORG_A"    # name of an environment variable holding the token
    src_lfs_url = "https://lfs.example.org/o/n.git/info/lfs"   # optional: the source's LFS API
    card = true                         # ModelScope model destinations: --modelscope-card
    convert = false                     # true: rewrite what the destination's rules refuse (--convert)

    [[mirror]]                          # the --snapshot mode of clone-push: the current files as one commit
    src = "hf://Qwen/Qwen3-0.6B"
    dst = "ms://my-org/Qwen3-0.6B-files"
    snapshot = true
    revision = "main"                   # optional, with snapshot: branch, tag or ref (--revision)
    commit_message = "Qwen3 files"      # optional, with snapshot (--commit-message)

Plain list: one ``src dst`` pair per line; ``#`` comments and blank lines are ignored.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gitmirror.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class MirrorEntry:
    """One mirror to keep in sync, with its own options."""

    src: str
    dst: str
    refs: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    map: tuple[str, ...] = ()
    force: bool = False
    prune: bool = False
    private: bool | None = None
    #: LFS objects transferred at once, at most (None: adaptive); LFS requests in flight per hub;
    #: sizes in bytes of the LFS objects transferred at once (None: the defaults, docs/usage.md).
    jobs: int | None = None
    requests_per_hub: int | None = None
    bytes_in_flight: int | None = None
    #: Check every LFS object of the history on the destination on each run (``--repair``).
    repair: bool = False
    src_token_env: str | None = None
    dst_token_env: str | None = None
    #: The source's LFS API, whatever its .lfsconfig says (``--src-lfs-url``).
    src_lfs_url: str | None = None
    #: A ModelScope card commit on the default branch (``--modelscope-card``; gitmirror.card).
    card: bool = False
    #: The source's current files as one commit, not its history (``--snapshot``), at ``revision``
    #: (None: the default branch) with ``commit_message`` (None: one naming the source).
    snapshot: bool = False
    revision: str | None = None
    commit_message: str | None = None
    #: Mirror a rewritten history the destination's rules accept (``--convert``).
    convert: bool = False
    line: int | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return f"{self.src} -> {self.dst}"

    @property
    def key(self) -> str:
        """Stable across runs and machines: what --shard hashes."""
        return hashlib.sha256(f"{self.src}\0{self.dst}".encode()).hexdigest()


_OPTION_TYPES: dict[str, type] = {"refs": tuple, "exclude": tuple, "map": tuple, "force": bool, "prune": bool,
                                  "private": bool, "jobs": int, "requests_per_hub": int, "bytes_in_flight": int,
                                  "repair": bool, "src_token_env": str, "dst_token_env": str,
                                  "src_lfs_url": str, "card": bool, "snapshot": bool, "revision": str,
                                  "commit_message": str, "convert": bool}
#: What a snapshot entry cannot take: options of a history mirror.
_HISTORY_OPTIONS = ("refs", "exclude", "map", "force", "prune", "repair", "card", "convert")


def load_mirrors(path: Path) -> list[MirrorEntry]:
    """Read a mirrors file (TOML when it parses as TOML with a [[mirror]] table, else a plain list)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read mirrors file {path}: {exc.strerror}") from None
    if _looks_like_toml(text):
        entries = _from_toml(text, path)
    else:
        entries = _from_list(text, path)
    if not entries:
        raise UsageError(f"mirrors file {path} lists no mirrors")
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if (entry.src, entry.dst) in seen:
            raise UsageError(f"{path}: {entry.name} is listed twice")
        seen.add((entry.src, entry.dst))
    return entries


def _looks_like_toml(text: str) -> bool:
    # A plain list line is "SRC DST"; only TOML has table headers.
    return any(line.strip().startswith("[") for line in text.splitlines())


def _from_list(text: str, path: Path) -> list[MirrorEntry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) != 2:
            # The old scripts' lines were `SRC DST TOKEN`: a line is never echoed, any word may be a token.
            raise UsageError(f"{path}:{number}: expected 'SRC DST', got {len(words)} words (not shown: one may be a token)",
                             hint="give tokens through src_token_env / dst_token_env in a TOML mirrors file, "
                                  "or GITMIRROR_SRC_TOKEN / GITMIRROR_DST_TOKEN")
        entries.append(MirrorEntry(src=words[0], dst=words[1], line=number))
    return entries


def _from_toml(text: str, path: Path) -> list[MirrorEntry]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"defaults", "mirror"}
    if unknown:
        raise UsageError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}", hint="use [defaults] and [[mirror]]")
    defaults = _options(doc.get("defaults", {}), f"{path} [defaults]")
    mirrors = doc.get("mirror", [])
    if not isinstance(mirrors, list):
        raise UsageError(f"{path}: 'mirror' must be a list of tables ([[mirror]])")
    entries = []
    for index, table in enumerate(mirrors, start=1):
        where = f"{path} mirror #{index}"
        if not isinstance(table, dict) or not isinstance(table.get("src"), str) or not isinstance(table.get("dst"), str):
            raise UsageError(f"{where}: needs src and dst strings")
        options = {**defaults, **_options({k: v for k, v in table.items() if k not in ("src", "dst")}, where)}
        _check_snapshot(options, where)
        entries.append(MirrorEntry(src=table["src"], dst=table["dst"], line=index, **options))
    return entries


def _options(table: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in fields(MirrorEntry)} & set(_OPTION_TYPES)
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise UsageError(f"{where}: unknown option {key!r}", hint=f"known: {', '.join(sorted(known))}")
        kind = _OPTION_TYPES[key]
        if kind is tuple:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: {key} must be a list of strings")
            value = tuple(value)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UsageError(f"{where}: {key} must be a {kind.__name__}")
        elif kind is int and value < 1:
            raise UsageError(f"{where}: {key} must be at least 1")
        options[key] = value
    return options


def _check_snapshot(options: dict[str, Any], where: str) -> None:
    """``revision``/``commit_message`` need ``snapshot = true``, which takes none of a history
    mirror's options (the rules of ``clone-push --snapshot``). Raises UsageError."""
    if not options.get("snapshot"):
        given = [k for k in ("revision", "commit_message") if options.get(k)]
        if given:
            raise UsageError(f"{where}: {' and '.join(given)} go with snapshot = true")
        return
    given = [k for k in _HISTORY_OPTIONS if options.get(k)]
    if given:
        raise UsageError(f"{where}: {', '.join(given)} cannot be used with snapshot = true",
                         hint="a snapshot writes one commit on the destination's default branch")


def check_token_variables(entries: list[MirrorEntry], env: Mapping[str, str]) -> None:
    """Every ``src_token_env`` / ``dst_token_env`` the mirrors name must be set (and not empty) in ``env``.

    A mirror that names its token's variable means that token: running it with HF_TOKEN or
    MODELSCOPE_API_TOKEN instead (another account's, or none) would hide the mistake until a
    private source reads as missing or a push lands as the wrong user.
    """
    missing: dict[str, list[str]] = {}
    for entry in entries:
        for option in ("src_token_env", "dst_token_env"):
            name = getattr(entry, option)
            if name and not (env.get(name) or "").strip():
                missing.setdefault(name, []).append(f"{option} of {entry.name}")
    if missing:
        names = "; ".join(f"{name} (the {', '.join(uses)})" for name, uses in missing.items())
        raise UsageError(f"environment variable(s) not set: {names}",
                         hint="export them (from cron: `set -a; . /etc/gitmirror/env; set +a`), or remove the option "
                              "to use HF_TOKEN / MODELSCOPE_API_TOKEN")


def parse_shard(text: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` (0-based K), or ``auto/N`` taking K from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)."""
    index, sep, total = text.partition("/")
    try:
        if index == "auto":
            import os

            index = (env if env is not None else os.environ).get("JOB_COMPLETION_INDEX", "")
        k, n = int(index), int(total)
    except ValueError:
        raise UsageError(f"bad --shard {text!r}", hint="use K/N with 0 <= K < N, or auto/N with JOB_COMPLETION_INDEX set") from None
    if not sep or n < 1 or not 0 <= k < n:
        raise UsageError(f"bad --shard {text!r}", hint="use K/N with 0 <= K < N")
    return k, n


def in_shard(entry: MirrorEntry, k: int, n: int) -> bool:
    """Stable and disjoint: the same pair lands in the same shard on every machine and every run."""
    return int(entry.key[:16], 16) % n == k
