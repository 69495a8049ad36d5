"""Every module of ``study_app`` and ``analysis`` imports, without an import cycle between them,
and ``import analysis`` stays light (an analyst's notebook loads no video, GPU or web stack)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import analysis
import study_app

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("study_app", "analysis")
#: Alembic revision scripts are loaded by Alembic from their folder, never imported by name.
SKIPPED = ("study_app.migrations.versions",)


def project_modules() -> dict[str, Path]:
    """Dotted name → source file of every module of the two packages (packages included)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        base = ROOT / package
        for path in base.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if not name.startswith(SKIPPED):
                found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at module level or inside a function (a late import is still a
    dependency), except those under ``if TYPE_CHECKING:``, which never run."""
    out: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports by name.

    Relative imports are resolved against the module's package; ``from pkg import x`` is an
    import of ``pkg.x`` when that is a module, else of ``pkg``. Running a package's
    ``__init__`` on the way to one of its submodules is Python's doing, not an edge.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        edges.update(t for t in targets if t in modules and t != name)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path ``[a, b, …, a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def all_cycles(graph: dict[str, set[str]], limit: int = 50) -> list[list[str]]:
    """Cycles of ``graph``, found one at a time, each then cut at its last edge (so each is new)."""
    graph = {node: set(edges) for node, edges in graph.items()}
    found = []
    while len(found) < limit and (cycle := find_cycle(graph)) is not None:
        found.append(cycle)
        graph[cycle[-2]].discard(cycle[-1])
    return found


def test_every_module_imports() -> None:
    names = [m.name for package in (study_app, analysis)
             for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
             if not m.name.startswith(SKIPPED)]
    assert "study_app.cli.study" in names and "analysis.pipeline" in names
    for name in names:
        importlib.import_module(name)


def test_no_import_cycle_between_project_modules() -> None:
    modules = project_modules()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    cycles = all_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_cycle_finder_sees_late_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    graph = {n: imported_modules(n, p, modules) for n, p in modules.items()}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


@pytest.mark.parametrize("heavy", ["av", "torch", "plotly", "flask", "sqlalchemy"])
def test_import_analysis_stays_light(heavy: str) -> None:
    code = f"import sys, analysis; print(any(m.split('.')[0] == {heavy!r} for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"
