"""Where ``--convert`` meets planning and ``verify``: the source's refs seen through the rewrite.

:func:`known_refs` translates a listing through the cache's map only (the cron no-op stays two
listings); :func:`convert_refs` rewrites what the map lacks (see :mod:`gitmirror.convert`) and
says what changed (:class:`gitmirror.plan.Conversion`, :class:`gitmirror.plan.PlanWarning`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror import gitrepo
from gitmirror.convert import Rewriter
from gitmirror.convert_objects import CatFile, is_signed
from gitmirror.plan import Conversion, ConvertedFile, PlanWarning
from gitmirror.remote import RemoteRefs

if TYPE_CHECKING:
    from gitmirror.hubs.base import Hub
    from gitmirror.lfs import LfsObject, LocalLfsStore


def rewriter_for(repo_dir: Path, src_hub: "Hub", dst_hub: "Hub") -> Rewriter:
    """The rewrite toward ``dst_hub`` (its rules, its metadata files), in the cache ``repo_dir``;
    LFS objects of metadata pointers come from ``src_hub``'s LFS store."""

    def fetch(objects: Sequence["LfsObject"], store: "LocalLfsStore") -> None:
        from gitmirror import lfs

        lfs.transfer(list(objects), src_hub.lfs_store(), store, jobs=4)

    return Rewriter(repo_dir, dst_hub.rules(), dst_hub.metadata_files, fetch)


def known_refs(rewriter: Rewriter, refs: RemoteRefs) -> RemoteRefs:
    """``refs`` with each id an earlier run rewrote replaced by its rewritten id; ids the map
    lacks are left as they are (a ref so named is then planned as stale, fetched and converted)."""
    return replace(refs, refs={ref: rewriter.known(sha) or sha for ref, sha in refs.refs.items()})


def convert_refs(rewriter: Rewriter, fetched: RemoteRefs, wanted: Sequence[str]) -> tuple[RemoteRefs, Conversion]:
    """Rewrite the history of the source refs ``wanted`` (fetched into the cache: ``fetched``);
    return the refs as the destination should get them and what the rewrite did."""
    tips = sorted({fetched.refs[ref] for ref in wanted})
    done = rewriter.rewrite(tips)
    refs = dict(fetched.refs)
    refs.update({ref: done.refs[fetched.refs[ref]] for ref in wanted})
    conversion = Conversion(
        refs=tuple((ref, fetched.refs[ref], refs[ref]) for ref in sorted(wanted)),
        commits=len(done.commits),
        files=tuple(ConvertedFile(c.path, c.size, c.obj.oid, c.to_lfs) for c in done.changed),
        signatures_dropped=tuple(sorted(done.unsigned)),
    )
    return replace(fetched, refs=refs, peeled={}), conversion


def in_pushed_history(rewriter: Rewriter, conversion: Conversion, include: Sequence[str],
                      exclude: Sequence[str]) -> Conversion:
    """``conversion`` counting what the push adds to the destination (the history of ``include``
    not reachable from ``exclude``), whichever run rewrote it: its rewritten commits, each
    changed file of it (with a path it appears at), and the signed source commits and tags it
    holds unsigned. One ``git rev-list``, and one history walk when the map holds changed files."""
    if not include:
        return replace(conversion, commits=0, files=(), signatures_dropped=())
    repo_dir = rewriter.repo_dir
    rewritten = {new for src, new in rewriter.map.objects.items() if new != src}
    stdin = "\n".join([*include, *(f"^{sha}" for sha in exclude)]).encode() + b"\n"
    listed = gitrepo.run_git(["rev-list", "--stdin"], cwd=repo_dir, stdin=stdin, what="counting rewritten commits")
    commits = sum(1 for sha in listed.decode().split() if sha in rewritten)
    changed = {c.new_blob: c for c in rewriter.map.blobs.values()}
    files: dict[str, ConvertedFile] = {}
    if changed:
        for sha, path in gitrepo.iter_history_objects(repo_dir, include, exclude):
            if sha in changed and sha not in files:
                c = changed[sha]
                files[sha] = ConvertedFile(path, c.size, c.obj.oid, c.to_lfs)
    return replace(conversion, commits=commits, files=tuple(sorted(files.values(), key=lambda f: (f.path, f.oid))),
                   signatures_dropped=_signed_sources(rewriter, [*listed.decode().split(), *include]))


def _signed_sources(rewriter: Rewriter, pushed: Sequence[str]) -> tuple[str, ...]:
    """The signed source commits and tags whose rewritten copies are among ``pushed`` (ids in the
    cache), whichever run rewrote them: a dry run or an interrupted run fills the map, and the
    run that pushes must still say which signatures the destination will not have."""
    source_of = {new: src for src, new in rewriter.map.objects.items() if new != src}
    wanted = sorted({source_of[sha] for sha in pushed if sha in source_of})
    if not wanted:
        return ()
    with CatFile(rewriter.repo_dir) as cat:
        return tuple(sha for sha in wanted if is_signed(*cat.read(sha)))


def conversion_warnings(conversion: Conversion | None) -> tuple[PlanWarning, ...]:
    """A ``signatures-dropped`` warning when the rewrite dropped signatures: a rewritten commit
    or tag has new bytes, which its signature no longer covers."""
    if conversion is None or not conversion.signatures_dropped:
        return ()
    return (PlanWarning("signatures-dropped", "these signed source commits and tags were rewritten for the "
                        "destination; a signature cannot survive a rewrite, so their rewritten copies are unsigned",
                        conversion.signatures_dropped),)
