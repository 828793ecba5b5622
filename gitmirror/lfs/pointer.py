"""LFS pointer files: the small text blob git stores in place of a large file.

Standard library only, so that :mod:`gitmirror.gitrepo`, :mod:`gitmirror.plan` and the hub
adapters import it freely. Source of the format: the git-lfs specification
(https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["EMPTY_OID", "MAX_POINTER_SIZE", "POINTER_VERSION", "LfsObject", "format_pointer", "parse_pointer"]

POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
#: A pointer blob is shorter than this many bytes; larger blobs need not be read to be ruled out.
MAX_POINTER_SIZE = 1024
EMPTY_OID = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, order=True)
class LfsObject:
    """One LFS object: its sha256 (64 lowercase hex digits) and its size in bytes."""

    oid: str
    size: int


_OID = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_EXT_KEY = re.compile(r"ext-[0-9]-[a-z0-9]+")
_KEY = re.compile(r"[a-z0-9.-]+")


def parse_pointer(data: bytes) -> LfsObject | None:
    """The object a pointer blob names, or None when ``data`` is not a valid LFS pointer.

    Strict per the spec: under 1024 bytes, UTF-8, ``version`` line first, the other keys sorted
    and unique, ``ext-`` lines allowed, ``oid sha256:<64 hex>`` and a decimal ``size``, every line
    ending in a newline. Anything else is an ordinary file that merely looks like a pointer.
    Never raises.
    """
    if len(data) >= MAX_POINTER_SIZE or not data.endswith(b"\n"):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text[:-1].split("\n")
    if lines[0] != f"version {POINTER_VERSION}":
        return None
    fields: dict[str, str] = {}
    previous = ""
    for line in lines[1:]:
        key, sep, value = line.partition(" ")
        if not sep or not _KEY.fullmatch(key) or key <= previous or not value:
            return None  # malformed line, unsorted or duplicate key
        if key.startswith("ext-") and not _EXT_KEY.fullmatch(key):
            return None
        fields[key] = value
        previous = key
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or not _OID.fullmatch(oid[7:]) or not _SIZE.fullmatch(size):
        return None
    known = {"oid", "size"}
    if any(k not in known and not k.startswith("ext-") for k in fields):
        return None
    return LfsObject(oid[7:], int(size))


def format_pointer(obj: LfsObject) -> bytes:
    """The canonical pointer blob for ``obj`` (what git-lfs writes)."""
    return f"version {POINTER_VERSION}\noid sha256:{obj.oid}\nsize {obj.size}\n".encode()
