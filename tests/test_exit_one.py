"""Exit 1 is for bugs only: no handled case may end in it (issue 13, "Done when").

Every handled failure is raised as a subclass of GitMirrorError with its own exit code; a bare
``GitMirrorError(...)`` (exit 1) may be built only where gitmirror meets something it has no meaning
for and asks the user to report it. This test reads the source and fails when a new place builds
one, so that adding an exit-1 path is a decision made here, with its reason, not an accident.
The end-to-end tests of each handled case (test_local_faults, test_push_outcomes, test_faults,
test_lfs_sources, test_old_habits, test_hub_rules, ...) assert the codes those cases do end in.
"""

from __future__ import annotations

import ast
from pathlib import Path

from gitmirror.errors import EXIT_INTERNAL, GitMirrorError, error_class_for_status

PACKAGE = Path(__file__).resolve().parents[1] / "gitmirror"

#: (module, function) -> why exit 1 is right there.
ALLOWED = {
    ("errors.py", "error_for_git"): "git failed with nothing gitmirror recognises (no status, no known phrase)",
    ("hubs/huggingface.py", "_translate"): "an SDK exception of a kind gitmirror does not know",
    ("hubs/huggingface.py", "_error_for_http"): "an HTTP status without a meaning in the map",
    ("hubs/modelscope.py", "_translate"): "an SDK exception of a kind gitmirror does not know",
    ("planner.py", "unfetched_ref_error"): "git fetched a listed ref but did not store it, for no known reason",
}


def bare_constructions() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("sandbox/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "GitMirrorError":
                    found.add((rel, func.name))
    return found


def test_only_the_listed_places_build_an_exit_1_error():
    assert bare_constructions() == set(ALLOWED), "a new exit-1 path: give the failure its class, or list it here"


def test_every_status_a_server_sends_for_a_known_reason_has_a_class_other_than_exit_1():
    for status in (400, 401, 403, 404, 408, 422, 425, 429, *range(500, 600)):
        assert error_class_for_status(status).exit_code != EXIT_INTERNAL, status
    assert GitMirrorError("x").exit_code == EXIT_INTERNAL
