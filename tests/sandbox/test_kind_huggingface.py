"""The Hugging Face kind against the real clients: huggingface_hub's HfApi, git and git-lfs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from huggingface_hub import HfApi
from huggingface_hub import errors as hf_errors

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def hf(sandbox: Any) -> Any:
    hub = sandbox.add_hub("huggingface", name="hf-kind-tests", multipart_threshold=1000,
                          multipart_chunk_size=1000)
    hub.add_user("alice", orgs=["acme"])
    hub.add_user("bob")
    hub.add_org("other", members=["bob"])
    return hub


@pytest.fixture(scope="module")
def tokens(hf: Any) -> dict[str, str]:
    return {"alice": hf.issue_token("alice"), "alice_read": hf.issue_token("alice", "read"),
            "bob": hf.issue_token("bob")}


def api(hf: Any, token: str | bool) -> HfApi:
    return HfApi(endpoint=hf.endpoint, token=token)


# ------------------------------------------------------------------------------------------
# whoami
# ------------------------------------------------------------------------------------------
def test_whoami_names_user_orgs_and_token_role(hf: Any, tokens: dict[str, str]) -> None:
    who = api(hf, tokens["alice"]).whoami()
    assert who["name"] == "alice" and who["type"] == "user"
    assert [org["name"] for org in who["orgs"]] == ["acme"]
    assert who["auth"]["accessToken"]["role"] == "write"
    assert api(hf, tokens["alice_read"]).whoami()["auth"]["accessToken"]["role"] == "read"


def test_whoami_with_unknown_token_is_401_invalid_credentials(hf: Any) -> None:
    with pytest.raises(hf_errors.HfHubHTTPError) as caught:
        api(hf, "sbxhf_" + "0" * 40).whoami()
    assert caught.value.response.status_code == 401
    assert not isinstance(caught.value, hf_errors.RepositoryNotFoundError)


# ------------------------------------------------------------------------------------------
# repo info
# ------------------------------------------------------------------------------------------
def test_repo_info_public_private_gated_missing(hf: Any, tokens: dict[str, str], unique_name: Callable) -> None:
    public, private, gated = (f"alice/{unique_name(n)}" for n in ("pub", "priv", "gated"))
    hf.create_repo(public)
    hf.create_repo(private, private=True)
    hf.create_repo(gated, gated="manual")

    info = api(hf, False).repo_info(public)
    assert info.id == public and info.private is False and info.gated is False and info.disabled is False
    assert len(info.sha) == 40 and [s.rfilename for s in info.siblings] == [".gitattributes"]

    assert api(hf, tokens["alice"]).repo_info(private).private is True
    assert api(hf, tokens["alice_read"]).repo_info(private).private is True

    with pytest.raises(hf_errors.RepositoryNotFoundError) as anon:
        api(hf, False).repo_info(private)
    assert anon.value.response.status_code == 401
    with pytest.raises(hf_errors.RepositoryNotFoundError) as other:
        api(hf, tokens["bob"]).repo_info(private)
    assert other.value.response.status_code == 404
    with pytest.raises(hf_errors.RepositoryNotFoundError):
        api(hf, tokens["alice"]).repo_info("alice/" + unique_name("missing"))
    with pytest.raises(hf_errors.HfHubHTTPError) as wrong:
        api(hf, "sbxhf_" + "1" * 40).repo_info(public)
    assert wrong.value.response.status_code == 401
    assert wrong.value.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"

    # A gated repository's info is readable by anyone; its content is not.
    assert api(hf, False).repo_info(gated).gated == "manual"
    assert api(hf, tokens["bob"]).repo_exists(gated) is True
    with pytest.raises(hf_errors.GatedRepoError) as gate:
        api(hf, tokens["bob"]).auth_check(gated)
    assert gate.value.response.status_code == 403
    with pytest.raises(hf_errors.GatedRepoError) as gate_anon:
        api(hf, False).auth_check(gated)
    assert gate_anon.value.response.status_code == 401
    hf.repo(gated).accepted.add("bob")
    api(hf, tokens["bob"]).auth_check(gated)
    api(hf, tokens["alice"]).auth_check(gated, write=True)
    with pytest.raises(hf_errors.HfHubHTTPError) as no_write:
        api(hf, tokens["bob"]).auth_check(gated, write=True)
    assert no_write.value.response.status_code == 403


def test_repo_info_of_datasets_spaces_and_revisions(hf: Any, tokens: dict[str, str], unique_name: Callable) -> None:
    dataset, space = f"acme/{unique_name('ds')}", f"alice/{unique_name('sp')}"
    hf.create_repo(dataset, repo_type="dataset")
    hf.create_repo(space, repo_type="space")
    client = api(hf, tokens["alice"])
    assert client.repo_info(dataset, repo_type="dataset").id == dataset
    assert client.repo_info(space, repo_type="space").sdk == "static"
    with pytest.raises(hf_errors.RepositoryNotFoundError):
        client.repo_info(dataset)  # the wrong type is another (missing) repository

    sha = client.repo_info(dataset, repo_type="dataset").sha
    assert client.repo_info(dataset, repo_type="dataset", revision="main").sha == sha
    assert client.repo_info(dataset, repo_type="dataset", revision=sha).sha == sha
    with pytest.raises(hf_errors.RevisionNotFoundError):
        client.repo_info(dataset, repo_type="dataset", revision="no-such-branch")


def test_disabled_repo_info_says_so_and_content_is_refused(hf: Any, tokens: dict[str, str],
                                                           unique_name: Callable, git: Callable,
                                                           auth_env: Callable) -> None:
    repo = f"alice/{unique_name('off')}"
    hf.create_repo(repo, disabled=True)
    assert api(hf, False).repo_info(repo).disabled is True
    done = git("ls-remote", hf.git_url(repo), check=False, env=auth_env(hf.endpoint, tokens["alice"]))
    assert done.returncode != 0 and "Access to this resource is disabled." in done.stderr


# ------------------------------------------------------------------------------------------
# refs
# ------------------------------------------------------------------------------------------
def test_list_repo_refs_groups_branches_tags_converts_and_prs(hf: Any, tokens: dict[str, str],
                                                             unique_name: Callable) -> None:
    repo = f"acme/{unique_name('refs')}"
    builder = RepoBuilder()
    first = builder.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(b"weights")})
    builder.commit({"README.md": "hello"})
    builder.branch("dev", first)
    builder.tag("v1", first, message="annotated")
    builder.tag("light", first)
    builder.ref("refs/pr/1", first)
    builder.ref("refs/convert/parquet", first)
    refs = builder.push_to_hub(hf, repo, repo_type="dataset")

    client = api(hf, tokens["alice"])
    found = client.list_repo_refs(repo, repo_type="dataset", include_pull_requests=True)
    assert {(r.name, r.ref, r.target_commit) for r in found.branches} == {
        ("main", "refs/heads/main", refs["refs/heads/main"]), ("dev", "refs/heads/dev", first.sha)}
    # An annotated tag is reported with the commit it points at, not the tag object.
    assert {(r.name, r.target_commit) for r in found.tags} == {("v1", first.sha), ("light", first.sha)}
    assert [(r.ref, r.target_commit) for r in found.converts] == [("refs/convert/parquet", first.sha)]
    assert [(r.ref, r.target_commit) for r in found.pull_requests] == [("refs/pr/1", first.sha)]
    assert client.list_repo_refs(repo, repo_type="dataset").pull_requests is None
    for revision in ("refs/pr/1", "refs/convert/parquet", "v1", "dev"):
        assert client.repo_info(repo, repo_type="dataset", revision=revision).sha == first.sha

    with pytest.raises(hf_errors.RepositoryNotFoundError):
        api(hf, tokens["bob"]).list_repo_refs("alice/" + unique_name("missing"))


# ------------------------------------------------------------------------------------------
# create
# ------------------------------------------------------------------------------------------
def test_create_repo_with_initial_commit_and_conflicts(hf: Any, tokens: dict[str, str],
                                                       unique_name: Callable) -> None:
    client = api(hf, tokens["alice"])
    name = unique_name("new")
    url = client.create_repo(name, private=True)  # no namespace: the token's user
    assert url.repo_id == f"alice/{name}" and url == f"{hf.endpoint}/alice/{name}"
    record = hf.repo(f"alice/{name}")
    assert record.private is True
    assert list(hf.refs(f"alice/{name}")) == ["refs/heads/main"]
    assert hf.run_git(f"alice/{name}", "log", "--format=%s", "main") == "initial commit"
    attributes = hf.run_git(f"alice/{name}", "show", "main:.gitattributes")
    assert "*.safetensors filter=lfs diff=lfs merge=lfs -text" in attributes

    with pytest.raises(hf_errors.HfHubHTTPError) as conflict:
        client.create_repo(f"alice/{name}")
    assert conflict.value.response.status_code == 409
    assert client.create_repo(f"alice/{name}", exist_ok=True).repo_id == f"alice/{name}"

    ds = client.create_repo(f"acme/{unique_name('ds')}", repo_type="dataset")
    assert ds.repo_type == "dataset" and ds.startswith(f"{hf.endpoint}/datasets/acme/")
    sp = client.create_repo(f"alice/{unique_name('sp')}", repo_type="space", space_sdk="gradio")
    assert sp.repo_type == "space"


def test_create_repo_refused_for_read_tokens_and_foreign_namespaces(hf: Any, tokens: dict[str, str],
                                                                    unique_name: Callable) -> None:
    with pytest.raises(hf_errors.HfHubHTTPError) as read_only:
        api(hf, tokens["alice_read"]).create_repo(f"alice/{unique_name('ro')}")
    assert read_only.value.response.status_code == 403
    with pytest.raises(hf_errors.HfHubHTTPError) as foreign:
        api(hf, tokens["alice"]).create_repo(f"other/{unique_name('x')}")
    assert foreign.value.response.status_code == 403
    anonymous = requests.post(f"{hf.endpoint}/api/repos/create", json={"name": "x"}, timeout=10)
    assert anonymous.status_code == 401
    # huggingface_hub validates names itself; the server checks them too.
    bad = requests.post(f"{hf.endpoint}/api/repos/create", json={"name": "bad--name"}, timeout=10,
                        headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert bad.status_code == 400


# ------------------------------------------------------------------------------------------
# git and git-lfs
# ------------------------------------------------------------------------------------------
def _lfs_commit(git: Callable, work: Path, payload: bytes, name: str = "weights.bin") -> str:
    (work / name).write_bytes(payload)
    (work / "notes.txt").write_text("plain text\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", f"add {name}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def helper_env(token: str, user: str = "user") -> dict[str, str]:
    """A credential helper answering ``user``/``token``: git then reports the server's refusal
    ("Authentication failed" with its message) instead of failing to prompt."""
    script = f"!f() {{ echo username={user}; echo password={token}; }}; f"
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": script}


def test_git_lfs_push_clone_fsck_with_basic_and_bearer(hf: Any, tokens: dict[str, str], unique_name: Callable,
                                                      git: Callable, auth_env: Callable, tmp_path: Path) -> None:
    repo = f"alice/{unique_name('git')}"
    api(hf, tokens["alice"]).create_repo(repo)
    url = hf.git_url(repo)
    basic = auth_env(hf.endpoint, tokens["alice"], user="anything")
    payload = random_bytes(300_000, seed="hf-push")

    git("clone", "-q", url, str(tmp_path / "work"), env=basic)
    work = tmp_path / "work"
    assert (work / ".gitattributes").is_file()  # the server's initial commit
    head = _lfs_commit(git, work, payload)
    git("push", "-q", "origin", "main", env=basic, cwd=work)
    assert hf.refs(repo)["refs/heads/main"] == head
    assert hf.has_lfs_object(repo, hashlib.sha256(payload).hexdigest())

    bearer = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{hf.endpoint}/.extraHeader",
              "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {tokens['alice_read']}"}
    git("clone", "-q", url + ".git", str(tmp_path / "back"), env=bearer)
    back = tmp_path / "back"
    assert (back / "weights.bin").read_bytes() == payload
    git("lfs", "fsck", cwd=back, env=bearer)
    git("lfs", "pull", cwd=back, env=bearer)


def test_git_refuses_wrong_tokens_read_tokens_and_strangers(hf: Any, tokens: dict[str, str],
                                                            unique_name: Callable, git: Callable,
                                                            auth_env: Callable, tmp_path: Path) -> None:
    repo = f"alice/{unique_name('deny')}"
    hf.create_repo(repo, private=True)
    url = hf.git_url(repo)

    wrong = git("ls-remote", url, check=False, env=helper_env("sbxhf_" + "2" * 40))
    assert wrong.returncode != 0 and "remote: Invalid username or password." in wrong.stderr
    assert "Authentication failed" in wrong.stderr
    assert git("ls-remote", url, check=False, env=auth_env(hf.endpoint, "sbxhf_" + "2" * 40)).returncode != 0
    anonymous = git("ls-remote", url, check=False)
    assert anonymous.returncode != 0
    stranger = git("ls-remote", url, check=False, env=auth_env(hf.endpoint, tokens["bob"]))
    assert stranger.returncode != 0 and "Repository not found" in stranger.stderr

    read_env = auth_env(hf.endpoint, tokens["alice_read"])
    git("clone", "-q", url, str(tmp_path / "w"), env=read_env)
    (tmp_path / "w" / "a.txt").write_text("a\n")
    git("add", ".", cwd=tmp_path / "w")
    git("commit", "-q", "-m", "a", cwd=tmp_path / "w")
    push = git("push", "origin", "main", check=False, cwd=tmp_path / "w", env=read_env)
    assert push.returncode != 0 and "you must use a write token" in push.stderr
    statuses = hf.counters.snapshot().statuses
    assert statuses.get("git-receive-pack", {}).get(403, 0) + statuses.get("git-info-refs", {}).get(403, 0) >= 1


def test_gated_content_needs_accepted_terms(hf: Any, tokens: dict[str, str], unique_name: Callable,
                                            git: Callable, auth_env: Callable) -> None:
    repo = f"alice/{unique_name('gate')}"
    hf.create_repo(repo, gated="auto")
    url, bob = hf.git_url(repo), auth_env(hf.endpoint, tokens["bob"])
    refused = git("ls-remote", url, check=False, env=bob)
    assert refused.returncode != 0 and "is restricted and you are not in the authorized list" in refused.stderr
    batch = requests.post(f"{hf.lfs_url(repo)}/objects/batch", timeout=10,
                          headers={"Authorization": f"Bearer {tokens['bob']}",
                                   "Content-Type": "application/vnd.git-lfs+json"},
                          json={"operation": "download", "objects": [{"oid": "a" * 64, "size": 1}]})
    assert batch.status_code == 403 and batch.headers["X-Error-Code"] == "GatedRepo"
    hf.repo(repo).accepted.add("bob")
    assert "refs/heads/main" in git("ls-remote", url, env=bob).stdout
    git("ls-remote", url, env=auth_env(hf.endpoint, tokens["alice"]))  # the owner needs no acceptance


def test_batch_offers_multipart_above_threshold_only_when_asked(hf: Any, tokens: dict[str, str],
                                                                unique_name: Callable) -> None:
    repo = f"alice/{unique_name('mp')}"
    hf.create_repo(repo)
    headers = {"Authorization": f"Bearer {tokens['alice']}", "Accept": "application/vnd.git-lfs+json",
               "Content-Type": "application/vnd.git-lfs+json"}

    def batch(transfers: list[str], size: int) -> dict[str, Any]:
        body = {"operation": "upload", "transfers": transfers, "hash_algo": "sha256",
                "objects": [{"oid": hashlib.sha256(str(size).encode()).hexdigest(), "size": size}]}
        response = requests.post(f"{hf.lfs_url(repo)}/objects/batch", data=json.dumps(body),
                                 headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    big = batch(["basic", "multipart"], 5000)
    assert big["transfer"] == "multipart"
    upload = big["objects"][0]["actions"]["upload"]
    assert "chunk_size" in upload["header"] and "00001" in upload["header"]  # zero-padded, as huggingface.js says
    assert batch(["basic"], 5000)["transfer"] == "basic"
    assert batch(["basic", "multipart"], 500)["transfer"] == "basic"


def test_multipart_upload_as_huggingface_hub_does_it(hf: Any, tokens: dict[str, str],
                                                     unique_name: Callable) -> None:
    """Parts PUT to the numbered header URLs (no Authorization), completion POSTed to the
    action href with the ETags, then verify with the token: the object is stored."""
    repo = f"alice/{unique_name('mpup')}"
    hf.create_repo(repo)
    data = random_bytes(2500, seed="multipart")
    oid = hashlib.sha256(data).hexdigest()
    lfs_headers = {"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/vnd.git-lfs+json"}
    body = {"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
            "objects": [{"oid": oid, "size": len(data)}]}
    answer = requests.post(f"{hf.lfs_url(repo)}/objects/batch", json=body, headers=lfs_headers, timeout=10).json()
    actions = answer["objects"][0]["actions"]
    upload = actions["upload"]
    chunk = int(upload["header"]["chunk_size"])
    urls = {int(k): url for k, url in upload["header"].items() if k.isdigit()}  # keys as numbers, any width
    numbers = sorted(urls)
    assert len(numbers) == -(-len(data) // chunk) > 1
    parts = []
    for number in numbers:
        piece = data[(number - 1) * chunk: number * chunk]
        put = requests.put(urls[number], data=piece, timeout=10)
        assert put.status_code == 200, put.text
        parts.append({"partNumber": number, "etag": put.headers["ETag"]})
    done = requests.post(upload["href"], json={"oid": oid, "parts": parts}, timeout=10)
    assert done.status_code == 200, done.text
    verify = actions["verify"]
    checked = requests.post(verify["href"], json={"oid": oid, "size": len(data)}, timeout=10,
                            headers={**verify.get("header", {}), **lfs_headers})
    assert checked.status_code == 200, checked.text
    assert hf.has_lfs_object(repo, oid)
    again = requests.post(f"{hf.lfs_url(repo)}/objects/batch", json=body, headers=lfs_headers, timeout=10).json()
    assert "actions" not in again["objects"][0]  # already stored


def test_push_policy_refuses_big_plain_files_and_main_deletion(sandbox: Any, unique_name: Callable, git: Callable,
                                                               auth_env: Callable, tmp_path: Path) -> None:
    hub = sandbox.add_hub("huggingface", name=unique_name("hf-policy"), max_plain_blob_size=2000,
                          pr_refs_need_pr=False)  # PR refs on their own: tests/sandbox/test_hf_refusals.py
    hub.add_user("carol")
    token = hub.issue_token("carol")
    repo = "carol/policy"
    hub.create_repo(repo)
    env = auth_env(hub.endpoint, token)
    work = tmp_path / "w"
    git("clone", "-q", hub.git_url(repo), str(work), env=env)
    (work / "big.txt").write_bytes(b"x" * 5000)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "big", cwd=work)
    refused = git("push", "origin", "main", check=False, cwd=work, env=env)
    assert refused.returncode != 0
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git("push", "-q", "origin", "HEAD:refs/heads/dev", cwd=work, env=env)
    assert git("push", "origin", ":main", check=False, cwd=work, env=env).returncode != 0
    assert "refs/heads/main" in hub.refs(repo)
    assert git("push", "origin", "HEAD:refs/convert/parquet", check=False, cwd=work, env=env).returncode != 0
    git("push", "-q", "origin", "HEAD:refs/pr/3", cwd=work, env=env)
    assert "refs/pr/3" in hub.refs(repo)



def test_dataset_and_space_git_urls_with_lfs(hf: Any, tokens: dict[str, str], unique_name: Callable, git: Callable,
                                             auth_env: Callable, tmp_path: Path) -> None:
    client = api(hf, tokens["alice"])
    dataset = client.create_repo(f"acme/{unique_name('ds')}", repo_type="dataset", private=True)
    space = client.create_repo(f"alice/{unique_name('sp')}", repo_type="space", space_sdk="static")
    env = auth_env(hf.endpoint, tokens["alice"])
    assert hf.git_url(dataset.repo_id, "dataset") == f"{hf.endpoint}/datasets/{dataset.repo_id}"
    assert "refs/heads/main" in git("ls-remote", f"{hf.endpoint}/spaces/{space.repo_id}.git", env=env).stdout

    work = tmp_path / "ds"
    git("clone", "-q", str(dataset), str(work), env=env)
    payload = random_bytes(50_000, seed="hf-dataset")
    _lfs_commit(git, work, payload, name="train.parquet")
    git("push", "-q", "origin", "main", cwd=work, env=env)
    assert hf.has_lfs_object(dataset.repo_id, hashlib.sha256(payload).hexdigest(), repo_type="dataset")
    # The same name as a model is another (missing) repository.
    assert git("ls-remote", f"{hf.endpoint}/{dataset.repo_id}", check=False, env=env).returncode != 0
