"""Every `path.py:name` and `path.py:Class.method` that the code-map docs name exists: the file is
in the repository and defines that function, class or method (read with ast, nothing imported).
A rename that leaves docs/walkthrough.md, docs/architecture.md or the DASH table in
shared/algo/__init__.py behind fails here, naming the stale reference."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["docs/walkthrough.md", "docs/architecture.md"]
DOCSTRINGS = ["shared/algo/__init__.py"]
# a repository path ending in .py, a colon, then a dotted Python name
REF = re.compile(r"(?<![\w/.])((?:[\w-]+/)*[\w-]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def references(text: str) -> list[tuple[str, str]]:
    return sorted(set(REF.findall(text)))


def source_text(name: str) -> str:
    path = ROOT / name
    if name in DOCSTRINGS:
        return ast.get_docstring(ast.parse(path.read_text())) or ""
    return path.read_text()


@cache
def definitions(path: str) -> frozenset[str]:
    """Top-level functions, classes and assigned names, and `Class.member` for each class member."""
    tree = ast.parse((ROOT / path).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(f"{node.name}.{member.target.id}")
    return frozenset(names)


def stale(refs: list[tuple[str, str]]) -> list[str]:
    out = []
    for path, name in refs:
        if not (ROOT / path).is_file():
            out.append(f"{path}:{name} (no such file)")
        elif name not in definitions(path):
            out.append(f"{path}:{name} (not defined there)")
    return out


@pytest.mark.parametrize("doc", DOCS + DOCSTRINGS)
def test_every_code_reference_exists(doc):
    refs = references(source_text(doc))
    assert len(refs) >= 10, f"{doc}: only {len(refs)} path.py:name references found (the pattern broke?)"
    assert not stale(refs), f"{doc}: " + "; ".join(stale(refs))


def test_the_check_reports_a_missing_file_and_a_missing_name():
    refs = references("see `shared/algo/loss.py:policy_loss`, shared/algo/loss.py:BatchTotals.of, "
                      "`shared/algo/loss.py:no_such_function` and `shared/nowhere.py:main`")
    assert refs == [("shared/algo/loss.py", "BatchTotals.of"), ("shared/algo/loss.py", "no_such_function"),
                    ("shared/algo/loss.py", "policy_loss"), ("shared/nowhere.py", "main")]
    assert stale(refs) == ["shared/algo/loss.py:no_such_function (not defined there)",
                           "shared/nowhere.py:main (no such file)"]


def test_every_config_field_of_the_dash_table_exists():
    from shared.config import RunConfig

    fields = re.findall(r"`(algo|sampler|learner|streams|model|task)\.(\w+)`", source_text("shared/algo/__init__.py"))
    assert len(fields) >= 15
    missing = [f"{section}.{name}" for section, name in fields
               if name not in RunConfig.model_fields[section].annotation.model_fields]
    assert not missing, f"shared/algo/__init__.py names config fields RunConfig lacks: {missing}"


def _table(text: str) -> list[str]:
    return [ln.replace("`", "").strip() for ln in text.splitlines() if ln.startswith("| ")]


def test_the_architecture_doc_carries_the_same_dash_table():
    algo = _table(source_text("shared/algo/__init__.py"))
    arch = _table(source_text("docs/architecture.md"))
    start = arch.index(algo[0])
    assert arch[start:start + len(algo)] == algo, "docs/architecture.md's DASH table differs from shared/algo's"


OUTSIDE = re.compile(r"/work/|\.\./shared/|\b(?:MEASURED|PEERS|PAPER)\.md\b|\bissue #?\d+", re.IGNORECASE)


def test_docs_point_only_inside_the_repository():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "configs").glob("*.yaml"))]
    hits = [f"{p.relative_to(ROOT)}:{i}: {m.group(0)}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) for m in OUTSIDE.finditer(line)]
    assert not hits, "say what is meant instead of pointing outside the repository: " + "; ".join(hits)
