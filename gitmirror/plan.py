"""Plan a mirror: which refs move how, and which LFS objects the new history needs, as plain data.

Nothing here writes to the destination. Planning may fetch the source's history into the local
cache, because telling a fast-forward from a divergence, and finding the LFS pointers of the new
history, need that history.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gitmirror import gitrepo
from gitmirror.errors import DivergedError, GitMirrorError, UsageError
from gitmirror.remote import RemoteRefs

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub
    from gitmirror.lfs import LfsObject

log = logging.getLogger("gitmirror.plan")

DEFAULT_PATTERNS = ("refs/heads/*", "refs/tags/*")
#: Files a hub puts into the commit it makes when a repository is created.
HUB_INITIAL_FILES = frozenset({".gitattributes", "README.md"})


class RefAction(str, Enum):
    """What happens to one destination ref. Only the actions in ``_MOVING`` change the destination;
    ``DIVERGED`` stops the whole run before anything moves (exit 6) unless ``--force`` was given."""

    CREATE = "create"
    FAST_FORWARD = "fast-forward"
    UP_TO_DATE = "up-to-date"
    FORCE = "force-update"  # diverged, overwritten because --force was given
    REPLACE_INITIAL = "replace-initial-commit"  # the hub's own initial commit is overwritten
    DIVERGED = "diverged"  # diverged and --force not given: blocks the run
    DELETE = "delete"  # destination-only ref removed because of --prune
    KEEP = "destination-only"  # destination-only ref left alone

    @property
    def moves(self) -> bool:
        return self in _MOVING


_MOVING = {RefAction.CREATE, RefAction.FAST_FORWARD, RefAction.FORCE, RefAction.REPLACE_INITIAL, RefAction.DELETE}


@dataclass(frozen=True)
class RefUpdate:
    """One destination ref: where it is (``old``), where it goes (``new``), and why."""

    dst_ref: str
    src_ref: str | None
    old: str | None
    new: str | None
    action: RefAction

    @property
    def forced(self) -> bool:
        return self.action in (RefAction.FORCE, RefAction.REPLACE_INITIAL, RefAction.DELETE)


@dataclass(frozen=True)
class MirrorOptions:
    """What to mirror and how careful to be. Patterns are fnmatch globs on full ref names."""

    refs: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    map: tuple[tuple[str, str], ...] = ()
    force: bool = False
    prune: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot run makes: the source's tree at one revision, as one commit on the destination."""

    src_ref: str
    src_commit: str
    tree: str
    dst_ref: str
    #: The destination's head the commit builds on; None for a new history (see the module docstring).
    parent: str | None
    #: The commit made in the cache; None when the destination already has this tree.
    commit: str | None
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


#: Which LFS objects a run asks the destination about: ``"history"``, every object of the history
#: the destination will hold (a first run for a pair, ``--repair``); ``"new"``, only the objects of
#: history the destination's refs do not already reach (a run with a checked cache: the rest were
#: checked by an earlier run).
LfsScope = Literal["history", "new"]
#: When a foreseen failure would stop the run, in the order a run meets them.
Stage = Literal["plan", "lfs", "push"]
_STAGES: tuple[Stage, ...] = ("plan", "lfs", "push")


@dataclass(frozen=True)
class ForeseenFailure:
    """A failure the run would meet, known before anything moves: ``error`` is what the run would
    raise (its ``exit_code`` is the run's), ``stage`` when (``plan``: before any LFS transfer;
    ``lfs``: the LFS transfer; ``push``: the destination refusing refs), ``refs`` the destination
    refs it concerns. ``--dry-run`` prints the plan, then exits with the first one's code.

    Checks of the destination's rules (refs it will refuse) add ``stage="push"`` entries to
    :attr:`MirrorPlan.failures`."""

    error: GitMirrorError
    stage: Stage = "plan"
    refs: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"message": str(self.error), "exit_code": self.error.exit_code, "class": type(self.error).__name__,
                "stage": self.stage, "refs": list(self.refs)}


@dataclass(frozen=True)
class MirrorPlan:
    """Everything a mirror run will do, decided before it does any of it.

    ``lfs_scope`` says which LFS objects ``lfs_objects`` holds (:data:`LfsScope`): with
    ``"history"`` the run asks the destination about each of them and uploads what it lacks even
    when no ref moves. ``failures`` are foreseen failures besides diverged refs (see
    :attr:`foreseen`).
    """

    src: str
    dst: str
    updates: tuple[RefUpdate, ...]
    lfs_objects: tuple["LfsObject", ...] = ()
    skipped: tuple[str, ...] = ()  # source refs left out, with the reason
    lfs_paths: Mapping[str, str] = field(default_factory=dict)  # oid -> a path it appears at
    #: Set for a --snapshot run: the one commit it makes (see gitmirror.snapshot).
    snapshot: Snapshot | None = None
    lfs_scope: LfsScope = "new"
    failures: tuple[ForeseenFailure, ...] = ()

    @property
    def moving(self) -> tuple[RefUpdate, ...]:
        return tuple(u for u in self.updates if u.action.moves)

    @property
    def diverged(self) -> tuple[RefUpdate, ...]:
        return tuple(u for u in self.updates if u.action is RefAction.DIVERGED)

    @property
    def is_noop(self) -> bool:
        return not self.moving

    @property
    def lfs_bytes(self) -> int:
        return sum(o.size for o in self.lfs_objects)

    @property
    def foreseen(self) -> tuple[ForeseenFailure, ...]:
        """Every failure the run would meet, in the order it would meet them: diverged refs
        first (the run stops before any LFS transfer), then :attr:`failures` by stage."""
        later = tuple(sorted(self.failures, key=lambda f: _STAGES.index(f.stage)))
        if not self.diverged:
            return later
        return (ForeseenFailure(diverged_error(self), "plan", tuple(u.dst_ref for u in self.diverged)),) + later

    @property
    def exit_code(self) -> int:
        """The code the run would exit with as far as the plan can tell: the first foreseen failure's, else 0."""
        foreseen = self.foreseen
        return foreseen[0].error.exit_code if foreseen else 0

    def to_dict(self) -> dict:
        return {
            "src": self.src,
            "dst": self.dst,
            "updates": [{**asdict(u), "action": u.action.value} for u in self.updates],
            "lfs_objects": [{"oid": o.oid, "size": o.size, "path": self.lfs_paths.get(o.oid)} for o in self.lfs_objects],
            "lfs_bytes": self.lfs_bytes,
            "lfs_scope": self.lfs_scope,
            "skipped": list(self.skipped),
            "foreseen_failures": [f.to_dict() for f in self.foreseen],
            **({"snapshot": self.snapshot.to_dict()} if self.snapshot else {}),
        }


def diverged_error(plan: MirrorPlan) -> DivergedError:
    """The error of a run stopped by its diverged refs (exit 6): nothing was changed."""
    refs = tuple(u.dst_ref for u in plan.diverged)
    error = DivergedError(
        f"{len(refs)} destination ref(s) diverged from the source: {', '.join(refs)}; nothing was changed",
        hint="rerun with --force to overwrite them (pushed with --force-with-lease)",
    )
    error.refs = refs  # type: ignore[attr-defined]  # for --json's "refs"
    return error


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


def is_hub_initial_commit(repo_dir: Path, dst: RemoteRefs, sha: str) -> bool:
    """True for the hub's own first commit, harmless to replace: the destination's only ref, a
    root commit holding nothing but files a hub makes at creation (:data:`HUB_INITIAL_FILES`).
    ``sha`` must be in the cache ``repo_dir``."""
    if len(dst.refs) != 1:
        return False
    parents, paths = gitrepo.commit_summary(repo_dir, sha)
    return parents == 0 and bool(paths) and set(paths) <= HUB_INITIAL_FILES


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
    if wanted:
        ctx.src_hub.remote().fetch(repo_dir, wanted)
        cached = gitrepo.cached_refs(repo_dir)
    # The source may have moved since ls-remote: plan with what was actually fetched, so that the
    # LFS objects listed and the commits pushed are the same history.
    fetched = dict(ctx.src_refs.refs)
    for ref in refs:
        sha = cached.get(gitrepo.local_ref(ref))
        if sha is None:
            raise GitMirrorError(f"the source's {ref} vanished while it was being fetched", hint="rerun")
        fetched[ref] = sha
    return RemoteRefs(refs=fetched, head=ctx.src_refs.head, peeled=ctx.src_refs.peeled)


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
    stale = [s for d, s in chosen.items() if ctx.dst_refs.refs.get(d) != ctx.src_refs.refs[s]]
    history = ctx.lfs_scope == "history"
    if not stale and not history:
        # Decided from ls-remote alone: when no selected ref differs and nothing is pruned,
        # there is nothing to fetch and no LFS call to make (the cron no-op).
        updates = classify(chosen, ctx.src_refs, ctx.dst_refs, options, lambda o, n: False, lambda s: False)
        if not any(u.action.moves for u in updates):
            return MirrorPlan(ctx.src_hub.display_name(), ctx.dst_hub.display_name(), tuple(updates),
                              skipped=tuple(skipped))
    repo_dir = ctx.cache_dir
    # The whole history's pointers are read from the cache, so every selected ref is fetched then.
    src_refs = fetch_source(ctx, sorted(set(chosen.values())) if history else stale)

    # Destination tips the source history does not contain: fetch them, to tell the hub's own
    # initial commit (harmless to replace) from real diverged work.
    unknown = [ref for ref, sha in ctx.dst_refs.refs.items() if ref in chosen and not gitrepo.has_object(repo_dir, sha)]
    if unknown:
        ctx.dst_hub.remote().fetch(repo_dir, unknown, namespace=gitrepo.DST_NAMESPACE)

    def is_ancestor(old: str, new: str) -> bool:
        return gitrepo.has_object(repo_dir, old) and gitrepo.is_ancestor(repo_dir, old, new)

    def is_hub_initial(sha: str) -> bool:
        return gitrepo.has_object(repo_dir, sha) and is_hub_initial_commit(repo_dir, ctx.dst_refs, sha)

    updates = classify(chosen, src_refs, ctx.dst_refs, options, is_ancestor, is_hub_initial)
    if history:
        # Every mirrored ref's tip as it will be, moving or not; destination-only refs are not the
        # source's history and have no source to copy objects from.
        include = sorted({u.new for u in updates if u.src_ref is not None and u.new})
        exclude: list[str] = []
    else:
        include = sorted({u.new for u in updates if u.action.moves and u.new})
        exclude = sorted({sha for sha in ctx.dst_refs.refs.values() if gitrepo.has_object(repo_dir, sha)})
    hits = ctx.lfs_pointers(include, exclude)
    return MirrorPlan(
        src=ctx.src_hub.display_name(),
        dst=ctx.dst_hub.display_name(),
        updates=tuple(updates),
        lfs_objects=tuple(h.obj for h in hits),
        skipped=tuple(skipped),
        lfs_paths={h.obj.oid: h.path for h in hits},
        lfs_scope=ctx.lfs_scope,
    )
