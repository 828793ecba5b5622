"""A git remote as a hub reaches it: :class:`Remote` lists, fetches and pushes refs.

Each hub adapter builds its :class:`Remote` (``Hub.remote()``) with the URL, the credentials git
sends there, the retry policy and the run's retry listener, so no caller passes those four
things by hand. Credentials reach git only through the environment (``GIT_CONFIG_COUNT``/
``KEY``/``VALUE`` setting ``http.<url>.extraHeader``), scoped to the one URL, so they never
appear in a child's argv, in the cache repository's config, or in git's own error messages.
An http(s) remote's refs are listed without git (:mod:`gitmirror.refadvert`), the credentials in
an ``Authorization`` header of that one request, which the client drops on a cross-origin redirect.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror.errors import GitMirrorError, scrub
from gitmirror.gitprogress import COLUMNS, ProgressListener
from gitmirror.push_outcome import push_failure
from gitmirror.gitrepo import SRC_NAMESPACE, run_git
from gitmirror.retry import RetryPolicy, retrying

if TYPE_CHECKING:
    from gitmirror.httpclient import Transport

log = logging.getLogger("gitmirror.git")

OnRetry = Callable[[str, BaseException], None]


@dataclass(frozen=True)
class GitAuth:
    """Credentials for git over HTTP(S). ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        """The ``Authorization`` header value: ``Basic base64(username:password)``."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class RemoteRefs:
    """What ``git ls-remote`` saw: ref name -> object id, and where HEAD points (if the server says)."""

    refs: dict[str, str]
    head: str | None = None
    peeled: dict[str, str] = field(default_factory=dict)  # annotated tag -> commit it points at

    @property
    def is_empty(self) -> bool:
        return not self.refs


@dataclass(frozen=True)
class PushSpec:
    """One ref to push: ``new`` is the object id to push (None deletes ``dst_ref``); ``force``
    allows a non-fast-forward, and ``expect_old`` (the destination's object id when planned, None
    for "absent") makes it a ``--force-with-lease`` push, so a ref that moved since is not lost."""

    dst_ref: str
    new: str | None
    force: bool = False
    expect_old: str | None = None


def git_env(
    url: str, auth: GitAuth | None, base: Mapping[str, str] | None = None, policy: RetryPolicy | None = None,
) -> dict[str, str]:
    """Environment for a git child that talks to ``url``: credentials scoped to it, no prompts,
    and a stalled connection cut after the policy's read timeout (seconds; then retried)."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_LFS_SKIP_SMUDGE": "1",
        # A stray global `git lfs install` must not run hooks or filters inside our cache.
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if base:
        env.update(base)
    stall = int((policy or RetryPolicy()).read_timeout)
    pairs: list[tuple[str, str]] = [
        ("core.hooksPath", os.devnull),
        ("http.lowSpeedLimit", "1"),
        ("http.lowSpeedTime", str(max(1, stall))),
    ]
    if auth is not None and url.startswith(("http://", "https://")):
        pairs.append((f"http.{url}.extraHeader", f"Authorization: {auth.basic_header()}"))
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


@dataclass(frozen=True)
class Remote:
    """One git remote: ``url`` (a URL without credentials, or a local path), the ``auth`` git sends
    there, the retry ``policy`` (None: the default) and ``on_retry(what, exc)``, told of each retry.

    Every method retries transient faults only and raises a classified
    :class:`~gitmirror.errors.GitMirrorError` otherwise (the map in :mod:`gitmirror.errors`).
    """

    url: str
    auth: GitAuth | None = field(default=None, repr=False)
    policy: RetryPolicy | None = None
    on_retry: OnRetry | None = field(default=None, repr=False, compare=False)

    @property
    def display(self) -> str:
        """The URL fit for messages (credentials scrubbed)."""
        return scrub(self.url)

    def env(self) -> dict[str, str]:
        """The environment of a git child talking to this remote (:func:`git_env`)."""
        return git_env(self.url, self.auth, policy=self.policy)

    def ls_remote(self, http: "Transport | None" = None) -> RemoteRefs:
        """The remote's refs, HEAD's target and peeled tags, as ``git ls-remote --symref`` gives them.

        An http(s) remote is read in-process (:mod:`gitmirror.refadvert`: one protocol v0 request,
        the credentials in a header only) over ``http`` (None: a client for this one listing); a
        server that is not smart-HTTP, and any other remote (a path, ssh, file://), is asked
        through ``git ls-remote``. Transient faults (429, 5xx, cut connections) are retried;
        401/403/404 raise AuthError / PermissionDeniedError / RepoNotFoundError.
        """
        if self.url.startswith(("http://", "https://")):
            from gitmirror.refadvert import NotSmartHttp

            try:
                return self._read_advertisement(http)
            except NotSmartHttp:
                log.debug("%s is not smart HTTP; asking git", self.display)
        return self._git_ls_remote()

    def _read_advertisement(self, http: "Transport | None") -> RemoteRefs:
        from gitmirror.httpclient import open_client
        from gitmirror.refadvert import list_refs

        policy = self.policy or RetryPolicy()
        timeout = (policy.connect_timeout, policy.read_timeout)
        authorization = self.auth.basic_header() if self.auth is not None else None
        with open_client(http, pool_size=1, timeout=timeout) as client:
            for attempt in retrying(f"ls-remote {self.display}", self.policy, self.on_retry):
                with attempt:
                    found = list_refs(client, self.url, authorization=authorization, timeout=timeout)
        return RemoteRefs(refs=found.refs, head=found.head, peeled=found.peeled)

    def _git_ls_remote(self) -> RemoteRefs:
        args = ["-c", "protocol.version=0", "ls-remote", "--symref", "--", self.url]
        for attempt in retrying(f"ls-remote {self.display}", self.policy, self.on_retry):
            with attempt:
                out = run_git(args, cwd=None, env=self.env(), what=f"listing refs of {self.display}")
        return parse_ls_remote(out.decode("utf-8", "surrogateescape"))

    def fetch(self, repo_dir: Path, refs: Iterable[str], *, namespace: str = SRC_NAMESPACE,
              progress: ProgressListener | None = None) -> str:
        """Fetch the remote's ``refs`` (full names) into ``namespace`` of the bare repository
        ``repo_dir``: ``refs/heads/main`` -> ``<namespace>heads/main``. Forced: sources may be rewritten.

        Returns git's messages (stderr) of the fetch that succeeded: git says there, and only
        there, when it left a ref out (:func:`gitmirror.gitrepo.shallow_rejections`).
        ``progress``, when given, hears git's progress (``--progress``) as it comes, from a
        reader thread; the messages returned and errors are the same as without it.
        """
        refspecs = [f"+{ref}:{namespace}{ref.removeprefix('refs/')}" for ref in sorted(set(refs))]
        if not refspecs:
            return ""
        # --quiet would silence index-pack's "Receiving objects"; the ref summary it also silences
        # is left out of the messages by the progress reader instead.
        verbosity = ["--progress"] if progress is not None else ["--quiet"]
        args = ["fetch", "--no-tags", "--no-write-fetch-head", *verbosity, "--", self.url, *refspecs]
        messages: list[str] = []
        env = self._env_for(progress)
        for attempt in retrying(f"fetch {self.display}", self.policy, self.on_retry):
            with attempt:
                run_git(args, cwd=repo_dir, env=env, what=f"fetching from {self.display}", messages=messages,
                        progress=progress)
        return messages[-1] if messages else ""

    def push(self, repo_dir: Path, specs: Sequence[PushSpec], *, atomic: bool = True,
             progress: ProgressListener | None = None) -> None:
        """Push ``specs`` from ``repo_dir``, atomically when the server allows it; ``progress`` as in
        :meth:`fetch`.

        Raises :class:`~gitmirror.errors.PushRefusedError` (exit 7) naming each ref the server
        refused by its rules, with its words; DivergedError (exit 6) when the destination moved
        since it was read; else the classified git failure (:func:`push_failure`). Only transient
        faults are retried; a rejected ref never passes silently.
        """
        if not specs:
            return
        refspecs: list[str] = []
        leases: list[str] = []
        for spec in specs:
            source = "" if spec.new is None else spec.new
            # A forced update is forced by its lease alone: git ignores a lease on a "+" refspec
            # (git 2.39's remote.c lets the "+" override a stale-info rejection), which would
            # overwrite whatever another writer pushed since the plan.
            refspecs.append(f"{source}:{spec.dst_ref}")
            if spec.force or spec.new is None:
                leases.append(f"--force-with-lease={spec.dst_ref}:{spec.expect_old or ''}")
        base = ["push", "--porcelain", "--no-verify", *_progress_flag(progress), *leases]
        args = [*base, "--atomic", "--", self.url, *refspecs] if atomic else [*base, "--", self.url, *refspecs]
        env = self._env_for(progress)
        what = f"pushing to {self.display}"
        for attempt in retrying(f"push {self.display}", self.policy, self.on_retry):
            with attempt:
                try:
                    _run_push(args, repo_dir, env, what, progress)
                except GitMirrorError as exc:
                    if not (atomic and "does not support --atomic" in str(exc)):
                        raise
                    log.info("server does not support atomic push; pushing refs one command")
                    args = [*base, "--", self.url, *refspecs]
                    _run_push(args, repo_dir, env, what, progress)

    def _env_for(self, progress: ProgressListener | None) -> dict[str, str]:
        # COLUMNS: git splits a progress record narrower than the terminal, 80 columns on a pipe.
        return {**self.env(), "COLUMNS": COLUMNS} if progress is not None else self.env()


def _progress_flag(progress: ProgressListener | None) -> list[str]:
    """``--progress`` when someone listens: git shows progress on a terminal only, and ours is a pipe."""
    return ["--progress"] if progress is not None else []


def _run_push(args: list[str], repo_dir: Path, env: Mapping[str, str], what: str,
              progress: ProgressListener | None = None) -> None:
    run_git(args, cwd=repo_dir, env=env, what=what, on_failure=lambda out, err: push_failure(out, err, what),
            progress=progress)


def parse_ls_remote(text: str) -> RemoteRefs:
    """``git ls-remote --symref`` output as :class:`RemoteRefs` (peeled tags kept apart)."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    head: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("ref: "):
            target, _, name = line[5:].partition("\t")
            if name == "HEAD":
                head = target.strip()
            continue
        sha, _, name = line.partition("\t")
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        elif name != "HEAD":
            refs[name] = sha
    return RemoteRefs(refs=refs, head=head, peeled=peeled)


def anyone_can_clone(url: str, timeout: float = 15.0, http: "Transport | None" = None) -> bool:
    """True when ``url`` hands its refs to anyone: a public repository. ``timeout`` in seconds;
    ``http``: the run's client (it adds no credentials of its own), else a new one.

    One request for git's ref advertisement, made without git so that no credential helper,
    ``.netrc`` or configured header can lend it credentials: a private repository must never look
    public. Any other answer (401, 404, a redirect, an error) is False, and the caller asks the
    hub's API instead. Hubs let anyone clone a public repository, and only a public one.
    """
    if not url.startswith(("http://", "https://")):
        return False
    from gitmirror.httpclient import open_client
    from gitmirror.refadvert import ADVERTISEMENT_TYPE, info_refs_url

    probe = info_refs_url(url)
    try:
        with open_client(http, pool_size=1) as client:
            resp = client.request("GET", probe, timeout=(timeout, timeout))
    except GitMirrorError:
        return False
    return resp.status == 200 and (resp.headers.get("Content-Type") or "").startswith(ADVERTISEMENT_TYPE)
