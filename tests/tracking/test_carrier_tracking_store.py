"""The carrier tracking cache on a real PostgreSQL: a row for every label, events kept once per event
and replaced per refresh, the schedule by status, backoff, the failure cap, and 004."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from fulfil.canadapost.tracking import CarrierStatus, parse_tracking_detail
from fulfil.carrier_tracking.schedule import RefreshPolicy
from fulfil.carrier_tracking.store import CarrierTrackingStore
from tests.canadapost.test_tracking_detail import detail, occurrence

PIN = "7023210039414604"


def add_label(db: psycopg.Connection, order_id: str = "T-1", pin: str = PIN) -> int:
    db.execute(
        "INSERT INTO orders (order_id, status) VALUES (%s, 'shipped') ON CONFLICT DO NOTHING", (order_id,)
    )
    row = db.execute(
        "INSERT INTO shipments (order_id, status, tracking_pin, cp_shipment_id, cp_mode, label_created_at) "
        "VALUES (%s, 'tracking_updated', %s, %s, 'contract', now()) RETURNING shipment_id",
        (order_id, pin, f"3431689838728{pin[-5:]}"),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def store(db: psycopg.Connection) -> CarrierTrackingStore:
    return CarrierTrackingStore(db, run_id="run-1", policy=RefreshPolicy(max_failures=3))


def tracking_row(db: psycopg.Connection, shipment_id: int) -> dict[str, object]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute("SELECT * FROM carrier_tracking WHERE shipment_id = %s", (shipment_id,)).fetchone()
    assert row is not None
    return row


def events(db: psycopg.Connection, shipment_id: int) -> list[tuple[object, ...]]:
    return db.execute(
        "SELECT event_key, description, tracking_event_id FROM tracking_events WHERE shipment_id = %s "
        "ORDER BY occurred_at DESC",
        (shipment_id,),
    ).fetchall()


def test_every_label_gets_a_tracking_row_due_now(db: psycopg.Connection) -> None:
    shipment_id = add_label(db)
    row = tracking_row(db, shipment_id)
    assert row["tracking_pin"] == PIN
    assert row["carrier_status"] == "pre_transit"
    assert row["auto_refresh"] is True
    due = db.execute(
        "SELECT next_refresh_at <= now() FROM carrier_tracking WHERE shipment_id = %s", (shipment_id,)
    )
    assert due.fetchone() == (True,)


def test_a_label_recorded_by_the_purchase_is_tracked(db: psycopg.Connection) -> None:
    db.execute("INSERT INTO orders (order_id, status) VALUES ('T-2', 'accepted')")
    shipment_id = db.execute(
        "INSERT INTO shipments (order_id, status) VALUES ('T-2', 'label_pending') RETURNING shipment_id"
    ).fetchone()[0]  # type: ignore[index]
    assert db.execute("SELECT count(*) FROM carrier_tracking").fetchone() == (0,)
    db.execute("UPDATE shipments SET warnings = NULL WHERE shipment_id = %s", (shipment_id,))
    assert db.execute("SELECT count(*) FROM carrier_tracking").fetchone() == (0,)
    db.execute("UPDATE shipments SET tracking_pin = %s WHERE shipment_id = %s", (PIN, shipment_id))
    assert tracking_row(db, shipment_id)["tracking_pin"] == PIN


def test_an_answer_sets_status_dates_last_event_and_the_next_refresh_by_status(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    shipment_id = add_label(db)
    answer = parse_tracking_detail(
        detail(
            occurrence("0174", at="08:00:00", description="Item out for delivery")
            + occurrence("0100", at="03:00:00")
        ),
        pin=PIN,
    )
    recorded = store.record_answer(shipment_id, answer, call_id=None)
    assert recorded.carrier_status is CarrierStatus.OUT_FOR_DELIVERY
    row = tracking_row(db, shipment_id)
    assert row["carrier_status"] == "out_for_delivery"
    assert row["last_event_code"] == "0174"
    assert row["last_event_description"] == "Item out for delivery"
    assert row["last_event_place"] == "OTTAWA, ON"
    assert str(row["expected_delivery"]) == "2026-12-04"
    assert row["refresh_count"] == 1
    assert row["refreshed_at"] is not None
    wait = db.execute(
        "SELECT next_refresh_at - refreshed_at FROM carrier_tracking WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    assert wait is not None
    assert abs(wait[0] - timedelta(minutes=30)) < timedelta(seconds=5)
    assert len(events(db, shipment_id)) == 2
    log = db.execute("SELECT outcome, carrier_status, run_id FROM tracking_refreshes").fetchall()
    assert log == [("refreshed", "out_for_delivery", "run-1")]


def test_the_same_answer_twice_keeps_each_event_once_with_its_row(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    shipment_id = add_label(db)
    body = detail(occurrence("0174", at="08:00:00") + occurrence("0100", at="03:00:00"))
    store.record_answer(shipment_id, parse_tracking_detail(body, pin=PIN), call_id=None)
    first = events(db, shipment_id)
    # The same events, one written "174" this time: still the same events.
    again = detail(occurrence("174", at="08:00:00") + occurrence("0100", at="03:00:00"))
    store.record_answer(shipment_id, parse_tracking_detail(again, pin=PIN), call_id=None)
    assert events(db, shipment_id) == first


def test_events_the_answer_no_longer_lists_are_dropped_and_new_ones_added(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    shipment_id = add_label(db)
    store.record_answer(
        shipment_id,
        parse_tracking_detail(
            detail(occurrence("0100", at="03:00:00", site="MONTREAL", province="QC")), pin=PIN
        ),
        call_id=None,
    )
    corrected = detail(
        occurrence("1496", at="12:00:00", description="Delivered") + occurrence("0100", at="03:00:00")
    )
    store.record_answer(shipment_id, parse_tracking_detail(corrected, pin=PIN), call_id=None)
    assert [key for key, _, _ in events(db, shipment_id)] == ["1496", "100"]


def test_delivered_is_never_due_again(db: psycopg.Connection, store: CarrierTrackingStore) -> None:
    shipment_id = add_label(db)
    answer = parse_tracking_detail(detail(occurrence("1496", description="Delivered")), pin=PIN)
    recorded = store.record_answer(shipment_id, answer, call_id=None)
    assert recorded.next_refresh_at is None
    row = tracking_row(db, shipment_id)
    assert row["delivered_at"] is not None
    due = db.execute(
        "SELECT count(*) FROM carrier_tracking WHERE auto_refresh AND carrier_status <> 'delivered'"
    ).fetchone()
    assert due == (0,)


def test_failures_back_off_then_stop_auto_refresh(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    shipment_id = add_label(db)
    waits = []
    for attempt in range(1, 4):
        recorded = store.record_failure(shipment_id, f"HTTP 500 ({attempt})", call_id=None)
        row = tracking_row(db, shipment_id)
        waits.append(recorded.next_refresh_at)
        assert row["consecutive_failures"] == attempt
        assert recorded.auto_refresh is (attempt < 3)
    assert waits[0] is not None
    assert waits[1] is not None
    assert waits[2] is not None
    # Pre-transit's 4 hours, then doubled per failure.
    assert waits[1] - waits[0] > timedelta(hours=3)
    row = tracking_row(db, shipment_id)
    assert row["auto_refresh"] is False
    assert "3 refreshes in a row failed" in str(row["auto_refresh_stopped_reason"])
    assert "HTTP 500 (3)" in str(row["last_refresh_error"])
    # An answer afterwards forgives the failures; turning auto-refresh on makes it due now.
    assert store.set_auto_refresh(shipment_id, True)
    row = tracking_row(db, shipment_id)
    assert row["auto_refresh"] is True
    assert row["consecutive_failures"] == 0
    outcomes = [r[0] for r in db.execute("SELECT outcome FROM tracking_refreshes ORDER BY refresh_id")]
    assert outcomes == ["failed", "failed", "failed"]


def test_004_before_any_scan_is_no_history_not_a_failure(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    shipment_id = add_label(db)
    recorded = store.record_no_history(shipment_id, call_id=None)
    assert recorded.carrier_status is CarrierStatus.PRE_TRANSIT
    row = tracking_row(db, shipment_id)
    assert row["consecutive_failures"] == 0
    assert row["refreshed_at"] is not None
    assert db.execute("SELECT outcome FROM tracking_refreshes").fetchall() == [("no_history",)]


def test_004_after_history_is_a_failure_that_keeps_what_is_known(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    shipment_id = add_label(db)
    store.record_answer(shipment_id, parse_tracking_detail(detail(occurrence("0100")), pin=PIN), call_id=None)
    store.record_no_history(shipment_id, call_id=None)
    row = tracking_row(db, shipment_id)
    assert row["carrier_status"] == "in_transit"
    assert row["consecutive_failures"] == 1
    assert len(events(db, shipment_id)) == 1


def test_a_new_pin_starts_the_parcel_afresh(db: psycopg.Connection, store: CarrierTrackingStore) -> None:
    shipment_id = add_label(db)
    store.record_answer(shipment_id, parse_tracking_detail(detail(occurrence("0100")), pin=PIN), call_id=None)
    db.execute(
        "UPDATE shipments SET tracking_pin = '7023210039414605' WHERE shipment_id = %s", (shipment_id,)
    )
    row = tracking_row(db, shipment_id)
    assert row["tracking_pin"] == "7023210039414605"
    assert row["carrier_status"] == "pre_transit"
    assert row["refreshed_at"] is None
    assert events(db, shipment_id) == []


def test_show_finds_parcels_by_order_or_pin_with_their_events(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    first = add_label(db, "T-1", PIN)
    add_label(db, "T-2", "7023210039414699")
    store.record_answer(first, parse_tracking_detail(detail(occurrence("0100")), pin=PIN), call_id=None)
    by_order = store.tracking_of(["T-1"])
    by_pin = store.tracking_of([PIN])
    assert [row["order_id"] for row in by_order] == ["T-1"]
    assert [row["order_id"] for row in by_pin] == ["T-1"]
    assert [event["event_code"] for event in by_order[0]["events"]] == ["0100"]
    assert sorted(row["order_id"] for row in store.tracking_of(["T-1", "7023210039414699", "nope"])) == [
        "T-1",
        "T-2",
    ]


def test_the_database_refuses_what_must_never_be(db: psycopg.Connection) -> None:
    shipment_id = add_label(db)
    for statement in (
        "UPDATE carrier_tracking SET carrier_status = 'lost_in_space' WHERE shipment_id = %s",
        "UPDATE carrier_tracking SET carrier_status = 'delivered' WHERE shipment_id = %s",  # no time
        "UPDATE carrier_tracking SET auto_refresh = false WHERE shipment_id = %s",  # no reason
        "UPDATE carrier_tracking SET consecutive_failures = -1 WHERE shipment_id = %s",
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(statement, (shipment_id,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO tracking_refreshes (shipment_id, outcome) VALUES (%s, 'failed')", (shipment_id,)
        )


def test_policy_refuses_a_status_without_an_interval() -> None:
    with pytest.raises(ValueError, match="in_transit"):
        RefreshPolicy(intervals={CarrierStatus.PRE_TRANSIT: timedelta(hours=1)})


def test_a_claimed_parcel_is_not_claimed_again_until_its_lease_ends(
    db: psycopg.Connection, store: CarrierTrackingStore
) -> None:
    first_id = add_label(db, "T-1", PIN)
    second_id = add_label(db, "T-2", "7023210039414699")
    # Out for delivery is more urgent than a parcel waiting for its first scan.
    store.record_answer(second_id, parse_tracking_detail(detail(occurrence("0174"), pin="7023210039414699"),
                                                         pin="7023210039414699"), call_id=None)  # fmt: skip
    db.execute("UPDATE carrier_tracking SET next_refresh_at = now() - interval '1 minute'")
    assert store.count_due() == 2
    first = store.claim_due(lease_seconds=300)
    second = store.claim_due(lease_seconds=300)
    assert first is not None
    assert second is not None
    assert (first["shipment_id"], second["shipment_id"]) == (second_id, first_id)
    assert store.claim_due(lease_seconds=300) is None
    assert store.count_due() == 0
    # Given back unasked: due again as it was.
    store.release(first)
    assert store.count_due() == 1
    assert store.count_due(["T-2"]) == 1
    assert store.count_due(["T-1"]) == 0
    # Past the cut-off (30 days after the label): never asked about.
    db.execute("UPDATE carrier_tracking SET label_created_at = now() - interval '31 days'")
    assert store.count_due() == 0
    assert store.claim_due(lease_seconds=300) is None
