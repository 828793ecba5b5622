"""``--modelscope-card``: one commit on top of the mirrored default branch that gives a ModelScope
model page what it reads, made from the source's own Hugging Face card.

ModelScope's model pages and pipelines read ``configuration.json`` (``framework``, ``task``;
modelscope ``utils/constant.py`` ``ModelFile.CONFIGURATION``, read by ``utils/hub.py read_config``
and ``pipelines/base.py``) and the YAML front matter of ``README.md`` (``license``, ``tasks``).
A history-preserving mirror of a Hugging Face model has neither: its card says ``pipeline_tag``
and ``library_name`` instead (huggingface_hub ``ModelCardData``). :func:`plan_card` maps them
(:data:`TASKS`, :data:`FRAMEWORKS`) and builds the card commit in the cache:

* its tree is the mirrored tip's, plus ``configuration.json`` (only when the source has none) and
  ``tasks:`` added to ``README.md``'s front matter (only when it has none; the source's text and
  its other front matter, ``license`` among them, are kept byte for byte);
* its author and committer are "gitmirror" and its dates the parent's committer date, so the same
  tip always gives the same card commit (same SHA): a rerun with no source change pushes nothing;
* its message says what and why and ends with the trailer :data:`TRAILER`, by which a later run
  and ``verify`` recognise it (:func:`card_parent`).

A later sync finds the older card commit on the destination; when the source's new tip contains
that commit's parent, it is no divergence: the card is rebuilt on the new tip and pushed with
``--force-with-lease`` on the old card commit (:attr:`~gitmirror.plan.RefAction.REBUILD_CARD`).

What is not known is never invented: a ``pipeline_tag`` or ``library_name`` without a ModelScope
name here leaves that field out and the plan says so (``card-unmapped``); a ``README.md`` stored
as an LFS pointer at the source is not read through LFS, the card is skipped (``card-skipped``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gitmirror import gitrepo
from gitmirror.errors import GitMirrorError, UsageError
from gitmirror.plan import CardCommit, PlanWarning, RefAction, RefUpdate
from gitmirror.remote import RemoteRefs

README = "README.md"
CONFIGURATION = "configuration.json"  # modelscope.utils.constant.ModelFile.CONFIGURATION
CARD_FILES = (README, CONFIGURATION)
#: The last line of every card commit's message: how gitmirror knows its own card commit.
TRAILER = "Gitmirror-Card: modelscope"
IDENTITY = ("gitmirror", "gitmirror@localhost")
#: Where the cache remembers the card commit it last made for a destination ref (``<ref>`` without
#: ``refs/``), which also keeps it from git's garbage collection. The number changes with what a
#: card holds (the maps below, the message), so a newer gitmirror makes its cards again.
CACHE_REFS = "refs/gitmirror/card-1/"

#: Hugging Face ``pipeline_tag`` -> ModelScope task (``modelscope.utils.constant.Tasks`` values;
#: tests/test_card.py checks every value against the installed package). Same-named tasks, then
#: the renames ModelScope's Tasks spell differently.
TASKS: dict[str, str] = {
    **{tag: tag for tag in (
        "text-generation", "text-classification", "token-classification", "fill-mask", "feature-extraction",
        "sentence-similarity", "question-answering", "table-question-answering", "zero-shot-classification",
        "translation", "text2text-generation", "conversational", "image-classification", "image-segmentation",
        "text-to-speech", "visual-question-answering", "voice-activity-detection", "image-to-video", "text-ranking")},
    "summarization": "text-summarization",
    "object-detection": "image-object-detection",
    "automatic-speech-recognition": "auto-speech-recognition",
    "text-to-image": "text-to-image-synthesis",
    "image-to-text": "image-captioning",
    "depth-estimation": "image-depth-estimation",
    "text-to-video": "text-to-video-synthesis",
}
#: Hugging Face ``library_name`` -> ModelScope framework (``modelscope.utils.constant.Frameworks``:
#: ``pytorch``, ``tensorflow``, ``kaldi``). The PyTorch libraries are pytorch, as ModelScope's own
#: transformers models declare.
FRAMEWORKS: dict[str, str] = {
    **{name: "pytorch" for name in ("transformers", "diffusers", "sentence-transformers", "peft", "timm",
                                    "open_clip", "pytorch", "torch")},
    **{name: "tensorflow" for name in ("tensorflow", "keras", "tf-keras")},
}


@dataclass(frozen=True)
class CardFiles:
    """What the card adds on top of one tip: new file bytes by path ({} when nothing is needed)."""

    files: dict[str, bytes]
    task: str | None
    framework: str | None
    license: str | None
    pipeline_tag: str | None
    library_name: str | None
    warnings: tuple[PlanWarning, ...] = ()


def require_modelscope_model(host: str, repo_type: str) -> None:
    """Raise UsageError unless the destination is a ModelScope model (``host`` and ``repo_type`` of
    its :class:`~gitmirror.specs.RepoSpec`): only ModelScope model pages read this card."""
    if host != "modelscope" or repo_type != "model":
        raise UsageError("--modelscope-card (card = true) is for ModelScope model destinations (ms://owner/name) only",
                         hint="leave the option out for this destination")


# --- reading the source's card -------------------------------------------------------------------


def _top_entries(repo_dir: Path, commit: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, oid, path) of every top-level entry of ``commit``'s tree."""
    out = gitrepo.run_git(["ls-tree", "-z", commit], cwd=repo_dir, what="reading a tree")
    entries = []
    for record in filter(None, out.split(b"\0")):
        meta, _, path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        entries.append((mode, kind, oid, path.decode("utf-8", "surrogateescape")))
    return entries


def _blob(repo_dir: Path, oid: str) -> bytes:
    return gitrepo.run_git(["cat-file", "blob", oid], cwd=repo_dir, what="reading a blob")


def _yaml_block(text: str) -> "re.Match[str] | None":
    from huggingface_hub.repocard import REGEX_YAML_BLOCK  # the block huggingface_hub parses as card data

    return REGEX_YAML_BLOCK.search(text)


def card_files(readme: bytes | None, has_configuration: bool) -> CardFiles:
    """What the card adds, given the source's ``README.md`` bytes (None: it has none) and whether
    it has a ``configuration.json``. The metadata is read as huggingface_hub reads a model card
    (``ModelCard(...).data``: ``pipeline_tag``, ``library_name``, ``license``); a README that is not
    UTF-8 or whose front matter is not a YAML mapping gives no files and a ``card-skipped`` warning."""
    if readme is None:
        return CardFiles({}, None, None, None, None, None, (PlanWarning(
            "card-unmapped", "the source has no README.md, so no pipeline_tag or library_name to map: no card commit"),))
    import yaml
    from huggingface_hub import ModelCard

    try:
        text = readme.decode("utf-8")
        # Without a front matter there is no card data, and huggingface_hub would log a WARNING.
        data = ModelCard(text, ignore_metadata_errors=True).data if _yaml_block(text) else None
    except (UnicodeDecodeError, ValueError, yaml.YAMLError):
        # Rewriting a card gitmirror cannot read could damage it: leave it, and say so.
        return CardFiles({}, None, None, None, None, None, (PlanWarning(
            "card-skipped", "README.md is not UTF-8 text with a YAML front matter huggingface_hub can read, "
            "so no ModelScope card is made", (README,)),))
    tag, library, license_ = (_text(getattr(data, k, None)) for k in ("pipeline_tag", "library_name", "license"))
    task, framework = TASKS.get(tag or ""), FRAMEWORKS.get(library or "")
    unmapped = [f"{name}: {value or '(none)'}" for name, value, mapped in
                (("pipeline_tag", tag, task), ("library_name", library, framework)) if not mapped]
    warnings = (PlanWarning("card-unmapped", "the source card gives no ModelScope name for these; the card leaves "
                            "them out rather than guess (see docs/hubs.md)", tuple(unmapped)),) if unmapped else ()
    files: dict[str, bytes] = {}
    if not has_configuration and (task or framework):
        config = {k: v for k, v in (("framework", framework), ("task", task)) if v}
        files[CONFIGURATION] = (json.dumps(config, indent=2) + "\n").encode()
    front = _with_tasks(text, task)
    if front is not None:
        files[README] = front.encode("utf-8")
    return CardFiles(files, task, framework, license_, tag, library, warnings)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _with_tasks(text: str, task: str | None) -> str | None:
    """``text`` with ``tasks: [task]`` added to its front matter (made when it has none); None when
    there is no task or the front matter already names tasks. Everything else stays as it was."""
    if task is None:
        return None
    match = _yaml_block(text)
    if match is None:
        return f"---\ntasks:\n- {task}\n---\n{text}"
    if re.search(r"^tasks\s*:", match.group(2), re.M):
        return None
    newline = "\r\n" if "\r\n" in match.group(1) else "\n"
    body_end = match.end(2)
    return f"{text[:body_end]}{newline}tasks:{newline}- {task}{text[body_end:]}"


def read_card_files(repo_dir: Path, tip: str) -> CardFiles:
    """:func:`card_files` for the tree of ``tip`` in the cache. A ``README.md`` that is an LFS
    pointer is not read through LFS: the card is skipped with a ``card-skipped`` warning."""
    from gitmirror.lfs.pointer import MAX_POINTER_SIZE, parse_pointer

    entries = {path: (kind, oid) for _mode, kind, oid, path in _top_entries(repo_dir, tip)}
    readme = None
    if entries.get(README, ("", ""))[0] == "blob":
        readme = _blob(repo_dir, entries[README][1])
        if len(readme) < MAX_POINTER_SIZE and parse_pointer(readme) is not None:
            return CardFiles({}, None, None, None, None, None, (PlanWarning(
                "card-skipped", "README.md is an LFS pointer at the source; gitmirror does not read it through LFS, "
                "so no ModelScope card is made (commit README.md without LFS at the source)", (README,)),))
    return card_files(readme, CONFIGURATION in entries)


# --- writing the card commit ---------------------------------------------------------------------


def _tree_with(repo_dir: Path, tip: str, files: dict[str, bytes]) -> str:
    """The tree of ``tip`` with the top-level ``files`` (path -> bytes) written in, as a new tree id."""
    entries = {path: (mode, kind, oid) for mode, kind, oid, path in _top_entries(repo_dir, tip)}
    for path, data in files.items():
        oid = gitrepo.run_git(["hash-object", "-w", "--stdin"], cwd=repo_dir, stdin=data,
                              what="writing a card file").decode().strip()
        entries[path] = ("100644", "blob", oid)
    listing = b"".join(f"{mode} {kind} {oid}\t".encode() + path.encode("utf-8", "surrogateescape") + b"\0"
                       for path, (mode, kind, oid) in sorted(entries.items()))
    return gitrepo.run_git(["mktree", "-z"], cwd=repo_dir, stdin=listing, what="writing the card tree").decode().strip()


def card_message(card: CardFiles, tip: str) -> str:
    """The card commit's message: what it adds, why, from which source fields, and :data:`TRAILER`."""
    said = ", ".join(f"{k}: {v}" for k, v in (("pipeline_tag", card.pipeline_tag), ("library_name", card.library_name)) if v)
    return (f"Add the ModelScope card ({', '.join(sorted(card.files))})\n\n"
            "ModelScope's model page and pipelines read the framework and task from configuration.json\n"
            "and the license and tasks from README.md's front matter; the mirrored Hugging Face card\n"
            f"says {said or 'neither'}. gitmirror makes this commit on top of the mirrored {tip[:12]}\n"
            "and makes it again on each sync.\n\n"
            f"{TRAILER}\n")


def commit_card(repo_dir: Path, tip: str, card: CardFiles) -> str:
    """Write the card commit on top of ``tip`` into the cache; return its id. Deterministic: the
    identity is :data:`IDENTITY` and both dates are ``tip``'s committer date."""
    date = gitrepo.run_git(["log", "-1", "--format=%ct %cz", tip], cwd=repo_dir, what="reading a commit date").decode().strip()
    identity = {f"GIT_{role}_{key}": value for role in ("AUTHOR", "COMMITTER")
                for key, value in (("NAME", IDENTITY[0]), ("EMAIL", IDENTITY[1]), ("DATE", f"@{date}"))}
    return gitrepo.commit_tree(repo_dir, _tree_with(repo_dir, tip, card.files), tip, card_message(card, tip), identity)


def card_parent(repo_dir: Path, sha: str) -> str | None:
    """The parent of ``sha`` when ``sha`` (in the cache) is a gitmirror card commit: one parent, the
    :data:`TRAILER` line, and changes to :data:`CARD_FILES` only. Else None."""
    if not gitrepo.has_object(repo_dir, sha):
        return None
    raw = gitrepo.run_git(["cat-file", "commit", sha], cwd=repo_dir, what="reading a commit").decode("utf-8", "replace")
    header, _, message = raw.partition("\n\n")
    parents = [line.split()[1] for line in header.splitlines() if line.startswith("parent ")]
    if len(parents) != 1 or TRAILER not in message.splitlines():
        return None
    return parents[0] if set(changed_paths(repo_dir, sha)) <= set(CARD_FILES) else None


def changed_paths(repo_dir: Path, sha: str) -> list[str]:
    """The paths commit ``sha`` (one parent, in the cache) adds, changes or removes, sorted."""
    changed = gitrepo.run_git(["diff-tree", "--no-commit-id", "--name-only", "-r", "-z", sha], cwd=repo_dir,
                              what="reading a commit's changes").decode("utf-8", "surrogateescape")
    return sorted(filter(None, changed.split("\0")))


# --- planning ------------------------------------------------------------------------------------


def plan_card(repo_dir: Path, updates: Sequence[RefUpdate], dst_ref: str
              ) -> tuple[list[RefUpdate], CardCommit | None, tuple[PlanWarning, ...]]:
    """Put the card commit on ``dst_ref`` (the destination's default branch) in ``updates``, as
    :func:`gitmirror.planner.classify` made them; return (updates, the card or None, warnings).

    The card sits on the tip the plan pushes there (``update.new``). A destination holding an
    older card commit whose parent that tip contains gets the rebuilt card (``REBUILD_CARD``,
    leased on the old one), or nothing when it is the same commit (``UP_TO_DATE``); any other
    divergence stays ``DIVERGED``. When no source ref goes to ``dst_ref`` there is no card, and a
    ``card-skipped`` warning names ``dst_ref``. Writes objects to the cache only.
    """
    index = next((i for i, u in enumerate(updates) if u.dst_ref == dst_ref and u.src_ref and u.new), None)
    if index is None:  # --map/--exclude send no source branch there: the card asked for cannot be made
        return list(updates), None, (PlanWarning(
            "card-skipped", "no source branch is mirrored to the destination's default branch (see --map and "
            "--exclude), where the ModelScope card goes, so no card is made", (dst_ref,)),)
    update = updates[index]
    tip = update.new
    assert tip is not None
    card = read_card_files(repo_dir, tip)
    commit = commit_card(repo_dir, tip, card) if card.files else None
    if commit is not None:
        gitrepo.run_git(["update-ref", CACHE_REFS + dst_ref.removeprefix("refs/"), commit], cwd=repo_dir,
                        what="remembering the card commit")
    target = commit or tip
    old_parent = card_parent(repo_dir, update.old) if update.old else None
    if old_parent is not None and (old_parent == tip or gitrepo.is_ancestor(repo_dir, old_parent, tip)):
        action = RefAction.UP_TO_DATE if update.old == target else RefAction.REBUILD_CARD
    elif update.action is RefAction.UP_TO_DATE:
        action = RefAction.UP_TO_DATE if commit is None else RefAction.FAST_FORWARD
    else:
        action = update.action
    new_update = replace(update, new=update.old if action is RefAction.UP_TO_DATE else target, action=action)
    out = list(updates)
    out[index] = new_update
    made = None if commit is None else CardCommit(
        dst_ref, tip, commit, tuple(sorted(card.files)), card.task, card.framework, card.license,
        replaces=update.old if action is RefAction.REBUILD_CARD else None)
    return out, made, card.warnings


def settled_refs(repo_dir: Path, chosen: dict[str, str], src: RemoteRefs, dst: RemoteRefs, dst_ref: str) -> RemoteRefs:
    """``dst`` as listed, except that ``dst_ref`` reads as the source's tip when it holds the card
    commit this cache last made on exactly that tip (:data:`CACHE_REFS`): then a run with nothing
    to do is decided from the two listings alone, as without the card. ``chosen``: {dst_ref: src_ref}."""
    src_ref, have = chosen.get(dst_ref), dst.refs.get(dst_ref)
    if src_ref is None or have is None or not repo_dir.is_dir():
        return dst
    remembered = CACHE_REFS + dst_ref.removeprefix("refs/")
    try:
        out = gitrepo.run_git(["rev-parse", remembered, f"{remembered}^"], cwd=repo_dir, what="reading the card ref")
    except GitMirrorError:
        return dst  # no card made here yet
    if out.decode().split() != [have, src.refs[src_ref]]:
        return dst
    return RemoteRefs(refs={**dst.refs, dst_ref: src.refs[src_ref]}, head=dst.head, peeled=dst.peeled)
