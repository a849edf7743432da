"""End-of-day manifests (issue 13, item 3): labels bought into the day's group, `fulfil manifest
transmit` sending it once, its manifests recorded (PO number, links, a real PDF), the shipments
marked transmitted, every recovery point (answer lost, Canada Post unreachable or refusing at the
door, a run killed), and `manifest list` / `show`. The real CLI, a real PostgreSQL, the sandbox
over real sockets; assertions on the final state and on how many transmits the sandbox saw."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from fulfil.canadapost.groups import canada_post_day, day_group_id
from fulfil.label_files import looks_like_pdf
from fulfil.sandbox import Faults
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from fulfil.sandbox.throttle import GroupLimits
from tests.conftest import run_fulfil, run_fulfil_together
from tests.labels.helpers import api_calls, json_lines, seed_orders, shipments
from tests.local_http import closed_port_url
from tests.tracking.helpers import move_as_a_run_would

SHIPMENT_MEDIA = "application/vnd.cpc.shipment-v8+xml"
CP_AUTH = (
    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"],
    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"],
)
NO_LEASE = "lease_owner = NULL, lease_expires_at = NULL"


@pytest.fixture
def eod_env(fulfil_env: dict[str, str]) -> dict[str, str]:
    return {**fulfil_env, "FULFIL_CANADAPOST_MANIFEST": "end_of_day"}


def today_group() -> str:
    return day_group_id(canada_post_day())


def buy(db: psycopg.Connection, env: dict[str, str], n: int, seed: int = 71) -> list[str]:
    order_ids = seed_orders(db, n, seed=seed)
    bought = run_fulfil("labels", "create", "--json", env=env)
    assert bought.returncode == 0, bought.stderr
    assert {shipments(db)[order_id]["status"] for order_id in order_ids} == {"label_created"}
    return order_ids


def at_canada_post(sandbox: Any, db: psycopg.Connection, order_id: str) -> Any:
    return sandbox.sandbox_state.shipments[shipments(db)[order_id]["cp_shipment_id"]]


def sent(sandbox: Any, endpoint: str) -> int:
    return int(sandbox.state()["requests"]["counts"].get(f"canadapost.{endpoint}", 0))


def transmit(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = run_fulfil("manifest", "transmit", "--json", *args, env=env)
    return result.returncode, json_lines(result.stdout), result.stderr


def rows(db: psycopg.Connection, sql: str, *params: Any) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(sql, params).fetchall())


def transmits(db: psycopg.Connection) -> list[dict[str, Any]]:
    return rows(db, "SELECT * FROM manifest_transmits ORDER BY transmit_id")


def manifests(db: psycopg.Connection) -> list[dict[str, Any]]:
    return rows(db, "SELECT * FROM manifests ORDER BY manifest_id")


def assert_transmitted(db: psycopg.Connection, sandbox: Any, order_ids: list[str]) -> dict[str, Any]:
    """Every order's label transmitted at Canada Post and marked so here, on the one manifest
    recorded with its PO number, links and a real PDF on disk; returns that manifest's row."""
    [manifest] = manifests(db)
    [made] = sandbox.manifests()
    assert manifest["cp_manifest_id"] == made["manifest_id"]
    assert manifest["po_number"] == made["po_number"]
    assert re.fullmatch(r"[A-Za-z0-9]{1,10}", manifest["po_number"])
    assert manifest["artifact_url"].startswith(sandbox.base_url + "/rs/artifact/")
    assert manifest["shipments_url"].endswith(f"shipment?manifestId={made['manifest_id']}")
    assert manifest["shipment_count"] == len(order_ids)
    pdf = Path(manifest["pdf_path"])
    assert pdf.parent.name == "manifests"
    data = pdf.read_bytes()
    assert looks_like_pdf(data)
    assert manifest["po_number"].encode() in data
    assert manifest["pdf_bytes"] == len(data)
    for order_id in order_ids:
        row = shipments(db)[order_id]
        assert row["manifest_id"] == manifest["manifest_id"], order_id
        assert row["transmitted_at"] is not None
        assert at_canada_post(sandbox, db, order_id).status == "transmitted"
        assert row["cp_shipment_id"] in made["shipment_ids"]
        # Transmitting is not a shipment state: the lifecycle is where it was.
        assert row["status"] == "label_created"
    return manifest


# --- buying into the day's group ------------------------------------------------------------------


def test_labels_bought_end_of_day_carry_the_days_group_and_wait_created(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 2)
    group = today_group()
    assert re.fullmatch(r"fulfil-\d{8}", group)
    assert len(group) <= 32
    for order_id in order_ids:
        held = at_canada_post(sandbox, db, order_id)
        assert held.group_id == group
        assert held.status == "created"  # not transmitted: it waits for the day's manifest
        assert shipments(db)[order_id]["manifest_id"] is None
    for call in api_calls(db, "CreateShipment"):
        assert f"<group-id>{group}</group-id>" in call["request_payload"]
        assert "transmit-shipment" not in call["request_payload"]
    summary = sandbox.state()["canadapost"]["shipments"]
    assert {entry["group_id"] for entry in summary} == {group}


def test_labels_bought_in_auto_mode_are_transmitted_at_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy(db, {**fulfil_env, "FULFIL_CANADAPOST_MANIFEST": "auto"}, 1)
    held = at_canada_post(sandbox, db, order_id)
    assert held.group_id is None
    assert held.status == "transmitted"
    # Nothing waits in the day's group: a transmit has nothing to send, and sends nothing.
    code, [record], _ = transmit(fulfil_env)
    assert code == 0
    assert record["outcome"] == "nothing_to_transmit"
    assert sent(sandbox, "TransmitShipments") == 0
    assert transmits(db) == []


def test_end_of_day_needs_contract_shipping(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    eod_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    seed_orders(db, 1, seed=72)
    bought = run_fulfil("labels", "create", env=eod_env)
    assert bought.returncode == 2
    assert "FULFIL_CANADAPOST_MANIFEST" in bought.stderr
    assert "contract" in bought.stderr
    assert sandbox.labels_bought_per_order() == {}
    refused = run_fulfil("manifest", "transmit", env=eod_env)
    assert refused.returncode == 2
    assert "contract" in refused.stderr


def test_a_mode_that_is_neither_is_a_configuration_error(
    eod_env: dict[str, str], db: psycopg.Connection
) -> None:
    seed_orders(db, 1, seed=73)
    result = run_fulfil("labels", "create", env={**eod_env, "FULFIL_CANADAPOST_MANIFEST": "nightly"})
    assert result.returncode == 2
    assert "FULFIL_CANADAPOST_MANIFEST" in result.stderr
    assert "end_of_day" in result.stderr


# --- transmitting ---------------------------------------------------------------------------------


def test_transmit_sends_once_records_the_manifest_and_marks_the_shipments(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 3)

    code, [record], stderr = transmit(eod_env)

    assert code == 0, stderr
    assert record["outcome"] == "transmitted"
    assert record["found_by"] == "answer"
    assert record["group_id"] == today_group()
    assert record["date"] == canada_post_day().isoformat()
    assert record["included"] == 3
    assert record["excluded"] == []
    assert sent(sandbox, "TransmitShipments") == 1
    manifest = assert_transmitted(db, sandbox, order_ids)
    assert record["manifests"] == [
        {
            "manifest_id": manifest["cp_manifest_id"],
            "po_number": manifest["po_number"],
            "shipments": 3,
            "pdf_path": manifest["pdf_path"],
            "error": None,
        }
    ]
    [row] = transmits(db)
    assert row["status"] == "transmitted"
    assert row["found_by"] == "answer"
    assert row["lease_owner"] is None
    assert row["settled_at"] is not None
    assert sorted(row["included"]) == sorted(shipments(db)[o]["cp_shipment_id"] for o in order_ids)
    # The request went out as Canada Post documents it (the sandbox checked it against manifest.xsd).
    [post] = api_calls(db, "TransmitShipments")
    assert post["related_id"] == today_group()
    assert post["is_success"]
    assert f"<group-id>{today_group()}</group-id>" in post["request_payload"]
    assert "<requested-shipping-point>H2B1A0</requested-shipping-point>" in post["request_payload"]
    assert "<method-of-payment>Account</method-of-payment>" in post["request_payload"]
    assert sandbox.invalid_responses() == []
    # A transmitted label can no longer be voided at Canada Post: a refund is the way out.
    voided = requests.delete(
        shipments(db)[order_ids[0]]["cp_self_url"],
        auth=CP_AUTH,
        headers={"Accept": SHIPMENT_MEDIA},
        timeout=5,
    )
    assert voided.status_code == 400
    assert "<code>8064</code>" in voided.text


def test_a_second_transmit_of_the_day_sends_nothing_and_says_so(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    buy(db, eod_env, 2)
    assert transmit(eod_env)[0] == 0

    code, [record], _ = transmit(eod_env)
    talk = run_fulfil("-v", "manifest", "transmit", env=eod_env)

    assert code == 0
    assert talk.returncode == 0
    assert record["outcome"] == "nothing_to_transmit"
    assert "was transmitted" in record["message"]
    assert "2 labels" in record["message"]
    assert [m["po_number"] for m in record["manifests"]] == [manifests(db)[0]["po_number"]]
    assert "nothing to transmit" in talk.stderr
    assert sent(sandbox, "TransmitShipments") == 1
    assert len(transmits(db)) == 1  # the runs that sent nothing left nothing behind


def test_labels_bought_after_the_transmit_go_on_the_next_one(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    first = buy(db, eod_env, 1, seed=74)
    assert transmit(eod_env)[0] == 0
    later = buy(db, eod_env, 1, seed=75)

    code, [record], _ = transmit(eod_env)

    assert code == 0
    assert record["outcome"] == "transmitted"
    assert record["included"] == 1
    assert sent(sandbox, "TransmitShipments") == 2
    on = {shipments(db)[o]["manifest_id"] for o in first + later}
    assert len(on) == 2
    assert None not in on


def test_voided_and_canceled_labels_are_left_out(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    voided, voiding, canceled, kept = buy(db, eod_env, 4, seed=76)
    start_void = "void_from_status = 'label_created', void_started_at = now()"
    move_as_a_run_would(db, voided, "start_void", start_void)
    move_as_a_run_would(
        db,
        voided,
        "record_voided",
        f"void_from_status = NULL, voided_at = now(), void_reason = 'by the test', {NO_LEASE}",
    )
    move_as_a_run_would(db, voiding, "start_void", start_void)
    move_as_a_run_would(db, canceled, "record_canceled", f"last_error = 'canceled on Best Buy', {NO_LEASE}")
    left_out = {shipments(db)[o]["cp_shipment_id"]: o for o in (voided, voiding, canceled)}

    code, [record], stderr = transmit(eod_env)

    assert code == 0, stderr
    assert record["outcome"] == "transmitted"
    assert record["included"] == 1
    assert {e["cp_shipment_id"]: e["order_id"] for e in record["excluded"]} == left_out
    why = {e["order_id"]: e["why"] for e in record["excluded"]}
    assert "label_voided" in why[voided]
    assert "label_voiding" in why[voiding]
    assert "canceled" in why[canceled]
    assert not any(e["attention"] for e in record["excluded"])
    [made] = sandbox.manifests()
    assert sorted(made["excluded"]) == sorted(left_out)
    [post] = api_calls(db, "TransmitShipments")
    assert all(f"<shipment-id>{cp_id}</shipment-id>" in post["request_payload"] for cp_id in left_out)
    for order_id in (voided, voiding, canceled):
        assert at_canada_post(sandbox, db, order_id).status == "created"  # still voidable
        assert shipments(db)[order_id]["manifest_id"] is None
    assert_transmitted(db, sandbox, [kept])
    [row] = transmits(db)
    assert {e["cp_shipment_id"] for e in row["excluded"]} == set(left_out)


def test_a_label_fulfil_did_not_record_is_left_out_and_named(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy(db, eod_env, 1, seed=77)
    stranger = requests.post(
        f"{sandbox.base_url}/rs/2004381/2004381/shipment",
        data=api_calls(db, "CreateShipment")[0]["request_payload"].replace(
            "<customer-request-id>", "<customer-request-id>x"
        ),
        auth=CP_AUTH,
        headers={"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA},
        timeout=5,
    )
    assert stranger.status_code == 200, stranger.text
    stranger_id = re.search(r"<shipment-id>(\d+)</shipment-id>", stranger.text).group(1)  # type: ignore[union-attr]

    code, [record], stderr = transmit(eod_env)

    assert code == 3  # someone should look at a label in the group that fulfil does not hold
    assert record["outcome"] == "transmitted"
    [entry] = record["excluded"]
    assert entry["cp_shipment_id"] == stranger_id
    assert entry["attention"]
    assert entry["order_id"] is None
    assert "labels reconcile" in entry["why"]
    assert stranger_id in stderr
    assert sandbox.sandbox_state.shipments[stranger_id].status == "created"
    assert_transmitted(db, sandbox, [order_id])


# --- recovery points ------------------------------------------------------------------------------


def test_a_lost_answer_is_found_by_listing_the_days_manifests_never_sent_twice(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 2, seed=78)
    sandbox.script_faults("canadapost", "TransmitShipments", ["commit_then_drop"])

    code, [record], stderr = transmit(eod_env)

    assert code == 0, stderr
    assert record["outcome"] == "transmitted"
    assert record["found_by"] == "look-up"
    assert sent(sandbox, "TransmitShipments") == 1  # performed once, never sent again
    assert sent(sandbox, "GetManifests") == 1
    [post] = api_calls(db, "TransmitShipments")
    assert post["failure_class"] == "indeterminate"
    [listing] = api_calls(db, "GetManifests")
    assert f"start={canada_post_day():%Y%m%d}" in listing["url"]
    assert_transmitted(db, sandbox, order_ids)
    [row] = transmits(db)
    assert row["status"] == "transmitted"
    assert row["found_by"] == "look-up"
    assert manifests(db)[0]["found_by"] == "look-up"


def test_a_lost_answer_that_cannot_be_settled_yet_waits_for_the_next_run(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 2, seed=79)
    sandbox.script_faults("canadapost", "TransmitShipments", ["commit_then_drop"])
    sandbox.script_faults("canadapost", "GetManifests", ["http_503"] * 3)

    code, [record], stderr = transmit(eod_env)

    assert code == 3
    assert record["outcome"] == "unsettled"
    assert "could not be read" in record["error"]
    assert record["error"] in stderr
    [row] = transmits(db)
    assert row["status"] == "sending"
    assert row["lease_owner"] is None
    assert row["error"]
    assert all(shipments(db)[o]["manifest_id"] is None for o in order_ids)
    assert manifests(db) == []

    code, records, stderr = transmit(eod_env)

    assert code == 0, stderr
    assert [(r["outcome"], r["found_by"]) for r in records] == [
        ("transmitted", "look-up"),
        ("nothing_to_transmit", None),
    ]
    assert sent(sandbox, "TransmitShipments") == 1
    assert_transmitted(db, sandbox, order_ids)


def test_unreachable_canada_post_sends_nothing_and_leaves_no_intent(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 2, seed=80)
    away = {**eod_env, "FULFIL_CANADAPOST_BASE_URL": closed_port_url()}

    code, [record], stderr = transmit(away)

    assert code == 3
    assert record["outcome"] == "not_sent"
    assert "nothing was sent" in record["message"]
    assert record["error"] in stderr
    assert transmits(db) == []  # the intent was released: nothing holds the group
    listings = api_calls(db, "GetShipments")  # the group's list, each attempt refused at connect
    assert listings
    assert {call["failure_class"] for call in listings} == {"not_sent"}
    assert api_calls(db, "TransmitShipments") == []
    assert sent(sandbox, "TransmitShipments") == 0
    assert all(shipments(db)[o]["transmitted_at"] is None for o in order_ids)

    code, [record], _ = transmit(eod_env)

    assert code == 0
    assert record["outcome"] == "transmitted"
    assert sent(sandbox, "TransmitShipments") == 1
    assert_transmitted(db, sandbox, order_ids)


def test_a_transmit_refused_at_the_door_is_released_and_sent_by_the_next_run(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 1, seed=81)
    # Group C admits the group's listing and throttles Transmit Shipments ("Rejected by SLM
    # Monitor"): refused before anything is performed, each attempt (fulfil's pause: 1 s).
    sandbox.set_canadapost_limits(GroupLimits(limits={"C": 1}))
    env = {**eod_env, "FULFIL_CANADAPOST_RATE_C": "100000/1"}

    code, [record], _ = transmit(env)

    assert code == 3
    assert record["outcome"] == "not_sent"
    assert "Rejected by SLM Monitor" in record["error"]
    [row] = transmits(db)
    assert row["status"] == "not_sent"
    assert row["lease_owner"] is None
    attempts = api_calls(db, "TransmitShipments")
    assert {call["failure_class"] for call in attempts} == {"rate_limited"}
    refused = sandbox.throttle_report()["rejections"]
    assert [event["endpoint"] for event in refused] == ["TransmitShipments"] * len(attempts)
    assert sandbox.manifests() == []  # the throttle performs nothing
    assert shipments(db)[order_ids[0]]["manifest_id"] is None

    sandbox.set_canadapost_limits(GroupLimits())
    code, [record], _ = transmit(env)

    assert code == 0
    assert record["outcome"] == "transmitted"
    assert len(sandbox.manifests()) == 1
    assert_transmitted(db, sandbox, order_ids)


def test_a_transmit_left_by_a_dead_run_is_settled_first(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 1, seed=82)
    # A run killed after claiming the group and before sending: its intent is all that is left.
    db.execute(
        "INSERT INTO manifest_transmits (group_id, manifest_date, lease_owner, lease_expires_at) "
        "VALUES (%s, %s, 'elsewhere/1/1/gone', now() - interval '1 second')",
        (today_group(), canada_post_day()),
    )

    code, records, stderr = transmit(eod_env)

    assert code == 0, stderr
    assert [r["outcome"] for r in records] == ["abandoned", "transmitted"]
    assert sent(sandbox, "TransmitShipments") == 1
    assert [row["status"] for row in transmits(db)] == ["transmitted"]
    assert_transmitted(db, sandbox, order_ids)


def test_an_answer_recorded_by_a_run_that_died_is_settled_from_api_calls(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    from fulfil.canadapost.manifests import MANIFEST_MEDIA_TYPE, build_transmit_request
    from fulfil.canadapost.sender import sender_address
    from tests.labels.helpers import label_settings

    order_ids = buy(db, eod_env, 2, seed=87)
    # A run claimed the group, sent the transmit, its answer was logged, and it died right there.
    db.execute(
        "INSERT INTO manifest_transmits (group_id, manifest_date, lease_owner, lease_expires_at) "
        "VALUES (%s, %s, 'elsewhere/1/1/gone', now() - interval '1 second')",
        (today_group(), canada_post_day()),
    )
    request = build_transmit_request([today_group()], sender_address(label_settings(eod_env).sender()))
    answer = requests.post(
        f"{sandbox.base_url}/rs/2004381/2004381/manifest",
        data=request.xml,
        auth=CP_AUTH,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE, "Accept": MANIFEST_MEDIA_TYPE},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    db.execute(
        "INSERT INTO api_calls (service, endpoint, related_id, method, url, request_payload, status_code, "
        "is_success, response_body, finished_at) VALUES ('CanadaPost', 'TransmitShipments', %s, 'POST', "
        "%s, to_jsonb(%s::text), 200, true, %s, now())",
        (today_group(), answer.url, request.xml.decode(), answer.text),
    )

    code, records, stderr = transmit(eod_env)

    assert code == 0, stderr
    assert [(r["outcome"], r["found_by"]) for r in records] == [
        ("transmitted", "answer"),
        ("nothing_to_transmit", None),
    ]
    assert sent(sandbox, "TransmitShipments") == 1  # the dead run's; nothing sent since
    assert sent(sandbox, "GetManifests") == 0  # its answer was on record: nothing to look up
    assert_transmitted(db, sandbox, order_ids)


def test_a_transmit_held_by_a_live_run_is_left_alone(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    buy(db, eod_env, 1, seed=83)
    db.execute(
        "INSERT INTO manifest_transmits (group_id, manifest_date, lease_owner, lease_expires_at) "
        "VALUES (%s, %s, 'another-host/1/1.00/0/?', now() + interval '5 minutes')",
        (today_group(), canada_post_day()),
    )

    code, [record], _ = transmit(eod_env)

    assert code == 3
    assert record["outcome"] == "in_progress"
    assert sent(sandbox, "TransmitShipments") == 0
    assert sent(sandbox, "GetShipments") == 0


def test_two_runs_at_once_transmit_the_group_once(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 2, seed=86)
    # Slow answers keep the first run's transmit in flight while the second one starts.
    sandbox.set_faults("canadapost", Faults(latency_ms=400))
    finished = run_fulfil_together(2, "manifest", "transmit", "--json", env=eod_env)

    codes = sorted(run.returncode for run in finished)
    outcomes = sorted(record["outcome"] for run in finished for record in json_lines(run.stdout))
    assert codes in ([0, 0], [0, 3]), finished
    assert "transmitted" in outcomes
    assert set(outcomes) <= {"transmitted", "in_progress", "nothing_to_transmit"}
    assert len(sandbox.manifests()) == 1
    assert sent(sandbox, "TransmitShipments") == 1
    assert_transmitted(db, sandbox, order_ids)


def test_the_database_holds_one_transmit_of_a_group_in_flight(db: psycopg.Connection) -> None:
    insert = (
        "INSERT INTO manifest_transmits (group_id, manifest_date) VALUES ('fulfil-20261201', '2026-12-01')"
    )
    db.execute(insert)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(insert)
    db.execute(
        "UPDATE manifest_transmits SET status = 'not_sent', error = 'test', settled_at = now() "
        "WHERE group_id = 'fulfil-20261201'"
    )
    db.execute(insert)  # a settled transmit no longer holds the group
    with pytest.raises(psycopg.errors.CheckViolation):  # and its end is final
        db.execute("UPDATE manifest_transmits SET status = 'sending', settled_at = NULL, error = NULL")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a manifest only under a transmitted one
        db.execute(
            "INSERT INTO manifests (transmit_id, cp_manifest_id, manifest_url, found_by) "
            "SELECT min(transmit_id), '1', 'https://x/manifest/1', 'answer' FROM manifest_transmits"
        )


def test_a_replaced_label_forgets_its_transmission(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy(db, eod_env, 1, seed=84)
    assert transmit(eod_env)[0] == 0
    assert shipments(db)[order_id]["manifest_id"] is not None
    db.execute("UPDATE shipments SET tracking_pin = '9999999999999999' WHERE order_id = %s", (order_id,))
    row = shipments(db)[order_id]
    assert row["manifest_id"] is None
    assert row["transmitted_at"] is None
    # The earlier label stays on its manifest for good.
    assert rows(db, "SELECT count(*) AS n FROM manifest_shipments")[0]["n"] == 1


# --- reading back ---------------------------------------------------------------------------------


def test_manifest_list_and_show(eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any) -> None:
    order_ids = buy(db, eod_env, 2, seed=85)
    assert transmit(eod_env)[0] == 0
    [manifest] = manifests(db)

    listed = run_fulfil("manifest", "list", "--json", env=eod_env)
    assert listed.returncode == 0, listed.stderr
    [line] = json_lines(listed.stdout)
    assert line["po_number"] == manifest["po_number"]
    assert line["status"] == "transmitted"
    assert line["group_id"] == today_group()
    assert line["shipments"] == 2
    assert line["pdf_path"]
    plain = run_fulfil("manifest", "list", "--since", canada_post_day().isoformat(), env=eod_env)
    assert plain.returncode == 0
    assert manifest["po_number"] in plain.stdout
    assert run_fulfil("manifest", "list", "--since", "nonsense", env=eod_env).returncode == 2

    for key in (manifest["po_number"], manifest["cp_manifest_id"]):
        shown = run_fulfil("manifest", "show", key, "--json", env=eod_env)
        assert shown.returncode == 0, shown.stderr
        [story] = json_lines(shown.stdout)
        assert story["po_number"] == manifest["po_number"]
        assert story["links"]["artifact"] == manifest["artifact_url"]
        assert sorted(s["order_id"] for s in story["shipments"]) == sorted(order_ids)
        assert {s["tracking_pin"] for s in story["shipments"]} == {
            shipments(db)[o]["tracking_pin"] for o in order_ids
        }
    text = run_fulfil("manifest", "show", manifest["po_number"], env=eod_env)
    assert text.returncode == 0
    assert f"po_number\t{manifest['po_number']}" in text.stdout
    assert all(order_id in text.stdout for order_id in order_ids)

    missing = run_fulfil("manifest", "show", "P000000000", env=eod_env)
    assert missing.returncode == 3
    assert "no manifest" in missing.stderr


def status_items(env: dict[str, str], problem: str) -> list[dict[str, Any]]:
    result = run_fulfil("status", "--json", env=env)
    assert result.returncode in (0, 3), result.stderr
    return [r for r in json_lines(result.stdout) if r["type"] == "attention" and r["problem"] == problem]


def test_status_names_past_days_labels_never_transmitted_until_their_manifest_goes(
    eod_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = buy(db, eod_env, 2)
    voided = buy(db, eod_env, 1, seed=73)
    # The group Canada Post put each label in is kept with it.
    assert {shipments(db)[o]["cp_group_id"] for o in order_ids + voided} == {today_group()}
    # Today's labels wait for today's transmit: nothing to say yet.
    assert status_items(eod_env, "untransmitted_labels") == []
    # The same labels as if bought yesterday, and yesterday's manifest never transmitted.
    yesterday = canada_post_day() - timedelta(days=1)
    group = day_group_id(yesterday)
    sandbox.sandbox_state.regroup(today_group(), group)
    db.execute("UPDATE shipments SET cp_group_id = %s", (group,))
    assert (
        run_fulfil(
            "labels", "void", *voided, env={**eod_env, "FULFIL_CANADAPOST_REFUND_EMAIL": "a@b.ca"}
        ).returncode
        == 0
    )

    [item] = status_items(eod_env, "untransmitted_labels")

    assert item["order_id"] is None
    assert f"2 labels of group {group}" in item["reason"]  # the voided one is not waiting
    assert item["fix"] == f"`fulfil manifest transmit --date {yesterday:%Y-%m-%d}`"
    # The fix it names works, and then status has nothing more to say about it.
    fixed, [record], stderr = transmit(eod_env, "--date", f"{yesterday:%Y-%m-%d}")
    assert fixed == 0, stderr
    assert (record["outcome"], record["included"]) == ("transmitted", 2)
    assert status_items(eod_env, "untransmitted_labels") == []


def test_labels_bought_in_auto_mode_belong_to_no_group(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy(db, {**fulfil_env, "FULFIL_CANADAPOST_MANIFEST": "auto"}, 1)
    assert shipments(db)[order_id]["cp_group_id"] is None
