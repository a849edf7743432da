"""An order that needs several parcels (issue 14): one Canada Post shipment per parcel, each bought
exactly once whatever happens in between (a kill, a lost answer, a refusal), the split fixed once
made, every tracking number kept, and Best Buy told parcel 1's once every parcel has its label.
The real CLI, a real PostgreSQL, the sandboxes over sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from fulfil.sandbox import Faults
from tests.conftest import run_fulfil, start_fulfil
from tests.labels.helpers import (
    api_calls,
    bought_per_order,
    insert_orders,
    json_lines,
    kill_when,
    let_the_purchase_time_out,
)
from tests.labels.test_label_choice import import_profiles, order

# A television ships alone; mugs go together. S-1 (a TV and two mugs) is two parcels: the mugs
# first (parcels come in the order of their first unit, by SKU), then the TV.
PROFILES = "TV-55,18.2,140,85,16,tv box,yes\nMUG-1,0.45,12,12,10,small,no\n"


def split_order(order_id: str = "S-1") -> dict[str, Any]:
    return order(order_id, lines=[("TV-55", 1), ("MUG-1", 2)])


def parcels(db: psycopg.Connection, order_id: str) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM shipments WHERE order_id = %s ORDER BY parcel_no", (order_id,)
        ).fetchall()


def create_requests(db: psycopg.Connection, endpoint: str = "CreateShipment") -> list[dict[str, Any]]:
    return [call for call in api_calls(db, endpoint) if call["related_id"] == "S-1"]


def best_buy_calls(sandbox: Any) -> dict[str, int]:
    counts = sandbox.state()["requests"]["counts"]
    return {name: count for name, count in counts.items() if name.startswith("bestbuy.")}


def weights(rows: list[dict[str, Any]]) -> list[str]:
    return [row["label_choice"]["parcel"]["weight_kg"] for row in rows]


def test_an_order_needing_two_parcels_gets_one_label_for_each_bought_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    insert_orders(db, [split_order(), order("S-2", lines=[("MUG-1", 1)])])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    bought = [(r["order_id"], r["parcel"]) for r in records if r["outcome"] == "bought"]
    assert sorted(bought, key=str) == sorted([("S-1", "1/2"), ("S-1", "2/2"), ("S-2", None)], key=str)
    assert bought_per_order(sandbox) == {"S-1": 2, "S-2": 1}
    rows = parcels(db, "S-1")
    assert [(r["parcel_no"], r["parcel_count"], r["status"]) for r in rows] == [
        (1, 2, "label_created"),
        (2, 2, "label_created"),
    ]
    assert weights(rows) == ["0.900", "18.200"]
    assert [r["label_choice"]["parcel"]["skus"] for r in rows] == [["MUG-1", "MUG-1"], ["TV-55"]]
    assert [r["planned_parcel"]["weight_kg"] for r in rows] == ["0.900", "18.200"]
    assert len({r["tracking_pin"] for r in rows}) == 2
    assert len({r["cp_request_id"] for r in rows}) == 2
    # Each parcel's label in a file of its own, never one over the other.
    names = [Path(r["label_pdf_path"]).name for r in rows]
    assert names == ["S-1~parcel-1-of-2.pdf", "S-1~parcel-2-of-2.pdf"]
    assert all(Path(r["label_pdf_path"]).read_bytes().startswith(b"%PDF-") for r in rows)
    # Each request says which parcel it is, and its api_calls row which shipment it was for.
    calls = create_requests(db)
    assert [call["shipment_id"] for call in calls] == [r["shipment_id"] for r in rows]
    for call, number in zip(calls, (1, 2), strict=True):
        assert f"<customer-ref-2>{number}/2</customer-ref-2>" in json.dumps(call["request_payload"])
    [single] = parcels(db, "S-2")
    assert (single["parcel_no"], single["parcel_count"], single["planned_parcel"]) == (1, 1, None)
    assert Path(single["label_pdf_path"]).name == "S-2.pdf"

    again = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert bought_per_order(sandbox) == {"S-1": 2, "S-2": 1}

    story = json.loads(run_fulfil("orders", "show", "S-1", "--json", env=fulfil_env).stdout)
    assert story["shipment"]["parcel_no"] == 1
    assert [(p["parcel_no"], p["tracking_pin"]) for p in story["parcels"]] == [
        (1, rows[0]["tracking_pin"]),
        (2, rows[1]["tracking_pin"]),
    ]
    shown = run_fulfil("orders", "show", "S-1", env=fulfil_env)
    assert shown.returncode == 0, shown.stderr
    assert "2 of 2" in shown.stdout


def test_the_dry_run_shows_each_parcel_of_a_split_order_and_buys_nothing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    insert_orders(db, [split_order()])

    result = run_fulfil("labels", "create", "--dry-run", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [(r["parcel"], r["choice"]["parcel"]["weight_kg"]) for r in records] == [
        ("1/2", "0.900"),
        ("2/2", "18.200"),
    ]
    assert all("<customer-ref-2>" in r["request"] for r in records)
    assert parcels(db, "S-1") == []
    assert bought_per_order(sandbox) == {}
    text = run_fulfil("labels", "create", "--dry-run", env=fulfil_env)
    assert "# order S-1 (parcel 2/2): would_buy" in text.stdout
    assert "# parcel 2 of 2: 18.200 kg" in text.stdout


def test_a_run_killed_after_parcel_1_was_sent_leaves_each_parcel_bought_exactly_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    insert_orders(db, [split_order()])
    # Parcel 1's purchase is made at Canada Post and its answer held back: the run is killed then.
    sandbox.set_faults("canadapost", Faults(late_answer_s=20.0))
    sandbox.script_faults("canadapost", "CreateShipment", ["commit_then_late"])
    kill_when(
        ["labels", "create"],
        fulfil_env,
        lambda: bought_per_order(sandbox) == {"S-1": 1},
        "parcel 1's purchase",
    )
    assert bought_per_order(sandbox) == {"S-1": 1}
    rows = parcels(db, "S-1")
    # The split was made before parcel 1's request could go out: parcel 2 waits, its parcel fixed.
    assert [(r["parcel_no"], r["status"]) for r in rows] == [
        (1, "label_creation_initiated"),
        (2, "label_pending"),
    ]
    assert rows[1]["planned_parcel"]["weight_kg"] == "18.200"

    sandbox.clear_script("canadapost", "CreateShipment")
    again = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert again.returncode == 0, again.stderr
    outcomes = sorted((r["parcel"], r["outcome"]) for r in json_lines(again.stdout) if r["parcel"])
    assert outcomes == [("1/2", "adopted"), ("2/2", "bought")]
    assert bought_per_order(sandbox) == {"S-1": 2}
    rows = parcels(db, "S-1")
    assert [r["status"] for r in rows] == ["label_created", "label_created"]
    assert len(create_requests(db)) == 2


def test_a_lost_non_contract_answer_for_parcel_2_is_found_by_its_parcel_reference(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    # Non-contract labels are found again only by their references: parcel 1's label, of the same
    # order, is in the same listing, and must not be taken for parcel 2's.
    fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    import_profiles(fulfil_env, tmp_path, PROFILES)
    insert_orders(db, [split_order()])
    sandbox.set_faults("canadapost", Faults(late_answer_s=20.0))
    sandbox.script_faults("canadapost", "CreateNCShipment", ["none", "commit_then_late"])
    kill_when(
        ["labels", "create"],
        fulfil_env,
        lambda: bought_per_order(sandbox) == {"S-1": 2},
        "parcel 2's purchase",
    )
    assert bought_per_order(sandbox) == {"S-1": 2}

    sandbox.clear_script("canadapost", "CreateNCShipment")
    again = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert again.returncode == 0, again.stderr
    assert bought_per_order(sandbox) == {"S-1": 2}
    rows = parcels(db, "S-1")
    assert [r["status"] for r in rows] == ["label_created", "label_created"]
    assert len({r["tracking_pin"] for r in rows}) == 2
    assert weights(rows) == ["0.900", "18.200"]
    assert len(create_requests(db, "CreateNCShipment")) == 2


def test_the_split_is_fixed_once_made_whatever_the_profiles_say_later(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    insert_orders(db, [split_order()])
    # One label this run: parcel 1's. Parcel 2 waits with the parcel the split gave it.
    first = run_fulfil("labels", "create", "--limit", "1", "--json", env=fulfil_env)
    assert first.returncode == 0, first.stderr
    assert bought_per_order(sandbox) == {"S-1": 1}
    assert [r["status"] for r in parcels(db, "S-1")] == ["label_created", "label_pending"]

    # The mugs now ship alone: planned afresh, the order would be three parcels.
    import_profiles(fulfil_env, tmp_path, "TV-55,18.2,140,85,16,tv box,yes\nMUG-1,0.45,12,12,10,small,yes\n")
    again = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert again.returncode == 0, again.stderr
    assert bought_per_order(sandbox) == {"S-1": 2}
    rows = parcels(db, "S-1")
    assert weights(rows) == ["0.900", "18.200"]
    assert [r["parcel_count"] for r in rows] == [2, 2]


def test_best_buy_gets_parcel_1s_number_once_every_parcel_has_a_label(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    made = split_order()
    sandbox.add_orders([made])
    insert_orders(db, [made])
    # One label this run: parcel 1 has its label, parcel 2 waits.
    assert run_fulfil("labels", "create", "--limit", "1", env=fulfil_env).returncode == 0
    assert [r["status"] for r in parcels(db, "S-1")] == ["label_created", "label_pending"]

    waiting = run_fulfil("tracking", "push", "--order", "S-1", "--json", env=fulfil_env)
    [record] = json_lines(waiting.stdout)
    assert record["outcome"] == "skipped"
    assert "1 of its 2 parcels have no label yet" in record["error"]
    assert best_buy_calls(sandbox) == {}

    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    pushed = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert pushed.returncode == 0, pushed.stderr
    [record] = json_lines(pushed.stdout)
    rows = parcels(db, "S-1")
    assert record["outcome"] == "shipped"
    assert record["tracking_pin"] == rows[0]["tracking_pin"]
    assert "ships in 2 parcels" in record["error"]
    assert rows[1]["tracking_pin"] in record["error"]
    best_buy = sandbox.state()["bestbuy"]["orders"]["S-1"]
    assert best_buy["tracking_number"] == rows[0]["tracking_pin"]
    assert best_buy["shipped"] is True
    assert best_buy_calls(sandbox) == {"bestbuy.OR23": 1, "bestbuy.OR24": 1}
    # The other parcel followed the first: shipped with it, its label and PIN kept.
    assert [r["status"] for r in rows] == ["tracking_updated", "tracking_updated"]
    assert rows[1]["shipped_at"] is not None
    [[status]] = db.execute("SELECT status FROM orders WHERE order_id = 'S-1'").fetchall()
    assert status == "shipped"
    moves = db.execute(
        "SELECT move FROM shipment_events WHERE shipment_id = %s ORDER BY event_id", (rows[1]["shipment_id"],)
    ).fetchall()
    assert moves[-1] == ("ship_with_first_parcel",)

    again = run_fulfil("tracking", "push", "--json", env=fulfil_env)
    assert again.stdout == ""
    assert best_buy_calls(sandbox) == {"bestbuy.OR23": 1, "bestbuy.OR24": 1}


def test_the_database_refuses_a_second_first_parcel_and_a_split_without_its_parcels(
    db: psycopg.Connection,
) -> None:
    import pytest

    insert_orders(db, [order("D-1")])
    db.execute("INSERT INTO shipments (order_id, status) VALUES ('D-1', 'label_pending')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO shipments (order_id, status) VALUES ('D-1', 'label_pending')")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO shipments (order_id, status, parcel_no, parcel_count) "
            "VALUES ('D-1', 'label_pending', 2, 2)"
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO shipments (order_id, status, parcel_no, parcel_count, planned_parcel) "
            "VALUES ('D-1', 'label_pending', 3, 2, '{\"weight_kg\": \"1\"}')"
        )
    db.execute(
        "INSERT INTO shipments (order_id, status, parcel_no, parcel_count, planned_parcel) "
        "VALUES ('D-1', 'label_pending', 2, 2, '{\"weight_kg\": \"1\"}')"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO shipments (order_id, status, parcel_no, parcel_count, planned_parcel) "
            "VALUES ('D-1', 'label_pending', 2, 2, '{\"weight_kg\": \"1\"}')"
        )


def test_each_parcels_purchase_is_settled_from_its_own_attempts_only(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    from psycopg.types.json import Jsonb

    from tests.labels.helpers import buy_directly

    # Two runs, both gone, bought S-1's parcels side by side: parcel 1's request went out and its
    # answer was never logged; parcel 2's, sent after it, was answered and logged. Both attempts
    # share the order id: parcel 1 must not be settled by parcel 2's answer.
    made = split_order()
    insert_orders(db, [made])
    ids = []
    for number, request_id, ago in ((1, "F" + "1" * 32, 20), (2, "F" + "2" * 32, 10)):
        [[shipment_id]] = db.execute(
            """
            INSERT INTO shipments (order_id, status, cp_mode, cp_request_id, purchase_started_at, attempts,
                                   lease_owner, lease_expires_at, parcel_no, parcel_count, planned_parcel)
            VALUES ('S-1', 'label_creation_initiated', 'contract', %s, now() - make_interval(secs => %s), 1,
                    'elsewhere/1/1/gone', now() - interval '1 second', %s, 2, %s)
            RETURNING shipment_id
            """,
            (request_id, ago, number, Jsonb({"weight_kg": "1.000", "skus": [], "source": "profile"})),
        ).fetchall()
        ids.append(shipment_id)
    answer = buy_directly(fulfil_env, made, "F" + "2" * 32)
    db.execute(
        "INSERT INTO api_calls (service, endpoint, related_id, method, url, request_payload, started_at, "
        "shipment_id) VALUES ('CanadaPost', 'CreateShipment', 'S-1', 'POST', "
        "'http://sandbox/rs/x/x/shipment', '\"<shipment/>\"', now() - interval '19 seconds', %s)",
        (ids[0],),
    )
    db.execute(
        "INSERT INTO api_calls (service, endpoint, related_id, method, url, request_payload, started_at, "
        "status_code, is_success, response_body, finished_at, shipment_id) VALUES ('CanadaPost', "
        "'CreateShipment', 'S-1', 'POST', 'http://sandbox/rs/x/x/shipment', '\"<shipment/>\"', "
        "now() - interval '9 seconds', 200, true, %s, now(), %s)",
        (answer["body"], ids[1]),
    )

    run_fulfil("labels", "reconcile", "--json", env=fulfil_env)

    rows = parcels(db, "S-1")
    # Parcel 2 has the label its own answer proves; parcel 1 is settled on its own evidence:
    # Canada Post has nothing under its request id, its settle window is over, so it was not bought.
    assert (rows[1]["status"], rows[1]["tracking_pin"]) == ("label_created", answer["tracking_pin"])
    assert rows[0]["tracking_pin"] is None
    assert rows[0]["status"] == "label_pending"
    assert "Canada Post has no label for request id" in rows[0]["last_error"]
    assert bought_per_order(sandbox) == {"S-1": 1}


def test_labels_void_refuses_an_order_in_several_parcels_and_sends_nothing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    insert_orders(db, [split_order()])
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0

    result = run_fulfil("labels", "void", "S-1", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "not_eligible"
    assert "order S-1 ships in 2 parcels" in record["reason"]
    assert api_calls(db, "VoidShipment") == []
    assert [r["status"] for r in parcels(db, "S-1")] == ["label_created", "label_created"]


def test_an_order_canceled_on_best_buy_takes_every_parcel_with_it(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, PROFILES)
    made = split_order()
    sandbox.add_orders([made])
    insert_orders(db, [made])
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    sandbox.set_order_state("S-1", "CANCELED")

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    [record] = json_lines(result.stdout)
    assert record["outcome"] == "order_canceled"
    rows = parcels(db, "S-1")
    # Both labels need voiding now: neither is left waiting for a push that will never come.
    assert [r["status"] for r in rows] == ["order_canceled", "order_canceled"]
    assert rows[1]["last_error"].startswith("parcel 2 of 2: ")
    assert best_buy_calls(sandbox).get("bestbuy.OR24") is None


def test_an_order_over_30_kg_is_split_by_weight_and_each_parcel_bought_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    # Four 9 kg units: 36 kg is over Canada Post's 30 kg, so 27 kg + 9 kg (first-fit decreasing).
    import_profiles(fulfil_env, tmp_path, "DUMBBELL-9,9,40,20,20,,no\n")
    insert_orders(db, [order("S-1", lines=[("DUMBBELL-9", 4)])])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert bought_per_order(sandbox) == {"S-1": 2}
    rows = parcels(db, "S-1")
    assert weights(rows) == ["27.000", "9.000"]
    assert [r["status"] for r in rows] == ["label_created", "label_created"]
    assert len(create_requests(db)) == 2


def test_a_parcel_whose_order_data_went_bad_fails_on_its_own_and_is_bought_once_fixed(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    from psycopg.types.json import Jsonb

    import_profiles(fulfil_env, tmp_path, PROFILES)
    made = split_order()
    insert_orders(db, [made])
    assert run_fulfil("labels", "create", "--limit", "1", env=fulfil_env).returncode == 0
    broken = json.loads(json.dumps(made))
    broken["customer"]["shipping_address"]["zip_code"] = "N8X3P"
    db.execute("UPDATE orders SET raw_order_data = %s WHERE order_id = 'S-1'", (Jsonb(broken),))

    failed = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert failed.returncode == 3
    [record] = json_lines(failed.stdout)
    assert (record["outcome"], record["parcel"]) == ("failed", "2/2")
    assert "order S-1: customer.shipping_address.zip_code" in record["error"]
    assert [r["status"] for r in parcels(db, "S-1")] == ["label_created", "label_failed"]

    # Fixed: the change itself puts parcel 2 back in line, bought as the parcel it was given.
    db.execute("UPDATE orders SET raw_order_data = %s WHERE order_id = 'S-1'", (Jsonb(made),))
    again = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert bought_per_order(sandbox) == {"S-1": 2}
    assert weights(parcels(db, "S-1")) == ["0.900", "18.200"]


def test_making_pending_shipments_treats_every_unique_index_as_its_arbiter(db: psycopg.Connection) -> None:
    # Two runs making the shipment row of one order at once: the one that loses must do nothing.
    # With a conflict target, PostgreSQL checks only that index before inserting, and a race met in
    # another unique index (order_id, parcel_no) raised a UniqueViolation: the chaos test saw a
    # `labels create` crash so. With none, every unique index is an arbiter (EXPLAIN then names
    # none), so the race is a no-op whichever index it meets.
    from fulfil.db import query

    unique = {
        row[0]
        for row in db.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'shipments'::regclass "
            "AND indisunique"
        )
    }
    assert {"shipments_order_parcel_uidx", "shipments_first_parcel_uidx"} <= unique
    statement = "EXPLAIN " + query("shipments", "create_pending_shipments")
    plan = [row[0].strip() for row in db.execute(statement, {"order_ids": None, "limit": 10})]
    assert "Conflict Resolution: NOTHING" in plan
    assert not [line for line in plan if line.startswith("Conflict Arbiter Indexes")], plan


# ------------------------------------------------------------------------------------------------
# `labels keep` on a split order: parcel 2 sold two labels, parcel 1 one
# ------------------------------------------------------------------------------------------------


def _parcel_2_sold_two_labels(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """S-1 as two parcels, parcel 1 bought once and parcel 2 twice, the real way (as in
    test_a_purchase_completed_after_a_takeover_is_recorded_and_both_labels_named): the first run's
    purchase of parcel 2 is made late at Canada Post, a second run takes parcel 2 over meanwhile
    and buys it, and the late purchase completes after. The rows of S-1's parcels, and the open
    surplus label of parcel 2."""
    import time

    import_profiles(fulfil_env, tmp_path, PROFILES)
    made = split_order()
    sandbox.add_orders([made])
    insert_orders(db, [made])
    # Parcel 1 is bought at once; parcel 2's purchase takes Canada Post 4 s, unseen by look-ups.
    sandbox.set_faults("canadapost", Faults(late_answer_s=4.0))
    sandbox.script_faults("canadapost", "CreateShipment", ["none", "late_commit"])
    patient = {**fulfil_env, "FULFIL_HTTP_READ_TIMEOUT": "10", "FULFIL_HTTP_DEADLINE": "15"}
    first = start_fulfil("labels", "create", "--json", env=patient)
    try:
        deadline = time.monotonic() + 20
        while True:
            rows = parcels(db, "S-1")
            waiting = [call for call in create_requests(db) if call["finished_at"] is None]
            if len(rows) == 2 and [call["shipment_id"] for call in waiting] == [rows[1]["shipment_id"]]:
                break
            assert first.poll() is None, "the first run ended before sending parcel 2's purchase"
            assert time.monotonic() < deadline, "the first run never sent parcel 2's purchase"
            time.sleep(0.05)
        assert rows[0]["status"] == "label_created"
        # Canada Post still shows nothing when parcel 2's lease and settle window run out.
        let_the_purchase_time_out(db, rows[1]["shipment_id"])
        second = run_fulfil("labels", "create", "--json", env=fulfil_env)
        assert second.returncode == 0, second.stderr
        assert [(r["parcel"], r["outcome"]) for r in json_lines(second.stdout)] == [
            ("2/2", "retryable"),
            ("2/2", "bought"),
        ]
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()

    assert first.returncode == 3, err
    assert [(r["parcel"], r["outcome"]) for r in json_lines(out)] == [
        ("1/2", "bought"),
        ("2/2", "needs_review"),
    ]
    assert bought_per_order(sandbox) == {"S-1": 3}
    rows = parcels(db, "S-1")
    assert [(r["parcel_no"], r["status"], r["last_error_code"]) for r in rows] == [
        (1, "label_created", None),
        (2, "needs_review", "two-labels"),
    ]
    [late] = _surplus_of_s1(db)
    assert late["shipment_id"] == rows[1]["shipment_id"]
    assert late["resolved_at"] is None
    assert len({rows[0]["cp_shipment_id"], rows[1]["cp_shipment_id"], late["cp_shipment_id"]}) == 3
    return rows, late


def _surplus_of_s1(db: psycopg.Connection) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM surplus_labels WHERE order_id = 'S-1' ORDER BY surplus_id"
        ).fetchall()


@pytest.mark.parametrize("which", ["late", "recorded"])
def test_labels_keep_on_a_split_order_keeps_the_label_of_the_parcel_that_holds_it(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path, which: str
) -> None:
    before, late = _parcel_2_sold_two_labels(fulfil_env, db, sandbox, tmp_path)
    recorded = before[1]
    chosen, other = (late, recorded) if which == "late" else (recorded, late)

    kept = run_fulfil("labels", "keep", "S-1", chosen["cp_shipment_id"], "--json", env=fulfil_env)

    assert kept.returncode == 0, kept.stderr
    [record] = json_lines(kept.stdout)
    assert (record["outcome"], record["status"], record["tracking_pin"]) == (
        "kept",
        "label_created",
        chosen["tracking_pin"],
    )
    rows = parcels(db, "S-1")
    assert rows[0] == before[0]  # parcel 1: not touched
    assert (rows[1]["status"], rows[1]["last_error_code"]) == ("label_created", None)
    assert (rows[1]["tracking_pin"], rows[1]["cp_shipment_id"]) == (
        chosen["tracking_pin"],
        chosen["cp_shipment_id"],
    )
    # The label not kept is closed, with why; no label of the order is left open.
    closed = {s["cp_shipment_id"]: s for s in _surplus_of_s1(db)}
    assert closed[other["cp_shipment_id"]]["resolved_at"] is not None
    assert closed[other["cp_shipment_id"]]["resolution"]
    assert closed[other["cp_shipment_id"]]["shipment_id"] == rows[1]["shipment_id"]
    assert [s for s in closed.values() if s["resolved_at"] is None] == []
    assert before[0]["cp_shipment_id"] not in closed

    download = run_fulfil("labels", "download", "--json", env=fulfil_env)
    assert download.returncode == 0, download.stderr
    rows = parcels(db, "S-1")
    path = Path(rows[1]["label_pdf_path"])
    assert path.name == "S-1~parcel-2-of-2.pdf"
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    assert chosen["tracking_pin"].encode() in data
    assert other["tracking_pin"].encode() not in data
    assert rows[0]["label_pdf_path"] == before[0]["label_pdf_path"]

    pushed = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert pushed.returncode == 0, pushed.stderr
    [record] = json_lines(pushed.stdout)
    assert record["outcome"] == "shipped"
    assert record["tracking_pin"] == before[0]["tracking_pin"]
    assert chosen["tracking_pin"] in record["error"]
    best_buy = sandbox.state()["bestbuy"]["orders"]["S-1"]
    assert best_buy["tracking_number"] == before[0]["tracking_pin"]
    assert best_buy["shipped"] is True
    assert best_buy_calls(sandbox) == {"bestbuy.OR23": 1, "bestbuy.OR24": 1}
    assert [r["status"] for r in parcels(db, "S-1")] == ["tracking_updated", "tracking_updated"]


def test_labels_keep_on_a_split_order_refuses_a_label_parcel_2_was_not_sold(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    before, late = _parcel_2_sold_two_labels(fulfil_env, db, sandbox, tmp_path)
    surplus = _surplus_of_s1(db)

    # Parcel 1's label is the only label parcel 1 has: nothing to choose, and nothing moves.
    refused = run_fulfil("labels", "keep", "S-1", before[0]["cp_shipment_id"], "--json", env=fulfil_env)

    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert refused.stdout == ""
    assert f"order S-1 (parcel 1 of 2) has only one label ({before[0]['cp_shipment_id']})" in refused.stderr
    assert parcels(db, "S-1") == before
    assert _surplus_of_s1(db) == surplus

    # A label of no parcel of the order at all: refused too.
    unknown = run_fulfil("labels", "keep", "S-1", "999999999999999999", "--json", env=fulfil_env)

    assert unknown.returncode == 2, (unknown.stdout, unknown.stderr)
    assert unknown.stdout == ""
    # Named with the parcel that waits for a choice, and its labels to choose from.
    assert "order S-1 (parcel 2 of 2): 999999999999999999 is not one of its labels" in unknown.stderr
    assert late["cp_shipment_id"] in unknown.stderr
    assert parcels(db, "S-1") == before
    assert _surplus_of_s1(db) == surplus
    assert api_calls(db, "VoidShipment") == []

    # Parcel 2 still waits for the seller's choice, and takes it.
    kept = run_fulfil("labels", "keep", "S-1", late["cp_shipment_id"], "--json", env=fulfil_env)
    assert kept.returncode == 0, kept.stderr
    rows = parcels(db, "S-1")
    assert rows[0] == before[0]
    assert rows[1]["tracking_pin"] == late["tracking_pin"]
