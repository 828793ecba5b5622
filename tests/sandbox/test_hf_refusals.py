"""What the hubs refuse on push, as plain git meets it: Hugging Face's binary and large file rules
over the whole pushed history, its pull-request refs, and GitLab's (ModelScope's) branch names.

The histories are the ones tests/test_hub_rules.py gives gitmirror, so the client's own check and
the hub agree. Judged by git's exit status and words, and by the hub's refs afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from huggingface_hub import HfApi

from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

pytestmark = pytest.mark.timeout(180)

BINARY_HEADLINE = "Your push was rejected because it contains binary files."


def binary(size: int, seed: str) -> bytes:
    """``size`` bytes that git calls binary (a NUL at the start)."""
    return b"\0" + random_bytes(size - 1, seed)


def text(size: int) -> bytes:
    line = b"a line of plain text that git reads as text\n"
    return (line * (size // len(line) + 1))[:size]


def history(files: dict[str, Any], delete_later: bool = False) -> RepoBuilder:
    """README first, then ``files`` in a second commit, and (``delete_later``) a third commit
    deleting them again, so that only the history, not the tip, holds them."""
    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# model\n"})
    b.commit(files, message="Add files")
    if delete_later:
        b.commit(delete=list(files), message="Delete them again")
    return b


@pytest.fixture
def hf_push(sandbox: Any, unique_name: Callable, git: Callable, auth_env: Callable, tmp_path: Path) -> Callable:
    """``push(builder, refspecs, hub=None, repo=None, kind="huggingface", **hub_options)`` ->
    (git's result, hub, repo): writes the history into a local repository and pushes it with
    plain git; to a new, empty repository unless ``repo`` is given, on a hub of ``kind`` with
    ``hub_options`` (one hub per kind and options) unless ``hub`` is given."""
    shared = {}

    def push(builder: RepoBuilder, refspecs: tuple[str, ...] = ("refs/heads/main:refs/heads/main",),
             hub: Any = None, repo: str | None = None, kind: str = "huggingface",
             **options: Any) -> tuple[Any, Any, str]:
        if hub is None:
            key = (kind, tuple(sorted(options.items())))
            if key not in shared:
                shared[key] = sandbox.add_hub(kind, name=unique_name(f"{kind[:2]}-rules"), **options)
                shared[key].add_user("carol")
            hub = shared[key]
        if repo is None:
            repo = f"carol/{unique_name('r')}"
            hub.create_repo(repo, initial_commit=False)
        local = tmp_path / unique_name("local")
        git("init", "-q", "--bare", str(local))
        builder.write(local, local / "lfs" / "objects")
        token = hub.issue_token("carol")
        user = "oauth2" if kind == "modelscope" else "user"
        if kind == "modelscope":
            token = hub.git_token_for(token)
        done = git("--git-dir", str(local), "push", "--porcelain", hub.git_url(repo), *refspecs,
                   check=False, env={**auth_env(hub.endpoint, token, user=user), "GIT_LFS_SKIP_PUSH": "1"})
        return done, hub, repo

    return push


def refused(done: Any) -> str:
    """git's words for a push the pre-receive hook refused (the test fails if it was not)."""
    assert done.returncode != 0, done.stdout + done.stderr
    assert "pre-receive hook declined" in done.stdout + done.stderr
    return done.stderr


def test_binary_file_deleted_later_still_blocks_in_the_hubs_words(hf_push: Callable) -> None:
    done, hub, repo = hf_push(history({"media/clip.mp4": binary(2_000_000, "clip")}, delete_later=True))
    words = refused(done)
    assert BINARY_HEADLINE in words
    assert "Offending files:" in words
    assert " - media/clip.mp4 (ref: refs/heads/main)" in words
    assert "[remote rejected]" in done.stdout or "[remote rejected]" in words
    assert hub.refs(repo) == {}


@pytest.mark.parametrize(("size", "accepted"), [(1_670_000, False), (900_000, True)])
def test_binary_boundary_one_megabyte(hf_push: Callable, size: int, accepted: bool) -> None:
    """A 1.67 MB binary (the 2026 report's mp4) is refused; a 0.9 MB one goes through."""
    builder = history({"sample.wav": binary(size, f"b{size}")})
    done, hub, repo = hf_push(builder)
    if accepted:
        assert done.returncode == 0, done.stderr
        assert hub.refs(repo) == {"refs/heads/main": builder.tip().sha}
    else:
        assert " - sample.wav (ref: refs/heads/main)" in refused(done)
        assert hub.refs(repo) == {}


def test_large_text_file_is_refused_but_a_large_text_file_under_10_mib_is_not(hf_push: Callable) -> None:
    done, hub, repo = hf_push(history({"vocab.txt": text(11 * 1000 * 1000)}))
    refused(done)
    assert hub.refs(repo) == {}
    builder = history({"vocab.txt": text(2 * 1000 * 1000)})  # text, not binary: only the 10 MiB rule
    done, hub, repo = hf_push(builder)
    assert done.returncode == 0, done.stderr
    assert hub.refs(repo)["refs/heads/main"] == builder.tip().sha


def test_the_same_binary_in_lfs_is_accepted(hf_push: Callable) -> None:
    data = binary(2_000_000, "clip")
    builder = history({"media/clip.mp4": lfs(data)}, delete_later=True)
    done, hub, repo = hf_push(builder)
    # The hub refuses pointers whose object it lacks: upload it first, as a client would.
    assert "LFS objects are missing" in refused(done)
    hub.put_lfs_object(repo, data)
    done = hf_push(builder, hub=hub, repo=repo)[0]
    assert done.returncode == 0, done.stderr
    assert hub.refs(repo) == {"refs/heads/main": builder.tip().sha}


def test_relaxing_option_lets_binary_files_through(hf_push: Callable) -> None:
    builder = history({"media/clip.mp4": binary(2_000_000, "clip")})
    done, hub, repo = hf_push(builder, max_binary_plain_blob_size=None)
    assert done.returncode == 0, done.stderr
    assert hub.refs(repo) == {"refs/heads/main": builder.tip().sha}


def test_pr_refs_need_a_pull_request_opened_through_the_api(hf_push: Callable) -> None:
    builder = history({"notes.txt": "hello\n"})
    builder.commit({"notes.txt": "change\n"}, branch="refs/pr/1", base="main", message="PR work")
    done, hub, repo = hf_push(builder, ("refs/heads/main:refs/heads/main", "refs/pr/1:refs/pr/1"))
    assert "DENIED create refs/pr/1" in refused(done)
    assert hub.refs(repo) == {}  # one refused ref refuses the whole push (the hook declines it all)

    done, hub, repo = hf_push(builder, ("refs/heads/main:refs/heads/main",), hub=hub, repo=repo)
    assert done.returncode == 0, done.stderr
    # huggingface_hub's own create_pull_request opens PR #1; its ref starts at main.
    token = hub.issue_token("carol")
    opened = HfApi(endpoint=hub.endpoint, token=token).create_pull_request(repo, title="Mirror work")
    assert opened.num == 1 and opened.is_pull_request and opened.target_branch == "refs/heads/main"
    assert hub.refs(repo)["refs/pr/1"] == builder.tip("main").sha
    done = hf_push(builder, ("refs/pr/1:refs/pr/1",), hub=hub, repo=repo)[0]
    assert done.returncode == 0, done.stderr
    assert hub.refs(repo)["refs/pr/1"] == builder.tip("refs/pr/1").sha
    # PR #2 was never opened.
    done = hf_push(builder, ("refs/pr/1:refs/pr/2",), hub=hub, repo=repo)[0]
    assert "DENIED create refs/pr/2" in refused(done)
    assert "refs/pr/2" not in hub.refs(repo)


def test_relaxing_option_lets_a_push_create_pr_refs(hf_push: Callable) -> None:
    builder = history({"notes.txt": "hello\n"})
    builder.ref("refs/pr/5", builder.tip())
    done, hub, repo = hf_push(builder, ("refs/heads/main:refs/heads/main", "refs/pr/5:refs/pr/5"),
                              pr_refs_need_pr=False)
    assert done.returncode == 0, done.stderr
    assert hub.refs(repo)["refs/pr/5"] == builder.tip().sha


@pytest.mark.parametrize("branch", ["HEAD", "0123456789abcdef0123456789abcdef01234567", "-dash"])
def test_modelscope_refuses_gitlab_invalid_branch_names(hf_push: Callable, branch: str) -> None:
    builder = RepoBuilder(default_branch="master")
    builder.commit({"README.md": "# model\n"})
    builder.ref(f"refs/heads/{branch}", builder.tip())
    done, hub, repo = hf_push(builder, ("refs/heads/master:refs/heads/master", f"refs/heads/{branch}:refs/heads/{branch}"),
                              kind="modelscope")
    words = refused(done)
    assert "You cannot create a branch with" in words
    assert hub.refs(repo) == {}
    done, hub, repo = hf_push(builder, ("refs/heads/master:refs/heads/master",), kind="modelscope")
    assert done.returncode == 0, done.stderr
