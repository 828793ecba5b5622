"""What a failed ``git push --porcelain`` says, read as an error of the one map (:mod:`gitmirror.errors`).

git prints one status line per ref on stdout (git-push(1) "OUTPUT") and the server's reasons on
stderr's ``remote:`` lines. A ref the destination refused by its rules is exit 7
(:class:`~gitmirror.errors.PushRefusedError`, quoting the server); a ref that moved between the
plan and the push is a lost race, exit 6 (:class:`~gitmirror.errors.DivergedError`); neither is
transient. Anything else is git's own failure, classified by :func:`gitmirror.errors.error_for_git`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitmirror.errors import DivergedError, GitMirrorError, PushRefusedError, error_for_git, git_own_words, scrub


@dataclass(frozen=True)
class PushRefStatus:
    """One ref line of ``git push --porcelain`` (git-push(1) "OUTPUT"):
    ``<flag>\t<from>:<to>\t<summary> (<reason>)``. ``ref`` is ``<to>``, the destination's name.

    ``flag`` "!" is a ref not updated; ``summary`` "[rejected]" means git refused it itself,
    before sending, from the tip the destination advertised ("stale info", "fetch first",
    "non-fast-forward"); "[remote rejected]" means the server refused it, ``reason`` being its
    words ("pre-receive hook declined").
    """

    flag: str
    ref: str
    summary: str
    reason: str = ""

    @property
    def refused(self) -> bool:
        return self.flag == "!"


#: receive-pack's reason for refs it did not update because another ref of an atomic push failed.
_ATOMIC_COLLATERAL = frozenset({"atomic push failed", "atomic transaction failed"})
#: receive-pack's reasons for a ref update that failed after its checks passed.
_UPDATE_FAILED = frozenset({"failed to update ref", "atomic transaction failed"})
#: receive-pack's own line (server side, quoted ref name removed) when a ref moved between its
#: advertisement and the update: the lease it was given no longer holds.
_REF_MOVED_ON_SERVER = re.compile(r"^remote: error: cannot lock ref\s*: is at [0-9a-f]{7,} but expected [0-9a-f]{7,}\s*$", re.M)
#: git's own line when ``--atomic`` refused every ref because it refused one before sending.
_GIT_ATOMIC_ABORT = re.compile(r"atomic push failed for ref")
_QUOTED = re.compile(r"'[^'\n]*'")
_PROGRESS = re.compile(r"^[\w ]+: +\d+% \(\d+/\d+\)")
SERVER_WORDS_LIMIT = 600  # characters of a server's reason kept in a message


def server_words(stderr: str, limit: int = SERVER_WORDS_LIMIT) -> str:
    """What the server said on git's ``remote:`` lines (a hook's reason), progress dropped,
    scrubbed of credentials, on one line of at most ``limit`` characters."""
    said = []
    for raw in scrub(stderr).replace("\r", "\n").splitlines():
        line = raw.strip()
        if line.startswith("remote:"):
            body = line[len("remote:"):].strip()
            if body and not _PROGRESS.match(body):
                said.append(body)
    text = " ".join(" ".join(said).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def error_for_push(statuses: Sequence[PushRefStatus], stderr: str, what: str) -> GitMirrorError:
    """The error a failed ``git push --porcelain`` stands for, from its per-ref ``statuses``
    (stdout) and ``stderr``; ``what`` names the step.

    A ref the server refused by its rules gives :class:`PushRefusedError` (exit 7) naming each
    refused ref with the server's words; a ref the destination moved since it was read (git's
    "[rejected]", receive-pack's lock failure, ``--atomic`` aborting before sending) gives
    :class:`DivergedError` (exit 6). Neither is transient. Without a refused ref, stderr is
    classified by :func:`error_for_git`.
    """
    refused = [s for s in statuses if s.refused and s.summary in ("[rejected]", "[remote rejected]")]
    own = git_own_words(scrub(stderr))
    if not refused:
        if _GIT_ATOMIC_ABORT.search(own):
            # The ref is named only for the message; the phrase above, in git's own words, decided.
            named = re.findall(r"atomic push failed for ref (\S+?)\. status", stderr)
            lost = [PushRefStatus("!", ref, "[rejected]") for ref in named]
            return _lost_race(what, lost, "git refused it before sending, so --atomic sent nothing")
        return error_for_git(stderr, what)
    lead = [s for s in refused if s.reason not in _ATOMIC_COLLATERAL] or refused
    moved = _REF_MOVED_ON_SERVER.search(_QUOTED.sub("", scrub(stderr))) is not None
    lost = [s for s in lead if s.summary == "[rejected]" or (moved and s.reason in _UPDATE_FAILED)]
    declined = [s for s in lead if s not in lost]
    if declined:
        said = server_words(stderr)
        return PushRefusedError(
            f"{what}: the destination refused {_by_reason(declined)}" + (f": {said}" if said else ""),
            hint="its rules refuse this content or ref name, so retrying cannot help; refused refs were not updated",
            refs=tuple(s.ref for s in declined),
        )
    return _lost_race(what, lost, _by_reason(lost))


def _by_reason(statuses: Sequence[PushRefStatus]) -> str:
    """"refs/heads/a, refs/tags/v1 (stale info); refs/heads/b (pre-receive hook declined)"."""
    groups: dict[str, list[str]] = {}
    for status in statuses:
        groups.setdefault(status.reason or status.summary.strip("[]"), []).append(status.ref)
    return "; ".join(f"{', '.join(refs)} ({reason})" for reason, refs in groups.items())


def _lost_race(what: str, lost: Sequence[PushRefStatus], detail: str) -> DivergedError:
    names = ", ".join(s.ref for s in lost) or "refs"
    return DivergedError(
        f"{what}: the destination's {names} changed after it was read, so nothing of it was overwritten ({detail})",
        hint="another writer pushed meanwhile; rerun to plan from the destination's new state",
    )


def push_failure(stdout: str, stderr: str, what: str) -> GitMirrorError:
    """The error a failed ``git push --porcelain`` stands for: its per-ref status lines (``stdout``)
    and the server's ``remote:`` lines (``stderr``), through :func:`error_for_push`."""
    return error_for_push(parse_push_porcelain(stdout), stderr, what)


def parse_push_porcelain(stdout: str) -> list[PushRefStatus]:
    """The ref lines of ``git push --porcelain`` output (git-push(1) "OUTPUT"):
    ``<flag>\t<from>:<to>\t<summary> (<reason>)``; the ``To <url>`` and ``Done`` lines are skipped."""
    statuses: list[PushRefStatus] = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or len(parts[0]) != 1:
            continue
        flag, refs, outcome = parts
        summary, _, reason = outcome.partition(" (")
        reason = reason[:-1] if reason.endswith(")") else reason
        statuses.append(PushRefStatus(flag=flag, ref=refs.rpartition(":")[2], summary=summary.strip(), reason=reason))
    return statuses
