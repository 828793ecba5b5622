"""A Hugging Face source with LFS objects and a fresh ModelScope destination, on the sandbox hubs,
with what the fault tests do to them: run the mirror (API or CLI) and judge the destination."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmirror import api
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes


@dataclass
class HfToMs:
    """``org/<name>`` on both hubs; ``objects`` maps each LFS oid of the source to its bytes."""

    src_hub: Any
    dst_hub: Any
    name: str
    env: dict[str, str]
    cache_dir: Path
    objects: dict[str, bytes] = field(default_factory=dict)

    @property
    def repo(self) -> str:
        return f"org/{self.name}"

    @property
    def src(self) -> str:
        return f"hf://{self.repo}"

    @property
    def dst(self) -> str:
        return f"ms://{self.repo}"

    def run(self, policy=FAST, dst: str | None = None, **kwargs: Any) -> Any:
        """``api.mirror`` of the pair (or of the source to ``dst``), with the FAST policy by default."""
        kwargs.setdefault("cache_dir", self.cache_dir)
        return api.mirror(self.src, dst or self.dst, env=self.env, policy=policy, **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real CLI in a subprocess, with the pair's environment and cache."""
        return subprocess.run([sys.executable, "-m", "gitmirror", *args], capture_output=True, text=True,
                              env={**self.env, "GITMIRROR_CACHE": str(self.cache_dir)}, timeout=180)

    def dst_master(self) -> str | None:
        """The destination's branch, None when it has none (or the repository is not there)."""
        try:
            return self.dst_hub.refs(self.repo).get("refs/heads/master")
        except Exception:
            return None

    def assert_mirrored(self) -> None:
        """The destination's branch is the source's, and it holds every LFS object's exact bytes."""
        assert self.dst_master() == self.src_hub.refs(self.repo)["refs/heads/main"]
        for oid, data in self.objects.items():
            assert self.dst_hub.lfs_object_path(self.repo, oid).read_bytes() == data


def hf_to_ms(hub_pair: Any, git_env: dict[str, str], tmp_path: Path, name: str, sizes: Sequence[int],
             private: bool = False) -> HfToMs:
    """Seed ``hf://org/<name>`` with one commit holding an LFS object of each size (bytes)."""
    hf, ms = hub_pair()
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": f"# {name}\n",
                    **{f"w{i}.bin": lfs(random_bytes(size, f"{name}-{i}")) for i, size in enumerate(sizes)}})
    builder.push_to_hub(hf, f"org/{name}", private=private)
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}
    objects = {hashlib.sha256(f.data).hexdigest(): f.data for f in builder.lfs_files().values()}
    return HfToMs(hf, ms, name, env, tmp_path / "cache", objects)
