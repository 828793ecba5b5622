"""The layout stays what docs/architecture.md says: no import cycles, no oversized modules.

Imports are read from the source with ``ast``, every one of them: at the top, inside functions,
and under ``if TYPE_CHECKING`` (a cycle in type hints is still two modules that cannot be
understood one without the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gitmirror"
#: The core stays readable in one sitting per module; the sandbox is test infrastructure.
MAX_CORE_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path, known: set[str]) -> set[str]:
    """The gitmirror modules ``path`` imports, resolved to the most specific known module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from gitmirror import gitrepo" imports the module gitmirror.gitrepo.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("gitmirror") and target not in ("gitmirror", name):
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_imports_resolve_to_modules(tmp_path):
    known = set(modules())
    graph = {name: imported(path, known) for name, path in modules().items()}
    assert "gitmirror.remote" in graph["gitmirror.execute"]
    assert "gitmirror.gitrepo" in graph["gitmirror.remote"]
    assert "gitmirror.runner" in graph["gitmirror.api"]


def test_no_import_cycles_among_gitmirror_modules():
    known = set(modules())
    graph = {name: imported(path, known) for name, path in modules().items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_core_module_is_over_500_lines():
    long = {
        name: n
        for name, path in modules().items()
        if not name.startswith("gitmirror.sandbox")
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_CORE_LINES
    }
    assert long == {}
