"""No import cycle among the modules of services/ and shared/: the graph of every import
statement (function-local ones included, since they run too) is acyclic."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under services/ and shared/."""
    out = {}
    for top in ("services", "shared"):
        for path in (root / top).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported(node: ast.Import | ast.ImportFrom, package: str, mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative: `from . import x`, `from ..a import b`
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    # `from pkg import sub` imports the submodule when there is one, else a name from pkg
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of services/ and shared/ it imports (anywhere in its body)."""
    mods, graph = modules(root), {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(node, package, mods):
                    while target and target not in mods:  # `a.b.func` -> module a.b
                        target = target.rpartition(".")[0]
                    if target and target != name:
                        deps.add(target)
        graph[name] = deps
    return graph


def cycle_of(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        return list(err.args[1])
    return None


def test_cycle_finder_sees_a_cycle(tmp_path):
    for rel, text in {"services/__init__.py": "", "services/a.py": "def f():\n    from services import b\n",
                      "services/b.py": "from .c import g\n", "services/c.py": "import services.a\ng = 1\n",
                      "shared/__init__.py": ""}.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["services.a"] == {"services.b"} and graph["services.b"] == {"services.c"}
    assert set(cycle_of(graph)) == {"services.a", "services.b", "services.c"}
    (tmp_path / "services/c.py").write_text("g = 1\n")
    assert cycle_of(import_graph(tmp_path)) is None


def test_services_and_shared_import_without_cycles():
    graph = import_graph()
    assert "shared.configio" in graph["services.control.cli_args"]  # the graph sees real imports
    assert "services.learner.loop" in graph["services.learner.main"]  # ... function-local ones too
    cycle = cycle_of(graph)
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))
