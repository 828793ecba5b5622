"""What a destination refuses on push, checked against a plan before anything moves.

A hub's pre-receive hook judges a push only after the client has sent it, and gitmirror sends
the LFS objects before the refs: without this check a refused history would cost its whole LFS
upload first. Each hub adapter states its rules as data (:class:`DestinationRules`, from
``Hub.rules()``); :func:`check_history` holds a plan's new history against them and returns
:class:`RuleViolation` values, which the plan carries (``MirrorPlan.violations``) and the run
raises as :class:`DestinationRulesError` (exit 7) before any LFS request.

Sources of the rules: see docs/hubs.md ("What a destination refuses").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from gitmirror import gitrepo
from gitmirror.errors import IntegrityError

MB = 1000 * 1000
MIB = 1024 * 1024
#: git decides "binary" from a NUL byte among a blob's first 8,000 bytes (xdiff's
#: FIRST_FEW_BYTES in git's buffer_is_binary); Hugging Face follows git and grep.
BINARY_SNIFF_BYTES = 8000
#: How many violations the error lists by name before it gives only a count.
LISTED = 20


class RefNames(str, Enum):
    """Which ref names a destination accepts: git's own rules, or GitLab's stricter branch rules."""

    GIT = "git"
    GITLAB = "gitlab"


@dataclass(frozen=True)
class DestinationRules:
    """What a destination refuses on push.

    - ``max_plain_blob``: a blob that is not an LFS pointer and is larger than this many bytes
      is refused, in any commit of the pushed history (None: no limit).
    - ``max_binary_plain_blob``: a *binary* blob (a NUL byte in its first 8,000 bytes) of this
      many bytes or more is refused likewise (None: no limit).
    - ``ref_name_check``: :attr:`RefNames.GITLAB` refuses branch names GitLab refuses.
    - ``can_create_pr_refs``: False when a push may not create ``refs/pr/N`` (the pull request
      must be opened through the hub's API first).
    """

    max_plain_blob: int | None = None
    max_binary_plain_blob: int | None = None
    ref_name_check: RefNames = RefNames.GIT
    can_create_pr_refs: bool = True

    @property
    def checks_blobs(self) -> bool:
        return self.max_plain_blob is not None or self.max_binary_plain_blob is not None


class Rule(str, Enum):
    """Which rule a violation breaks."""

    LARGE_FILE = "large-file"
    BINARY_FILE = "binary-file"
    BRANCH_NAME = "branch-name"
    PR_REF = "pr-ref"


@dataclass(frozen=True)
class PushedRef:
    """One destination ref a plan moves: its name, the commit it gets, whether the push creates
    it, and the source ref it comes from (a name git already accepted when it was fetched)."""

    ref: str
    new: str
    creates: bool
    src_ref: str | None = None


@dataclass(frozen=True)
class RuleViolation:
    """One thing the destination would refuse: a file (``path``, ``size`` in bytes, the
    ``commit`` that adds it) on ``ref``, or a ref name (``reason`` says which rule)."""

    rule: Rule
    ref: str
    path: str | None = None
    commit: str | None = None
    size: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.rule in (Rule.LARGE_FILE, Rule.BINARY_FILE):
            kind = "binary file" if self.rule is Rule.BINARY_FILE else "file"
            where = f" in commit {self.commit[:12]}" if self.commit else ""
            return f"{self.path} ({kind} of {_size(self.size or 0)}, not in LFS){where} on {self.ref}"
        return f"{self.ref} ({self.reason})"

    def to_dict(self) -> dict:
        return {"rule": self.rule.value, "ref": self.ref, "path": self.path, "commit": self.commit,
                "size": self.size, "reason": self.reason or None}


def _size(size: int) -> str:
    return f"{size / MB:.2f} MB"


class DestinationRulesError(IntegrityError):
    """The plan's history or refs break the destination's rules; nothing was sent (exit 7).

    ``violations`` holds every :class:`RuleViolation`; the message names the first
    :data:`LISTED` and counts the rest. ``refs`` are the destination refs they concern (for
    ``--json``'s ``refs``).
    """

    def __init__(self, destination: str, violations: Sequence[RuleViolation]) -> None:
        self.violations = tuple(violations)
        self.refs = tuple(dict.fromkeys(v.ref for v in self.violations))
        shown = "; ".join(v.describe() for v in self.violations[:LISTED])
        more = len(self.violations) - LISTED
        listing = shown + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"{destination} would refuse this push ({len(self.violations)} "
                         f"{'problem' if len(self.violations) == 1 else 'problems'}): {listing}",
                         hint=_way_out(self.violations))


def _way_out(violations: Sequence[RuleViolation]) -> str:
    rules = {v.rule for v in violations}
    ways = []
    if rules & {Rule.LARGE_FILE, Rule.BINARY_FILE}:
        ways.append("rerun with --convert to mirror a rewritten history with these files in LFS, store them "
                    "with Git LFS in the source's history (the hub refuses them in any commit, even one a later "
                    "commit deletes), or leave their refs out with --exclude")
    if Rule.BRANCH_NAME in rules:
        ways.append("rename such branches with --map SRC:DST or leave them out with --exclude")
    if Rule.PR_REF in rules:
        ways.append("leave refs/pr/* out: a pull-request ref can be pushed only once the pull request "
                    "exists on the destination")
    return "; ".join(ways) + "; nothing was sent"


# --- the checks ----------------------------------------------------------------------------------


def check_history(repo_dir: Path, pushed: Sequence[PushedRef], exclude: Sequence[str],
                  rules: DestinationRules) -> tuple[RuleViolation, ...]:
    """Every way the refs ``pushed`` and the history they add on top of ``exclude`` (commits the
    destination has) break ``rules``. Reads the cache ``repo_dir`` only; raises what
    :func:`gitmirror.gitrepo.run_git` raises."""
    found = [*ref_violations(pushed, rules)]
    if rules.checks_blobs:
        found += blob_violations(repo_dir, pushed, exclude, rules)
    return tuple(found)


def ref_violations(pushed: Sequence[PushedRef], rules: DestinationRules) -> list[RuleViolation]:
    """Ref names the destination refuses, and pull-request refs a push may not create."""
    found = []
    for item in pushed:
        if not rules.can_create_pr_refs and item.creates and item.ref.startswith("refs/pr/"):
            found.append(RuleViolation(Rule.PR_REF, item.ref,
                                       reason="a push cannot create a pull request; open it through the API first"))
        if rules.ref_name_check is RefNames.GITLAB and item.ref.startswith("refs/heads/"):
            reason = gitlab_branch_problem(item.ref, checked_by_git=item.src_ref == item.ref)
            if reason:
                found.append(RuleViolation(Rule.BRANCH_NAME, item.ref, reason=reason))
    return found


_HEX_BRANCH = re.compile(r"[0-9a-fA-F]{40}(-/|/|$)")


def gitlab_branch_problem(ref: str, checked_by_git: bool = False) -> str | None:
    """Why GitLab refuses to create the branch ``ref`` (``refs/heads/<name>``), or None.

    GitLab (``Gitlab::GitRefValidator.validate`` and ``Gitlab::Checks::BranchCheck``) refuses a
    name that is ``HEAD``, starts with ``-``, ``refs/heads/`` or ``refs/remotes/``, fails
    ``git check-ref-format``, or is 40 hex digits (alone or before ``/`` or ``-/``).
    ``checked_by_git``: the name came through a fetch, so git already accepted its format.
    """
    name = ref.removeprefix("refs/heads/")
    if name == "HEAD":
        return "GitLab refuses a branch named HEAD"
    if name.startswith(("-", "refs/heads/", "refs/remotes/")):
        return "GitLab refuses a branch name starting with '-', 'refs/heads/' or 'refs/remotes/'"
    if _HEX_BRANCH.match(name):
        return "GitLab refuses a branch named like a commit id (40 hex digits)"
    if not checked_by_git and not gitrepo.ref_format_ok(ref):
        return "not a valid git ref name"
    return None


def blob_violations(repo_dir: Path, pushed: Sequence[PushedRef], exclude: Sequence[str],
                    rules: DestinationRules) -> list[RuleViolation]:
    """Files of the new history over the size limits, each with the commit that adds it and a
    pushed ref that carries it. Sizes come from ``git cat-file --batch-check``; only blobs of
    ``max_binary_plain_blob`` bytes or more are opened, and only their first 8,000 bytes read."""
    include = sorted({item.new for item in pushed})
    paths: dict[str, str] = {}
    for sha, path in gitrepo.iter_history_objects(repo_dir, include, exclude):
        paths.setdefault(sha, path)
    offending: dict[str, tuple[Rule, int]] = {}
    for sha, size in gitrepo.blob_sizes(repo_dir, list(paths)).items():
        rule = _blob_rule(repo_dir, sha, size, rules)
        if rule is not None:
            offending[sha] = (rule, size)
    if not offending:
        return []
    located = _locate(repo_dir, pushed, exclude, set(offending))
    found = []
    for sha, (rule, size) in sorted(offending.items(), key=lambda item: paths[item[0]]):
        commit, ref = located.get(sha, (None, pushed[0].ref))
        found.append(RuleViolation(rule, ref, path=paths[sha], commit=commit, size=size))
    return found


def _blob_rule(repo_dir: Path, sha: str, size: int, rules: DestinationRules) -> Rule | None:
    return blob_rule(size, lambda: gitrepo.blob_head(repo_dir, sha, BINARY_SNIFF_BYTES), rules)


def blob_rule(size: int, head: Callable[[], bytes], rules: DestinationRules) -> Rule | None:
    """The rule a plain (non-LFS) blob of ``size`` bytes breaks, or None. ``head()`` gives its
    first bytes (at least :data:`BINARY_SNIFF_BYTES` when it has them), asked for only when the
    blob is large enough for the binary rule to matter."""
    if rules.max_plain_blob is not None and size > rules.max_plain_blob:
        return Rule.LARGE_FILE
    if rules.max_binary_plain_blob is not None and size >= rules.max_binary_plain_blob:
        if b"\0" in head()[:BINARY_SNIFF_BYTES]:
            return Rule.BINARY_FILE
    return None


def _locate(repo_dir: Path, pushed: Sequence[PushedRef], exclude: Sequence[str],
            blobs: set[str]) -> dict[str, tuple[str, str]]:
    """blob -> (the oldest new commit adding it, the first pushed ref whose history has it)."""
    located: dict[str, tuple[str, str]] = {}
    for item in pushed:
        wanted = blobs - located.keys()
        if not wanted:
            break
        for blob, commit in gitrepo.commits_adding(repo_dir, item.new, exclude, wanted).items():
            located[blob] = (commit, item.ref)
    return located
