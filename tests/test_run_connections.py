"""One HTTP client per run (issue 15, "round trips decide"): the source's listing opens the
connection its LFS batch request then reuses, and the destination's listing the one its LFS batch,
verify calls and final check reuse. On a far link each new TLS connection costs two round trips."""

from __future__ import annotations

from gitmirror import api, lfs
from gitmirror.remote import Remote
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs as lfs_file, random_bytes


def _connections(hub) -> int:
    return hub.counters.snapshot().features.get("connection-hub", 0)


def test_the_listing_and_the_lfs_transfer_share_the_runs_connections(hub_pair, git_env, tmp_path, unique_name,
                                                                      monkeypatch):
    hf, ms = hub_pair()
    tokens = hf.issue_token("alice"), ms.issue_token("alice")
    repo = f"org/{unique_name('one-client')}"
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES,
                    **{f"w{i}.bin": lfs_file(random_bytes(4_000, f"oc{i}")) for i in range(3)}})
    tip = builder.push_to_hub(hf, repo)["refs/heads/main"]
    listed_with, transferred_with = [], []
    real_ls_remote, real_transfer = Remote.ls_remote, lfs.transfer

    def ls_remote(self, http=None, **kwargs):
        listed_with.append(http)
        return real_ls_remote(self, http, **kwargs)

    def transfer(*args, **kwargs):
        transferred_with.append(kwargs.get("transport"))
        return real_transfer(*args, **kwargs)

    monkeypatch.setattr(Remote, "ls_remote", ls_remote)
    monkeypatch.setattr(lfs, "transfer", transfer)
    hf.counters.reset()
    env = {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint}
    result = api.mirror(f"hf://{repo}", f"ms://{repo}", src_token=tokens[0], dst_token=tokens[1], env=env,
                        cache_dir=tmp_path / "cache", policy=FAST)
    assert result.verified and ms.refs(repo)["refs/heads/master"] == tip
    assert len(transferred_with) == 1 and transferred_with[0] is not None
    assert all(http is transferred_with[0] for http in listed_with), listed_with
    # The source's hub port saw one connection of gitmirror's (the listing's, reused by the
    # anonymous "is it public" probe and the LFS batch request) and git's own for the fetch.
    snap = hf.counters.snapshot()
    assert snap.count("git-upload-pack") >= 1
    assert _connections(hf) == 2, snap.features
