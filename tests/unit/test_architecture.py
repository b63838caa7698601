"""The shape of src/itemsapi, checked: packages import in one direction only, no module is too
long to read in one sitting, and docs/development.md lists exactly the modules there are."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "itemsapi"
# Lower layers first: a module may import its own layer and those before it, never one after
# it. The base is the top-level modules every layer uses.
LAYERS = [
    {
        "config",
        "config_values",
        "database_url",
        "errors",
        "jsonlog",
        "metrics",
        "strict_json",
        "tracing",
        "__init__",
    },
    {"db"},
    {"cache"},
    {"auth"},
    {"web"},
    {"services"},
    {"app"},
    {"serve"},
    {"cli", "__main__", "transfer_cli"},
]
MAX_LINES = 250


def unit(module: Path) -> str:
    """The package (db, cache, ...) or top-level module a file belongs to."""
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def layer(name: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if name in names)


def imported_units(module: Path) -> set[str]:
    """Every part of itemsapi a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "itemsapi":  # from itemsapi import metrics, __version__
                names = [f"itemsapi.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "itemsapi":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard("__version__")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    for module in MODULES:
        layer(unit(module))  # StopIteration names a part nobody placed


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(m.relative_to(PACKAGE)))
def test_imports_go_down_the_layers_only(module):
    own = unit(module)
    upward = {name for name in imported_units(module) if layer(name) > layer(own)}
    assert not upward, f"{own} may not import {sorted(upward)}"


def test_no_two_parts_import_each_other_even_through_others():
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph.setdefault(unit(module), set()).update(imported_units(module) - {unit(module)})

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in graph.get(start, ()):
            if name == goal or (name not in seen and reaches(name, goal, seen | {name})):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, set()))
    assert cycles == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(m.relative_to(PACKAGE)))
def test_no_module_is_longer_than_one_sitting(module):
    assert len(module.read_text().splitlines()) <= MAX_LINES


def test_every_package_says_what_it_owns_and_may_import():
    for package in {m.parent for m in MODULES if m.parent != PACKAGE}:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc, package
        assert "May import" in doc, package


def test_the_layout_in_the_development_guide_lists_every_module_and_no_other():
    text = (ROOT / "docs" / "development.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed, folder = set(), ""
    for line in block.splitlines():
        if match := re.match(r"^  ([a-z_]+)/\s", line):
            folder = match[1] + "/"
        elif match := re.match(r"^ {2}( {2})?([a-z_]+\.(?:py|yaml))\s", line):
            listed.add((folder if match[1] else "") + match[2])
            if not match[1]:
                folder = ""
    shipped = {
        str(m.relative_to(PACKAGE))
        for m in [*MODULES, *PACKAGE.rglob("*.yaml")]
        if m.name not in ("__init__.py", "__main__.py")
    }
    assert sorted(shipped - listed) == [], "in the tree, missing from docs/development.md"
    assert sorted(listed - shipped) == [], "in docs/development.md, gone from the tree"
