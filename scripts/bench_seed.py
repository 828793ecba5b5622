"""The benchmark's repositories: the sizes of a full and a quick run, and the source repositories
of the ``model``, ``many`` and ``big`` workloads, seeded straight into the source hub's storage."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from dataclasses import dataclass

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder

MB = 1_000_000
GiB = 1 << 30
POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


# ------------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class Sizes:
    scale: float  # multiplies the model's object sizes
    many_count: int
    many_new: int
    many_size: tuple[int, int]  # min, max bytes of one small object
    model_new: int  # bytes of the object the incremental commit adds
    big: int  # the single-object RSS check
    thousand: int  # mirrors of the thousand workload

    def model(self, mb: int) -> int:
        return max(1024, int(mb * MB * self.scale))


FULL = Sizes(scale=1.0, many_count=2000, many_new=20, many_size=(1024, 32 * 1024), model_new=50 * MB, big=2 * GiB,
             thousand=1000)
QUICK = Sizes(scale=0.004, many_count=60, many_new=3, many_size=(512, 4096), model_new=200_000, big=16 * MB,
              thousand=20)


# ------------------------------------------------------------------------------------------------
# Seeding: objects are written straight into the source hub's store, never held in memory whole


class SourceRepo:
    def __init__(self, hub, repo_id: str, seed: str) -> None:
        self.hub, self.repo_id = hub, repo_id
        hub.create_repo(repo_id, initial_commit=False)
        self.store = hub.repo_path(repo_id) / "lfs" / "objects"
        self.builder = RepoBuilder(default_branch="main")
        self.rng = random.Random(seed)
        self.objects: dict[str, int] = {}  # oid -> size, everything the history refers to
        self.refs: dict[str, str] = {}

    def lfs(self, size: int) -> bytes:
        """A new random object of ``size`` bytes in the store; returns its pointer blob."""
        self.store.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.store, prefix=".seed-")
        digest = hashlib.sha256()
        left = size
        with os.fdopen(fd, "wb") as out:
            while left > 0:
                piece = os.urandom(min(left, 8 * MB))
                digest.update(piece)
                out.write(piece)
                left -= len(piece)
        oid = digest.hexdigest()
        target = self.store / oid[:2] / oid[2:4] / oid
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        self.objects[oid] = size
        return POINTER.format(oid=oid, size=size).encode()

    def push(self) -> dict[str, str]:
        self.refs = self.builder.push_to_hub(self.hub, self.repo_id, create=False)  # made in __init__
        return self.refs


def seed_model(src: SourceRepo, sizes: Sizes) -> None:
    b, lfs, m = src.builder, src.lfs, sizes.model
    readme = lambda n: f"---\nlicense: apache-2.0\n---\n# Model\n\nRevision {n}.\n"  # noqa: E731
    config = lambda n: json.dumps({"hidden_size": 4096, "num_layers": 32, "rev": n}) + "\n"  # noqa: E731
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": readme(1)}, message="initial commit")
    b.commit({"config.json": config(1), "generation_config.json": '{"do_sample": true}\n'}, message="config")
    b.commit({"model-00001-of-00003.safetensors": lfs(m(300))}, message="shard 1")
    b.commit({"model-00002-of-00003.safetensors": lfs(m(300))}, message="shard 2")
    b.commit({"model-00003-of-00003.safetensors": lfs(m(200)), "model.safetensors.index.json": '{"weight_map": {}}\n'},
             message="shard 3 and index")
    b.commit({"tokenizer.json": json.dumps({"vocab": {f"t{i}": i for i in range(2000)}}) + "\n",
              "tokenizer.model": lfs(m(4))}, message="tokenizer")
    b.commit({"README.md": readme(2)}, message="README")
    b.tag("v1.0", message="First release")
    b.commit({"config.json": config(2)}, message="config tweak")
    b.commit({"model-00003-of-00003.safetensors": lfs(m(200))}, message="retrain shard 3")
    b.commit({"README.md": readme(3)}, message="README")
    b.commit({"onnx/model.onnx": lfs(m(180))}, message="ONNX export")
    b.commit({"README.md": readme(4)}, message="README")
    b.commit({"config.json": config(3)}, message="config tweak")
    b.commit({"model-00001-of-00003.safetensors": lfs(m(300))}, message="retrain shard 1")
    b.tag("v1.1")
    b.commit({"README.md": readme(5)}, message="README")
    b.commit({"training_args.bin": lfs(m(6))}, message="training args")
    b.commit(delete=["onnx/model.onnx"], message="drop ONNX")
    b.commit({"README.md": readme(6)}, message="README")
    b.commit({"config.json": config(4)}, message="config tweak")
    b.commit({"README.md": readme(7)}, message="README")
    b.tag("v2.0", message="Second release")
    assert len(b.commits) == 20


def grow_model(src: SourceRepo, sizes: Sizes) -> None:
    src.builder.commit({"adapter_model.safetensors": src.lfs(sizes.model_new), "README.md": "# Model\n\nWith an adapter.\n"},
                       message="add adapter")


def seed_many(src: SourceRepo, sizes: Sizes) -> None:
    b = src.builder
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# Many small files\n"}, message="initial commit")
    per_commit = max(1, sizes.many_count // 4)
    made = 0
    while made < sizes.many_count:
        files = {}
        for _ in range(min(per_commit, sizes.many_count - made)):
            files[f"data/part-{made:05d}.bin"] = src.lfs(src.rng.randint(*sizes.many_size))
            made += 1
        b.commit(files, message=f"add {len(files)} files")


def grow_many(src: SourceRepo, sizes: Sizes) -> None:
    start = sizes.many_count
    files = {f"data/part-{start + i:05d}.bin": src.lfs(src.rng.randint(*sizes.many_size)) for i in range(sizes.many_new)}
    src.builder.commit(files, message=f"add {len(files)} files")


def seed_big(src: SourceRepo, sizes: Sizes) -> None:
    src.builder.commit({".gitattributes": LFS_ATTRIBUTES, "big.bin": src.lfs(sizes.big)}, message="one big object")
