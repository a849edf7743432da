"""Where things live (issue 10): SQL only in sql/, a shipment state only by its name in the state
table, transactions only in the store. A test, so the house stays the way a newcomer finds it."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulfil.shipments.states import ShipmentState
from tests.conftest import REPOSITORY

pytestmark = pytest.mark.unit

PACKAGE = REPOSITORY / "fulfil"
# The sandbox plays the other side (Canada Post, Best Buy): it has states of its own.
PRODUCT = [path for path in sorted(PACKAGE.rglob("*.py")) if "sandbox" not in path.relative_to(PACKAGE).parts]
STATE_TABLE = PACKAGE / "shipments" / "states.py"
SQL_TEXT = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|DATABASE)"
    r"|DROP\s+(TABLE|DATABASE)|ALTER\s+TABLE|pg_advisory_\w+)",
    re.I | re.S,
)


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """The string constants of a module, docstrings excepted (they may show SQL to a reader)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_sql_outside_the_sql_folder() -> None:
    found = [
        f"{path.relative_to(REPOSITORY)}:{line}: {text[:60]!r}"
        for path in PRODUCT
        for line, text in _strings(path)
        if SQL_TEXT.search(text)
    ]
    assert found == [], "SQL belongs in sql/queries/*.sql (named queries):\n" + "\n".join(found)


def test_no_shipment_state_written_as_a_literal_outside_the_state_table() -> None:
    states = {state.value for state in ShipmentState}
    found = [
        f"{path.relative_to(REPOSITORY)}:{line}: {text!r}"
        for path in PRODUCT
        if path != STATE_TABLE
        for line, text in _strings(path)
        if text in states
    ]
    assert found == [], "name a state as ShipmentState.X (fulfil/shipments/states.py):\n" + "\n".join(found)


def test_workflows_never_commit_or_touch_a_connection() -> None:
    # The store runs every shipments query, on autocommit with explicit transaction blocks: a
    # workflow cannot leave a transaction open across an HTTP call.
    workflows = sorted((PACKAGE / "workflows").rglob("*.py"))
    found = [
        f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
        for path in workflows
        if path.name != "order_import.py"  # orders, not shipments: its own store (OrderStore)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"\.commit\(\)|\.rollback\(\)|\bquery\(|\.execute\(", line)
    ]
    assert found == []


def test_the_rules_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""SELECT 1 FROM a docstring is fine."""\nQ = "UPDATE shipments SET x = 1"\nS = "label_created"\n'
    )
    texts = [text for _, text in _strings(sample)]
    assert texts == ["UPDATE shipments SET x = 1", "label_created"]
    assert SQL_TEXT.search(texts[0])
