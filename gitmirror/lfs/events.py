"""What the transfer queue tells its caller: per-object progress events as they happen, and a
report (counts, bytes, retries, failures) at the end. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gitmirror.errors import GitMirrorError, IntegrityError
from gitmirror.lfs.pointer import LfsObject

__all__ = ["EventKind", "TransferEvent", "TransferFailure", "TransferReport", "summary_error"]

EventKind = Literal["started", "advanced", "done", "skipped", "retrying", "failed"]


@dataclass(frozen=True)
class TransferEvent:
    """One step of one object, for a progress bar. ``nbytes`` is the advance (bytes) for ``advanced``.

    Per object: ``started`` once, then ``advanced`` as bytes reach the destination, then ``done``
    or ``failed``; ``retrying`` (its ``nbytes`` = the bytes advanced in the failed attempt, to be
    taken back) may come in between. Objects the destination already has get only ``skipped``
    (or ``started`` ... ``skipped`` when a retry finds the object there).
    Events come from worker threads; a callback must be thread-safe (rich's Progress is).
    """

    kind: EventKind
    obj: LfsObject
    nbytes: int = 0
    message: str = ""


@dataclass(frozen=True)
class TransferFailure:
    """One object that could not be copied: its oid, the one-line reason, the error itself."""

    oid: str
    reason: str
    error: GitMirrorError = field(repr=False, compare=False)


@dataclass
class TransferReport:
    """What :func:`~gitmirror.lfs.queue.transfer` did. ``moved`` + ``already_present`` + failures
    == ``requested``. ``bytes_moved`` counts bytes; ``seconds`` is the wall time.

    ``retries`` counts every retry of the transfer, of batch requests and of objects alike: the
    same retries the transfer's ``on_retry`` was told of, one by one. A caller that counts
    through ``on_retry`` must not add ``retries`` on top.
    """

    requested: int = 0
    already_present: int = 0
    moved: int = 0
    bytes_moved: int = 0
    retries: int = 0
    failures: list[TransferFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def summary_error(report: TransferReport) -> GitMirrorError:
    """One error for all failures, of the class of the most telling one (integrity first).

    The error carries the report as ``.report`` so that a caller can list every failed object.
    """
    failures = report.failures
    worst = next((f for f in failures if isinstance(f.error, IntegrityError)), failures[0])
    names = ", ".join(f.oid for f in failures[:5]) + (", ..." if len(failures) > 5 else "")
    message = (
        f"{len(failures)} of {report.requested} LFS objects could not be copied ({names}); "
        f"first: {worst.reason}"
    )
    error = type(worst.error)(message)
    error.report = report  # type: ignore[attr-defined]
    return error
