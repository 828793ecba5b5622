"""A mirror's plan as plain, typed data: which refs move how (:class:`RefUpdate`, :class:`RefAction`),
which LFS objects to check and move, what the run would foresee failing, warnings and the
destination's rule violations. :mod:`gitmirror.planner` makes a :class:`MirrorPlan`;
:mod:`gitmirror.execute` carries it out; ``--dry-run`` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal

from gitmirror.errors import DivergedError, GitMirrorError

if TYPE_CHECKING:
    from gitmirror.lfs import LfsObject
    from gitmirror.rules import RuleViolation


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
    #: the destination's older gitmirror card commit (gitmirror.card) replaced by the card rebuilt on
    #: the new source tip, pushed with --force-with-lease on the old card commit
    REBUILD_CARD = "rebuild-card"

    @property
    def moves(self) -> bool:
        return self in _MOVING


_MOVING = {RefAction.CREATE, RefAction.FAST_FORWARD, RefAction.FORCE, RefAction.REPLACE_INITIAL, RefAction.DELETE,
           RefAction.REBUILD_CARD}


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
        return self.action in (RefAction.FORCE, RefAction.REPLACE_INITIAL, RefAction.DELETE, RefAction.REBUILD_CARD)


@dataclass(frozen=True)
class MirrorOptions:
    """What to mirror and how careful to be. Patterns are fnmatch globs on full ref names."""

    refs: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    map: tuple[tuple[str, str], ...] = ()
    force: bool = False
    prune: bool = False
    #: Put a ModelScope card commit on the destination's default branch (gitmirror.card).
    modelscope_card: bool = False
    #: Rewrite what the destination's rules refuse (``--convert``, see :mod:`gitmirror.convert`).
    convert: bool = False


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


@dataclass(frozen=True)
class CardCommit:
    """What ``--modelscope-card`` makes (:mod:`gitmirror.card`): the card commit a plan puts on ``dst_ref``: ``commit`` on top of ``parent`` (the mirrored
    tip), changing ``files`` (paths), with ``task``/``framework``/``license`` as written (None:
    not known). ``replaces``: the older card commit on the destination it is pushed over (leased),
    else None."""

    dst_ref: str
    parent: str
    commit: str
    files: tuple[str, ...]
    task: str | None
    framework: str | None
    license: str | None
    replaces: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ConvertedFile:
    """A file ``--convert`` changed: ``path`` (where it was first seen), ``size`` in bytes, the LFS
    object ``oid``; ``to_lfs``: a plain blob made an LFS pointer, else an LFS pointer made plain."""

    path: str
    size: int
    oid: str
    to_lfs: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Conversion:
    """What ``--convert`` did to the history of a plan (:mod:`gitmirror.convert`).

    ``refs``: (source ref, source id, rewritten id) of every selected ref; ``commits``: rewritten
    commits among those the push adds to the destination; ``files``: the changed files of that
    history (whichever run rewrote them: the map in the cache remembers); ``signatures_dropped``:
    source commits and tags whose signature this run's rewrite could not keep.
    """

    refs: tuple[tuple[str, str, str], ...] = ()
    commits: int = 0
    files: tuple[ConvertedFile, ...] = ()
    signatures_dropped: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"refs": [{"ref": r, "source": s, "rewritten": n} for r, s, n in self.refs],
                "commits_rewritten": self.commits, "files": [f.to_dict() for f in self.files],
                "signatures_dropped": list(self.signatures_dropped)}


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
class PlanWarning:
    """Something the destination may not take as the source meant it, told before anything moves.

    ``code`` is stable for scripts: ``metadata-in-lfs`` = files the destination hub parses only as
    plain blobs are LFS pointers in the source (``paths``: ``"<path> (<ref>)"``);
    ``card-unmapped`` = the source card's ``pipeline_tag`` / ``library_name`` (``paths``) have no
    ModelScope name, the card leaves them out; ``card-skipped`` = no card commit could be made
    (``paths``: the file that stopped it). See :mod:`gitmirror.card`.
    """

    code: str
    message: str
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "paths": list(self.paths)}


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
    #: What the destination would refuse (gitmirror.rules): the run stops before anything moves.
    violations: tuple["RuleViolation", ...] = ()
    warnings: tuple[PlanWarning, ...] = ()
    lfs_scope: LfsScope = "new"
    failures: tuple[ForeseenFailure, ...] = ()
    #: With --modelscope-card: the card commit on the default branch (a gitmirror.card.CardCommit).
    card: CardCommit | None = None
    #: Set when the history was rewritten for the destination (``--convert``).
    conversion: Conversion | None = None

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
            "warnings": [w.to_dict() for w in self.warnings],
            "foreseen_failures": [f.to_dict() for f in self.foreseen],
            **({"snapshot": self.snapshot.to_dict()} if self.snapshot else {}),
            **({"card": self.card.to_dict()} if self.card else {}),
            **({"violations": [v.to_dict() for v in self.violations]} if self.violations else {}),
            **({"conversion": self.conversion.to_dict()} if self.conversion else {}),
        }


def diverged_error(plan: MirrorPlan) -> DivergedError:
    """The error of a run stopped by its diverged refs (exit 6): nothing was changed. A destination
    with history of its own (a hub's initial commit, files uploaded by hand or by an older script)
    is told both ways out."""
    refs = tuple(u.dst_ref for u in plan.diverged)
    error = DivergedError(
        f"{len(refs)} destination ref(s) diverged from the source: {', '.join(refs)}; nothing was changed",
        hint="rerun with --force to replace the destination's history with the source's (pushed with "
             "--force-with-lease), or with --snapshot to add the source's files on top of it as one new commit",
    )
    error.refs = refs  # type: ignore[attr-defined]  # for --json's "refs"
    return error
