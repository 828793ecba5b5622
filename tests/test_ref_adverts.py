"""The ref advertisement read in-process (issue 15, "A thousand mirrors"): the same refs, HEAD and
peeled tags as ``git ls-remote --symref``, the same error classes, one request, no git child and
no token in any URL or argv."""

from __future__ import annotations

import subprocess

import pytest

from gitmirror import refadvert
from gitmirror.errors import AuthError, GitMirrorError, PermissionDeniedError, RepoNotFoundError, TransientError
from gitmirror.httpclient import HttpClient
from gitmirror.remote import GitAuth, Remote, RemoteRefs, parse_ls_remote
from gitmirror.retry import FAST, RetryPolicy
from gitmirror.sandbox.seed import RepoBuilder
from judges import auth_env

pytestmark = pytest.mark.timeout(300)

ONE_TRY = RetryPolicy(attempts=1, read_timeout=20.0)


@pytest.fixture(scope="module")
def hubs(sandbox):
    made = {kind: sandbox.add_hub(kind) for kind in ("huggingface", "modelscope", "git")}
    for hub in made.values():
        hub.add_user("alice", orgs=("org",))
    return made


def _seed(hub, repo_id: str, *, private: bool = False) -> None:
    """Branches, an annotated and a lightweight tag, a refs/pr/* ref and HEAD on a second branch."""
    b = RepoBuilder()
    first = b.commit({"README.md": repo_id})
    b.commit({"a.txt": "two"})
    b.branch("dev", first)
    b.tag("v1", message="annotated")
    b.tag("light")
    b.ref("refs/pr/1", first)
    b.ref("refs/pr/2", first)
    b.push_to_hub(hub, repo_id, private=private)
    subprocess.run(["git", "--git-dir", str(hub.repo_path(repo_id)), "symbolic-ref", "HEAD", "refs/heads/dev"],
                   check=True)


def _git_ls_remote(url: str, env: dict[str, str], *extra: str) -> RemoteRefs:
    out = subprocess.run(["git", *extra, "ls-remote", "--symref", url], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return parse_ls_remote(out)


def _auth(hub, token: str) -> GitAuth:
    if hub.kind.name == "modelscope":
        return GitAuth("oauth2", hub.git_token_for(token))
    return GitAuth("user", token)


@pytest.mark.parametrize("kind", ["huggingface", "modelscope", "git"])
@pytest.mark.parametrize("private", [False, True])
def test_in_process_listing_equals_git_ls_remote(hubs, git_env, unique_name, kind, private):
    hub = hubs[kind]
    if private and kind == "git":
        pytest.skip("the plain git kind has no private repositories")
    repo_id = f"org/{unique_name('adv')}"
    _seed(hub, repo_id, private=private)
    url = hub.git_url(repo_id)
    auth = _auth(hub, hub.issue_token("alice")) if private else None
    env = auth_env(url, auth.username, auth.password, git_env) if auth else git_env
    expected = _git_ls_remote(url, env, "-c", "protocol.version=0")
    assert expected.head == "refs/heads/dev" and expected.peeled and "refs/pr/1" in expected.refs

    hub.counters.reset()
    got = Remote(url, auth, ONE_TRY).ls_remote()
    assert got == expected
    snap = hub.counters.snapshot()
    assert snap.count("git-info-refs") == 1 and snap.count("git-upload-pack") == 0

    # Protocol v2: ls-refs with ref prefixes; what it sends is git's own listing, less refs/pr/*.
    hub.counters.reset()
    with HttpClient() as http:
        v2 = refadvert.list_refs(http, url, authorization=auth.basic_header() if auth else None, protocol=2)
    assert hub.counters.snapshot().count("git-upload-pack") == 1  # the ls-refs POST: v2 did happen
    assert v2.refs == {k: v for k, v in expected.refs.items() if not k.startswith("refs/pr/")}
    assert (v2.head, v2.peeled) == (expected.head, expected.peeled)
    v2_git = _git_ls_remote(url, env, "-c", "protocol.version=2")
    assert v2_git.refs == expected.refs and v2_git.head == v2.head


@pytest.mark.parametrize("kind", ["huggingface", "git"])
def test_a_new_repository_lists_like_git(hubs, git_env, unique_name, kind):
    hub = hubs[kind]
    repo_id = f"org/{unique_name('empty')}"
    hub.create_repo(repo_id)
    url = hub.git_url(repo_id)
    expected = _git_ls_remote(url, git_env, "-c", "protocol.version=0")
    got = Remote(url, None, ONE_TRY).ls_remote()
    assert got == expected


def _classified(fn) -> type[GitMirrorError]:
    with pytest.raises(GitMirrorError) as info:
        fn()
    return type(info.value)


@pytest.mark.parametrize("status,cls", [(401, AuthError), (403, PermissionDeniedError), (404, RepoNotFoundError),
                                        (429, TransientError), (503, TransientError)])
def test_failed_answers_are_classified_as_git_ls_remote_would_be(hubs, unique_name, status, cls):
    hub = hubs["huggingface"]
    repo_id = f"org/{unique_name('status')}"
    _seed(hub, repo_id)
    remote = Remote(hub.git_url(repo_id), None, ONE_TRY)
    hub.faults.fail(route="git-info-refs", status=status, times=None)
    try:
        ours = _classified(remote.ls_remote)
        gits = _classified(remote._git_ls_remote)  # the old path: git's own client, classified from its stderr
    finally:
        hub.faults.clear()
    assert ours is gits is cls


def test_real_refusals_match_git(hubs, unique_name):
    """The hubs' own answers, no injected fault: a private repository without a token, with a
    wrong one, and a repository that does not exist."""
    hub = hubs["huggingface"]
    repo_id = f"org/{unique_name('priv')}"
    _seed(hub, repo_id, private=True)
    cases = [Remote(hub.git_url(repo_id), None, ONE_TRY),
             Remote(hub.git_url(repo_id), GitAuth("user", "hf_not_a_token"), ONE_TRY),
             Remote(hub.git_url(f"org/{unique_name('missing')}"), None, ONE_TRY)]
    for remote in cases:
        assert _classified(remote.ls_remote) is _classified(remote._git_ls_remote)


def test_transient_answers_are_retried_honouring_retry_after(hubs, unique_name):
    hub = hubs["modelscope"]
    repo_id = f"org/{unique_name('retry')}"
    _seed(hub, repo_id)
    retries: list[str] = []
    remote = Remote(hub.git_url(repo_id), None, FAST, on_retry=lambda what, exc: retries.append(type(exc).__name__))
    hub.faults.fail(route="git-info-refs", status=429, retry_after=0.2, times=1)
    hub.faults.fail(route="git-info-refs", status=503, times=1)
    hub.counters.reset()
    try:
        refs = remote.ls_remote()
    finally:
        hub.faults.clear()
    assert refs.head == "refs/heads/dev" and "refs/tags/v1" in refs.refs
    assert retries == ["TransientError", "TransientError"]
    assert hub.counters.snapshot().count("git-info-refs") == 3


def test_no_git_child_and_no_token_in_urls(hubs, unique_name, argv_log, monkeypatch, tmp_path):
    hub = hubs["modelscope"]
    repo_id = f"org/{unique_name('hyg')}"
    _seed(hub, repo_id, private=True)
    token = hub.issue_token("alice")
    auth = _auth(hub, token)
    bindir, log = argv_log
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    hub.counters.reset()
    refs = Remote(hub.git_url(repo_id), auth, ONE_TRY).ls_remote()
    assert refs.head == "refs/heads/dev"
    # (The in-process sandbox may ask `git --exec-path` for its backend: only a listing counts.)
    assert not log.exists() or "ls-remote" not in log.read_text(), "an http(s) listing spawned git"
    paths = " ".join(hub.counters.snapshot().paths)
    assert auth.password not in paths and token not in paths
    # A local path still goes through git ls-remote (and the wrapper sees it).
    local = Remote(str(hub.repo_path(repo_id)), None, ONE_TRY).ls_remote()
    assert local == refs
    assert "ls-remote" in log.read_text()
    assert auth.password not in log.read_text()


def test_a_dumb_answer_falls_back_to_git(hubs, unique_name):
    """A 200 that is not a smart-HTTP advertisement (here an HTML page) is left to git's client."""
    hub = hubs["git"]
    repo_id = f"org/{unique_name('dumb')}"
    _seed(hub, repo_id)
    remote = Remote(hub.git_url(repo_id), None, ONE_TRY)
    hub.faults.fail(route="git-info-refs", status=200, body="<html>hello</html>", times=1)
    try:
        refs = remote.ls_remote()  # the first answer is HTML; git's own request then gets the real one
    finally:
        hub.faults.clear()
    assert refs.head == "refs/heads/dev" and "refs/heads/main" in refs.refs


def test_help_does_not_import_dulwich():
    code = "import sys, gitmirror.cli, gitmirror.remote, gitmirror.refadvert; print('dulwich' in sys.modules)"
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

