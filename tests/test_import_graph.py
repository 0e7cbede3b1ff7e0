"""The package's modules import each other in one direction only.

Every import of an ``hf_supernet`` module counts, at module level or inside a function: a function-level import
that would close a circle at module level is a circle held apart, not a lazy import. (Lazy imports of *other*
packages, such as peft or matplotlib, are not edges of this graph.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "hf_supernet"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _imported_modules(name: str, tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """The hf_supernet modules ``name`` imports anywhere in its source. A ``from pkg import x`` imports ``pkg.x``
    when that is a module, else ``pkg``; importing ``a.b.c`` runs ``a.b`` first, except where ``a.b`` is a package
    ``name`` lives in (it is already being imported when ``name`` runs)."""
    package = name if _is_package(name, modules) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    edges = set()
    for target in targets:
        if not (target == PACKAGE or target.startswith(PACKAGE + ".")) or target not in modules:
            continue
        edges.add(target)  # an explicit import of an ancestor package (``from .. import x``) counts
        parts = target.split(".")
        edges.update(
            parent for parent in (".".join(parts[:i]) for i in range(1, len(parts))) if parent not in ancestors
        )
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    return {name: _imported_modules(name, ast.parse(path.read_text()), modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (as a path that ends where it starts), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_relative_and_parent_package_imports():
    graph = import_graph()
    assert "hf_supernet.masks.base" in graph["hf_supernet.masks.layer_width"]
    # importing a submodule of another package runs that package's __init__ first
    assert "hf_supernet.masks" in graph["hf_supernet.models.supernet_conformer.modeling_supernet_conformer"]


def test_hf_supernet_modules_import_each_other_without_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)
