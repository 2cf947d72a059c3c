"""The package reads like the pipeline: one folder per stage, no import cycles, no giant modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import auditor

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "auditor"
STAGES = ("capture", "flows", "engine", "dissect", "inventory", "catalogue", "audit", "render",
          "firewall", "cli")
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """Every auditor module the file imports, at module level or inside functions."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {n for n in names if n in known and n != this}
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported(path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_relative_and_nested_imports_are_seen(tmp_path):
    graph = import_graph()
    # pipeline imports the tshark runner; report imports html inside a function
    assert "auditor.dissect.tshark" in graph["auditor.audit.pipeline"]
    assert "auditor.render.html" in graph["auditor.render.report"]


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_the_size_limit(name):
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by idea"


def test_every_stage_is_a_subpackage_named_in_the_readme_architecture():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Architecture"):]
    section = section[: section.index("\n## ", 3)]
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
        assert f"auditor/{stage}/" in section, f"README architecture does not place {stage}/"
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert sub.name in STAGES, f"auditor/{sub.name}/ is not a stage the README explains"


def test_options_module_imports_nothing_heavy():
    graph = import_graph()
    assert graph["auditor.options"] == set()
    source = (PACKAGE / "options.py").read_text(encoding="utf-8")
    assert "import numpy" not in source and "import pandas" not in source


@pytest.mark.parametrize("name", auditor.__all__)
def test_public_api_names_resolve(name):
    assert getattr(auditor, name) is not None


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_init_lists_every_module_of_its_folder(stage):
    toc = (PACKAGE / stage / "__init__.py").read_text(encoding="utf-8")
    for module in sorted((PACKAGE / stage).glob("*.py")):
        if module.name != "__init__.py":
            assert f"`{module.stem}`" in toc, f"auditor/{stage}/__init__.py does not list {module.stem}"
