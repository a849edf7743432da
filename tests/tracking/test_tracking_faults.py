"""Exactly once under every fault, Best Buy side (issue 9): no ship confirmation for a label that is
not on disk, no success taken from an answer Mirakl does not give, no call without a deadline, and
no call from a run whose claim was taken over."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from fulfil.sandbox import Faults
from tests.conftest import run_fulfil
from tests.tracking.helpers import (
    api_calls,
    json_lines,
    order_requests,
    order_statuses,
    seed_labelled,
    shipments,
)


def bestbuy_state(sandbox: Any, order_id: str) -> str:
    return sandbox.state()["bestbuy"]["orders"][order_id]["state"]


def test_labels_whose_pdf_is_missing_or_changed_are_not_pushed(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    missing, changed, never, just_bought = seed_labelled(db, sandbox, 4)
    rows = shipments(db)
    Path(rows[missing["order_id"]]["label_pdf_path"]).unlink()
    Path(rows[changed["order_id"]]["label_pdf_path"]).write_bytes(b"%PDF-1.4\nsomething else\n%%EOF\n")
    for order, bought_ago in ((never, "1 hour"), (just_bought, "5 seconds")):
        db.execute(
            "UPDATE shipments SET label_pdf_path = NULL, label_pdf_sha256 = NULL, "
            "label_created_at = now() - %s::interval WHERE order_id = %s",
            (bought_ago, order["order_id"]),
        )

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 3
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    for order in (missing, changed, never):
        record = records[order["order_id"]]
        assert record["outcome"] == "not_pushable"
        assert f"fulfil labels download --order {order['order_id']}" in record["error"]
    # Bought a moment ago, its PDF still on its way (another host's labels run): no alarm.
    assert records[just_bought["order_id"]]["outcome"] == "waiting_for_pdf"
    for order in (missing, changed, never, just_bought):
        assert order_requests(sandbox, order["order_id"]) == []  # neither OR23 nor OR24
        assert bestbuy_state(sandbox, order["order_id"]) == "SHIPPING"
        assert shipments(db)[order["order_id"]]["status"] == "label_created"
        assert shipments(db)[order["order_id"]]["lease_owner"] is None


def test_a_label_whose_pdf_is_still_on_its_way_waits_without_an_alarm(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1, label_files=False)

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["waiting_for_pdf"]
    assert order_requests(sandbox, order["order_id"]) == []


def test_an_html_page_answering_200_is_not_taken_for_shipped(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    order_id = order["order_id"]
    # A proxy or captive portal answers every attempt of the ship confirmation with a 200 page.
    sandbox.script_faults("bestbuy", "OR24", ["html_200"] * 4)

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "pending"
    assert shipments(db)[order_id]["status"] == "tracking_sent"  # OR23 really went through
    assert order_statuses(db)[order_id] == "accepted"
    assert bestbuy_state(sandbox, order_id) == "SHIPPING"
    ship_calls = api_calls(db, endpoint="OR24")
    assert ship_calls
    assert all(c["status_code"] == 200 and c["failure_class"] == "indeterminate" for c in ship_calls)
    assert "not Mirakl's 204" in ship_calls[0]["error"]

    again = run_fulfil("tracking", "push", "--json", env=fulfil_env)  # the proxy is gone
    assert again.returncode == 0, again.stderr
    assert shipments(db)[order_id]["status"] == "tracking_updated"
    assert bestbuy_state(sandbox, order_id) == "SHIPPED"


def test_an_html_page_answering_200_to_the_tracking_number_sends_no_ship_confirmation(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    sandbox.script_faults("bestbuy", "OR23", ["html_200"] * 4)

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 3
    assert [endpoint for endpoint, _ in order_requests(sandbox, order["order_id"])] == ["OR23"] * 4
    assert shipments(db)[order["order_id"]]["status"] == "label_created"


def test_answers_trickled_past_the_deadline_do_not_hang_the_push(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    order_id = order["order_id"]
    sandbox.set_faults("bestbuy", Faults(trickle_interval_s=0.5))
    # OR23 performed but trickled (every attempt), then the order read trickled too.
    sandbox.script_faults("bestbuy", "OR23", ["trickle"])
    env = {**fulfil_env, "FULFIL_HTTP_DEADLINE": "2"}

    started = time.monotonic()
    result = run_fulfil("tracking", "push", "--json", env=env, timeout=90)

    assert time.monotonic() - started < 60  # bounded; the trickle alone would take minutes
    assert result.returncode == 0, result.stderr  # the retry (OR23 is safe to repeat) went through
    trickled = api_calls(db, endpoint="OR23")[0]
    assert trickled["failure_class"] == "indeterminate"
    assert "deadline" in trickled["error"]
    assert shipments(db)[order_id]["status"] == "tracking_updated"

    pull_env = {**env}
    sandbox.script_faults("bestbuy", "OR11", ["trickle"] * 4)
    pull = run_fulfil("orders", "pull", "--force", "--json", env=pull_env, timeout=90)
    assert pull.returncode != 0
    assert "deadline" in pull.stderr or "deadline" in pull.stdout
    assert "Traceback" not in pull.stderr


def test_a_shipment_taken_over_before_the_ship_confirmation_is_not_shipped_by_its_old_owner(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, database_url: str
) -> None:
    from fulfil.config import load_settings
    from fulfil.services import open_session, tracking_workflow
    from fulfil.workflows.tracking import TrackingRun, _Pusher, _PushRun
    from fulfil.workflows.workers import WorkLimit

    [order] = seed_labelled(db, sandbox, 1, status="tracking_sent")
    settings = load_settings(fulfil_env, Path("/"))
    with open_session(database_url, settings, "tracking push") as session:
        workflow = tracking_workflow(database_url, settings, session)
        with workflow._store() as store:
            shared = _PushRun(TrackingRun(), None, WorkLimit(None))
            pusher = _Pusher(workflow, store, workflow.client, lambda result: None, shared)
            claim = pusher._claim()
            assert claim is not None
            db.execute(
                "UPDATE shipments SET lease_owner = 'another-host/1/1.00/abc/def' WHERE order_id = %s",
                (order["order_id"],),
            )
            result = pusher._push_one(claim)

    assert result is not None
    assert result.outcome == "skipped"
    assert [endpoint for endpoint, _ in order_requests(sandbox, order["order_id"])] == ["OR23"]  # seeded
    assert api_calls(db, endpoint="OR24") == []
    assert bestbuy_state(sandbox, order["order_id"]) == "SHIPPING"
