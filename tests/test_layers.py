"""The package layering in docs/architecture.md, checked from the imports themselves.

Every `import distill_audit.X...` or `from distill_audit.X... import` (inside functions
too) is an edge from the importing top-level package to X. The layers hold when the
graph has no cycle and nothing but the command line imports `cli` (the package root
re-exports the Python API from `cli/api.py` lazily, the one allowed exception).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "distill_audit"


def _top(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return "__init__" if len(rel) == 1 and rel[0] == "__init__.py" else rel[0].removesuffix(".py")


def _targets(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module == "distill_audit"
            names = [f"distill_audit.{a.name}" for a in node.names] if top else [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "distill_audit" and len(parts) > 1:
                out.add(parts[1])
    return out


def package_graph() -> dict[str, set[str]]:
    tops = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        src = _top(path)
        edges = {t for t in _targets(ast.parse(path.read_text(encoding="utf-8"))) if t in tops and t != src}
        graph.setdefault(src, set()).update(edges)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_package_imports_another_that_imports_it_back():
    cycle = _cycle({k: v - {"__init__"} for k, v in package_graph().items()})
    assert cycle is None, " -> ".join(cycle or [])


def test_only_the_command_line_imports_cli():
    upward = sorted(
        src for src, edges in package_graph().items() if "cli" in edges and src not in ("cli", "__init__", "__main__")
    )
    assert upward == []


@pytest.mark.parametrize(
    "graph, has_cycle",
    [
        ({"a": {"b"}, "b": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, has_cycle):
    assert (_cycle(graph) is not None) is has_cycle
