"""Where the source's LFS objects are: the endpoint git-lfs would use in a clone of the source.

git-lfs asks, for a download (lfsapi/endpoint_finder.go; docs/man/git-lfs-config.adoc): ``lfs.url``,
then ``remote.<remote>.lfsurl`` for the remote a clone has (``origin``), then the clone URL plus
``.git/info/lfs``. Each key is read from git's configuration first and from the repository's
committed ``.lfsconfig`` second ("Settings from Git configuration files override the .lfsconfig
file"); in a bare repository git-lfs reads ``.lfsconfig`` at HEAD. So does this module, from the
pair's cache, which planning filled: ``.lfsconfig`` at the source's default branch tip, and for a
local source its own git config. ``--src-lfs-url`` overrides all of it.

A local source keeps serving its own ``lfs/objects`` when that holds every object the plan needs:
reading them from a server instead would be slower and could need credentials we do not have.
Only http(s) endpoints can be read; another kind found in a config is logged and left aside.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from gitmirror import gitrepo
from gitmirror.errors import GitMirrorError, UsageError, scrub
from gitmirror.hubs.base import LfsEndpoint

if TYPE_CHECKING:
    from gitmirror.plan import MirrorPlan
    from gitmirror.planner import PlanContext

log = logging.getLogger("gitmirror.lfs")

#: The keys git-lfs reads for a download endpoint, in its order (a clone's remote is "origin").
ENDPOINT_KEYS = ("lfs.url", "remote.origin.lfsurl")
LFSCONFIG = ".lfsconfig"


def check_override(url: str | None) -> str | None:
    """``--src-lfs-url`` as given, checked: an http(s) URL of an LFS API (``<url>/objects/batch``
    is asked). Raises UsageError for anything else."""
    if url is None:
        return None
    url = url.strip()
    if not _is_http(url):
        raise UsageError(f"--src-lfs-url {url!r} is not an http(s) URL",
                         hint="give the LFS API's base URL, e.g. https://host/owner/name.git/info/lfs")
    return url


def choose_source_endpoint(ctx: "PlanContext", plan: "MirrorPlan", override: str | None) -> LfsEndpoint | None:
    """Point ``ctx.src_hub``'s LFS store where git-lfs would read this source's objects, and say
    at INFO which endpoint is used and why. Returns the endpoint set (None: the hub's own store).

    A plan without LFS objects reads nothing, so nothing is looked up. ``override`` is
    ``--src-lfs-url`` (checked by :func:`check_override`). Raises nothing of its own: a
    ``.lfsconfig`` git cannot parse is logged and left aside, as git-lfs does.
    """
    if not plan.lfs_objects:
        return None
    endpoint = _resolve(ctx, plan, override)
    ctx.src_hub.use_lfs_endpoint(endpoint)
    if endpoint is not None:
        from gitmirror.lfs.failures import public

        log.info("reading the source's LFS objects from %s (%s)", public(endpoint.url), endpoint.reason)
    else:
        log.info("reading the source's LFS objects from %s (the source's own)", ctx.src_hub.lfs_store().label)
    return endpoint


def _resolve(ctx: "PlanContext", plan: "MirrorPlan", override: str | None) -> LfsEndpoint | None:
    if override:
        return LfsEndpoint(override, "given with --src-lfs-url")
    path: Path | None = getattr(ctx.src_hub, "path", None)  # a local source (PlainGit)
    if path is not None and not ctx.src_hub.lfs_store().lacking(list(plan.lfs_objects), None):  # type: ignore[arg-type]
        return None
    configs: list[tuple[str, dict[str, str]]] = []
    if path is not None:
        configs.append((f"the git config of {path}", _local_config(path)))
    found = _lfsconfig(ctx, plan)
    if found is not None:
        configs.append(found)
    for key in ENDPOINT_KEYS:
        for where, values in configs:
            url = values.get(key, "").strip()
            if not url:
                continue
            if _is_http(url):
                return LfsEndpoint(url, f"{key} in {where}")
            log.warning("%s in %s is %s: gitmirror reads LFS over http(s) only, so it is left aside "
                        "(give --src-lfs-url to choose the endpoint)", key, where, scrub(url))
    return None


def _local_config(path: Path) -> dict[str, str]:
    values = {key: gitrepo.config_value(path, key, local=True) for key in ENDPOINT_KEYS}
    return {key: value for key, value in values.items() if value}


def _lfsconfig(ctx: "PlanContext", plan: "MirrorPlan") -> tuple[str, dict[str, str]] | None:
    """(where, keys) of ``.lfsconfig`` at the source's default branch tip as the cache has it
    (a snapshot: at the commit whose tree it copies; else at the first planned source ref the
    cache has); None when there is none."""
    cached = gitrepo.cached_refs(ctx.cache_dir)
    names = [ctx.src_refs.head] if ctx.src_refs.head else []
    names += [u.src_ref for u in plan.updates if u.src_ref]
    tips = [(ref, cached.get(gitrepo.local_ref(ref))) for ref in names]
    if plan.snapshot is not None:
        tips.insert(0, (plan.snapshot.src_ref, plan.snapshot.src_commit))
    for ref, sha in tips:
        if sha is None:
            continue
        try:
            values = gitrepo.blob_config(ctx.cache_dir, sha, LFSCONFIG)
        except GitMirrorError as exc:
            log.warning("the source's %s at %s cannot be read, so it is left aside: %s", LFSCONFIG, ref, exc)
            return None
        return None if values is None else (f"{LFSCONFIG} at {ref} ({sha[:12]})", values)
    return None


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://")) and len(url) > len("https://")
