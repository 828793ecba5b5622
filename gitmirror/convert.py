"""``--convert``: a deterministic, incremental rewrite of the history a destination would refuse.

A blob that breaks the destination's rules (:class:`gitmirror.rules.DestinationRules`: too large,
or binary and large, without LFS) becomes an LFS pointer, its bytes staged in the cache's own LFS
store (:func:`staging_store`) for the transfer to upload, and the nearest ``.gitattributes`` above
it in the commit (the top level's unless a directory between has one) gains the path as ``git lfs
track`` would write it. Toward a hub that reads
some top-level files only as plain blobs (``Hub.metadata_files``, ModelScope's README.md and
configuration.json), an LFS pointer of such a file becomes the plain file (its bytes fetched from
the source's LFS store beforehand, see :class:`Rewriter`), and ``.gitattributes`` exempts it from
LFS. Everything else in a commit is kept byte for byte; a signature cannot survive and is dropped.

Rewritten commit = f(source commit, rewritten parents, rules): the same source history gives the
same ids on every run and for every destination with the same rules. The map source -> rewritten
(:class:`ConvertMap`) lives in the cache, so a later run rewrites only new commits, on top of the
already rewritten parents. A cache lost is rebuilt by recomputing (see docs/usage.md, "--convert").
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gitmirror import gitrepo
from gitmirror.convert_objects import (
    FILE_MODES,
    CatFile,
    TreeEntry,
    commit_links,
    format_tree,
    object_id,
    parse_tree,
    rewrite_commit,
    rewrite_tag,
    tag_target,
    write_objects,
)
from gitmirror.errors import error_for_oserror
from gitmirror.lfs.pointer import MAX_POINTER_SIZE, LfsObject, format_pointer, parse_pointer
from gitmirror.lfs.store_local import LocalLfsStore
from gitmirror.rules import BINARY_SNIFF_BYTES, DestinationRules, blob_rule

#: Bump when the rewrite's output changes for the same input: maps of another version are not reused.
#: 2: a tab, CR or LF in a converted path is written as [[:space:]]; 3: a converted path's line goes
#: into the nearest .gitattributes above it.
CONVERT_VERSION = 3

#: What converting one tree gives: (new tree id, (path, source blob) made LFS pointers, (path,
#: source blob) made plain, paths already written into a .gitattributes below the top).
_TreeResult = tuple[str, tuple[tuple[bytes, str], ...], tuple[tuple[bytes, str], ...], frozenset[bytes]]

ATTRIBUTES = b".gitattributes"
#: New objects held in memory before they are written as a pack (the map is written at the end).
FLUSH_OBJECTS = 20_000
LFS_ATTRS = b"filter=lfs diff=lfs merge=lfs -text"
#: How git-lfs's documentation exempts a path from LFS.
PLAIN_ATTRS = b"!text !filter !merge !diff"


def staging_store(repo_dir: Path) -> LocalLfsStore:
    """The LFS store inside the cache repository (``<cache repo>/lfs/objects``, git-lfs's layout)
    holding the bytes of blobs the rewrite turned into pointers, for the transfer to upload."""
    return LocalLfsStore(repo_dir / "lfs" / "objects")


def attribute_pattern(path: bytes) -> bytes:
    """``path`` as a ``.gitattributes`` pattern matching that one file from the top level.

    Written as ``git lfs track`` writes paths (commands/command_track.go, escapeAttrPattern:
    a space becomes ``[[:space:]]``, ``#`` becomes ``\\#``), anchored with a leading ``/``; glob
    characters are escaped with a backslash, so a file named ``a*.bin`` matches only itself. A tab,
    CR or LF becomes ``[[:space:]]`` too (git-lfs leaves them, and git's attribute parser splits a
    line at each of them: attr.c ``blank``).
    """
    out = path
    for char in (b"\\", b"*", b"?", b"["):
        out = out.replace(char, b"\\" + char)
    for blank in (b" ", b"\t", b"\r", b"\n"):
        out = out.replace(blank, b"[[:space:]]")
    return b"/" + out.replace(b"#", b"\\#")


def rules_fingerprint(rules: DestinationRules, metadata_files: Iterable[str]) -> str:
    """16 hex digits naming what the rewrite depends on besides the source: the blob rules, the
    metadata files made plain, the rewrite's version. A map is reused only under the same one."""
    basis = {"version": CONVERT_VERSION, "max_plain_blob": rules.max_plain_blob,
             "max_binary_plain_blob": rules.max_binary_plain_blob, "metadata": sorted(metadata_files)}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Changed:
    """One blob the rewrite changed: at ``path`` (first seen), ``size`` bytes, now ``new_blob``;
    ``to_lfs``: became a pointer to ``obj``; else an LFS pointer made plain (``obj`` its object)."""

    path: str
    size: int
    new_blob: str
    obj: LfsObject
    to_lfs: bool


@dataclass
class ConvertMap:
    """The map source id -> rewritten id, for commits and tags (``objects``) and for changed blobs
    (``blobs``), kept in ``<cache repo>/gitmirror-convert/<fingerprint>.map``: one line per entry
    (``o <source> <new>``, ``b <source> <new> <oid> <size> <lfs|plain> <path>``), appended after
    the objects they name are written, so the file never names an object the cache lacks."""

    path: Path
    objects: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, Changed] = field(default_factory=dict)

    @classmethod
    def load(cls, repo_dir: Path, fingerprint: str) -> "ConvertMap":
        found = cls(repo_dir / "gitmirror-convert" / f"{fingerprint}.map")
        try:
            text = found.path.read_text("utf-8", "surrogateescape")
        except FileNotFoundError:
            return found
        except OSError as exc:
            raise error_for_oserror(exc, "cannot read the conversion map", found.path) from exc
        for line in text.splitlines():
            parts = line.split(" ", 6)
            if parts[0] == "o" and len(parts) == 3:
                found.objects[parts[1]] = parts[2]
            elif parts[0] == "b" and len(parts) == 7:  # a torn last line is skipped: recomputed
                found.blobs[parts[1]] = Changed(parts[6], int(parts[4]), parts[2], LfsObject(parts[3], int(parts[4])),
                                                parts[5] == "lfs")
        return found

    def append(self, objects: Mapping[str, str], blobs: Mapping[str, Changed]) -> None:
        lines = [f"o {src} {new}\n" for src, new in objects.items() if src not in self.objects]
        lines += [f"b {src} {c.new_blob} {c.obj.oid} {c.obj.size} {'lfs' if c.to_lfs else 'plain'} {c.path}\n"
                  for src, c in blobs.items() if src not in self.blobs and "\n" not in c.path]
        self.objects.update(objects)
        self.blobs.update(blobs)
        if not lines:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write("".join(lines))
        except OSError as exc:
            raise error_for_oserror(exc, "cannot write the conversion map", self.path) from exc


@dataclass
class RewriteResult:
    """What one :meth:`Rewriter.rewrite` did: ``refs`` {source id: rewritten id} for the tips
    asked; ``commits`` rewritten (new ids); ``changed`` blobs; ``unsigned`` source commits and
    tags whose signature was dropped."""

    refs: dict[str, str]
    commits: list[str] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    unsigned: list[str] = field(default_factory=list)


#: Fetches LFS objects into a local store (the source's, for metadata files made plain).
FetchObjects = Callable[[Sequence[LfsObject], LocalLfsStore], None]


class Rewriter:
    """Rewrites source history in the cache repository ``repo_dir`` for a destination with
    ``rules`` and top-level ``metadata_files`` it reads only as plain blobs.

    ``fetch(objects, store)`` puts the LFS objects of metadata pointers into ``store`` (called
    once per run, before any commit is rewritten; None: such pointers are kept). Objects are read
    through :class:`~gitmirror.convert_objects.CatFile` (two git processes for the whole run);
    trees and blobs are memoized by id, commits and changed blobs across runs by the map.
    """

    def __init__(self, repo_dir: Path, rules: DestinationRules, metadata_files: Iterable[str] = (),
                 fetch: FetchObjects | None = None) -> None:
        self.repo_dir = repo_dir
        self.rules = rules
        self.metadata = frozenset(name.encode() for name in metadata_files)
        self.fetch = fetch
        self.map = ConvertMap.load(repo_dir, rules_fingerprint(rules, metadata_files))
        self.store = staging_store(repo_dir)
        #: (tree, top level?) -> (new id, (path, blob) made LFS pointers, (path, blob) made plain)
        self._trees: dict[tuple[str, bool], _TreeResult] = {}
        self._new: dict[str, tuple[str, bytes]] = {}
        self._blobs: dict[tuple[str, bool], tuple[str, str | None]] = {}
        self._changes: dict[str, Changed] = {}

    def known(self, sha: str) -> str | None:
        """The rewritten id of a source commit or tag converted by an earlier run, else None."""
        return self.map.objects.get(sha)

    def rewrite(self, tips: Sequence[str]) -> RewriteResult:
        """Rewrite the history of ``tips`` (commits or annotated tags, in the cache) that the map
        does not hold yet; return the rewritten id of every tip. Writes the new objects, then
        the map. Raises GitMirrorError when git or the cache fails."""
        result = RewriteResult(refs={})
        objects: dict[str, str] = {}
        with CatFile(self.repo_dir) as cat:
            self.cat = cat  # for the helpers below, during this call only
            self._restage_missing()
            kinds = {sha: cat.info(sha)[0] for sha in tips}
            order = self._new_commits([t for t in tips if kinds[t] == "commit"] + self._tag_commits(tips, kinds))
            raws = {sha: cat.read(sha)[1] for sha in order}
            self._prefetch_metadata(raws.values())
            for sha in order:
                objects[sha] = self._commit(sha, raws[sha], objects, result)
            for sha in tips:
                result.refs[sha] = self._object(sha, kinds[sha], objects, result)
        result.changed = sorted(self._changes.values(), key=lambda c: (c.path, c.new_blob))
        write_objects(self.repo_dir, self._new)
        self.map.append(objects, self._changes)
        self._new, self._changes = {}, {}
        return result

    # --- commits and tags ----------------------------------------------------------------------

    def _new_commits(self, commits: Sequence[str]) -> list[str]:
        """Commits of ``commits``' history the map lacks, parents first."""
        wanted = [c for c in commits if c not in self.map.objects]
        if not wanted:
            return []
        done = [f"^{sha}" for sha in self.map.objects]
        out = gitrepo.run_git(["rev-list", "--topo-order", "--reverse", "--stdin"], cwd=self.repo_dir,
                              stdin="\n".join([*wanted, *done]).encode() + b"\n", what="listing commits to convert")
        return out.decode().split()

    def _tag_commits(self, tips: Sequence[str], kinds: Mapping[str, str]) -> list[str]:
        found = []
        for sha in tips:
            while kinds.get(sha) == "tag":
                sha, kind = tag_target(self.cat.read(sha)[1])
                kinds = {**kinds, sha: kind}
            if kinds.get(sha) == "commit":
                found.append(sha)
        return found

    def _commit(self, sha: str, raw: bytes, done: Mapping[str, str], result: RewriteResult) -> str:
        tree, parents = commit_links(raw)
        new_tree = self._root(tree)
        new_parents = [done.get(p) or self.map.objects.get(p) or p for p in parents]
        if new_tree == tree and new_parents == parents:
            return sha  # nothing to change: the commit keeps its id and its signature
        new_raw, unsigned = rewrite_commit(raw, new_tree, new_parents)
        new = self._put("commit", new_raw)
        result.commits.append(new)
        if unsigned:
            result.unsigned.append(sha)
        return new

    def _object(self, sha: str, kind: str, done: dict[str, str], result: RewriteResult) -> str:
        if sha in done or sha in self.map.objects:
            return done.get(sha) or self.map.objects[sha]
        if kind == "tree":  # a tag of a tree (git's own v2.6.11-tree): converted as a commit's tree is
            return self._root(sha)
        if kind != "tag":
            return sha  # a blob tip: left as it is
        raw = self.cat.read(sha)[1]
        target, target_kind = tag_target(raw)
        new_target = self._object(target, target_kind, done, result)
        if new_target == target:
            done[sha] = sha
            return sha
        new_raw, unsigned = rewrite_tag(raw, new_target)
        done[sha] = self._put("tag", new_raw)
        if unsigned:
            result.unsigned.append(sha)
        return done[sha]

    # --- trees and blobs -----------------------------------------------------------------------

    def _root(self, tree: str) -> str:
        new, to_lfs, plain, attributed = self._tree(tree, top=True)
        for path, blob in (*to_lfs, *plain):
            if blob in self._changes and not self._changes[blob].path:
                self._changes[blob] = replace(self._changes[blob], path=path.decode("utf-8", "surrogateescape"))
        return self._attributed(new, [(p, b) for p, b in to_lfs if p not in attributed],
                                [(p, b) for p, b in plain if p not in attributed], create=True)

    def _attributed(self, tree: str, to_lfs: Sequence[tuple[bytes, str]], plain: Sequence[tuple[bytes, str]],
                    create: bool) -> str:
        """``tree`` with a line per converted path (relative to it) appended to its
        ``.gitattributes``, made when ``create`` and missing. The tree as it is when there is
        nothing to add, or when its ``.gitattributes`` is a directory, a link or itself in LFS."""
        if not to_lfs and not plain:
            return tree
        entries = parse_tree(self._bytes(tree))
        current = next((e for e in entries if e.name == ATTRIBUTES), None)
        if current is None and not create:
            return tree
        text = self._bytes(current.sha) if current is not None and current.mode in FILE_MODES else b""
        if current is not None and (current.mode not in FILE_MODES or parse_pointer(text) is not None):
            return tree
        lines = [attribute_pattern(p) + b" " + LFS_ATTRS for p in sorted({p for p, _ in to_lfs})]
        lines += [attribute_pattern(p) + b" " + PLAIN_ATTRS for p in sorted({p for p, _ in plain})]
        have = set(text.splitlines())
        added = [line for line in lines if line not in have]
        if not added:
            return tree
        body = text + (b"" if not text or text.endswith(b"\n") else b"\n") + b"\n".join(added) + b"\n"
        blob = self._put("blob", body)
        entries = [e for e in entries if e.name != ATTRIBUTES] + [TreeEntry(current.mode if current else b"100644",
                                                                             ATTRIBUTES, blob)]
        return self._put("tree", format_tree(entries))

    def _bytes(self, sha: str) -> bytes:
        """An object's bytes, made in this run or read from the cache."""
        return self._new[sha][1] if sha in self._new else self.cat.read(sha)[1]

    def _tree(self, sha: str, top: bool) -> "_TreeResult":
        """(new id, (path, source blob) made LFS pointers, (path, source blob) made plain, the paths
        among them whose line is already in a ``.gitattributes`` below the top), paths relative to
        this tree.

        A converted path's line goes into the nearest ``.gitattributes`` above it, the top level's
        when no directory between has one: git reads a deeper file over a shallower one, so a line
        at the top could be overridden below (say ``*.wav -filter`` in ``audio/.gitattributes``)."""
        key = (sha, top)
        if key in self._trees:
            return self._trees[key]
        entries, to_lfs, plain, attributed, changed = [], [], [], set(), False
        for entry in parse_tree(self.cat.read(sha)[1]):
            new_sha = entry.sha
            if entry.is_tree:
                new_sha, sub_lfs, sub_plain, sub_done = self._tree(entry.sha, top=False)
                to_lfs += [(entry.name + b"/" + p, blob) for p, blob in sub_lfs]
                plain += [(entry.name + b"/" + p, blob) for p, blob in sub_plain]
                attributed |= {entry.name + b"/" + p for p in sub_done}
            elif entry.mode in FILE_MODES:
                new_sha, kind = self._blob(entry.sha, top and entry.name in self.metadata)
                (to_lfs if kind == "lfs" else plain if kind == "plain" else []).append((entry.name, entry.sha))
            changed |= new_sha != entry.sha
            entries.append(TreeEntry(entry.mode, entry.name, new_sha))
        new = self._put("tree", format_tree(entries)) if changed else sha
        if not top:
            pending = [(p, b) for p, b in to_lfs if p not in attributed]
            with_lines = self._attributed(new, pending, [], create=False)
            if with_lines != new:
                new, attributed = with_lines, attributed | {p for p, _ in pending}
        self._trees[key] = (new, tuple(to_lfs), tuple(plain), frozenset(attributed))
        return self._trees[key]

    def _blob(self, sha: str, metadata: bool) -> tuple[str, str | None]:
        """(new blob id, ``"lfs"`` / ``"plain"``, or None when the blob stays as it is)."""
        key = (sha, metadata)
        if key not in self._blobs:
            self._blobs[key] = self._convert_blob(sha, metadata)
        return self._blobs[key]

    def _convert_blob(self, sha: str, metadata: bool) -> tuple[str, str | None]:
        known = self.map.blobs.get(sha)
        if known is not None and (known.to_lfs or metadata) and (not known.to_lfs or self.store.has(known.obj)):
            return known.new_blob, "lfs" if known.to_lfs else "plain"
        size = self.cat.info(sha)[1]
        if metadata and size < MAX_POINTER_SIZE:
            obj = parse_pointer(self.cat.read(sha)[1])
            if obj is not None and self.store.has(obj):
                data = self.store.path_of(obj.oid).read_bytes()
                return self._changed(sha, self._put("blob", data), obj, to_lfs=False), "plain"
        if blob_rule(size, lambda: self._head(sha), self.rules) is not None:
            obj = self._stage(sha)
            return self._changed(sha, self._put("blob", format_pointer(obj)), obj, to_lfs=True), "lfs"
        return sha, None

    def _changed(self, sha: str, new: str, obj: LfsObject, to_lfs: bool) -> str:
        self._changes[sha] = Changed("", obj.size, new, obj, to_lfs)  # its path: set by _root
        return new

    def _head(self, sha: str) -> bytes:
        """A blob's first bytes, enough to tell binary from text (the rest is read off git's pipe and dropped)."""
        chunks = self.cat.stream(sha, BINARY_SNIFF_BYTES)
        head = next(chunks, b"")
        for _ in chunks:
            pass
        return head

    def _restage_missing(self) -> None:
        """Stage again the bytes of converted files that the staging store lost (a user freeing
        disk deleted ``<cache repo>/lfs``): the map still names them, so no rewrite would, and
        the transfer reads them from the store only. A stat per converted file; IntegrityError when
        the cache lacks a source blob too (its hint: delete the pair's cache)."""
        for sha, changed in self.map.blobs.items():
            if changed.to_lfs and not self.store.has(changed.obj):
                self._stage(sha)

    def _stage(self, sha: str) -> LfsObject:
        """Copy a blob's bytes into :func:`staging_store` under their sha256; return the object."""
        digest, size = hashlib.sha256(), 0
        target_dir = self.store.objects_dir
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".convert.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                for chunk in self.cat.stream(sha):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            obj = LfsObject(digest.hexdigest(), size)
            final = self.store.path_of(obj.oid)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            raise error_for_oserror(exc, "cannot stage a converted file in the cache", target_dir) from exc
        return obj

    def _prefetch_metadata(self, commits: Iterable[bytes]) -> None:
        """Fetch, in one go, the LFS objects of the metadata pointers at the top of ``commits``' trees."""
        if not self.metadata or self.fetch is None:
            return
        wanted: set[LfsObject] = set()
        for tree in {commit_links(raw)[0] for raw in commits}:
            for entry in parse_tree(self.cat.read(tree)[1]):
                if entry.name in self.metadata and entry.mode in FILE_MODES and entry.sha not in self.map.blobs:
                    if self.cat.info(entry.sha)[1] < MAX_POINTER_SIZE:
                        obj = parse_pointer(self.cat.read(entry.sha)[1])
                        if obj is not None and not self.store.has(obj):
                            wanted.add(obj)
        if wanted:
            self.fetch(sorted(wanted), self.store)

    def _put(self, kind: str, raw: bytes) -> str:
        sha = object_id(kind, raw)
        self._new.setdefault(sha, (kind, raw))
        if len(self._new) >= FLUSH_OBJECTS:
            # Bounded memory on a long history; git cat-file finds objects of a pack written
            # after it started (it rescans the packs on a miss).
            write_objects(self.repo_dir, self._new)
            self._new = {}
        return sha
