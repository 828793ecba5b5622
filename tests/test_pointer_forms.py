"""Every pointer form git-lfs's decoder accepts is an LFS pointer to gitmirror, and nothing else.

The cases follow git-lfs's own tests of ``DecodePointer`` (lfs/pointer_test.go: TestDecode,
TestDecodeExtensions(Sort), TestDecodePreRelease, TestDecodeCanonical's non-canonical examples,
TestDecodeInvalid). A blob git-lfs decodes is one whose object a clone fetches on checkout, so
the mirror must carry that object; a blob it refuses is an ordinary file.
"""

from __future__ import annotations

import subprocess

import pytest

from gitmirror.lfs import LfsObject, parse_pointer
from gitmirror.lfs.pointer import MAX_POINTER_SIZE, VERSION_ALIASES

OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
EXT = {c: f"sha256:{c * 64}" for c in "abf"}
V = "version https://git-lfs.github.com/spec/v1\n"
HAWSER = "version https://hawser.github.com/spec/v1\n"
GIT_MEDIA = "version http://git-media.io/v/2\n"
BODY = f"oid sha256:{OID}\nsize 12345\n"
WANT = LfsObject(OID, 12345)


ACCEPTED = [
    V + BODY,  # canonical
    HAWSER + BODY,  # pre-release version line
    GIT_MEDIA + BODY,  # alpha version line
    (V + BODY).rstrip("\n"),  # no final newline
    (V + BODY).replace("\n", "\r\n"),  # CRLF line ends
    V + BODY.replace("size 12345\n", "size 12345   \n"),  # trailing white space on the last line
    "\n  " + V + BODY + "\n\n",  # white space around the whole blob
    V + "\n" + BODY,  # an empty line between keys
    V + BODY.replace("size 12345", "size 0012345"),  # leading zeros (Go's ParseInt reads them)
    V + BODY.replace("size 12345", "size +12345"),  # an explicit sign
    V + f"ext-0-foo {EXT['f']}\next-1-bar {EXT['b']}\next-2-baz {EXT['a']}\n" + BODY,  # extensions
    V + f"ext-2-baz {EXT['a']}\next-0-foo {EXT['f']}\next-1-bar {EXT['b']}\n" + BODY,  # unsorted ones
    V + f"oid sha256:{OID}\next-0-foo {EXT['f']}\nsize 12345\n",  # one between oid and size
    f"ext-0-foo {EXT['f']}\n" + V + BODY,  # even before the version line
    HAWSER + f"ext-0-foo {EXT['f']}\n" + BODY,  # an alias with an extension
]
ACCEPTED_IDS = ["canonical", "hawser", "git-media", "no-final-newline", "crlf", "trailing-space", "surrounding-space",
        "empty-line", "leading-zeros", "plus-sign", "extensions", "unsorted-extensions", "ext-after-oid",
        "ext-before-version", "hawser-with-ext"]


@pytest.mark.parametrize("text", ACCEPTED, ids=ACCEPTED_IDS)
def test_git_lfs_accepts_and_so_do_we(text):
    assert parse_pointer(text.encode()) == WANT


def test_size_zero_and_the_largest_size():
    assert parse_pointer((V + f"oid sha256:{OID}\nsize 0\n").encode()) == LfsObject(OID, 0)
    assert parse_pointer((V + f"oid sha256:{OID}\nsize {2**63 - 1}\n").encode()) == LfsObject(OID, 2**63 - 1)


REJECTED = [
    "",  # the empty pointer: git-lfs reads it as the empty object, which has nothing to move
    "invalid stuff",
    "# git-media",
    V + "oid sha256:boom\nsize 12345\n",  # bad oid
    V + f"oid shazam:{OID}\nsize 12345\n",  # bad oid type
    V + f"oid sha256:{OID.upper()}\nsize 12345\n",  # upper-case hex
    V + f"oid sha256:{OID[:-1]}\nsize 12345\n",  # short oid
    V + f"oid sha256:{OID}0\nsize 12345\n",  # long oid
    V + "size 12345\n",  # no oid
    f"version http://git-media.io/v/whatever\n{BODY}",  # bad version
    f"version https://git-lfs.github.com/spec/v2\n{BODY}",  # another spec
    BODY,  # no version
    V + f"oid sha256:{OID}\nsize fif\n",  # bad size
    V + f"oid sha256:{OID}\nsize -1\n",  # negative size
    V + f"oid sha256:{OID}\nsize {2**63}\n",  # over int64
    V + f"oid sha256:{OID}\nsize 1_000\n",  # Python would read it, Go does not
    V + f"oid sha256:{OID}\n",  # no size
    f"version=https://git-lfs.github.com/spec/v1\noid=sha256:{OID}\nsize=fif\n",  # bad key value format
    V + BODY + "wat wat\n",  # extra key
    V + BODY + f"ext-0-foo {EXT['f']}\n",  # extension after size
    V + f"size 12345\noid sha256:{OID}\n",  # keys out of order
    V + f"oid sha256:{OID}\noid sha256:{OID}\nsize 1\n",  # a key twice
    V + f"ext-0-$$$$ {EXT['f']}\n" + BODY,  # bad ext name
    V + f"ext-#-foo {EXT['f']}\n" + BODY,  # bad ext priority
    V + f"ext-0-foo {EXT['f']}\next-0-bar {EXT['b']}\n" + BODY,  # duplicate ext priority
    V + f"ext-10-foo {EXT['f']}\n" + BODY,  # ext priority over 9
    V + "ext-0-foo sha256:boom\n" + BODY,  # bad ext oid
    V + f"ext-0-foo boom:{'f' * 64}\n" + BODY,  # bad ext oid type
    V + f"oid  sha256:{OID}\nsize 12345\n",  # two spaces after a key
    V + f"oid sha256:{OID} \nsize 12345\n",  # trailing space inside the blob
    V + f"oid\nsize 12345\n",  # a key without a value
    "version https://git-lfs.github.com/spec/v1 \n" + BODY,  # version with a trailing space
]


@pytest.mark.parametrize("text", REJECTED)
def test_git_lfs_rejects_and_so_do_we(text):
    assert parse_pointer(text.encode()) is None


def test_a_blob_of_the_size_cutoff_is_not_read():
    padded = (V + BODY).encode() + b"\n" * (MAX_POINTER_SIZE - len(V + BODY))
    assert len(padded) == MAX_POINTER_SIZE and parse_pointer(padded) is None
    assert parse_pointer(padded[:-1]) == WANT  # one byte under: trailing newlines are white space


def test_binary_bytes_never_raise():
    assert parse_pointer(b"\xff\xfe" + (V + BODY).encode()) is None
    assert parse_pointer(bytes(range(256))) is None


def _git_lfs_says_pointer(data: bytes) -> bool:
    done = subprocess.run(["git", "lfs", "pointer", "--check", "--stdin"], input=data, capture_output=True,
                          timeout=60)
    assert done.returncode in (0, 1), done.stderr  # 0: a pointer, 1: not one; anything else: cannot tell
    return done.returncode == 0


def test_the_installed_git_lfs_agrees_on_every_case():
    """The real decoder is the judge: ``git lfs pointer --check`` on each case, every alias included.
    The empty blob is the one intended difference (git-lfs's empty pointer names no object to move)."""
    cases = ACCEPTED + [f"version {v}\n{BODY}" for v in VERSION_ALIASES]
    disagree = [t for t in cases if not _git_lfs_says_pointer(t.encode())]
    disagree += [t for t in REJECTED if t and _git_lfs_says_pointer(t.encode())]
    assert disagree == []
    assert all(parse_pointer(f"version {v}\n{BODY}".encode()) == WANT for v in VERSION_ALIASES)
