"""Plan a ``--snapshot`` run: one new commit on the destination holding the source's current tree.

For users who want the latest files without the long history (what the original scripts did by
uploading files, done here with git). The new commit is made in the cache repository with git
plumbing (``git commit-tree``) from the tree of the fetched source commit, so no file is checked
out and no LFS content is read. The result is an ordinary :class:`~gitmirror.plan.MirrorPlan`
with one ref update, carried out by the same :class:`~gitmirror.execute.Executor` as a mirror:
LFS objects first, then the push, then verification.

The new commit's parent:

* the destination branch's head, when it has history of its own (an earlier snapshot, commits
  made on the destination): the snapshot is a fast-forward and keeps that history;
* none when the destination branch does not exist, or holds only the hub's own initial commit
  (a root commit with nothing but ``.gitattributes``/``README.md``). That commit carries nothing
  of the user's, and the snapshot's tree brings the source's own ``.gitattributes``; replacing it
  (with ``--force-with-lease`` on exactly that commit, as a full mirror does) leaves the one-commit
  history a snapshot user asks for.

When the destination branch's tree already equals the source's tree, nothing is made or pushed,
so a snapshot run from cron adds a commit only when the source's files changed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from gitmirror import gitrepo
from gitmirror.gitprogress import for_step
from gitmirror.errors import UsageError
from gitmirror.plan import MirrorPlan, RefAction, RefUpdate, Snapshot
from gitmirror.planner import PlanContext, destination_violations, dst_default_branch, is_hub_initial_commit
from gitmirror.remote import RemoteRefs

log = logging.getLogger("gitmirror.snapshot")

#: Who makes snapshot commits when neither the environment nor git's config names anyone.
DEFAULT_IDENTITY = ("gitmirror", "gitmirror@localhost")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")


# --- choosing the source revision ---------------------------------------------------------------


def resolve_revision(src: RemoteRefs, revision: str | None) -> str:
    """The source ref to snapshot: HEAD's branch by default, else a branch, tag or full ref name,
    or a commit id at the tip of one of them (servers need not serve other commits by id)."""
    if revision is None:
        for ref in (src.head, "refs/heads/main", "refs/heads/master"):
            if ref and ref in src.refs:
                return ref
        raise UsageError("the source has no default branch to snapshot", hint="name one with --revision")
    for ref in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
        if ref.startswith("refs/") and ref in src.refs:
            return ref
    if _HEX.match(revision.lower()):
        tips = sorted(ref for ref, sha in {**src.refs, **src.peeled}.items() if sha.startswith(revision.lower()))
        if tips:
            # Prefer a branch, then a tag, for a stable choice when several refs point there.
            return sorted(tips, key=lambda r: (not r.startswith("refs/heads/"), not r.startswith("refs/tags/"), r))[0]
    raise UsageError(
        f"--revision {revision!r} is not a branch, tag or ref of the source, nor a commit at one's tip",
        hint="use a branch or tag name, a full ref such as refs/pr/1, or the id of a branch tip",
    )


# --- the snapshot commit ---------------------------------------------------------------------


def identity_env(repo_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Author and committer for ``commit-tree``: the environment's ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``,
    else git's ``user.name``/``user.email``, else gitmirror's own; never written to any config."""
    name = gitrepo.config_value(repo_dir, "user.name") or DEFAULT_IDENTITY[0]
    email = gitrepo.config_value(repo_dir, "user.email") or DEFAULT_IDENTITY[1]
    out: dict[str, str] = {}
    for role in ("AUTHOR", "COMMITTER"):
        out[f"GIT_{role}_NAME"] = env.get(f"GIT_{role}_NAME") or name
        out[f"GIT_{role}_EMAIL"] = env.get(f"GIT_{role}_EMAIL") or email
    return out


def default_message(src_display: str, src_ref: str, commit: str) -> str:
    short = src_ref.split("/", 2)[-1] if src_ref.startswith(("refs/heads/", "refs/tags/")) else src_ref
    return f"Snapshot of {src_display} {short} ({commit[:12]})\n\nSource: {src_display}\nRevision: {src_ref}\nCommit: {commit}\n"


# --- the plan ------------------------------------------------------------------------------------


def make_snapshot_plan(
    ctx: PlanContext,
    *,
    revision: str | None = None,
    message: str | None = None,
    env: Mapping[str, str] | None = None,
) -> MirrorPlan:
    """Fetch the source revision, make the snapshot commit in the cache, and plan its push.

    Writes only to the cache. The plan has one update for the destination's default branch and
    the LFS objects of the snapshot's tree that the destination's branch does not already hold.
    """
    env = os.environ if env is None else env
    repo_dir = ctx.cache_dir
    gitrepo.open_cache(repo_dir)
    src_ref = resolve_revision(ctx.src_refs, revision)
    listed = ctx.src_refs.refs[src_ref]
    if not gitrepo.has_object(repo_dir, listed):  # a source that did not move costs no fetch
        ctx.src_hub.remote().fetch(repo_dir, [src_ref], progress=for_step(ctx.git_progress, "fetching source"))
    src_commit = gitrepo.rev_parse(repo_dir, f"{listed}^{{commit}}")
    tree = gitrepo.tree_of(repo_dir, src_commit)

    dst_ref = f"refs/heads/{dst_default_branch(ctx.dst_refs, ctx.dst_hub)}"
    old = ctx.dst_refs.refs.get(dst_ref)
    if old is not None and not gitrepo.has_object(repo_dir, old):
        ctx.dst_hub.remote().fetch(repo_dir, [dst_ref], namespace=gitrepo.DST_NAMESPACE)
    src_display, dst_display = ctx.src_hub.display_name(), ctx.dst_hub.display_name()
    text = message or default_message(src_display, src_ref, src_commit)

    if old is not None and gitrepo.tree_of(repo_dir, old) == tree:
        snap = Snapshot(src_ref, src_commit, tree, dst_ref, parent=old, commit=None, message=text)
        update = RefUpdate(dst_ref, src_ref, old, old, RefAction.UP_TO_DATE)
        return MirrorPlan(src_display, dst_display, (update,), snapshot=snap)

    replaces_initial = old is not None and is_hub_initial_commit(repo_dir, ctx.dst_refs, old,
                                                                     ctx.dst_hub.initial_files)
    parent = None if old is None or replaces_initial else old
    new = gitrepo.commit_tree(repo_dir, tree, parent, text, identity_env(repo_dir, env))
    action = RefAction.CREATE if old is None else RefAction.REPLACE_INITIAL if replaces_initial else RefAction.FAST_FORWARD
    # Only what the new tree adds to the destination's history: rev-list from the new commit,
    # without its parent (whose objects the destination already has).
    base = [parent] if parent else []
    hits = gitrepo.lfs_pointers(repo_dir, [new], base)
    update = RefUpdate(dst_ref, src_ref, old, new, action)
    return MirrorPlan(
        src=src_display,
        dst=dst_display,
        updates=(update,),
        lfs_objects=tuple(h.obj for h in hits),
        lfs_paths={h.obj.oid: h.path for h in hits},
        snapshot=Snapshot(src_ref, src_commit, tree, dst_ref, parent=parent, commit=new, message=text),
        # The snapshot's tree meets the destination's rules as a mirror's history does.
        violations=destination_violations(ctx, (update,), base),
    )
