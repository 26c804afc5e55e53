"""benchmarks/ is a package run as `python -m benchmarks.<name>` from the repository root: every
folder is a package, no module edits sys.path, and none imports another module's private names
(what two modules share is public). Read from the source, nothing imported (the benchmarks pull
in torch, vLLM or TRL)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "benchmarks"
MODULES = sorted(BENCH.rglob("*.py"))


def test_every_folder_is_a_package():
    folders = {p.parent for p in MODULES}
    assert BENCH in folders and all((f / "__init__.py").is_file() for f in folders), folders


def test_no_module_edits_sys_path():
    edits = [str(p.relative_to(ROOT)) for p in MODULES
             if any(isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", "") == "sys"
                    for n in ast.walk(ast.parse(p.read_text())))]
    assert not edits, f"sys.path edited in {edits}: run the module as python -m benchmarks.<name>"


def test_no_private_imports():
    private = [f"{p.relative_to(ROOT)}: from {n.module} import {a.name}" for p in MODULES
               for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom)
               for a in n.names if a.name.startswith("_") and n.module != "__future__"]
    assert not private, private


def test_the_comparison_is_one_package():
    names = {p.name for p in (BENCH / "compare").glob("*.py")}
    assert {"__main__.py", "run.py", "analysis.py", "doc.py", "seeds.py", "trl_grpo.py"} <= names
    assert not list(BENCH.glob("compare*.py")) and not (BENCH / "trl_grpo.py").exists()
