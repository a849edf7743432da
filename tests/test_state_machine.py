"""The shipment state machine is one table (fulfil/shipments/states.py), and the database enforces
it: the same states and moves in shipment_states/shipment_moves, CHECKs tying states to columns,
a trigger refusing any other move however the UPDATE is written, moves that need the lease made
only by their holder, and every move in shipment_events."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from fulfil.shipments.states import MOVES, STATES, ShipmentState, allowed_moves, in_states
from tests.conftest import REPOSITORY, run_fulfil
from tests.labels.helpers import json_lines, seed_orders
from tests.tracking.helpers import seed_labelled

S = ShipmentState


def test_the_database_holds_the_same_states_and_moves_as_the_python_table(db: psycopg.Connection) -> None:
    states = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT state, meaning, way_out, may_hold_lease, has_label, needs_reason FROM shipment_states"
        )
    }
    assert states == {
        info.state.value: (info.meaning, info.way_out, info.may_hold_lease, info.has_label, info.needs_reason)
        for info in STATES
    }
    moves = set(db.execute("SELECT move, from_status, to_status, command, lease_rule FROM shipment_moves"))
    assert moves == {
        (move.name, source.value, move.target.value, move.command, move.lease.value)
        for move in MOVES
        for source in move.sources
    }
    assert {s.value for s in ShipmentState} == set(states)


def _check_states(db: psycopg.Connection, name: str) -> set[str]:
    row = db.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = %s AND conrelid = 'shipments'::regclass",
        (name,),
    ).fetchone()
    assert row is not None, name
    return set(re.findall(r"'(\w+)'::text", row[0]))


@pytest.mark.parametrize(
    ("constraint", "flag"),
    [
        ("shipments_label_has_pin_and_id", "has_label"),
        ("shipments_lease_only_in_flight", "may_hold_lease"),
        ("shipments_failure_has_reason", "needs_reason"),
    ],
)
def test_each_check_covers_exactly_the_states_the_table_says(
    db: psycopg.Connection, constraint: str, flag: str
) -> None:
    assert _check_states(db, constraint) == {state.value for state in in_states(flag)}


@pytest.mark.unit
def test_the_readme_states_table_is_the_python_table() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Shipment states", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*?) \|$", section, re.M)
    assert [(state, meaning, way_out) for state, meaning, way_out in rows] == [
        (info.state.value, info.meaning, info.way_out) for info in STATES
    ]


# ------------------------------------------------------------------------------------------------
# The database refuses what the table does not allow
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def pending(db: psycopg.Connection) -> int:
    db.execute("INSERT INTO orders (order_id, status, raw_order_data) VALUES ('M-1', 'accepted', '{}')")
    row = db.execute(
        "INSERT INTO shipments (order_id, status) VALUES ('M-1', 'label_pending') RETURNING shipment_id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_plain_update_to_a_state_the_table_does_not_reach_is_refused(
    db: psycopg.Connection, pending: int
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        db.execute("UPDATE shipments SET status = 'tracking_updated' WHERE shipment_id = %s", (pending,))
    message = str(refused.value)
    assert refused.value.sqlstate == "FS001"
    assert f"shipment {pending} (order M-1)" in message
    assert "label_pending -> tracking_updated" in message
    assert db.execute("SELECT status FROM shipments WHERE shipment_id = %s", (pending,)).fetchone() == (
        "label_pending",
    )


def test_every_move_not_in_the_table_is_refused(db: psycopg.Connection, pending: int) -> None:
    # Put the shipment in each state directly, then try every target the table does not allow.
    allowed = allowed_moves()
    for source in ShipmentState:
        for target in ShipmentState:
            if source == target or (source, target) in allowed:
                continue
            # Put it there without the trigger, as a starting point for the move under test.
            db.execute("ALTER TABLE shipments DISABLE TRIGGER shipments_check_move")
            db.execute(
                "UPDATE shipments SET status = %s, tracking_pin = '1234567890123', cp_shipment_id = '1', "
                "cp_mode = 'contract', cp_request_id = 'F1', purchase_started_at = now(), "
                "last_error = 'x', lease_owner = NULL, lease_expires_at = NULL WHERE shipment_id = %s",
                (source.value, pending),
            )
            db.execute("ALTER TABLE shipments ENABLE TRIGGER shipments_check_move")
            with pytest.raises(psycopg.Error) as refused:
                db.execute("UPDATE shipments SET status = %s WHERE shipment_id = %s", (target.value, pending))
            assert refused.value.sqlstate == "FS001", (source, target)


def test_a_move_is_refused_to_a_plain_update_and_its_error_names_the_holder(
    db: psycopg.Connection, pending: int
) -> None:
    holder = "host/123/1.00/abcdef/node"
    db.execute(
        "UPDATE shipments SET status = 'label_creation_initiated', cp_mode = 'contract', "
        "cp_request_id = 'F1', purchase_started_at = now(), lease_owner = %s, "
        "lease_expires_at = now() + interval '1 hour' "
        "WHERE shipment_id = %s "
        "AND fulfil_shipment_move(shipment_id, 'claim_purchase', NULL, NULL, 'claimed')",
        (holder, pending),
    )
    with pytest.raises(psycopg.Error) as refused:
        db.execute(
            "UPDATE shipments SET status = 'label_created', tracking_pin = '1234567890123', "
            "cp_shipment_id = '1' WHERE shipment_id = %s",
            (pending,),
        )
    assert refused.value.sqlstate == "FS002"
    assert holder in str(refused.value)
    assert "label_creation_initiated -> label_created" in str(refused.value)


def test_only_the_lease_holder_can_make_the_move_and_it_is_recorded(
    db: psycopg.Connection, pending: int
) -> None:
    holder = "host/123/1.00/abcdef/node"
    db.execute(
        "UPDATE shipments SET status = 'label_creation_initiated', cp_mode = 'contract', "
        "cp_request_id = 'F1', purchase_started_at = now(), lease_owner = %s, "
        "lease_expires_at = now() + interval '1 hour' "
        "WHERE shipment_id = %s "
        "AND fulfil_shipment_move(shipment_id, 'claim_purchase', NULL, NULL, 'claimed')",
        (holder, pending),
    )
    record = (
        "UPDATE shipments SET status = 'label_created', tracking_pin = '1234567890123', "
        "cp_shipment_id = '1', lease_owner = NULL, lease_expires_at = NULL WHERE shipment_id = %(id)s "
        "AND fulfil_shipment_move(%(id)s, 'record_purchase', %(owner)s, NULL, 'bought')"
    )
    for intruder in ("someone-else", None):
        assert db.execute(record, {"id": pending, "owner": intruder}).rowcount == 0
    assert db.execute(record, {"id": pending, "owner": holder}).rowcount == 1
    events = db.execute(
        "SELECT from_status, to_status, move, lease_owner, reason FROM shipment_events "
        "WHERE shipment_id = %s ORDER BY event_id",
        (pending,),
    ).fetchall()
    assert events == [
        (None, "label_pending", None, None, None),
        ("label_pending", "label_creation_initiated", "claim_purchase", None, "claimed"),
        ("label_creation_initiated", "label_created", "record_purchase", holder, "bought"),
    ]
    with pytest.raises(psycopg.Error, match="not a move of the shipment state machine"):
        db.execute("SELECT fulfil_shipment_move(%s, 'teleport', NULL, NULL, NULL)", (pending,))


# ------------------------------------------------------------------------------------------------
# Every order gets a timeline
# ------------------------------------------------------------------------------------------------


def test_a_whole_run_leaves_each_order_its_timeline(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_orders(db, 2)
    created = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert created.returncode == 0, created.stderr
    runs = dict(db.execute("SELECT command, run_id FROM runs").fetchall())
    for order_id in orders:
        events = db.execute(
            "SELECT from_status, to_status, move, run_id FROM shipment_events "
            "WHERE order_id = %s ORDER BY event_id",
            (order_id,),
        ).fetchall()
        assert [(e[0], e[1], e[2]) for e in events] == [
            (None, S.LABEL_PENDING, None),
            (S.LABEL_PENDING, S.LABEL_CREATION_INITIATED, "claim_purchase"),
            (S.LABEL_CREATION_INITIATED, S.LABEL_CREATED, "record_purchase"),
        ]
        assert {e[3] for e in events[1:]} == {runs["labels create"]}
    assert {r["outcome"] for r in json_lines(created.stdout)} == {"bought"}


def test_tracking_moves_are_in_the_timeline_too(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    pushed = run_fulfil("tracking", "push", env=fulfil_env)
    assert pushed.returncode == 0, pushed.stderr
    moves = [
        row[0]
        for row in db.execute(
            "SELECT move FROM shipment_events WHERE order_id = %s AND move IS NOT NULL ORDER BY event_id",
            (order["order_id"],),
        )
    ]
    assert moves == ["record_tracking_sent", "record_shipped"]
