"""LFS pointer files: the small text blob git stores in place of a large file.

Standard library only, so that :mod:`gitmirror.gitrepo`, :mod:`gitmirror.plan` and the hub
adapters import it freely. Source of the format: the git-lfs specification
(https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md); what counts as a pointer is what
git-lfs's own decoder accepts (``lfs/pointer.go``: ``DecodePointer``), since git-lfs fetches the
object of every blob it decodes, and a mirror that skipped one would leave clones that cannot
check the file out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = [
    "EMPTY_OID", "MAX_POINTER_SIZE", "POINTER_VERSION", "VERSION_ALIASES", "LfsObject", "format_pointer",
    "parse_pointer",
]

POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
#: Every version line git-lfs reads as spec v1 (``v1Aliases`` in git-lfs's lfs/pointer.go):
#: the alpha's, the pre-release's ("hawser") and the public one. It writes only the last.
VERSION_ALIASES = ("http://git-media.io/v/2", "https://hawser.github.com/spec/v1", POINTER_VERSION)
#: A pointer blob is shorter than this many bytes; larger blobs need not be read to be ruled out.
MAX_POINTER_SIZE = 1024
EMPTY_OID = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, order=True)
class LfsObject:
    """One LFS object: its sha256 (64 lowercase hex digits) and its size in bytes."""

    oid: str
    size: int


_KEYS = ("version", "oid", "size")  # in this order; ext- lines may come between them
_OID = re.compile(r"sha256:([0-9a-f]{64})")
_SIZE = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.ParseInt(s, 10, 64) reads
_EXT_KEY = re.compile(r"ext-[0-9]-[0-9A-Za-z_]")  # a prefix match, as git-lfs's `\Aext-\d{1}-\w+`
_INT64_MAX = 2**63 - 1
_SPACE = b" \t\n\v\f\r"  # what Go's bytes.TrimSpace takes off both ends (ASCII)


def parse_pointer(data: bytes) -> LfsObject | None:
    """The object a pointer blob names, or None when git-lfs would not read ``data`` as a pointer.

    Accepts what git-lfs's decoder accepts: under :data:`MAX_POINTER_SIZE` bytes, leading and
    trailing white space ignored, lines ending in LF or CRLF, empty lines skipped; ``version``
    (one of :data:`VERSION_ALIASES`), ``oid sha256:<64 lowercase hex>`` and ``size <decimal>``
    in that order, one space after each key; ``ext-<digit>-<name> sha256:<hex>`` lines anywhere
    before ``size``, each priority once. Rejects any other key, a line after ``size``, an upper
    case or short oid, another hash, a negative size. The empty blob, which git-lfs reads as the
    empty pointer, names no object to move: None. Never raises.
    """
    if len(data) >= MAX_POINTER_SIZE:
        return None
    fields: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for line in data.strip(_SPACE).decode("utf-8", "surrogateescape").split("\n"):
        line = line.removesuffix("\r")  # Go's bufio.ScanLines drops one CR before the LF
        if not line:
            continue
        key, sep, value = line.partition(" ")
        if not sep or len(fields) == len(_KEYS):
            return None  # a line without a value, or anything after size
        if key == _KEYS[len(fields)]:
            fields[key] = value
        elif _EXT_KEY.match(key):
            extensions[key] = value
        else:
            return None  # a key out of order, twice, or unknown
    if fields.get("version") not in VERSION_ALIASES or not _valid_extensions(extensions):
        return None
    oid, size = _OID.fullmatch(fields.get("oid", "")), fields.get("size", "")
    if oid is None or not _SIZE.fullmatch(size) or not 0 <= int(size) <= _INT64_MAX:
        return None
    return LfsObject(oid.group(1), int(size))


def _valid_extensions(extensions: dict[str, str]) -> bool:
    """Each extension names a sha256 oid, and no two share a priority (the digit after ``ext-``)."""
    priorities = [key[4] for key in extensions]
    return len(set(priorities)) == len(priorities) and all(_OID.fullmatch(v) for v in extensions.values())


def format_pointer(obj: LfsObject) -> bytes:
    """The canonical pointer blob for ``obj`` (what git-lfs writes)."""
    return f"version {POINTER_VERSION}\noid sha256:{obj.oid}\nsize {obj.size}\n".encode()
