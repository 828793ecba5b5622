"""The download routes of the HF and ModelScope kinds, read by the hubs' own SDKs and by plain HTTP.

The SDKs (huggingface_hub's and modelscope's ``snapshot_download``) run in child processes with
their own environment (tests/judges.py); the raw requests pin the headers and shapes those SDKs
rely on (docs/hubs.md names the SDK function behind each).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import builder_tree, judge_sdk_download

pytestmark = pytest.mark.timeout(180)

WEIGHTS = random_bytes(30_000, "dl-weights")
NESTED = random_bytes(7_000, "dl-nested")
PLAIN_BINARY = random_bytes(3_000, "dl-plain")


def small_history(default_branch: str = "main") -> RepoBuilder:
    """A tag on an older tree, then LFS files at the top and deeper down, a plain binary and a
    non-ASCII path on the default branch."""
    b = RepoBuilder(default_branch=default_branch)
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# card\n", "weights.bin": lfs(b"old" * 500)})
    b.tag("v1", message="first")
    b.commit({"weights.bin": lfs(WEIGHTS), "sub/dir/nested.safetensors": lfs(NESTED),
              "logo.png": PLAIN_BINARY, "模型/说明.txt": "你好\n"}, message="more files")
    return b


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(scope="module")
def hf(sandbox: Any) -> Any:
    hub = sandbox.add_hub("huggingface", name="hf-downloads", tree_page_size=3)
    hub.add_user("alice", orgs=["org"])
    hub.add_user("bob")
    return hub


@pytest.fixture(scope="module")
def ms(sandbox: Any) -> Any:
    hub = sandbox.add_hub("modelscope", name="ms-downloads")
    hub.add_user("alice", orgs=["org"])
    hub.add_user("bob")
    return hub


# ------------------------------------------------------------------------------------------
# Hugging Face
# ------------------------------------------------------------------------------------------
def test_hf_snapshot_download_of_a_private_repo_at_branch_and_tag(hf: Any, unique_name: Callable,
                                                                  tmp_path: Path) -> None:
    token = hf.issue_token("alice")
    repo = f"org/{unique_name('hfdl')}"
    builder = small_history()
    builder.push_to_hub(hf, repo, private=True)
    hf.counters.reset()

    judge_sdk_download("huggingface", hf, repo, token, tmp_path, builder, {"main": "main", "v1": "v1"})

    snap = hf.counters.snapshot()
    assert snap.count("lfs-download") >= 3  # the LFS files came from storage, by the redirect
    assert hf.token_leaks == 0  # and the SDK did not send its token there


def test_hf_snapshot_download_of_a_dataset(hf: Any, unique_name: Callable, tmp_path: Path) -> None:
    token = hf.issue_token("alice")
    repo = f"org/{unique_name('hfdata')}"
    builder = small_history()
    builder.push_to_hub(hf, repo, repo_type="dataset")

    judge_sdk_download("huggingface", hf, repo, token, tmp_path, builder, {"main": "main"}, repo_type="dataset")


def test_hf_tree_is_paged_with_link_headers(hf: Any, unique_name: Callable) -> None:
    from huggingface_hub import HfApi

    token = hf.issue_token("alice")
    repo = f"org/{unique_name('hftree')}"
    builder = small_history()
    refs = builder.push_to_hub(hf, repo)
    head = refs["refs/heads/main"]
    auth = {"Authorization": f"Bearer {token}"}

    first = requests.get(f"{hf.endpoint}/api/models/{repo}/tree/{head}", params={"recursive": "true"},
                         headers=auth, timeout=30)
    assert first.status_code == 200 and len(first.json()) == 3  # tree_page_size=3
    assert first.links["next"]["url"].startswith(f"{hf.endpoint}/api/models/{repo}/tree/{head}?")

    listed = {f.path: f for f in HfApi(endpoint=hf.endpoint, token=token).list_repo_tree(repo, recursive=True,
                                                                                       revision=head)}
    files = {path for path, item in listed.items() if hasattr(item, "blob_id")}
    assert files == set(builder_tree(builder, "main"))
    assert {"sub", "sub/dir", "模型"} <= set(listed) - files  # directories are listed too
    weights = listed["weights.bin"]
    assert weights.size == len(WEIGHTS) and weights.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert weights.lfs.size == len(WEIGHTS) and weights.lfs.pointer_size < 200
    assert listed["logo.png"].lfs is None and listed["logo.png"].blob_id == git_blob_id(PLAIN_BINARY)
    top = [f.path for f in HfApi(endpoint=hf.endpoint, token=token).list_repo_tree(repo, path_in_repo="sub")]
    assert top == ["sub/dir"]


def test_hf_resolve_headers_and_redirect(hf: Any, unique_name: Callable) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    token = hf.issue_token("alice")
    repo = f"org/{unique_name('hfresolve')}"
    head = small_history().push_to_hub(hf, repo)["refs/heads/main"]
    auth = {"Authorization": f"Bearer {token}"}

    lfs_head = requests.head(f"{hf.endpoint}/{repo}/resolve/main/sub/dir/nested.safetensors", headers=auth,
                             allow_redirects=False, timeout=30)
    assert lfs_head.status_code == 302 and lfs_head.headers["X-Repo-Commit"] == head
    assert lfs_head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(NESTED).hexdigest()}"'
    assert lfs_head.headers["X-Linked-Size"] == str(len(NESTED))
    assert lfs_head.headers["Location"].startswith(hf.storage_endpoint) and lfs_head.headers["ETag"]
    assert requests.get(lfs_head.headers["Location"], timeout=30).content == NESTED  # presigned: no header

    plain = requests.get(f"{hf.endpoint}/{repo}/resolve/{head}/logo.png", headers=auth, timeout=30)
    assert plain.status_code == 200 and plain.content == PLAIN_BINARY
    assert plain.headers["ETag"] == f'"{git_blob_id(PLAIN_BINARY)}"' and plain.headers["X-Repo-Commit"] == head

    meta = get_hf_file_metadata(hf_hub_url(repo, "weights.bin", endpoint=hf.endpoint), token=token,
                                endpoint=hf.endpoint)
    assert meta.commit_hash == head and meta.etag == hashlib.sha256(WEIGHTS).hexdigest()
    assert meta.size == len(WEIGHTS) and meta.location.startswith(hf.storage_endpoint)

    missing = requests.head(f"{hf.endpoint}/{repo}/resolve/main/nope.txt", headers=auth, timeout=30)
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == head
    no_rev = requests.head(f"{hf.endpoint}/{repo}/resolve/nobranch/logo.png", headers=auth, timeout=30)
    assert no_rev.status_code == 404 and no_rev.headers["X-Error-Code"] == "RevisionNotFound"


def test_hf_resolve_of_private_and_gated_repos_needs_access(hf: Any, unique_name: Callable) -> None:
    alice, bob = hf.issue_token("alice"), hf.issue_token("bob")
    private, gated = f"org/{unique_name('hfpriv')}", f"org/{unique_name('hfgated')}"
    small_history().push_to_hub(hf, private, private=True)
    small_history().push_to_hub(hf, gated, gated="manual")

    def status(repo: str, token: str | None) -> tuple[int, str | None]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = requests.head(f"{hf.endpoint}/{repo}/resolve/main/README.md", headers=headers, timeout=30)
        return answer.status_code, answer.headers.get("X-Error-Code")

    assert status(private, None) == (401, "RepoNotFound")
    assert status(private, bob) == (404, "RepoNotFound")
    assert status(private, alice)[0] == 200
    assert status(gated, None) == (401, "GatedRepo")
    assert status(gated, bob) == (403, "GatedRepo")
    assert status(gated, alice)[0] == 200  # a member of the owning org
    hf.repo(gated).accepted.add("bob")
    assert status(gated, bob)[0] == 200


# ------------------------------------------------------------------------------------------
# ModelScope
# ------------------------------------------------------------------------------------------
def test_ms_snapshot_download_of_a_private_model_at_master_and_tag(ms: Any, unique_name: Callable,
                                                                  tmp_path: Path) -> None:
    token = ms.issue_token("alice")
    repo = f"org/{unique_name('msdl')}"
    builder = small_history("master")
    builder.push_to_hub(ms, repo, private=True)
    ms.counters.reset()

    judge_sdk_download("modelscope", ms, repo, token, tmp_path, builder, {"master": "master", "v1": "v1"})

    assert ms.counters.snapshot().count("lfs-download") >= 3


def test_ms_file_list_has_real_sizes_and_hashes(ms: Any, unique_name: Callable) -> None:
    token = ms.issue_token("alice")
    repo = f"org/{unique_name('mslist')}"
    head = small_history("master").push_to_hub(ms, repo)["refs/heads/master"]
    url = f"{ms.endpoint}/api/v1/models/{repo}/repo/files"

    answer = requests.get(url, params={"Recursive": "True"}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["Success"] is True
    files = {f["Path"]: f for f in answer.json()["Data"]["Files"]}
    weights, logo = files["weights.bin"], files["logo.png"]
    assert weights["IsLFS"] and weights["Size"] == len(WEIGHTS)
    assert weights["Sha256"] == hashlib.sha256(WEIGHTS).hexdigest() and weights["Revision"] == head
    assert not logo["IsLFS"] and logo["Sha256"] == hashlib.sha256(PLAIN_BINARY).hexdigest()
    assert files["sub/dir"]["Type"] == "tree" and files["sub/dir/nested.safetensors"]["Name"] == "nested.safetensors"

    shallow = requests.get(url, params={"Recursive": "False", "Root": "sub"}, timeout=30).json()["Data"]["Files"]
    assert [f["Path"] for f in shallow] == ["sub/dir"]
    missing = requests.get(url, params={"Revision": "nobranch"}, timeout=30)
    assert missing.status_code == 404


def test_ms_repo_file_serves_plain_blobs_and_redirects_lfs(ms: Any, unique_name: Callable) -> None:
    repo = f"org/{unique_name('msfile')}"
    small_history("master").push_to_hub(ms, repo)
    url = f"{ms.endpoint}/api/v1/models/{repo}/repo"

    plain = requests.get(url, params={"Revision": "master", "FilePath": "logo.png"}, timeout=30)
    assert plain.status_code == 200 and plain.content == PLAIN_BINARY
    redirect = requests.get(url, params={"FilePath": "sub/dir/nested.safetensors"}, allow_redirects=False, timeout=30)
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith(ms.storage_endpoint)
    assert requests.get(redirect.headers["Location"], timeout=30).content == NESTED
    assert requests.get(url, params={"FilePath": "nope"}, timeout=30).status_code == 404


def test_ms_dataset_tree_is_paged_and_the_sdk_downloads_it(ms: Any, unique_name: Callable, tmp_path: Path) -> None:
    token = ms.issue_token("alice")
    repo = f"org/{unique_name('msdata')}"
    builder = small_history("master")
    builder.push_to_hub(ms, repo, repo_type="dataset")
    url = f"{ms.endpoint}/api/v1/datasets/{repo}/repo/tree"

    pages = []
    for number in range(1, 6):
        params = {"Revision": "master", "Recursive": "True", "PageNumber": number, "PageSize": 3}
        pages.append([f["Path"] for f in requests.get(url, params=params, timeout=30).json()["Data"]["Files"]])
    listed = [path for page in pages for path in page]
    assert [len(page) for page in pages[:3]] == [3, 3, 3] and len(listed) == len(set(listed))
    assert set(builder_tree(builder, "master")) <= set(listed)

    judge_sdk_download("modelscope", ms, repo, token, tmp_path, builder, {"master": "master"}, repo_type="dataset")
