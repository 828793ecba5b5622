"""The rewrite of ``--convert`` on local repositories (issue 17, "Conversion"): which blobs become
LFS pointers, what else a rewritten commit keeps, determinism, incremental runs, tags, signatures.

The end-to-end runs against the sandbox hubs are in tests/test_convert.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from gitmirror.convert import Rewriter, attribute_pattern, staging_store
from gitmirror.convert_objects import rewrite_commit, rewrite_tag
from gitmirror.lfs.pointer import format_pointer, parse_pointer
from gitmirror.rules import MB, MIB, DestinationRules, PushedRef, check_history
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(120)

HF_RULES = DestinationRules(max_plain_blob=10 * MIB, max_binary_plain_blob=MB)
BIG = b"\0" + random_bytes(2 * MB, "convert-big")
PNG = b"\0" + random_bytes(MB, "convert-png")


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", "--git-dir", str(repo), *args], input=stdin, capture_output=True, check=True).stdout


def history() -> RepoBuilder:
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# m\n", "w.safetensors": lfs(random_bytes(3000, "w"))})
    b.commit({"my file#1.bin": BIG, "sub/x.png": PNG, "small.bin": b"\0tiny"}, message="add binaries")
    b.tag("v1", message="the binaries")
    b.commit(delete=["my file#1.bin"], message="delete one")
    return b


def repo_of(builder: RepoBuilder, path: Path) -> tuple[Path, dict[str, str]]:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path, builder.write(path, path / "lfs" / "objects")


def test_a_refused_blob_becomes_a_pointer_with_its_bytes_staged_and_gitattributes(tmp_path):
    builder = history()
    repo, refs = repo_of(builder, tmp_path / "a.git")
    done = Rewriter(repo, HF_RULES).rewrite(sorted(refs.values()))
    main = done.refs[refs["refs/heads/main"]]
    added = git(repo, "rev-parse", f"{main}~1").decode().strip()

    pointer = parse_pointer(git(repo, "cat-file", "blob", f"{added}:my file#1.bin"))
    assert pointer is not None and pointer.oid == hashlib.sha256(BIG).hexdigest() and pointer.size == len(BIG)
    assert staging_store(repo).path_of(pointer.oid).read_bytes() == BIG
    png = parse_pointer(git(repo, "cat-file", "blob", f"{added}:sub/x.png"))
    assert png is not None and staging_store(repo).path_of(png.oid).read_bytes() == PNG
    # Small binaries and text stay as they are; the source's own LFS pointer too.
    assert git(repo, "cat-file", "blob", f"{added}:small.bin") == b"\0tiny"
    assert git(repo, "rev-parse", f"{added}:w.safetensors") == git(repo, "rev-parse", f"{refs['refs/heads/main']}:w.safetensors")
    attributes = git(repo, "cat-file", "blob", f"{added}:.gitattributes")
    assert attributes == LFS_ATTRIBUTES.encode() + (
        b"/my[[:space:]]file\\#1.bin filter=lfs diff=lfs merge=lfs -text\n"
        b"/sub/x.png filter=lfs diff=lfs merge=lfs -text\n")
    # git itself reads the new lines as LFS attributes of exactly those paths.
    index = {"GIT_INDEX_FILE": str(tmp_path / "index"), "PATH": os.environ["PATH"]}
    subprocess.run(["git", "--git-dir", str(repo), "read-tree", added], env=index, check=True)
    check = subprocess.run(["git", "--git-dir", str(repo), "check-attr", "--cached", "filter", "--",
                            "my file#1.bin", "sub/x.png", "small.bin"], env=index, capture_output=True, check=True, text=True)
    assert check.stdout.splitlines() == ["my file#1.bin: filter: lfs", "sub/x.png: filter: lfs",
                                         "small.bin: filter: lfs"]  # *.bin was already in LFS_ATTRIBUTES
    # The commit deleting the file no longer names it; the rewritten history passes the rules.
    assert b"my[[:space:]]file" not in git(repo, "cat-file", "blob", f"{main}:.gitattributes")
    assert check_history(repo, [PushedRef("refs/heads/main", main, True)], [], HF_RULES) == ()
    assert check_history(repo, [PushedRef("refs/heads/main", refs["refs/heads/main"], True)], [], HF_RULES) != ()
    assert {c.path for c in done.changed} == {"my file#1.bin", "sub/x.png"} and all(c.to_lfs for c in done.changed)
    assert len(done.commits) == 2  # the first commit needs no change and keeps its id
    assert git(repo, "rev-parse", f"{main}~2").decode().strip() == builder.commits[0].sha
    assert git(repo, "fsck", "--strict", "--no-dangling") == b""


def test_the_rewrite_is_deterministic_and_incremental(tmp_path):
    builder = history()
    first, refs = repo_of(builder, tmp_path / "one.git")
    early = Rewriter(first, HF_RULES).rewrite([refs["refs/heads/main"]]).refs[refs["refs/heads/main"]]
    builder.commit({"later.bin": b"\0" + random_bytes(MB + 5, "later")}, message="later")
    refs = builder.write(first, first / "lfs" / "objects")
    rewriter = Rewriter(first, HF_RULES)  # a new run: the map comes from the cache
    assert rewriter.known(builder.commits[2].sha) == early
    later = rewriter.rewrite([refs["refs/heads/main"]])
    assert len(later.commits) == 1  # only the new commit, on top of the rewritten parent
    new_tip = later.refs[refs["refs/heads/main"]]
    assert git(first, "rev-parse", f"{new_tip}^").decode().strip() == early

    # Another cache, the whole history at once: the same ids.
    second, _ = repo_of(builder, tmp_path / "two.git")
    assert Rewriter(second, HF_RULES).rewrite([refs["refs/heads/main"]]).refs[refs["refs/heads/main"]] == new_tip
    # Other rules are another rewrite, with a map of their own.
    looser = DestinationRules(max_plain_blob=10 * MIB, max_binary_plain_blob=3 * MB)
    assert Rewriter(first, looser).rewrite([refs["refs/heads/main"]]).refs[refs["refs/heads/main"]] != new_tip


SIGNATURE = (b"gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n")


def test_a_signed_commit_keeps_every_other_byte_and_loses_its_signature(tmp_path):
    builder = RepoBuilder()
    builder.commit({"README.md": "# m\n"})
    repo, refs = repo_of(builder, tmp_path / "s.git")
    parent = refs["refs/heads/main"]
    tree = git(repo, "mktree", stdin=f"100644 blob {git(repo, 'hash-object', '-w', '--stdin', stdin=BIG).decode().strip()}"
                                       f"\tbig.bin\n".encode()).decode().strip()
    header = (f"tree {tree}\nparent {parent}\nauthor A U Thor <a@example.org> 1700000000 +0100\n"
              f"committer C O Mitter <c@example.org> 1700000100 -0500\nencoding ISO-8859-1\n").encode()
    raw = header + SIGNATURE + b"x-custom a header git keeps\n\nMessage \xe9 in latin-1\n\nbody\n"
    signed = git(repo, "hash-object", "-w", "-t", "commit", "--literally", "--stdin", stdin=raw).decode().strip()
    tag = git(repo, "hash-object", "-w", "-t", "tag", "--stdin", stdin=(
        f"object {signed}\ntype commit\ntag v2\ntagger T Agger <t@example.org> 1700000200 +0000\n\nrelease\n"
        "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n").encode()).decode().strip()

    done = Rewriter(repo, HF_RULES).rewrite([signed, tag])
    new = git(repo, "cat-file", "commit", done.refs[signed])
    new_tree = git(repo, "rev-parse", f"{done.refs[signed]}^{{tree}}").decode().strip()
    assert new == (header.replace(tree.encode(), new_tree.encode())
                   + b"x-custom a header git keeps\n\nMessage \xe9 in latin-1\n\nbody\n")
    assert sorted(done.unsigned) == sorted([signed, tag])
    new_tag = git(repo, "cat-file", "tag", done.refs[tag])
    assert new_tag == (f"object {done.refs[signed]}\ntype commit\ntag v2\n"
                       "tagger T Agger <t@example.org> 1700000200 +0000\n\nrelease\n").encode()


def test_commit_and_tag_bytes_helpers_keep_unsigned_objects_as_they_are():
    raw = b"tree " + b"1" * 40 + b"\nparent " + b"2" * 40 + b"\nauthor a <a> 1 +0000\ncommitter c <c> 1 +0000\n\nm\n"
    assert rewrite_commit(raw, "1" * 40, ["2" * 40]) == (raw, False)
    assert rewrite_commit(raw, "3" * 40, ["4" * 40])[0] == raw.replace(b"1" * 40, b"3" * 40).replace(b"2" * 40, b"4" * 40)
    tag = b"object " + b"1" * 40 + b"\ntype commit\ntag t\ntagger t <t> 1 +0000\n\nno signature here\n"
    assert rewrite_tag(tag, "1" * 40) == (tag, False)


@pytest.mark.parametrize(("path", "pattern"), [
    (b"a.bin", b"/a.bin"), (b"dir/my file.bin", b"/dir/my[[:space:]]file.bin"), (b"#x", b"/\\#x"),
    (b"a*b?.bin", b"/a\\*b\\?.bin"),
])
def test_attribute_patterns_are_written_as_git_lfs_writes_them(path, pattern):
    assert attribute_pattern(path) == pattern


def test_metadata_pointers_become_plain_files_and_leave_lfs(tmp_path):
    builder = RepoBuilder()
    card = b"---\nlicense: mit\n---\n# A card kept in LFS\n"
    builder.commit({".gitattributes": "*.md filter=lfs diff=lfs merge=lfs -text\n", "README.md": lfs(card),
                    "docs/README.md": lfs(b"# not the card\n")})
    repo = tmp_path / "m.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    source = tmp_path / "source-lfs"  # not the cache's own store: the objects must be fetched
    refs = builder.write(repo, source)
    fetched = []

    def fetch(objects, store):  # the source's LFS store is a local one here
        fetched.extend(objects)
        for obj in objects:
            target = store.path_of(obj.oid)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((source / obj.oid[:2] / obj.oid[2:4] / obj.oid).read_bytes())

    done = Rewriter(repo, DestinationRules(), {"README.md", "configuration.json"}, fetch).rewrite([refs["refs/heads/main"]])
    tip = done.refs[refs["refs/heads/main"]]
    assert git(repo, "cat-file", "blob", f"{tip}:README.md") == card
    assert [o.oid for o in fetched] == [hashlib.sha256(card).hexdigest()]  # one fetch, the card's object only
    assert parse_pointer(git(repo, "cat-file", "blob", f"{tip}:docs/README.md")) is not None  # not top level
    assert git(repo, "cat-file", "blob", f"{tip}:.gitattributes") == (
        b"*.md filter=lfs diff=lfs merge=lfs -text\n/README.md !text !filter !merge !diff\n")
    assert [(c.path, c.to_lfs) for c in done.changed] == [("README.md", False)]
    assert format_pointer(done.changed[0].obj) == builder.commits[0].files["README.md"].pointer()


def test_a_merge_keeps_both_rewritten_parents_in_order(tmp_path):
    builder = RepoBuilder()
    base = builder.commit({"README.md": "# m\n"})
    builder.commit({"side.bin": BIG}, branch="side", base=base, message="on a branch")
    builder.commit({"notes.txt": "main\n"}, message="on main")
    builder.merge("side", message="merge the branch")
    repo, refs = repo_of(builder, tmp_path / "merge.git")
    source_parents = git(repo, "rev-parse", f"{refs['refs/heads/main']}^1", f"{refs['refs/heads/main']}^2").decode().split()

    rewriter = Rewriter(repo, HF_RULES)
    done = rewriter.rewrite(sorted(refs.values()))
    merge = done.refs[refs["refs/heads/main"]]
    parents = git(repo, "rev-parse", f"{merge}^1", f"{merge}^2").decode().split()
    assert parents == [rewriter.known(source_parents[0]), done.refs[refs["refs/heads/side"]]]
    assert parents[0] == source_parents[0]  # "on main" needed no change: same id
    assert parents[1] != source_parents[1]
    assert git(repo, "rev-parse", f"{merge}:side.bin") == git(repo, "rev-parse", f"{parents[1]}:side.bin")
    assert check_history(repo, [PushedRef("refs/heads/main", merge, True)], [], HF_RULES) == ()


def test_new_objects_written_in_several_packs_give_the_same_history(tmp_path, monkeypatch):
    import gitmirror.convert as convert

    builder = history()
    builder.commit({"again.bin": b"\0" + random_bytes(MB, "again")}, message="again")
    whole, refs = repo_of(builder, tmp_path / "whole.git")
    tip = Rewriter(whole, HF_RULES).rewrite([refs["refs/heads/main"]]).refs[refs["refs/heads/main"]]
    monkeypatch.setattr(convert, "FLUSH_OBJECTS", 2)
    parts, _ = repo_of(builder, tmp_path / "parts.git")
    assert Rewriter(parts, HF_RULES).rewrite([refs["refs/heads/main"]]).refs[refs["refs/heads/main"]] == tip
    assert len(list((parts / "objects" / "pack").glob("*.pack"))) > 2
    assert git(parts, "fsck", "--strict", "--no-dangling") == b""


def test_a_converted_path_is_written_into_the_nearest_gitattributes_above_it(tmp_path):
    # git reads a deeper .gitattributes over a shallower one: a line at the top level would lose to
    # "*.wav -filter" in audio/.gitattributes, so the line goes there, relative to that directory.
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "audio/.gitattributes": "*.wav -filter -text\n",
              "audio/en/voice.wav": BIG, "img/x.png": PNG})
    repo, refs = repo_of(b, tmp_path / "n.git")
    main = Rewriter(repo, HF_RULES).rewrite(sorted(refs.values())).refs[refs["refs/heads/main"]]
    assert git(repo, "cat-file", "blob", f"{main}:audio/.gitattributes") == (
        b"*.wav -filter -text\n/en/voice.wav filter=lfs diff=lfs merge=lfs -text\n")
    assert git(repo, "cat-file", "blob", f"{main}:.gitattributes") == (
        LFS_ATTRIBUTES.encode() + b"/img/x.png filter=lfs diff=lfs merge=lfs -text\n")
    index = {"GIT_INDEX_FILE": str(tmp_path / "index"), "PATH": os.environ["PATH"]}
    subprocess.run(["git", "--git-dir", str(repo), "read-tree", main], env=index, check=True)
    check = subprocess.run(["git", "--git-dir", str(repo), "check-attr", "--cached", "filter", "--",
                            "audio/en/voice.wav", "img/x.png"], env=index, capture_output=True, check=True, text=True)
    assert check.stdout.splitlines() == ["audio/en/voice.wav: filter: lfs", "img/x.png: filter: lfs"]
