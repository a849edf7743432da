"""A run's results kept for its summary without growing with the run."""

from __future__ import annotations

import pytest

from fulfil.cli.result_spool import ResultSpool

pytestmark = pytest.mark.unit


def test_results_beyond_the_memory_limit_go_to_a_file_and_come_back_in_order() -> None:
    spool = ResultSpool(in_memory=3)
    records = [{"order_id": f"o-{n}", "outcome": "bought", "warnings": [], "error": None} for n in range(10)]
    for record in records:
        spool.append(record)
    assert len(spool) == 10
    assert len(spool._head) == 3
    assert list(spool) == records
    spool.append({"order_id": "o-10", "outcome": "failed"})
    assert [r["order_id"] for r in spool][-2:] == ["o-9", "o-10"]  # read twice, appended in between
    spool.close()
    assert len(spool) == 11


def test_an_empty_spool_is_false() -> None:
    assert not ResultSpool()
