"""A unit test that starts a child process says so: it carries the `process` marker (pyproject.toml),
so `pytest -m 'not process'` runs only in-process tests. Read from the source (ast), not by running
the tests: a test function starts a process when its body, a same-file helper it calls or a
same-file fixture it takes runs `subprocess`, `multiprocessing`, a reward pool, an MLflow server or
kustomize. Tests using the Redis fixtures of tests/conftest.py are marked there."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.markers import PROCESS_FIXTURES

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
# names whose use starts a process (strings that merely mention them do not count)
STARTS = frozenset({"subprocess", "Popen", "multiprocessing", "uvicorn", "RewardPool", "MlflowServer", "EmbeddedRedis"})


def _marked(decorators: list[ast.expr], src: str) -> bool:
    return any("mark.process" in ast.get_source_segment(src, d) for d in decorators)


def _names(fn: ast.FunctionDef) -> set[str]:
    """Names the body uses (decorators and defaults left out: they run at collection)."""
    return {n.id for stmt in fn.body for n in ast.walk(stmt) if isinstance(n, ast.Name)}


def _kustomize_build(tree: ast.Module) -> bool:
    """tests.helpers.kustomize.build runs `kubectl kustomize`."""
    return any(isinstance(n, ast.ImportFrom) and n.module == "tests.helpers.kustomize"
               and any(a.name == "build" for a in n.names) for n in tree.body)


def unmarked_process_tests(path: Path) -> list[str]:
    """Names of the file's test functions that start a process and carry no `process` marker."""
    src = path.read_text()
    tree = ast.parse(src)
    starts = STARTS | ({"build"} if _kustomize_build(tree) else set())
    module_marked = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                        and "process" in ast.get_source_segment(src, n) for n in tree.body)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    direct = {name for name, fn in funcs.items() if starts & _names(fn)}
    marked_fixtures = {name for name, fn in funcs.items() if _marked(fn.decorator_list, src)}
    out = []
    for name, fn in funcs.items():
        if not name.startswith("test_"):
            continue
        args = {a.arg for a in fn.args.args}
        called = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if not (direct & ({name} | args | called)):
            continue
        if module_marked or _marked(fn.decorator_list, src) or args & (PROCESS_FIXTURES | marked_fixtures):
            continue
        out.append(name)
    return out


def test_every_unit_test_that_starts_a_process_is_marked():
    unmarked = [f"{path.relative_to(ROOT)}::{name}" for path in sorted(UNIT.rglob("test_*.py"))
                for name in unmarked_process_tests(path)]
    assert not unmarked, "add @pytest.mark.process (or move to tests/integration/): " + ", ".join(unmarked)


def test_the_scan_sees_an_unmarked_subprocess(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import subprocess\n\n\ndef helper():\n    subprocess.run(['true'])\n\n\n"
                      "def test_a():\n    helper()\n\n\ndef test_b(redis_client):\n    subprocess.run(['true'])\n\n\n"
                      "def test_c():\n    assert 1\n")
    assert unmarked_process_tests(sample) == ["test_a"]  # test_b: the Redis fixture marks it
