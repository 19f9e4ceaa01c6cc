"""No import circle between the project's modules, imports inside functions included: each module's dependencies
can be read, and loaded, without the module itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cpep", "baselines", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def executed(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:`, which is never run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *executed(child)])
            continue
        yield node
        yield from executed(node)


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a file imports when it runs, anywhere in it (a name imported from a package counts as
    its module when it is one)."""
    found = set()
    for node in executed(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known and known[name] != path}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_a_circle_through_a_function_level_import(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import c\ndef f():\n    import a\n")
    (tmp_path / "c.py").write_text("import b\n")  # imported only for type checkers: no circle
    known = {"a": a, "b": b, "c": tmp_path / "c.py"}
    assert cycles({name: imports(path, known) for name, path in known.items()}) == [["a", "b"]]


def test_no_module_of_the_project_imports_itself_through_others():
    known = modules()
    graph = {name: imports(path, known) for name, path in known.items()}
    assert len(graph) > 80
    assert cycles(graph) == []
