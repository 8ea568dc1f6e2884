"""The package's own import graph, read from the source with ``ast``, and the cycles in it.

Each import is tagged module-level (runs on import) or function-level (inside a ``def``, runs on call), so a
cycle hidden behind a function-local import is still found. ``python -m sid_platform_tests.import_graph``
prints the cycles between modules and between ``sid_platform``'s subpackages; the layering test asserts
there are none.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "sid_platform"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    function_level: bool


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of the package."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it sits inside a function."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inside)

    yield from walk(tree, False)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]) -> Iterable[str]:
    """The package modules an import statement names (a ``from x import y`` names ``x.y`` when that is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    for name in names:
        while name and name not in modules:  # `import a.b.c` of a name inside a module: the module
            name = name.rpartition(".")[0]
        if name.startswith(PACKAGE):
            yield name


def import_edges(root: Path = ROOT) -> list[Edge]:
    names = module_names(root)
    edges = set()
    for module, path in names.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, in_function in _imports(tree):
            for target in _targets(node, module, path.name == "__init__.py", set(names)):
                if target != module:
                    edges.add(Edge(module, target, in_function))
    return sorted(edges, key=lambda e: (e.importer, e.imported, e.function_level))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (each a set of mutually reachable modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graphs here are small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def graph_of(edges: Iterable[Edge], *, function_level: bool, depth: int | None = None) -> dict[str, set[str]]:
    """Adjacency of the edges (module-level only, or all); ``depth`` collapses names to that many parts.

    At ``depth=2`` a node is a subpackage or top-level module of ``sid_platform``; edges between a package and
    its own modules (``sid_platform.registry`` → ``sid_platform.registry.promotion``) vanish.
    """
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.function_level and not function_level:
            continue
        a, b = edge.importer, edge.imported
        if depth is not None:
            a, b = ".".join(a.split(".")[:depth]), ".".join(b.split(".")[:depth])
        if a != b and a != PACKAGE and b != PACKAGE:
            graph.setdefault(a, set()).add(b)
    return graph


def report(root: Path = ROOT) -> dict[str, list[list[str]]]:
    edges = import_edges(root)
    return {
        "modules, module-level imports": cycles(graph_of(edges, function_level=False)),
        "modules, module- and function-level imports": cycles(graph_of(edges, function_level=True)),
        "subpackages, module-level imports": cycles(graph_of(edges, function_level=False, depth=2)),
        "subpackages, module- and function-level imports": cycles(graph_of(edges, function_level=True, depth=2)),
    }


def main() -> int:
    edges = import_edges()
    for title, found in report().items():
        print(f"{title}: {len(found)} cycle(s)")
        depth = 2 if title.startswith("subpackages") else None
        for component in found:
            print(f"  {' <-> '.join(component)}")
            for edge in edges:
                if edge.function_level and "function" not in title:
                    continue
                a, b = (".".join(m.split(".")[:depth]) if depth else m for m in (edge.importer, edge.imported))
                if a != b and a in component and b in component:
                    where = "function-level" if edge.function_level else "module-level"
                    print(f"    {edge.importer} -> {edge.imported} ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
