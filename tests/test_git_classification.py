"""A git failure's class comes from what git reports as a status, never from user data.

Repository owners, names, file paths and ref names carry numbers (``vit-base-512``, ``org-403``,
``models/429/...``) and words (``read-only``, ``not-found``); the server's ``remote:`` lines carry
a hook's free text. None of it may decide a class. Texts marked "git 2.39" were captured from git
against the sandbox; the live tests below produce them again with whatever git is installed.
"""

from __future__ import annotations

import subprocess

import pytest

from gitmirror import api
from gitmirror.errors import (
    AuthError,
    DivergedError,
    EnvironmentProblem,
    GitMirrorError,
    PermissionDeniedError,
    PushRefusedError,
    RepoNotFoundError,
    TransientError,
    error_for_git,
)
from gitmirror.push_outcome import error_for_push, parse_push_porcelain
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes

from judges import auth_env, remote_refs

pytestmark = pytest.mark.timeout(300)

#: Every number a status rule could match: the statuses with a meaning, and every 5xx.
NUMBERS = [400, 401, 403, 404, 408, 409, 413, 422, 425, 429, *range(500, 600)]


def url_for(n: int) -> str:
    return f"http://127.0.0.1:40{n % 100:02d}/org-{n}/vit-base-{n}.git/"


# --- unit: git's own stderr texts around names that hold numbers --------------------------------

@pytest.mark.parametrize("n", NUMBERS)
def test_numbers_in_urls_names_and_paths_never_read_as_a_status(n):
    url = url_for(n)
    assert type(error_for_git(f"fatal: repository '{url}' not found", "x")) is RepoNotFoundError
    assert type(error_for_git(f"fatal: unable to access '{url}': The requested URL returned error: 403", "x")) \
        is PermissionDeniedError
    assert type(error_for_git(f"fatal: Authentication failed for '{url}'", "x")) is AuthError
    assert type(error_for_git(f"fatal: unable to access '{url}': Failed to connect to 127.0.0.1 port 40{n % 100:02d} "
                              "after 0 ms: Connection refused", "x")) is TransientError
    # A server's hook text with numbers and paths, then git's own verdict: the verdict decides.
    hook = (f"remote: Offending files:\nremote:   - models/{n}/w-{n}.bin (ref: refs/heads/v{n})\n"
            f"remote: HTTP error {n}\nerror: failed to push some refs to '{url}'")
    statuses = parse_push_porcelain(f"To {url}\n!\trefs/heads/v{n}:refs/heads/v{n}\t[remote rejected] "
                                    "(pre-receive hook declined)\nDone\n")
    refused = error_for_push(statuses, hook, "pushing")
    assert type(refused) is PushRefusedError and refused.refs == (f"refs/heads/v{n}",)
    assert f"models/{n}/w-{n}.bin" in str(refused)


@pytest.mark.parametrize(("stderr", "expected"), [
    # The server's words never decide, whatever they say: each trap names another class.
    ("remote: error: write error: No space left on device\nfatal: the remote end hung up unexpectedly", TransientError),
    ("remote: Permission denied, read-only\nremote: RPC failed; HTTP 503\nfatal: Authentication failed for "
     "'http://h/o/m-503/'", AuthError),
    ("remote: Authentication failed\nremote: HTTP error 404\nfatal: the remote end hung up unexpectedly", TransientError),
    ("remote: The requested URL returned error: 404\nfatal: unable to access 'http://h/o/m/': "
     "The requested URL returned error: 403", PermissionDeniedError),
    # Words with a slash (refs, owner/name, paths) and stand-alone words inside names do not either.
    ("error: src refspec refs/heads/connection-refused/not-found does not match any\nfatal: unable to access "
     "'http://h/o/m/': The requested URL returned error: 401", AuthError),
    ("fatal: couldn't find remote ref refs/heads/forbidden-read-only-429", GitMirrorError),
    ("error: src refspec forbidden-read-only does not match any", GitMirrorError),
    # git's own phrases still decide when git is the one saying them.
    ("fatal: write error: No space left on device", EnvironmentProblem),
    ("fatal: could not read Username for 'http://h': terminal prompts disabled", AuthError),
    ("fatal: 'https://h/org/x' does not appear to be a git repository", RepoNotFoundError),
])
def test_only_gits_own_words_decide(stderr, expected):
    assert type(error_for_git(stderr, "x")) is expected


# --- unit: git 2.39's own texts, captured against the sandbox (the live tests below regenerate them) ---

HUB = "http://127.0.0.1:46343/org-403/vit-base-512/"
SENT_PACK = "send-pack: unexpected disconnect while reading sideband packet\nfatal: the remote end hung up unexpectedly"
RECORDED = {
    "ls-remote 401": ("error: unable to read askpass response from '/bin/false'\n"
                      "fatal: could not read Username for 'http://127.0.0.1:46343': terminal prompts disabled", AuthError),
    "ls-remote 403": (f"fatal: unable to access '{HUB}': The requested URL returned error: 403", PermissionDeniedError),
    "ls-remote 404": (f"fatal: repository '{HUB}' not found", RepoNotFoundError),
    "ls-remote 429": (f"fatal: unable to access '{HUB}': The requested URL returned error: 429", TransientError),
    "ls-remote 500": (f"fatal: unable to access '{HUB}': The requested URL returned error: 500", TransientError),
    "ls-remote 503": (f"fatal: unable to access '{HUB}': The requested URL returned error: 503", TransientError),
    "push 401": ("error: unable to read askpass response from '/bin/false'\n"
                 "fatal: could not read Username for 'http://127.0.0.1:39313': terminal prompts disabled\n"
                 "error: failed to push some refs to 'http://127.0.0.1:39313/models/org-403/vit-base-512.git'\n"
                 + SENT_PACK, AuthError),
    "push 403": ("error: RPC failed; HTTP 403 curl 22 The requested URL returned error: 403\n" + SENT_PACK,
                 PermissionDeniedError),
    "push 404": ("error: RPC failed; HTTP 404 curl 22 The requested URL returned error: 404\n" + SENT_PACK,
                 RepoNotFoundError),
    "push 429": ("error: RPC failed; HTTP 429 curl 22 The requested URL returned error: 429\n" + SENT_PACK, TransientError),
    "push 500": ("error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500\n" + SENT_PACK, TransientError),
    "push 503": ("error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503\n" + SENT_PACK, TransientError),
    "connection refused": ("fatal: unable to access 'http://127.0.0.1:1/org-403/vit-base-512.git/': Failed to connect "
                           "to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server", TransientError),
}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_recorded_git_texts(case):
    stderr, expected = RECORDED[case]
    error = error_for_git(stderr, "x")
    assert type(error) is expected
    digits = [int(w) for w in case.split() if w.isdigit()]
    if digits and expected is TransientError:
        assert error.status == digits[0]
    # No push refusal hides in these: the push path classifies them the same way.
    assert type(error_for_push([], stderr, "x")) is expected


#: git 2.39 over smart HTTP, --atomic, when the destination moved to a commit we do not have: git
#: refuses the ref itself ("fetch first"), then trips over its own helper's output.
ATOMIC_FETCH_FIRST = (
    "To http://127.0.0.1:46343/org-403/vit-base-512\n"
    "!\tbb9232e737e4b914008af6d9b80325679f1dc0ae:refs/heads/main\t[rejected] (fetch first)\n",
    "error: atomic push failed for ref refs/heads/main. status: 5\n\n"
    "fatal: protocol error: bad line length character: erro\n"
    "error: failed to push some refs to 'http://127.0.0.1:46343/org-403/vit-base-512'\n"
    "hint: Updates were rejected because the remote contains work that you do\n",
)


def test_the_atomic_lost_race_with_a_protocol_error_is_a_divergence_not_a_network_fault():
    stdout, stderr = ATOMIC_FETCH_FIRST
    error = error_for_push(parse_push_porcelain(stdout), stderr, "x")
    assert type(error) is DivergedError and not error.transient and "fetch first" in str(error)
    # Even with the porcelain line lost, git's "atomic push failed" says the same.
    assert type(error_for_push([], stderr, "x")) is DivergedError


# --- unit: push verdicts ------------------------------------------------------------------------

HOOK_DECLINED_ATOMIC = (
    "To http://127.0.0.1:4403/org/m.git\n"
    "!\trefs/heads/main:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n"
    "!\trefs/heads/dev:refs/heads/dev\t[remote rejected] (pre-receive hook declined)\n"
    "Done\n"
)


def test_porcelain_lines_are_parsed():
    text = ("To http://h/org/m.git\n"
            "*\t0123abcd:refs/heads/new\t[new branch]\n"
            " \trefs/heads/a:refs/heads/a\t1111111..2222222\n"
            "+\trefs/heads/b:refs/heads/b\t3333333...4444444 (forced update)\n"
            "-\t:refs/heads/gone\t[deleted]\n"
            "=\trefs/tags/v1:refs/tags/v1\t[up to date]\n"
            "!\trefs/heads/c:refs/heads/c\t[rejected] (stale info)\n"
            "!\trefs/heads/d:refs/heads/d\t[remote rejected] (deny deleting current branch)\n"
            "Done\n")
    got = [(s.flag, s.ref, s.summary, s.reason) for s in parse_push_porcelain(text)]
    assert got == [
        ("*", "refs/heads/new", "[new branch]", ""),
        (" ", "refs/heads/a", "1111111..2222222", ""),
        ("+", "refs/heads/b", "3333333...4444444", "forced update"),
        ("-", "refs/heads/gone", "[deleted]", ""),
        ("=", "refs/tags/v1", "[up to date]", ""),
        ("!", "refs/heads/c", "[rejected]", "stale info"),
        ("!", "refs/heads/d", "[remote rejected]", "deny deleting current branch"),
    ]


def test_a_hook_refusal_names_every_ref_with_the_servers_words_on_one_line():
    secret = "sbxhf_" + "s3cr3t" * 4
    from gitmirror.errors import register_secret

    register_secret(secret)
    stderr = ("remote: Your push was rejected because it contains files larger than 10 MiB.\n"
              "remote: Please use Git LFS to store large files.\nremote: \nremote: Offending files:\n"
              f"remote:   - data/big.bin (ref: refs/heads/main)\nremote: token {secret}\n"
              "error: failed to push some refs to 'http://127.0.0.1:4403/org/m.git'")
    error = error_for_push(parse_push_porcelain(HOOK_DECLINED_ATOMIC), stderr, "pushing to X")
    assert type(error) is PushRefusedError and error.exit_code == 7 and not error.transient
    assert error.refs == ("refs/heads/main", "refs/heads/dev")
    text = str(error)
    assert "\n" not in text and secret not in text
    assert "refs/heads/main, refs/heads/dev (pre-receive hook declined)" in text
    assert ("Your push was rejected because it contains files larger than 10 MiB. Please use Git LFS to store large "
            "files. Offending files: - data/big.bin (ref: refs/heads/main)") in text


def test_the_servers_words_are_capped():
    stderr = "\n".join(f"remote: line {i} " + "x" * 80 for i in range(200))
    error = error_for_push(parse_push_porcelain(HOOK_DECLINED_ATOMIC), stderr, "pushing")
    assert len(str(error)) < 1000 and "line 0" in str(error) and "line 199" not in str(error)


@pytest.mark.parametrize("reason", ["stale info", "fetch first", "non-fast-forward", "already exists"])
def test_a_ref_git_rejected_before_sending_is_a_lost_race(reason):
    stdout = (f"To http://h/org/m.git\n!\trefs/heads/main:refs/heads/main\t[rejected] ({reason})\n"
              "!\trefs/tags/v1:refs/tags/v1\t[rejected] (atomic push failed)\nDone\n")
    error = error_for_push(parse_push_porcelain(stdout), "error: failed to push some refs to 'http://h/org/m.git'", "x")
    assert type(error) is DivergedError and error.exit_code == 6 and not error.transient
    assert "refs/heads/main" in str(error) and reason in str(error)


def test_a_ref_moved_on_the_server_is_a_lost_race_and_a_failed_update_otherwise_a_refusal():
    stdout = ("To http://h/org/m.git\n!\trefs/heads/main:refs/heads/main\t[remote rejected] (atomic transaction failed)\n"
              "!\trefs/heads/x:refs/heads/x\t[remote rejected] (atomic transaction failed)\nDone\n")
    moved = ("remote: error: cannot lock ref 'refs/heads/main': is at 0123456789abcdef0123456789abcdef01234567 "
             "but expected 89abcdef0123456789abcdef0123456789abcdef\nerror: failed to push some refs to 'http://h/o/m'")
    assert type(error_for_push(parse_push_porcelain(stdout), moved, "x")) is DivergedError
    other = "remote: error: unable to write file\nerror: failed to push some refs to 'http://h/o/m'"
    assert type(error_for_push(parse_push_porcelain(stdout), other, "x")) is PushRefusedError


def test_without_a_refused_ref_stderr_decides():
    error = error_for_push([], "error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503\n"
                               "fatal: the remote end hung up unexpectedly", "x")
    assert type(error) is TransientError and error.status == 503


# --- end to end: names that hold every number, with and without a fault -------------------------

#: Owner and name both hold numbers a rule could match; so do the source's file paths.
NAMED = [("org-403", "vit-base-512"), ("org-404", "bert-429-408"), ("org-500", "gpt-503-599-1024")]


@pytest.fixture(scope="module")
def numbered_hubs(sandbox):
    hf, ms = sandbox.add_hub("huggingface"), sandbox.add_hub("modelscope")
    for hub in (hf, ms):
        hub.add_user("alice", orgs=tuple(owner for owner, _ in NAMED))
    return hf, ms


def numbered_history(seed: str) -> RepoBuilder:
    builder = RepoBuilder()
    builder.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# 403 404 408 429 500 503 599\n",
                    "models/429/w-500.bin": lfs(random_bytes(30_000, seed)),
                    "configs/403/404-408.json": '{"status": 503}\n'})
    builder.commit({"weights/599/shard-00001-of-00512.bin": lfs(random_bytes(20_000, seed + "b"))}, branch="v429-503")
    return builder


def numbered_env(hf, ms, git_env):
    return {**git_env, "HF_ENDPOINT": hf.endpoint, "MODELSCOPE_ENDPOINT": ms.endpoint,
            "HF_TOKEN": hf.issue_token("alice"), "MODELSCOPE_API_TOKEN": ms.issue_token("alice")}


def transient_statuses_seen(hub) -> dict[str, dict[int, int]]:
    seen = hub.counters.snapshot().statuses
    return {route: {s: n for s, n in by.items() if s in (408, 425, 429) or s >= 500} for route, by in seen.items()
            if any(s in (408, 425, 429) or s >= 500 for s in by)}


@pytest.mark.parametrize(("owner", "name"), NAMED)
def test_a_new_destination_named_with_status_numbers_mirrors_at_once(numbered_hubs, git_env, tmp_path, owner, name):
    hf, ms = numbered_hubs
    repo = f"{owner}/{name}"
    src_refs = numbered_history(repo).push_to_hub(hf, repo)
    hf.counters.reset()
    ms.counters.reset()
    result = api.mirror(f"hf://{repo}", f"ms://{repo}", env=numbered_env(hf, ms, git_env),
                        cache_dir=tmp_path / "cache", policy=FAST)
    assert result.retries == 0
    assert transient_statuses_seen(ms) == {} and transient_statuses_seen(hf) == {}
    assert ms.counters.snapshot().count("git-receive-pack", "POST") == 1
    judge = auth_env(ms.endpoint, "oauth2", ms.git_token_for(ms.issue_token("alice")), git_env)
    refs = remote_refs(ms.git_url(repo), judge)
    assert refs["refs/heads/master"] == src_refs["refs/heads/main"]
    assert refs["refs/heads/v429-503"] == src_refs["refs/heads/v429-503"]


#: A real fault, answered by the hub, and the class it must give (transient ones are retried).
FAULTS = [(401, AuthError), (403, PermissionDeniedError), (404, RepoNotFoundError), (429, TransientError),
          (503, TransientError)]


@pytest.mark.parametrize(("status", "expected"), FAULTS, ids=[str(s) for s, _ in FAULTS])
@pytest.mark.parametrize(("side", "route"), [("dst", "git-receive-pack"), ("src", "git-upload-pack")])
def test_the_same_names_with_a_real_fault_get_its_class(numbered_hubs, git_env, tmp_path, unique_name,
                                                         side, route, status, expected):
    hf, ms = numbered_hubs
    owner, name = NAMED[0]
    repo = f"{owner}/{unique_name(name)}-512"
    src_refs = numbered_history(repo).push_to_hub(hf, repo)
    hub = ms if side == "dst" else hf
    hub.counters.reset()
    rule = hub.faults.fail(route=route, status=status, times=None)
    try:
        with pytest.raises(GitMirrorError) as caught:
            api.mirror(f"hf://{repo}", f"ms://{repo}", env=numbered_env(hf, ms, git_env),
                       cache_dir=tmp_path / "cache", policy=FAST)
    finally:
        hub.faults.clear()
    assert type(caught.value) is expected, str(caught.value)
    assert "\n" not in str(caught.value)
    tries = hub.counters.snapshot().count(route, "POST")
    assert tries == rule.fired
    # The source is fetched twice: early, while the destination is created, and again to plan
    # (a failed early fetch is left to planning); each is one step with its own retries.
    steps = 1 if side == "dst" else 2
    assert tries == steps * (FAST.attempts if expected is TransientError else 1)
    if side == "dst":
        judge = auth_env(ms.endpoint, "oauth2", ms.git_token_for(ms.issue_token("alice")), git_env)
        assert src_refs["refs/heads/main"] not in remote_refs(ms.git_url(repo), judge).values()


# --- live: git's stderr as the installed git writes it, against the sandbox ----------------------

EXPECTED_BY_STATUS = {401: AuthError, 403: PermissionDeniedError, 404: RepoNotFoundError, 429: TransientError,
                      500: TransientError, 503: TransientError}


@pytest.mark.parametrize("status", sorted(EXPECTED_BY_STATUS))
@pytest.mark.parametrize("command", ["ls-remote", "push"])
def test_real_git_stderr_is_classified(numbered_hubs, git_env, tmp_path, unique_name, command, status):
    hf, _ms = numbered_hubs
    repo = f"org-403/{unique_name('vit-base')}-512"
    numbered_history(repo).push_to_hub(hf, repo)
    env = auth_env(hf.endpoint, "user", hf.issue_token("alice"), git_env)
    url = hf.git_url(repo)
    if command == "ls-remote":
        args, route = ["ls-remote", url], "git-info-refs"
    else:
        work = tmp_path / "work"
        subprocess.run(["git", "clone", "-q", url, str(work)], env=env, check=True, timeout=120)
        args, route = ["-C", str(work), "push", "--porcelain", url, "HEAD:refs/heads/v429-500"], "git-receive-pack"
    rule = hf.faults.fail(route=route, status=status, times=None)
    try:
        done = subprocess.run(["git", *args], env=env, capture_output=True, text=True, timeout=120)
    finally:
        hf.faults.clear()
    assert done.returncode != 0 and rule.fired >= 1
    assert type(error_for_git(done.stderr, "x")) is EXPECTED_BY_STATUS[status], done.stderr


def test_real_git_connection_refused_is_transient(git_env):
    import socket

    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(["git", "ls-remote", f"http://127.0.0.1:{port}/org-429/vit-base-512.git"], env=git_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert type(error_for_git(done.stderr, "x")) is TransientError, done.stderr


def test_the_atomic_abort_names_the_ref_from_gits_line():
    _stdout, stderr = ATOMIC_FETCH_FIRST
    assert "refs/heads/main" in str(error_for_push([], stderr, "x"))
