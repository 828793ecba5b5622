"""Human-readable output: the plan (--dry-run), a run's summary, a verification. Uses rich."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from gitmirror.verification import VerifyResult
    from gitmirror.execute import MirrorResult
    from gitmirror.plan import MirrorPlan
    from gitmirror.sync import MirrorOutcome, SyncReport


#: Width of tables written to a file or a pipe (a cron log, CI): wide enough that rows never wrap.
#: Rich would otherwise assume 80 columns and break long names mid-word. A table is only as wide as
#: its content, so nothing is padded to this. COLUMNS, when set, still decides.
LOG_WIDTH = 1000
#: One line at a time on stderr: sync's workers report from their own threads.
_STDERR_LOCK = threading.Lock()


def make_console(stream: TextIO | None = None, **options):
    """A rich Console for ``stream`` (stdout by default): the terminal's width on a terminal, else LOG_WIDTH."""
    import os
    import sys

    from rich.console import Console

    stream = stream or sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else LOG_WIDTH
    return Console(file=stream, highlight=False, width=width, **options)


def _console():
    return make_console(soft_wrap=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def plan_table(plan: "MirrorPlan"):
    from rich.table import Table

    table = Table(title=f"{plan.src} -> {plan.dst}", title_justify="left")
    for column in ("destination ref", "action", "from", "to", "source ref"):
        table.add_column(column)
    for u in plan.updates:
        table.add_row(u.dst_ref, u.action.value, _short(u.old), _short(u.new), u.src_ref or "")
    return table


def snapshot_lines(plan: "MirrorPlan") -> list[str]:
    """What a --snapshot run makes (empty for a mirror run)."""
    snap = plan.snapshot
    if snap is None:
        return []
    onto = f"on top of {_short(snap.parent)}" if snap.parent else "as a new history (no parent)"
    if snap.commit is None:
        return [f"Snapshot: {snap.dst_ref} already holds the tree of {snap.src_ref} ({_short(snap.src_commit)}); no new commit."]
    subject = snap.message.strip().splitlines()[0] if snap.message.strip() else ""
    return [
        f"Snapshot: commit {_short(snap.commit)} with the tree of {snap.src_ref} ({_short(snap.src_commit)}), "
        f"{onto}, for {snap.dst_ref}",
        f"  message: {subject}",
    ]


def card_lines(plan: "MirrorPlan") -> list[str]:
    """The ModelScope card commit a --modelscope-card run puts on the default branch (empty without one)."""
    card = plan.card
    if card is None:
        return []
    said = ", ".join(f"{k} {v}" for k, v in (("task", card.task), ("framework", card.framework), ("license", card.license)) if v)
    over = f", replacing the card {_short(card.replaces)}" if card.replaces else ""
    return [f"ModelScope card: commit {_short(card.commit)} on top of {_short(card.parent)} for {card.dst_ref} "
            f"({', '.join(card.files)}: {said or 'nothing known'}){over}"]


def conversion_lines(plan: "MirrorPlan", limit: int = 20) -> list[str]:
    """What ``--convert`` rewrote (empty without it): commits, then each file changed (the first
    ``limit``, then a count)."""
    conv = plan.conversion
    if conv is None:
        return []
    lines = [f"Converted: {conv.commits} commit(s) rewritten by this run, {len(conv.files)} file(s) changed"
             + (f", {len(conv.signatures_dropped)} signature(s) dropped" if conv.signatures_dropped else "")]
    for item in conv.files[:limit]:
        what = "into LFS" if item.to_lfs else "out of LFS (a plain file)"
        lines.append(f"  {item.path} ({human_bytes(item.size)}) {what}")
    if len(conv.files) > limit:
        lines.append(f"  ... and {len(conv.files) - limit} more")
    return lines


def warning_lines(plan: "MirrorPlan", limit: int = 20) -> list[str]:
    """The plan's warnings, each with its paths (the first ``limit``, then a count)."""
    lines = []
    for warning in plan.warnings:
        lines.append(f"warning ({warning.code}): {warning.message}")
        lines.extend(f"  {path}" for path in warning.paths[:limit])
        if len(warning.paths) > limit:
            lines.append(f"  ... and {len(warning.paths) - limit} more")
    return lines


def scope_words(plan: "MirrorPlan") -> str:
    """Which LFS objects a run checks on the destination, in words."""
    return "of the whole history" if plan.lfs_scope == "history" else "new"


def print_plan(plan: "MirrorPlan", table: bool = True) -> None:
    """A dry run's plan: its table (unless ``table`` is false, for -q: one line instead), its
    warnings, the LFS objects it would check, and the failures it foresees."""
    from rich.markup import escape

    console = _console()
    if not table:
        moving = len(plan.moving)
        console.print(f"{plan.src} -> {plan.dst}: would move {moving} ref(s); LFS objects to check "
                      f"({scope_words(plan)}): {len(plan.lfs_objects)} ({human_bytes(plan.lfs_bytes)})", markup=False)
        for failure in plan.foreseen:
            console.print(f"the run would fail (exit {failure.error.exit_code}): {failure.error}", markup=False)
        return
    console.print(plan_table(plan))
    for line in snapshot_lines(plan) + conversion_lines(plan) + card_lines(plan):
        console.print(line, markup=False)
    for line in warning_lines(plan):
        console.print(line, markup=False)
    console.print(f"LFS objects to check ({scope_words(plan)}): {len(plan.lfs_objects)} ({human_bytes(plan.lfs_bytes)}); "
                  "the destination is asked which it lacks when the mirror runs.")
    for note in plan.skipped:
        console.print(f"skipped {note}")
    for failure in plan.foreseen:  # diverged refs first: the run would stop there
        console.print(f"[bold red]the run would fail (exit {failure.error.exit_code}):[/] {escape(str(failure.error))}")
    if plan.is_noop and not plan.lfs_objects and not plan.foreseen:
        console.print("Nothing to do: the destination is up to date.")


def print_result(result: "MirrorResult", table: bool = True) -> None:
    """The summary of a run: the plan's table (unless ``table`` is false, for -q), then one line."""
    console = _console()
    plan = result.plan
    if not result.changed:
        checked = f"; {result.objects_checked} LFS objects {scope_words(plan)} checked, all there" if result.verified else ""
        console.print(f"{plan.src} -> {plan.dst}: up to date{checked} ({result.seconds:.2f} s)")
        return
    if table:
        console.print(plan_table(plan))
        for line in snapshot_lines(plan) + conversion_lines(plan):
            console.print(line, markup=False)
    console.print(
        f"{plan.src} -> {plan.dst}: refs: {result.refs_created} created, {result.refs_updated} updated, {result.refs_deleted} deleted, "
        f"{result.refs_unchanged} unchanged | LFS: {result.objects_checked} {scope_words(plan)} checked, "
        f"{result.objects_moved} moved ({human_bytes(result.bytes_moved)}), {result.objects_present} already there | "
        f"{result.seconds:.1f} s, {human_bytes(result.throughput)}/s, {result.retries} retries"
        + (" | verified" if result.verified else "")
    )
    for line in warning_lines(plan):
        console.print(line, markup=False)


def print_verify(result: "VerifyResult") -> None:
    console = _console()
    if result.in_sync:
        console.print(f"{result.src} -> {result.dst}: in sync ({result.objects_checked} LFS objects checked)")
        for card in result.cards:
            console.print(f"  {card['ref']}: gitmirror's ModelScope card {_short(card['card'])} on top of the source's "
                          f"{_short(card['source'])} ({', '.join(card['files'])})", markup=False)
        return
    console.print(f"[bold red]{result.src} -> {result.dst}: NOT in sync[/]")
    for diff in result.ref_differences:
        console.print(f"  ref {diff['ref']}: source {_short(diff['source'])}, destination {_short(diff['destination'])}")
    for obj in result.missing_objects:
        console.print(f"  LFS object {obj.oid} ({human_bytes(obj.size)}) missing on the destination")


def error_dict(exc: BaseException, exit_code: int, message: str, refs: "tuple[str, ...] | list[str]" = ()) -> dict:
    """What ``--json`` prints on stdout for a failure, as ``{"error": error_dict(...)}``: the
    one-line ``message`` (as on stderr, scrubbed), the ``exit_code``, the error's ``class`` name,
    the HTTP ``status`` it stands for (or null), and the destination ``refs`` it concerns (when known)."""
    named = list(refs) or list(getattr(exc, "refs", None) or ())
    ref = getattr(exc, "ref", None)
    if ref and ref not in named:
        named.insert(0, ref)
    return {"message": message, "exit_code": exit_code, "class": type(exc).__name__,
            "status": getattr(exc, "status", None), **({"ref": named[0], "refs": named} if named else {})}


def print_outcome_line(outcome: "MirrorOutcome") -> None:
    """One line per mirror as it finishes (stderr), so a long sync shows life in a log."""
    import sys

    detail = f": {outcome.reason}" if outcome.reason else ""
    line = " ".join(f"gitmirror: {outcome.entry.name}: {outcome.status}{detail}".split())
    # One write of the whole line, under a lock: print() writes the text and its newline apart, so
    # two workers finishing together could run their lines into one.
    with _STDERR_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def print_sync(report: "SyncReport") -> None:
    from rich.table import Table

    table = Table(title="gitmirror sync", title_justify="left")
    for column in ("mirror", "outcome", "refs", "objects", "bytes", "time", "reason"):
        table.add_column(column, overflow="fold")
    styles = {"failed": "bold red", "updated": "green", "skipped": "yellow"}
    for o in report.outcomes:
        table.add_row(o.entry.name, f"[{styles.get(o.status, '')}]{o.status}[/]" if o.status in styles else o.status,
                      str(o.refs_changed), str(o.objects_moved), human_bytes(o.bytes_moved), f"{o.seconds:.1f} s", o.reason)
    console = _console()
    console.print(table)
    counts = report.to_dict()["counts"]
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    count = len(report.outcomes)
    console.print(f"{count} mirror{'' if count == 1 else 's'}: {summary} in {report.seconds:.1f} s")
