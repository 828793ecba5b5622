"""Make a mirror's plan (:class:`gitmirror.plan.MirrorPlan`): choose the refs, fetch what telling a
fast-forward from a divergence needs, classify every ref, list the LFS objects to check, and hold
the new history against the destination's rules.

Nothing here writes to the destination. Planning may fetch the source's history into the local
cache, because telling a fast-forward from a divergence, and finding the LFS pointers of the new
history, need that history.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror import convert_plan, gitrepo
from gitmirror.errors import GitMirrorError, TransientError, UsageError
from gitmirror.gitprogress import StepListener, for_step
from gitmirror.hubs.base import HUB_INITIAL_FILES  # files any hub may put into the commit it makes at creation
from gitmirror.plan import (
    CardCommit,
    LfsScope,
    MirrorOptions,
    MirrorPlan,
    PlanWarning,
    RefAction,
    RefUpdate,
)
from gitmirror.remote import RemoteRefs

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub
    from gitmirror.rules import RuleViolation

log = logging.getLogger("gitmirror.plan")

DEFAULT_PATTERNS = ("refs/heads/*", "refs/tags/*")


# --- choosing refs -------------------------------------------------------------------------------


def _full_branch(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def _matches(ref: str, patterns: Sequence[str]) -> bool:
    short = ref.split("/", 2)[-1] if ref.startswith(("refs/heads/", "refs/tags/")) else ref
    return any(fnmatch.fnmatchcase(ref, p) or fnmatch.fnmatchcase(short, p) for p in patterns)


def parse_map(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--map a:b`` (branch names or full refs) into pairs of full ref names."""
    pairs = []
    for item in items:
        src, sep, dst = item.partition(":")
        if not sep or not src or not dst:
            raise UsageError(f"bad --map {item!r}", hint="use --map SRC:DST, e.g. --map dev:develop")
        pairs.append((_full_branch(src), _full_branch(dst)))
    return tuple(pairs)


def select_refs(
    src: RemoteRefs,
    options: MirrorOptions,
    src_default: str | None,
    dst_default: str,
) -> tuple[dict[str, str], list[str]]:
    """Map selected source refs to destination refs. Returns ({dst_ref: src_ref}, skipped notes)."""
    patterns = DEFAULT_PATTERNS + options.refs
    explicit = dict(options.map)
    for src_ref in explicit:
        if src_ref not in src.refs:
            raise UsageError(f"--map names {src_ref}, which the source does not have")
    if src_default and src_default not in explicit:
        explicit[src_default] = _full_branch(dst_default)
    selected = [r for r in sorted(src.refs) if _matches(r, patterns) and not _matches(r, options.exclude)]
    # Explicitly mapped refs claim their destination first; a same-named ref then gives way
    # (HF "main" -> ModelScope "master" while the source also has a branch "master").
    ordered = [r for r in selected if r in explicit] + [r for r in selected if r not in explicit]
    chosen: dict[str, str] = {}
    skipped: list[str] = []
    for src_ref in ordered:
        dst_ref = explicit.get(src_ref, src_ref)
        if dst_ref in chosen:
            skipped.append(f"{src_ref}: {dst_ref} already receives {chosen[dst_ref]} (use --map to rename it)")
            continue
        chosen[dst_ref] = src_ref
    return chosen, skipped


def dst_default_branch(dst: RemoteRefs, dst_hub: "Hub") -> str:
    if dst.head and dst.head.startswith("refs/heads/"):
        return dst.head.removeprefix("refs/heads/")
    return dst_hub.new_repo_default_branch


# --- classifying -----------------------------------------------------------------------------------


def classify(
    chosen: Mapping[str, str],
    src: RemoteRefs,
    dst: RemoteRefs,
    options: MirrorOptions,
    is_ancestor: Callable[[str, str], bool],
    is_hub_initial: Callable[[str], bool],
) -> list[RefUpdate]:
    """Decide each destination ref's fate. ``is_ancestor(old, new)``; ``is_hub_initial(sha)``."""
    updates: list[RefUpdate] = []
    for dst_ref, src_ref in sorted(chosen.items()):
        new = src.refs[src_ref]
        old = dst.refs.get(dst_ref)
        updates.append(RefUpdate(dst_ref, src_ref, old, new, _action(dst_ref, old, new, options, is_ancestor, is_hub_initial)))
    patterns = DEFAULT_PATTERNS + options.refs
    for dst_ref, old in sorted(dst.refs.items()):
        if dst_ref in chosen or not _matches(dst_ref, patterns) or _matches(dst_ref, options.exclude):
            continue
        action = RefAction.DELETE if options.prune and dst_ref != dst.head else RefAction.KEEP
        updates.append(RefUpdate(dst_ref, None, old, None if action is RefAction.DELETE else old, action))
    return updates


def _action(dst_ref, old, new, options, is_ancestor, is_hub_initial) -> RefAction:
    if old is None:
        return RefAction.CREATE
    if old == new:
        return RefAction.UP_TO_DATE
    if not dst_ref.startswith("refs/tags/") and is_ancestor(old, new):
        return RefAction.FAST_FORWARD
    if dst_ref.startswith("refs/heads/") and is_hub_initial(old):
        return RefAction.REPLACE_INITIAL
    return RefAction.FORCE if options.force else RefAction.DIVERGED


def is_hub_initial_commit(repo_dir: Path, dst: RemoteRefs, sha: str,
                          initial_files: frozenset[str] = HUB_INITIAL_FILES) -> bool:
    """True for the hub's own first commit, harmless to replace: the destination's only ref, a
    root commit holding nothing but files the hub makes at creation (``initial_files``: the
    destination adapter's ``Hub.initial_files``). ``sha`` must be in the cache ``repo_dir``."""
    if len(dst.refs) != 1:
        return False
    parents, paths = gitrepo.commit_summary(repo_dir, sha)
    return parents == 0 and bool(paths) and set(paths) <= initial_files


def metadata_warnings(repo_dir: Path, updates: Sequence[RefUpdate], metadata_files: frozenset[str]) -> tuple[PlanWarning, ...]:
    """A ``metadata-in-lfs`` warning when a moving ref's tree holds one of ``metadata_files``
    (top level, as the hub reads them) as an LFS pointer. ModelScope parses README.md,
    configuration.json, config.json and .gitattributes only as plain blobs (its SDK never stores
    them in LFS: modelscope_hub ``constants.UPLOAD_INLINE_METADATA_PATHS``)."""
    from gitmirror.lfs.pointer import MAX_POINTER_SIZE, parse_pointer

    found: list[str] = []
    for update in updates:
        if not (update.action.moves and update.new and metadata_files):
            continue
        listing = gitrepo.run_git(["ls-tree", "-z", "-l", update.new, "--", *sorted(metadata_files)],
                                  cwd=repo_dir, what="reading a tree")
        for record in filter(None, listing.split(b"\0")):
            meta, _, path = record.partition(b"\t")
            _mode, kind, oid, size = meta.decode().split()
            if kind != "blob" or int(size) >= MAX_POINTER_SIZE:
                continue
            blob = gitrepo.run_git(["cat-file", "blob", oid], cwd=repo_dir, what="reading a blob")
            if parse_pointer(blob) is not None:
                found.append(f"{path.decode('utf-8', 'surrogateescape')} ({update.dst_ref})")
    if not found:
        return ()
    return (PlanWarning("metadata-in-lfs", "the destination reads these files only as plain blobs, but the "
                        "source stores them in LFS: it will not parse them (commit them without LFS at the "
                        "source to fix it)", tuple(found)),)


# --- the whole planning step -------------------------------------------------------------------------


@dataclass
class PlanContext:
    """The inputs of planning that come from the outside world."""

    src_hub: "Hub"
    dst_hub: "Hub"
    cache_dir: Path
    src_refs: RemoteRefs
    dst_refs: RemoteRefs
    #: LFS pointer scans made in this run, by (include, exclude). A first run scans while the
    #: destination is being created; planning then finds the answer here.
    scans: dict[tuple[tuple[str, ...], tuple[str, ...]], list["gitrepo.PointerHit"]] = field(default_factory=dict)
    #: Which LFS objects a mirror plan lists (:data:`LfsScope`); the runner decides from the cache.
    lfs_scope: LfsScope = "new"
    #: Told of git's progress in the fetches (``(step, event)``); None: git runs quiet.
    git_progress: StepListener | None = None

    def lfs_pointers(self, include: Sequence[str], exclude: Sequence[str] = ()) -> list["gitrepo.PointerHit"]:
        key = (tuple(include), tuple(exclude))
        if key not in self.scans:
            self.scans[key] = gitrepo.lfs_pointers(self.cache_dir, include, exclude)
        return self.scans[key]


def fetch_source(ctx: PlanContext, refs: Sequence[str]) -> RemoteRefs:
    """Bring ``refs`` of the source into the cache; return the source's refs as the cache now has them.

    A ref the cache already holds at the object ls-remote listed is not fetched again (the
    warm-up of a first run, or an earlier run that stopped after its fetch, left it there).
    """
    repo_dir = ctx.cache_dir
    gitrepo.open_cache(repo_dir)
    cached = gitrepo.cached_refs(repo_dir)
    wanted = [ref for ref in refs if cached.get(gitrepo.local_ref(ref)) != ctx.src_refs.refs[ref]]
    messages = ""
    if wanted:
        try:
            progress = for_step(ctx.git_progress, "fetching source")
            messages = ctx.src_hub.remote().fetch(repo_dir, wanted, progress=progress) or ""
        except GitMirrorError as exc:
            raise exc if exc.transient else fetch_failure(ctx, wanted, exc) from None
        cached = gitrepo.cached_refs(repo_dir)
    # The source may have moved since ls-remote: plan with what was actually fetched, so that the
    # LFS objects listed and the commits pushed are the same history.
    fetched = dict(ctx.src_refs.refs)
    for ref in refs:
        sha = cached.get(gitrepo.local_ref(ref))
        if sha is None:
            raise unfetched_ref_error(ctx, ref, messages)
        fetched[ref] = sha
    return RemoteRefs(refs=fetched, head=ctx.src_refs.head, peeled=ctx.src_refs.peeled)


def fetch_failure(ctx: PlanContext, wanted: Sequence[str], exc: GitMirrorError) -> GitMirrorError:
    """The error for a fetch of ``wanted`` that git refused (``exc``, not transient).

    git fails the whole fetch when one ref it was asked for is gone ("couldn't find remote
    ref"): when a fresh listing of the source lacks one of ``wanted``, the source changed between
    listing and fetching, a race a later run does not meet (TransientError, retried by ``sync``'s
    next round, exit 8). Otherwise ``exc`` stands. Decided from the source's refs, not git's words.
    """
    gone = _refs_gone(ctx, wanted)
    return _deleted_meanwhile(gone) if gone else exc


def unfetched_ref_error(ctx: PlanContext, ref: str, messages: str) -> GitMirrorError:
    """The error for ``ref``, listed by the source but absent from the cache after a fetch that
    succeeded (``messages``: git's stderr of that fetch).

    A shallow source (``git clone --depth``) is the known cause: git fetches its objects, then
    refuses refs whose history stops at commits the source lacks, warning and exiting 0. That
    never passes on its own (UsageError, exit 2). A ref deleted meanwhile is a race (exit 8).
    """
    path = getattr(ctx.src_hub, "path", None)
    if gitrepo.shallow_rejections(messages) or (path is not None and gitrepo.is_shallow(path)):
        where = f"{path}" if path is not None else ctx.src_hub.display_name()
        return UsageError(
            f"the source {where} is a shallow clone: its history stops at commits it does not have, "
            f"so its {ref} cannot be mirrored",
            hint="run `git fetch --unshallow` in the source, or mirror from the repository it was cloned from",
        )
    if _refs_gone(ctx, [ref]):
        return _deleted_meanwhile([ref])
    detail = " ".join(messages.split())[:300]
    return GitMirrorError(f"git fetched the source's {ref} but did not store it" + (f" ({detail})" if detail else ""))


def _deleted_meanwhile(refs: Sequence[str]) -> TransientError:
    return TransientError(f"the source's {', '.join(refs)} was deleted while it was being fetched",
                          hint="run again: the next run mirrors the source as it is then")


def _refs_gone(ctx: PlanContext, refs: Sequence[str]) -> list[str]:
    """Those of ``refs`` a fresh listing of the source no longer has ([] when it cannot be listed)."""
    try:
        now = ctx.src_hub.remote().ls_remote()
    except GitMirrorError:
        return []
    return [ref for ref in refs if ref not in now.refs]


def prefetch_for_new_destination(ctx: PlanContext, options: MirrorOptions) -> None:
    """Fetch what :func:`make_plan` will need when the destination is being created meanwhile
    (``ctx.dst_refs`` is then empty).

    A new destination has none of the source's refs, so every selected one will be fetched and
    its history scanned for LFS pointers; doing both while the hub APIs create the repository
    takes them off the critical path.
    Planning still decides: it fetches whatever this left out (say the new repository's
    default branch is not the usual one) and never fetches twice what is already here.
    """
    chosen, _ = select_refs(ctx.src_refs, options, ctx.src_refs.head, dst_default_branch(ctx.dst_refs, ctx.dst_hub))
    fetched = fetch_source(ctx, sorted(set(chosen.values())))
    # Every selected ref is created on an empty destination: make_plan will scan this history.
    ctx.lfs_pointers(sorted({fetched.refs[ref] for ref in chosen.values()}))


def make_plan(ctx: PlanContext, options: MirrorOptions) -> MirrorPlan:
    """Fetch what the plan needs into the cache, classify every ref, list the LFS objects to check
    on the destination: those of the whole history it will hold when ``ctx.lfs_scope`` is
    ``"history"``, else those its refs do not reach yet."""
    chosen, skipped = select_refs(ctx.src_refs, options, ctx.src_refs.head, dst_default_branch(ctx.dst_refs, ctx.dst_hub))
    rewriter = convert_plan.rewriter_for(ctx.cache_dir, ctx.src_hub, ctx.dst_hub) if options.convert else None
    # With --convert the destination holds rewritten ids: compare it with the source through the map.
    src_view = convert_plan.known_refs(rewriter, ctx.src_refs) if rewriter else ctx.src_refs
    listed = ctx.dst_refs
    if options.modelscope_card:  # a card commit this cache made for the source's tip counts as that tip
        from gitmirror.card import settled_refs

        listed = settled_refs(ctx.cache_dir, chosen, src_view, ctx.dst_refs,
                              _full_branch(dst_default_branch(ctx.dst_refs, ctx.dst_hub)))
    stale = [s for d, s in chosen.items() if listed.refs.get(d) != src_view.refs[s]]
    history = ctx.lfs_scope == "history"
    if not stale and not history and (listed is not ctx.dst_refs or not options.modelscope_card):
        # Decided from ls-remote alone: when no selected ref differs and nothing is pruned,
        # there is nothing to fetch and no LFS call to make (the cron no-op).
        updates = classify(chosen, src_view, listed, options, lambda o, n: False, lambda s: False)
        updates = [replace(u, old=ctx.dst_refs.refs[u.dst_ref], new=ctx.dst_refs.refs[u.dst_ref])
                   if u.action is RefAction.UP_TO_DATE else u for u in updates]
        if not any(u.action.moves for u in updates):
            return MirrorPlan(ctx.src_hub.display_name(), ctx.dst_hub.display_name(), tuple(updates),
                              skipped=tuple(skipped))
    repo_dir = ctx.cache_dir
    # The whole history's pointers are read from the cache, so every selected ref is fetched then.
    src_refs = fetch_source(ctx, sorted(set(chosen.values())) if history or rewriter else stale)
    conversion = None
    if rewriter:
        src_refs, conversion = convert_plan.convert_refs(rewriter, src_refs, sorted(set(chosen.values())))

    # Destination tips the source history does not contain: fetch them, to tell the hub's own
    # initial commit (harmless to replace) from real diverged work.
    unknown = [ref for ref, sha in ctx.dst_refs.refs.items() if ref in chosen and not gitrepo.has_object(repo_dir, sha)]
    if unknown:
        ctx.dst_hub.remote().fetch(repo_dir, unknown, namespace=gitrepo.DST_NAMESPACE)

    def is_ancestor(old: str, new: str) -> bool:
        return gitrepo.has_object(repo_dir, old) and gitrepo.is_ancestor(repo_dir, old, new)

    def is_hub_initial(sha: str) -> bool:
        return gitrepo.has_object(repo_dir, sha) and is_hub_initial_commit(repo_dir, ctx.dst_refs, sha,
                                                                            ctx.dst_hub.initial_files)

    def present() -> list[str]:  # the destination's tips this cache holds
        return sorted({sha for sha in ctx.dst_refs.refs.values() if gitrepo.has_object(repo_dir, sha)})

    updates = classify(chosen, src_refs, ctx.dst_refs, options, is_ancestor, is_hub_initial)
    card: CardCommit | None = None
    card_warnings: tuple[PlanWarning, ...] = ()
    if options.modelscope_card:  # last: the card sits on whatever the plan pushes to the default branch
        from gitmirror.card import plan_card

        default_ref = _full_branch(dst_default_branch(ctx.dst_refs, ctx.dst_hub))
        updates, card, card_warnings = plan_card(repo_dir, updates, default_ref)
    if history:
        # Every mirrored ref's tip as it will be, moving or not; destination-only refs are not the
        # source's history and have no source to copy objects from.
        include = sorted({u.new for u in updates if u.src_ref is not None and u.new})
        exclude: list[str] = []
    else:
        include = sorted({u.new for u in updates if u.action.moves and u.new})
        exclude = present()
    hits = ctx.lfs_pointers(include, exclude)
    if rewriter and conversion:
        conversion = convert_plan.in_pushed_history(rewriter, conversion, [u.new for u in updates if u.action.moves and u.new],
                                                    present())
    violations = destination_violations(ctx, updates, exclude)
    return MirrorPlan(
        src=ctx.src_hub.display_name(),
        dst=ctx.dst_hub.display_name(),
        updates=tuple(updates),
        lfs_objects=tuple(h.obj for h in hits),
        skipped=tuple(skipped),
        lfs_paths={h.obj.oid: h.path for h in hits},
        violations=violations,
        warnings=metadata_warnings(repo_dir, updates, ctx.dst_hub.metadata_files) + card_warnings
        + convert_plan.conversion_warnings(conversion),
        lfs_scope=ctx.lfs_scope,
        card=card,
        conversion=conversion,
    )


def ref_name_violations(ctx: PlanContext, options: MirrorOptions) -> tuple["RuleViolation", ...]:
    """The ref names the destination's rules refuse among those a mirror into an empty destination
    would create (:func:`gitmirror.rules.ref_violations`), from the source's listing alone: no
    history is needed, so a run can check them before it creates the destination."""
    from gitmirror.rules import PushedRef, ref_violations

    chosen, _ = select_refs(ctx.src_refs, options, ctx.src_refs.head, dst_default_branch(ctx.dst_refs, ctx.dst_hub))
    pushed = [PushedRef(dst_ref, ctx.src_refs.refs[src_ref], True, src_ref) for dst_ref, src_ref in sorted(chosen.items())]
    return tuple(ref_violations(pushed, ctx.dst_hub.rules()))


def destination_violations(ctx: PlanContext, updates: Sequence[RefUpdate],
                           exclude: Sequence[str]) -> tuple["RuleViolation", ...]:
    """What the destination hub's rules (``Hub.rules()``) refuse in the refs ``updates`` move
    and the history they add on top of ``exclude``: see :mod:`gitmirror.rules`."""
    from gitmirror.rules import PushedRef, check_history

    pushed = [PushedRef(u.dst_ref, u.new, u.action is RefAction.CREATE, u.src_ref)
              for u in updates if u.action.moves and u.new]
    return check_history(ctx.cache_dir, pushed, exclude, ctx.dst_hub.rules())
