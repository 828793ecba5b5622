"""Build repository histories for tests and the demo, with real git plumbing.

A :class:`RepoBuilder` records commits (whole-tree snapshots in memory), branches, merges,
tags and arbitrary refs, then writes them in one ``git fast-import`` run into a bare
repository; LFS files become pointer blobs and their objects go into the hub's store::

    b = RepoBuilder()
    c1 = b.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(b"..."), "README.md": "hi"})
    b.commit({"w.bin": lfs(b"new")}, delete=["README.md"], rename={"a": "b"})
    b.commit({"x": "y"}, branch="dev", base=c1)
    b.merge("dev")                       # into the default branch
    b.tag("v1", c1, message="release")   # annotated; without message: lightweight
    b.ref("refs/pr/1", b.tip("dev"))
    refs = b.push_to_hub(hub, "alice/model")   # {refname: sha}

Dates are fixed (one minute apart from a constant start), so the same history gives the
same commit ids every time.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence, Union


if TYPE_CHECKING:
    from gitmirror.sandbox.hub import Hub

LFS_ATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n"
                         for p in ("*.bin", "*.safetensors", "*.pt", "*.onnx", "*.parquet"))
START_TIME = 1_700_000_000
DEFAULT_AUTHOR = ("Seed Author", "seed@sandbox.invalid")


@dataclass(frozen=True)
class LfsFile:
    """A file stored through LFS: the tree holds its pointer, the store holds ``data``."""

    data: bytes = field(repr=False)

    @property
    def oid(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def pointer(self) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.oid}\n"
                f"size {self.size}\n").encode()


FileContent = Union[bytes, str, LfsFile]


def lfs(data: bytes | str) -> LfsFile:
    return LfsFile(data.encode() if isinstance(data, str) else data)


def random_bytes(size: int, seed: int | str = 0) -> bytes:
    """Deterministic incompressible bytes (so LFS and pack sizes are realistic)."""
    return random.Random(str(seed)).randbytes(size)


def blob_bytes(content: FileContent) -> bytes:
    """What the git tree stores for a file: the pointer for LFS files."""
    if isinstance(content, LfsFile):
        return content.pointer()
    return content.encode("utf-8") if isinstance(content, str) else content


def file_bytes(content: FileContent) -> bytes:
    """What a checkout (after ``git lfs pull``) holds for a file."""
    if isinstance(content, LfsFile):
        return content.data
    return blob_bytes(content)


@dataclass(eq=False)
class Commit:
    mark: int
    ref: str  # the ref it was made on
    message: str
    parents: list["Commit"]
    files: dict[str, FileContent]  # whole tree snapshot
    author: tuple[str, str]
    timestamp: int
    sha: str | None = None  # known after write()

    def __repr__(self) -> str:
        return f"<Commit :{self.mark} {self.sha or ''} {self.message!r}>"


@dataclass(frozen=True)
class Tag:
    name: str
    target: Commit
    message: str | None  # None = lightweight


def _ancestors(commit: Commit) -> list[Commit]:
    """``commit`` and its ancestors, nearest first (breadth-first)."""
    seen: list[Commit] = []
    queue = [commit]
    while queue:
        current = queue.pop(0)
        if current not in seen:
            seen.append(current)
            queue.extend(current.parents)
    return seen


def _merge_base(ours: Commit, theirs: Commit) -> Commit | None:
    mine = set(map(id, _ancestors(ours)))
    return next((c for c in _ancestors(theirs) if id(c) in mine), None)


def _three_way(base: Mapping[str, FileContent], ours: Mapping[str, FileContent],
               theirs: Mapping[str, FileContent]) -> dict[str, FileContent]:
    """Per path: keep a side's change over the base; when both changed, theirs wins."""
    merged: dict[str, FileContent] = {}
    for path in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        result = o if t == b else t
        if result is not None:
            merged[path] = result
    return merged


def _full_ref(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def _quote(path: str) -> bytes:
    """C-style quoting for fast-import paths (safe for spaces, quotes and non-ASCII)."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'.encode("utf-8")


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


class RepoBuilder:
    """Records a history in memory; :meth:`write` puts it into a git repository."""

    def __init__(self, default_branch: str = "main", author: tuple[str, str] = DEFAULT_AUTHOR,
                 start_time: int = START_TIME) -> None:
        self.default_branch = default_branch
        self.author = author
        self.start_time = start_time
        self.commits: list[Commit] = []
        self.refs: dict[str, Commit] = {}  # full ref name -> commit (branches and other refs)
        self.tags: dict[str, Tag] = {}

    # -- recording -----------------------------------------------------------------------
    def tip(self, branch: str | None = None) -> Commit:
        return self.refs[_full_ref(branch or self.default_branch)]

    def commit(self, files: Mapping[str, FileContent] | None = None, *, message: str | None = None,
               branch: str | None = None, base: Commit | str | None = None,
               delete: Sequence[str] = (), rename: Mapping[str, str] | None = None,
               parents: Sequence[Commit] | None = None, author: tuple[str, str] | None = None) -> Commit:
        """Commit on ``branch`` (default branch; a full ``refs/...`` name works too).

        The new tree is the first parent's tree with ``rename`` applied, then ``delete``,
        then ``files`` added or replaced. A new branch starts at ``base`` (a commit or branch
        name), or as an orphan when ``base`` is None.
        """
        ref = _full_ref(branch or self.default_branch)
        if parents is None:
            start = self._resolve(base) if base is not None else self.refs.get(ref)
            parents = [start] if start is not None else []
        tree = dict(parents[0].files) if parents else {}
        for old, new in (rename or {}).items():
            tree[new] = tree.pop(old)
        for path in delete:
            del tree[path]
        tree.update(files or {})
        commit = Commit(mark=len(self.commits) + 1, ref=ref, parents=list(parents), files=tree,
                        message=message or f"commit {len(self.commits) + 1}",
                        author=author or self.author, timestamp=self.start_time + 60 * len(self.commits))
        self.commits.append(commit)
        self.refs[ref] = commit
        return commit

    def merge(self, source: Commit | str, into: str | None = None, message: str | None = None,
              files: Mapping[str, FileContent] | None = None) -> Commit:
        """A merge commit on ``into``: a three-way merge of the trees (theirs wins conflicts),
        then ``files`` on top."""
        ours = self.tip(into)
        theirs = self._resolve(source)
        base = _merge_base(ours, theirs)
        base_files = base.files if base is not None else {}
        merged = _three_way(base_files, ours.files, theirs.files)
        merged.update(files or {})
        name = source if isinstance(source, str) else theirs.message
        commit = self.commit(message=message or f"Merge {name}", branch=into, parents=[ours, theirs])
        commit.files = merged
        return commit

    def branch(self, name: str, at: Commit | str) -> None:
        self.refs[_full_ref(name)] = self._resolve(at)

    def ref(self, refname: str, target: Commit | str) -> None:
        """Point an arbitrary ref (``refs/pr/1``, ``refs/convert/parquet``...) at a commit."""
        if not refname.startswith("refs/"):
            raise ValueError("ref() needs a full ref name starting with refs/")
        self.refs[refname] = self._resolve(target)

    def tag(self, name: str, target: Commit | str | None = None, message: str | None = None) -> None:
        """Annotated tag when ``message`` is given, else lightweight."""
        self.tags[name] = Tag(name, self._resolve(target or self.default_branch), message)

    def _resolve(self, target: Commit | str) -> Commit:
        return target if isinstance(target, Commit) else self.refs[_full_ref(target)]

    # -- views ---------------------------------------------------------------------------
    def lfs_files(self) -> dict[str, LfsFile]:
        """Every LFS object any commit refers to, by oid."""
        found: dict[str, LfsFile] = {}
        for commit in self.commits:
            for content in commit.files.values():
                if isinstance(content, LfsFile):
                    found[content.oid] = content
        return found

    def expected_refs(self) -> dict[str, Commit]:
        """Full ref name -> commit, tags included (annotated tags: the tagged commit)."""
        refs = dict(self.refs)
        refs.update({f"refs/tags/{name}": tag.target for name, tag in self.tags.items()})
        return refs

    # -- writing -------------------------------------------------------------------------
    def fast_import_stream(self) -> bytes:
        out = bytearray(b"feature done\n")
        blob_marks: dict[bytes, int] = {}
        next_mark = len(self.commits) + 1  # commit marks are 1..n; blobs follow
        for commit in self.commits:
            for content in commit.files.values():
                payload = blob_bytes(content)
                digest = hashlib.sha1(payload).digest()
                if digest not in blob_marks:
                    blob_marks[digest] = next_mark
                    out += b"blob\nmark :%d\n" % next_mark + _data(payload)
                    next_mark += 1
            out += self._commit_command(commit, blob_marks)
        for refname, commit in self.refs.items():
            out += f"reset {refname}\n".encode() + b"from :%d\n\n" % commit.mark
        for tag in self.tags.values():
            if tag.message is None:
                out += f"reset refs/tags/{tag.name}\n".encode() + b"from :%d\n\n" % tag.target.mark
            else:
                name, email = self.author
                out += f"tag {tag.name}\n".encode() + b"from :%d\n" % tag.target.mark
                out += f"tagger {name} <{email}> {tag.target.timestamp + 30} +0000\n".encode()
                out += _data(tag.message.encode())
        out += b"done\n"
        return bytes(out)

    def _commit_command(self, commit: Commit, blob_marks: dict[bytes, int]) -> bytes:
        name, email = commit.author
        stamp = f"{name} <{email}> {commit.timestamp} +0000\n"
        out = bytearray(f"commit {commit.ref}\n".encode() + b"mark :%d\n" % commit.mark)
        out += f"author {stamp}committer {stamp}".encode()
        out += _data(commit.message.encode())
        if commit.parents:
            out += b"from :%d\n" % commit.parents[0].mark
            for parent in commit.parents[1:]:
                out += b"merge :%d\n" % parent.mark
        out += b"deleteall\n"
        for path, content in sorted(commit.files.items()):
            mark = blob_marks[hashlib.sha1(blob_bytes(content)).digest()]
            out += b"M 100644 :%d " % mark + _quote(path) + b"\n"
        return bytes(out + b"\n")

    def write(self, git_dir: str | Path, lfs_store: str | Path | None = None,
              skip_lfs: Sequence[str] = ()) -> dict[str, str]:
        """Import into ``git_dir`` (bare repo or a ``.git``), overwriting refs it names.

        LFS objects go into ``lfs_store`` (a ``lfs/objects`` directory) unless listed in
        ``skip_lfs`` (oids), which makes a repository whose store lacks objects. Returns
        ``{refname: sha}`` as stored (an annotated tag's value is the tag object) and sets
        each :attr:`Commit.sha`.
        """
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": os.devnull, "LANG": "C.UTF-8"}
        with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
            marks = Path(tmp) / "marks"
            done = subprocess.run(
                ["git", "--git-dir", str(git_dir), "fast-import", "--quiet", "--force",
                 f"--export-marks={marks}"],
                input=self.fast_import_stream(), env=env, capture_output=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"git fast-import failed: {done.stderr.decode(errors='replace')}")
            by_mark = dict(line.split(" ") for line in marks.read_text().splitlines())
        for commit in self.commits:
            commit.sha = by_mark[f":{commit.mark}"]
        if lfs_store is not None:
            for oid, content in self.lfs_files().items():
                if oid not in skip_lfs:
                    _place(Path(lfs_store), content)
        return self._read_refs(git_dir, env)

    def _read_refs(self, git_dir: str | Path, env: dict[str, str]) -> dict[str, str]:
        """The written refs as the repository has them (annotated tags: the tag object)."""
        wanted = set(self.refs) | {f"refs/tags/{name}" for name in self.tags}
        listing = subprocess.run(["git", "--git-dir", str(git_dir), "for-each-ref",
                                  "--format=%(refname) %(objectname)"],
                                 env=env, capture_output=True, text=True, check=True).stdout
        pairs = (line.split(" ", 1) for line in listing.splitlines() if line)
        return {name: sha for name, sha in pairs if name in wanted}

    def push_to_hub(self, hub: "Hub", repo_id: str, repo_type: str = "model", *, create: bool = True,
                    skip_lfs: Sequence[str] = (), **create_options: object) -> dict[str, str]:
        """Write straight into a hub's bare repository (created, without a server commit, if
        missing) and place the LFS objects in its store."""
        key = hub.key(repo_id, repo_type)
        if create and hub.state.get_repo(key) is None:
            create_options.setdefault("initial_commit", False)
            hub.create_repo(repo_id, repo_type=repo_type, **create_options)  # type: ignore[arg-type]
        path = hub.repo_path(key)
        refs = self.write(path, path / "lfs" / "objects", skip_lfs=skip_lfs)
        return refs


def _place(store: Path, content: LfsFile) -> None:
    """Put an object into an ``lfs/objects`` directory (git-lfs layout aa/bb/oid)."""
    oid = content.oid
    target = store / oid[0:2] / oid[2:4] / oid
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(content.data)
    os.replace(tmp, target)


@dataclass
class SampleModel:
    builder: RepoBuilder
    refs: dict[str, str]

    @property
    def head(self) -> str:
        return self.refs[f"refs/heads/{self.builder.default_branch}"]


def build_sample_model(default_branch: str = "main") -> RepoBuilder:
    """A small model's history: LFS weights added, changed and deleted, two tags, a rename,
    a non-ASCII path; a few hundred KB in all."""
    b = RepoBuilder(default_branch=default_branch)
    b.commit({".gitattributes": LFS_ATTRIBUTES}, message="initial commit",
             author=("sandbox-bot", "bot@sandbox.invalid"))
    b.commit({
        "README.md": "---\nlicense: apache-2.0\n---\n# Sample model\n\nA tiny model for mirror tests.\n",
        "config.json": '{"hidden_size": 64, "num_layers": 2}\n',
        "tokenizer.json": '{"vocab": {"a": 0, "b": 1}}\n',
        "model.safetensors": lfs(random_bytes(96 * 1024, "weights-v1")),
    }, message="Add model weights and config")
    b.commit({
        "pytorch_model.bin": lfs(random_bytes(64 * 1024, "pt-v1")),
        "README.md": "---\nlicense: apache-2.0\n---\n# Sample model\n\nNow with PyTorch weights.\n",
    }, message="Add PyTorch weights")
    b.tag("v1.0", message="First release")
    b.commit({
        "model.safetensors": lfs(random_bytes(100 * 1024, "weights-v2")),
        "docs/说明 notes.md": "非 ASCII path with a space\n",
    }, message="Retrain: new weights, docs")
    b.commit({"onnx/model.onnx": lfs(random_bytes(24 * 1024, "onnx-v1"))},
             delete=["pytorch_model.bin"], rename={"tokenizer.json": "tokenizer/tokenizer.json"},
             message="Drop PyTorch weights, add ONNX, move tokenizer")
    b.tag("v1.1")
    return b


def seed_sample_model(hub: "Hub", repo_id: str, repo_type: str = "model", **create_options: object) -> SampleModel:
    """Create ``repo_id`` on ``hub`` holding the sample model history (see :func:`build_sample_model`)."""
    builder = build_sample_model(hub.kind.default_branch)
    refs = builder.push_to_hub(hub, repo_id, repo_type, **create_options)
    return SampleModel(builder, refs)
