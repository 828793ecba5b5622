"""The sandbox hubs' pre-receive hook (runs as a script inside the bare repository).

Refuses a push, as GitLab-based hubs do, when it would leave a ref pointing at history with an
LFS pointer whose object the store lacks; also enforces the kind's push policy (protected
branches, allowed ref names, size of non-LFS files). The policy comes as JSON in the
``SANDBOX_PUSH_POLICY`` environment variable, set by the server for each push; without it only
the LFS check runs. Standard library only: it runs under ``python -I -S`` for a quick start.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

ZERO = "0" * 40
POINTER_PREFIXES = (b"version https://git-lfs.github.com/spec/v1\n", b"version https://hawser.github.com/spec/v1\n")
MAX_POINTER = 1024


def parse_pointer(data: bytes) -> tuple[str, int] | None:
    if len(data) >= MAX_POINTER or not data.startswith(POINTER_PREFIXES):
        return None
    fields = {}
    for line in data.decode("utf-8", "replace").splitlines()[1:]:
        key, _, value = line.partition(" ")
        fields[key] = value
    oid = fields.get("oid", "")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", oid) or not fields.get("size", "").isdigit():
        return None
    return oid[7:], int(fields["size"])


def git(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], input=stdin, capture_output=True, check=True).stdout


def new_blobs(tips: list[str]) -> list[tuple[str, int, str]]:
    """(sha, size, a path it is at) of every blob reachable from ``tips`` but not from any existing ref."""
    listing = git("rev-list", "--objects", *tips, "--not", "--all")
    paths = {}
    for line in listing.decode("utf-8", "replace").split("\n"):  # not splitlines(): a path may hold a CR
        if line:
            sha, _, path = line.partition(" ")
            paths.setdefault(sha, path)
    if not paths:
        return []
    checked = git("cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                  stdin=("\n".join(paths) + "\n").encode())
    blobs = []
    for line in checked.decode().splitlines():
        sha, kind, size = line.split(" ")
        if kind == "blob":
            blobs.append((sha, int(size), paths[sha]))
    return blobs


def read_blobs(shas: list[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    out = git("cat-file", "--batch", stdin=("\n".join(shas) + "\n").encode())
    found, pos = {}, 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        sha, _kind, size = out[pos:header_end].decode().split(" ")
        start = header_end + 1
        found[sha] = out[start:start + int(size)]
        pos = start + int(size) + 1
    return found


def object_ok(oid: str, size: int) -> bool:
    path = os.path.join("lfs", "objects", oid[0:2], oid[2:4], oid)
    try:
        return os.path.getsize(path) == size
    except OSError:
        return False


DEFAULT_MESSAGES = {
    "ref_not_allowed": "refusing to update {ref}: this hub does not accept that ref name",
    "protected_branch": "refusing to delete the default branch {ref}",
    # Hugging Face's words (docs: ../shared/reference/hubs.md "Limits"): one header, then one
    # "  - path (ref: ...)" line per offending file.
    "plain_blob_too_large": "Your push was rejected because it contains files larger than {limit_text}.\n"
                            "Please use Git LFS to store large files.\n\nOffending files:",
    "lfs_missing": "LFS objects are missing ({count}, e.g. {oid}). "
                   "Upload them before pushing refs (git lfs push --all).",
}


def say(policy: dict, key: str, **fields: object) -> str:
    """The refusal in the hub's own words when the kind gave them, else the default."""
    template = (policy.get("messages") or {}).get(key) or DEFAULT_MESSAGES[key]
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return DEFAULT_MESSAGES[key].format(**fields)


def check(updates: list[tuple[str, str, str]], policy: dict) -> list[str]:
    errors = []
    protected = set(policy.get("protected_branches") or ())
    allowed = policy.get("allowed_refs")
    tips = []
    for _old, new, ref in updates:
        if allowed and not re.fullmatch(allowed, ref):
            errors.append(say(policy, "ref_not_allowed", ref=ref))
        if new == ZERO:
            if ref.startswith("refs/heads/") and ref[len("refs/heads/"):] in protected:
                errors.append(say(policy, "protected_branch", ref=ref))
            continue
        tips.append(new)
    if not tips:
        return errors
    blobs = new_blobs(tips)
    max_plain = policy.get("max_plain_blob_size")
    if max_plain is not None and any(size > max_plain for _sha, size, _path in blobs):
        errors.append(too_large(updates, max_plain, policy))
    if policy.get("require_lfs_objects", True):
        contents = read_blobs([sha for sha, size, _path in blobs if size < MAX_POINTER])
        missing = []
        for data in contents.values():
            pointer = parse_pointer(data)
            if pointer and not object_ok(*pointer):
                missing.append(pointer[0])
        if missing:
            errors.append(say(policy, "lfs_missing", count=len(missing), oid=missing[0]))
    return errors


# -- the hubs' own rules (Hugging Face's file rules and PR refs, GitLab's branch names) ---------
# Hugging Face's refusal, as its hook prints it (huggingface_hub issues #138, #687, #1404).
HF_RULE = "-" * 73
HF_BINARY_HEADLINE = ("Your push was rejected because it contains binary files.",
                      "Please use https://git-lfs.github.com/ to store binary files.")
HF_SEE_ALSO = "See also: https://hf.co/docs/hub/repositories-getting-started#terminal"
BINARY_SNIFF = 8000  # git's buffer_is_binary looks for a NUL among the first 8000 bytes
GITLAB_INVALID_BRANCH = "You cannot create a branch with an invalid name."
GITLAB_HEX_BRANCH = "You cannot create a branch with a 40-character hexadecimal branch name."


def hf_file_refusal(headline: tuple[str, str], files: list[tuple[str, str]]) -> str:
    """The hub's block: the headline and advice, the docs, then one line per (path, ref)."""
    lines = [HF_RULE, *headline, HF_SEE_ALSO, HF_RULE, "Offending files:"]
    lines += [f" - {path} (ref: {ref})" for path, ref in files]
    return "\n".join(lines)


def blob_head(sha: str, limit: int) -> bytes:
    """The first ``limit`` bytes of a blob; git is stopped once they have arrived."""
    proc = subprocess.Popen(["git", "cat-file", "blob", sha], stdout=subprocess.PIPE)
    try:
        return proc.stdout.read(limit) if proc.stdout else b""
    finally:
        proc.kill()
        proc.wait()


def ref_blobs(updates: list[tuple[str, str, str]]) -> list[tuple[str, str, str, int]]:
    """(ref, sha, path, size) of each blob every pushed commit of each updated ref brings (each
    blob once, under the first ref that brings it): a file deleted by a later commit counts."""
    seen: set[str] = set()
    found = []
    for _old, new, ref in updates:
        if new == ZERO:
            continue
        listing = git("rev-list", "--objects", new, "--not", "--all").decode("utf-8", "surrogateescape")
        paths = {}
        for line in listing.splitlines():
            sha, _, path = line.partition(" ")
            if path and sha not in seen:
                paths.setdefault(sha, path)
        if not paths:
            continue
        checked = git("cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                      stdin=("\n".join(paths) + "\n").encode())
        for line in checked.decode().splitlines():
            sha, kind, size = line.split(" ")
            if kind == "blob":
                seen.add(sha)
                found.append((ref, sha, paths[sha], int(size)))
    return found


def binary_file_errors(updates: list[tuple[str, str, str]], policy: dict) -> list[str]:
    """Hugging Face: binary non-LFS files of ``max_binary_plain_blob_size`` bytes or more, in any
    pushed commit. Files over ``max_plain_blob_size`` are left to the size check."""
    limit = policy.get("max_binary_plain_blob_size")
    if limit is None:
        return []
    ceiling = policy.get("max_plain_blob_size")
    offending = [(path, ref) for ref, sha, path, size in ref_blobs(updates)
                 if size >= limit and (ceiling is None or size <= ceiling)
                 and b"\0" in blob_head(sha, BINARY_SNIFF)]
    return [hf_file_refusal(HF_BINARY_HEADLINE, sorted(offending))] if offending else []


def pr_ref_errors(updates: list[tuple[str, str, str]], policy: dict) -> list[str]:
    """Hugging Face: ``refs/pr/N`` is created by opening pull request N through the API, never by
    a push (huggingface_hub #1998); ``pull_requests`` lists the numbers opened (None: no rule)."""
    opened = policy.get("pull_requests")
    if opened is None:
        return []
    denied = []
    for old, new, ref in updates:
        match = re.fullmatch(r"refs/pr/(\d+)", ref)
        if match and old == ZERO and new != ZERO and int(match.group(1)) not in opened:
            denied.append(f"DENIED create {ref}: there is no pull request #{match.group(1)}; "
                          "open it through the API, then push to its ref")
    if not denied:
        return []
    return ["\n".join([HF_RULE, "Your push was rejected for the following reasons:", *denied, HF_RULE])]


def gitlab_branch_errors(updates: list[tuple[str, str, str]], policy: dict) -> list[str]:
    """GitLab's branch-name rules on branches a push creates or moves (GitRefValidator and
    Checks::BranchCheck): not ``HEAD``, not starting with ``-``, ``refs/heads/`` or
    ``refs/remotes/``, not 40 hex digits, and a valid git ref name."""
    if not policy.get("gitlab_branch_names"):
        return []
    errors = []
    for _old, new, ref in updates:
        if new == ZERO or not ref.startswith("refs/heads/"):
            continue
        name = ref[len("refs/heads/"):]
        if re.match(r"[0-9a-fA-F]{40}(-/|/|$)", name):
            errors.append(GITLAB_HEX_BRANCH)
        elif name == "HEAD" or name.startswith(("-", "refs/heads/", "refs/remotes/")) \
                or subprocess.run(["git", "check-ref-format", ref], capture_output=True).returncode != 0:
            errors.append(GITLAB_INVALID_BRANCH)
    return errors


def check_hub_rules(updates: list[tuple[str, str, str]], policy: dict) -> list[str]:
    """The rules a kind turns on through its policy, beyond :func:`check`."""
    return [*pr_ref_errors(updates, policy), *gitlab_branch_errors(updates, policy),
            *binary_file_errors(updates, policy)]


def too_large(updates: list[tuple[str, str, str]], limit: int, policy: dict) -> str:
    """The refusal of files over ``limit`` bytes: the hub's header, then each file and its ref."""
    offending = []
    for _old, new, ref in updates:
        if new != ZERO:
            offending += [(sha, size, path, ref) for sha, size, path in new_blobs([new]) if size > limit]
    sha, size = offending[0][:2]
    limit_text = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"
    header = say(policy, "plain_blob_too_large", oid=sha, size=size, limit=limit, limit_text=limit_text)
    return "\n".join([header, *(f"  - {path} (ref: {ref})" for _sha, _size, path, ref in offending)])


def main() -> int:
    updates = []
    for line in sys.stdin.read().splitlines():
        parts = line.split(" ")
        if len(parts) == 3:
            updates.append((parts[0], parts[1], parts[2]))
    policy = json.loads(os.environ.get("SANDBOX_PUSH_POLICY") or "{}")
    errors = check(updates, policy) + check_hub_rules(updates, policy)
    for message in errors:
        print(message, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
