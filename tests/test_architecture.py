"""ARCHITECTURE.md stays true: every path it names exists, and every state of the state machine
appears in its diagram."""

from __future__ import annotations

import re

import pytest

from fulfil.shipments.states import ShipmentState
from tests.conftest import REPOSITORY

pytestmark = pytest.mark.unit

TEXT = (REPOSITORY / "ARCHITECTURE.md").read_text(encoding="utf-8")


def _named_paths() -> set[str]:
    """Paths named in full (fulfil/…, sql/…, tests/…)."""
    paths = set(re.findall(r"(?<![\w/.])((?:fulfil|sql|tests)/[\w./]*)", TEXT))
    return {path.rstrip("/.,") for path in paths if "NNNN" not in path}


def _bare_module_names() -> set[str]:
    """Module file names the layer drawing gives without their folder (purchase.py …)."""
    names = set(re.findall(r"(?<![\w/.])([a-z_]+\.py)\b", TEXT))
    return names - {path.rsplit("/", 1)[-1] for path in _named_paths()}


def test_every_path_it_names_exists() -> None:
    missing = sorted(path for path in _named_paths() if not (REPOSITORY / path).exists())
    assert missing == [], f"ARCHITECTURE.md names what does not exist: {missing}"
    modules = {path.name for path in (REPOSITORY / "fulfil").rglob("*.py")}
    assert sorted(_bare_module_names() - modules) == []


def test_the_state_diagram_shows_every_state() -> None:
    diagram = TEXT.split("## The state machine", 1)[1].split("## ", 1)[0]
    assert [state.value for state in ShipmentState if state.value not in diagram] == []


def test_it_names_the_modules_it_must() -> None:
    for path in ("fulfil/shipments/states.py", "fulfil/shipments/store.py", "fulfil/audit/retry.py"):
        assert path in _named_paths()
