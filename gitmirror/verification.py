"""``verify``: compare a destination with its source and change nothing on either.

Refs are compared from both sides' ls-remote; LFS objects by asking the destination's LFS API
about every object the source's selected history points to (batch "download" answers, no bytes
moved). The source's history is fetched into the pair's cache to find those pointers. A branch
holding gitmirror's ModelScope card commit on top of the source's tip (``--modelscope-card``) is
in sync, and said to hold it (:attr:`VerifyResult.cards`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gitmirror import cache, gitrepo
from gitmirror.errors import GitMirrorError
from gitmirror.plan import MirrorOptions
from gitmirror.planner import dst_default_branch, select_refs
from gitmirror.runner import RunOptions, existing_refs, open_hub

if TYPE_CHECKING:
    from pathlib import Path

    from gitmirror.hubs.base import Hub
    from gitmirror.lfs import LfsObject

log = logging.getLogger("gitmirror.verify")


@dataclass
class VerifyResult:
    """Whether DST is an exact mirror of SRC, and every difference found.

    ``ref_differences``: one dict per selected ref that differs (``ref``, ``source_ref``,
    ``source`` and ``destination`` object ids, None where absent); ``missing_objects``: LFS objects
    of the source's history the destination lacks; ``objects_checked``: how many were asked about.
    ``cards``: destination refs that hold gitmirror's ModelScope card commit on top of the source's
    tip (``ref``, ``card``, ``source``, ``files``): expected there, so not differences (see
    :func:`card_differences`).
    """

    src: str
    dst: str
    ref_differences: list[dict[str, Any]] = field(default_factory=list)
    missing_objects: list["LfsObject"] = field(default_factory=list)
    objects_checked: int = 0
    cards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.ref_differences and not self.missing_objects

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "in_sync": self.in_sync,
            "ref_differences": self.ref_differences,
            "missing_objects": [{"oid": o.oid, "size": o.size} for o in self.missing_objects],
            "objects_checked": self.objects_checked,
            "cards": self.cards,
        }


def verify_pair(src: str, dst: str, selection: MirrorOptions, options: RunOptions) -> VerifyResult:
    """Compare DST with SRC (specs as on the command line) for the refs ``selection`` picks.

    Raises a :class:`~gitmirror.errors.GitMirrorError` subclass when either side cannot be read.
    """
    from gitmirror import lfs

    gitrepo.check_git()
    src_hub = open_hub(src, "src", options.src_token, options)
    dst_hub = open_hub(dst, "dst", options.dst_token, options)
    src_refs = existing_refs(src_hub)
    dst_refs = existing_refs(dst_hub)
    chosen, _ = select_refs(src_refs, selection, src_refs.head, dst_default_branch(dst_refs, dst_hub))
    result = VerifyResult(src=src_hub.display_name(), dst=dst_hub.display_name())
    with cache.workdir(src_hub, dst_hub, options.cache_dir, options.no_cache) as workdir:
        gitrepo.open_cache(workdir)
        src_hub.remote().fetch(workdir, list(chosen.values()))
        if selection.convert:
            # The destination holds the rewritten history: compare through the map (made now when
            # the cache lacks it: the rewrite is deterministic).
            from gitmirror.convert_plan import convert_refs, rewriter_for

            cached = gitrepo.cached_refs(workdir)
            fetched = replace(src_refs, refs={ref: cached.get(gitrepo.local_ref(ref), sha) for ref, sha in src_refs.refs.items()})
            src_refs, _ = convert_refs(rewriter_for(workdir, src_hub, dst_hub), fetched, sorted(set(chosen.values())))
        for dst_ref, src_ref in sorted(chosen.items()):
            have = dst_refs.refs.get(dst_ref)
            if have != src_refs.refs[src_ref]:
                result.ref_differences.append({"ref": dst_ref, "source_ref": src_ref, "source": src_refs.refs[src_ref],
                                               "destination": have})
        if result.ref_differences:
            result.ref_differences, result.cards = card_differences(workdir, dst_hub, result.ref_differences)
        tips = sorted({src_refs.refs[s] for s in chosen.values()})
        objects = [hit.obj for hit in gitrepo.lfs_pointers(workdir, tips)]
    result.objects_checked = len(objects)
    result.missing_objects = lfs.missing(dst_hub.lfs_store(), objects)
    return result


def card_differences(workdir: "Path", dst_hub: "Hub", differences: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split ``differences`` (as in :class:`VerifyResult`) into real ones and the destination refs
    holding a gitmirror card commit (:func:`gitmirror.card.card_parent`: its one parent is the
    source's tip, it changes only README.md / configuration.json, it carries the card trailer).
    The destination's differing branch tips are fetched into the cache ``workdir`` to be read; when
    that fetch fails, every difference stays one (the comparison is what verify owes)."""
    from gitmirror.card import card_parent, changed_paths

    branches = [d for d in differences if d["destination"] and d["ref"].startswith("refs/heads/")]
    held = [d["ref"] for d in branches if not gitrepo.has_object(workdir, d["destination"])]
    if held:
        try:
            dst_hub.remote().fetch(workdir, held, namespace=gitrepo.DST_NAMESPACE)
        except GitMirrorError as exc:
            log.debug("could not fetch the destination's %s to look for card commits: %s", ", ".join(held), exc)
            return differences, []
    real, cards = [], []
    for diff in differences:
        parent = card_parent(workdir, diff["destination"]) if diff in branches else None
        if parent is None or parent != diff["source"]:
            real.append(diff)
            continue
        cards.append({"ref": diff["ref"], "card": diff["destination"], "source": diff["source"],
                      "files": changed_paths(workdir, diff["destination"])})
    return real, cards
