"""Exactly once under every fault (issue 9): the paths that bought a label twice, lost one, leaked
a credential or crashed on a hostile answer, each driven through the real command line against
the sandbox (and a TLS front end) over real sockets."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from fulfil.config import TRUST_VARIABLES
from fulfil.label_files import label_path
from fulfil.sandbox import Faults
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.conftest import run_fulfil, start_fulfil
from tests.fault_servers import RecordingServer, TlsFrontend
from tests.labels.helpers import (
    api_calls,
    assert_valid_label,
    bought_per_order,
    json_lines,
    let_the_purchase_time_out,
    seed_orders,
    shipments,
)

USER = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"]
PASSWORD = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"]
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CREATE_PATH = r"/rs/\d+/\d+/shipment"


def create_requests(sandbox: Any) -> list[dict[str, Any]]:
    return [e for e in sandbox.request_log() if e["endpoint"] in ("CreateShipment", "CreateNCShipment")]


def sold_pins(sandbox: Any) -> dict[str, list[str]]:
    pins: dict[str, list[str]] = {}
    for shipment in sandbox.state()["canadapost"]["shipments"]:
        pins.setdefault(shipment["customer_ref_1"], []).append(shipment["tracking_pin"])
    return pins


# ------------------------------------------------------------------------------------------------
# 1. TLS: an error after the request was written is never "not sent"; the CA to trust can be named
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def tls_canadapost(sandbox: Any) -> Any:
    with TlsFrontend(sandbox.base_url) as frontend:
        yield frontend


def test_a_tls_error_after_the_answer_began_is_settled_never_posted_again(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tls_canadapost: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    # The purchase reaches Canada Post, "HTTP 200" arrives, then a corrupt TLS record instead of
    # the body: requests raises SSLError, exactly as for a failed handshake.
    tls_canadapost.script("POST", CREATE_PATH, ["corrupt_after_headers"])
    env = {
        **fulfil_env,
        "FULFIL_CANADAPOST_BASE_URL": tls_canadapost.base_url,
        "FULFIL_CA_BUNDLE": str(tls_canadapost.ca_pem_path),
    }

    result = run_fulfil("labels", "create", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"]
    assert len(tls_canadapost.requests_for("POST", CREATE_PATH)) == 1  # never POSTed twice
    assert bought_per_order(sandbox) == {order_id: 1}
    row = shipments(db)[order_id]
    assert row["tracking_pin"] == sold_pins(sandbox)[order_id][0]
    assert_valid_label(row)
    [attempt] = api_calls(db, "CreateShipment")
    assert attempt["status_code"] == 200  # the status that arrived is kept …
    assert attempt["failure_class"] == "indeterminate"  # … and the lost body makes it unknown
    assert "TLS error after the request was sent" in attempt["error"]


@pytest.mark.parametrize("variable", ["FULFIL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_ca_to_trust_can_be_named_and_verification_stays_on(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tls_canadapost: Any, variable: str
) -> None:
    [order_id] = seed_orders(db, 1)
    # Only the variable under test names a CA (this machine's environment may set the others).
    env = {k: v for k, v in fulfil_env.items() if k not in TRUST_VARIABLES}
    env["FULFIL_CANADAPOST_BASE_URL"] = tls_canadapost.base_url

    untrusted = run_fulfil("labels", "create", "--json", env=env)  # the front end's CA is unknown

    assert untrusted.returncode == 3
    assert "TLS error before anything was sent" in untrusted.stderr
    assert tls_canadapost.requests_for("POST", CREATE_PATH) == []
    assert shipments(db)[order_id]["status"] == "label_pending"

    trusted = run_fulfil("labels", "create", "--json", env={**env, variable: str(tls_canadapost.ca_pem_path)})

    assert trusted.returncode == 0, trusted.stderr
    assert [r["outcome"] for r in json_lines(trusted.stdout)] == ["bought"]
    assert bought_per_order(sandbox) == {order_id: 1}


def test_a_ca_bundle_that_does_not_exist_is_a_configuration_error(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    seed_orders(db, 1)
    for variable in ("FULFIL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        result = run_fulfil("labels", "create", env={**fulfil_env, variable: str(tmp_path / "nope.pem")})
        assert result.returncode == 2, result.stderr
        assert variable in result.stderr
        assert "Traceback" not in result.stderr
    assert create_requests(sandbox) == []


def test_a_failed_handshake_sent_nothing_and_is_tried_again(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tls_canadapost: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    tls_canadapost.script("POST", CREATE_PATH, ["fail_handshake"])
    env = {
        **fulfil_env,
        "FULFIL_CANADAPOST_BASE_URL": tls_canadapost.base_url,
        "FULFIL_CA_BUNDLE": str(tls_canadapost.ca_pem_path),
    }

    result = run_fulfil("labels", "create", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["bought"]
    assert tls_canadapost.failed_handshakes == 1
    assert bought_per_order(sandbox) == {order_id: 1}
    first, second = api_calls(db, "CreateShipment")
    assert first["failure_class"] == "not_sent"
    assert second["is_success"] is True


# ------------------------------------------------------------------------------------------------
# 2. Every call has an overall deadline
# ------------------------------------------------------------------------------------------------


def test_an_answer_trickled_past_the_deadline_ends_the_call_and_is_settled(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    # One byte every 0.4 s never trips the 2 s read timeout; only the 3 s deadline stops it.
    sandbox.set_faults("canadapost", Faults(trickle_interval_s=0.4))
    sandbox.script_faults("canadapost", "CreateShipment", ["trickle"])
    env = {**fulfil_env, "FULFIL_HTTP_DEADLINE": "3"}

    started = time.monotonic()
    result = run_fulfil("labels", "create", "--json", env=env, timeout=60)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"]
    assert bought_per_order(sandbox) == {order_id: 1}
    [attempt] = api_calls(db, "CreateShipment")
    assert attempt["failure_class"] == "indeterminate"
    assert "deadline" in attempt["error"]
    assert attempt["deadline_at"] is not None
    assert elapsed < 45  # bounded (the trickle alone would take minutes), not a timing claim


def test_a_label_trickled_past_the_deadline_is_download_failed_then_fetched(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    sandbox.set_faults("canadapost", Faults(trickle_interval_s=0.4))
    sandbox.script_faults("canadapost", "GetArtifact", ["trickle"] * 4)  # every attempt of the fetch
    env = {**fulfil_env, "FULFIL_HTTP_DEADLINE": "2"}

    first = run_fulfil("labels", "create", "--json", env=env, timeout=60)

    assert first.returncode == 3, first.stderr
    [record] = json_lines(first.stdout)
    assert record["outcome"] == "download_failed"
    assert "deadline" in record["error"]
    assert shipments(db)[order_id]["status"] == "label_created"

    again = run_fulfil("labels", "download", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert_valid_label(shipments(db)[order_id])
    assert bought_per_order(sandbox) == {order_id: 1}


# ------------------------------------------------------------------------------------------------
# 3. A label bought by a run whose claim was taken over is recorded, never dropped
# ------------------------------------------------------------------------------------------------


def _wait_for_unanswered_purchase(db: psycopg.Connection, order_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT count(*) FROM api_calls WHERE related_id = %s AND endpoint = 'CreateShipment' "
            "AND finished_at IS NULL",
            (order_id,),
        ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"order {order_id}: the first run never sent its purchase")


def test_a_purchase_completed_after_a_takeover_is_recorded_and_both_labels_named(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    # Canada Post takes 4 s to make the first purchase, and it is not visible to look-ups before.
    sandbox.set_faults("canadapost", Faults(late_answer_s=4.0))
    sandbox.script_faults("canadapost", "CreateShipment", ["late_commit"])
    patient = {**fulfil_env, "FULFIL_HTTP_READ_TIMEOUT": "10", "FULFIL_HTTP_DEADLINE": "15"}
    first = start_fulfil("labels", "create", "--json", env=patient)
    try:
        _wait_for_unanswered_purchase(db, order_id)
        # Canada Post still shows nothing when the first run's lease and settle window run out.
        let_the_purchase_time_out(db, shipments(db)[order_id]["shipment_id"])
        second = run_fulfil("labels", "create", "--json", env=fulfil_env)
        assert second.returncode == 0, second.stderr
        assert [r["outcome"] for r in json_lines(second.stdout)] == ["retryable", "bought"]
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()

    assert first.returncode == 3, err
    [record] = json_lines(out)
    assert record["outcome"] == "needs_review"
    pins = sold_pins(sandbox)[order_id]
    assert len(pins) == 2  # the price of a Canada Post this slow; neither is forgotten
    row = shipments(db)[order_id]
    assert row["status"] == "needs_review"
    assert row["last_error_code"] == "two-labels"
    surplus = db.execute(
        "SELECT cp_shipment_id, tracking_pin FROM surplus_labels WHERE order_id = %s", (order_id,)
    ).fetchall()
    assert len(surplus) == 1
    assert {row["tracking_pin"], surplus[0][1]} == set(pins)
    for shipment_id in (row["cp_shipment_id"], surplus[0][0]):
        assert shipment_id in row["last_error"]
        assert shipment_id in record["error"]
    status = run_fulfil("status", "--json", env=fulfil_env)
    items = [r for r in json_lines(status.stdout) if r.get("type") == "attention"]
    assert any(i["problem"] == "surplus_label" and surplus[0][0] in i["fix"] for i in items), items

    # The seller voids the one recorded on the shipment and keeps the late one.
    kept = run_fulfil("labels", "keep", order_id, surplus[0][0], "--json", env=fulfil_env)
    assert kept.returncode == 0, kept.stderr
    assert shipments(db)[order_id]["tracking_pin"] == surplus[0][1]
    assert run_fulfil("labels", "download", env=fulfil_env).returncode == 0
    assert_valid_label(shipments(db)[order_id])
    closed = db.execute(
        "SELECT cp_shipment_id, resolution FROM surplus_labels WHERE order_id = %s ORDER BY surplus_id",
        (order_id,),
    ).fetchall()
    assert [c[0] for c in closed] == [surplus[0][0], row["cp_shipment_id"]]
    assert all(c[1] for c in closed)


# ------------------------------------------------------------------------------------------------
# 4. A claim taken over between claim and send is never POSTed by its old owner
# ------------------------------------------------------------------------------------------------


def test_a_claim_taken_over_before_sending_is_never_sent(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, database_url: str
) -> None:
    from fulfil.config import load_settings
    from fulfil.services import label_workflow, open_session
    from fulfil.workflows.labels import LabelRun

    [order_id] = seed_orders(db, 1)
    settings = load_settings(fulfil_env, Path("/"))
    with open_session(database_url, settings, "labels create") as session:
        workflow = label_workflow(database_url, settings, session)
        with workflow.phases(LabelRun()) as phases:
            db.execute("INSERT INTO shipments (order_id, status) VALUES (%s, 'label_pending')", (order_id,))
            claim = phases.purchases.claim_next(None)
            assert claim is not None
            assert claim.request is not None
            # Another run takes the purchase over between this run's claim and its send.
            db.execute(
                "UPDATE shipments SET lease_owner = 'another-host/1/1.00/abc/def' WHERE order_id = %s",
                (order_id,),
            )
            result = phases.purchases.purchase(claim)

    assert result.outcome == "skipped"
    assert "nothing was sent" in (result.error or "")
    assert create_requests(sandbox) == []
    assert api_calls(db, "CreateShipment") == []


# ------------------------------------------------------------------------------------------------
# 5 and 13. Links to another host, and hostile values, are refused: indeterminate, never re-POSTed
# ------------------------------------------------------------------------------------------------


def test_links_to_another_host_are_never_fetched_and_the_purchase_is_settled(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    with RecordingServer() as elsewhere:
        sandbox.set_faults("canadapost", Faults(foreign_base_url=elsewhere.url))
        sandbox.script_faults("canadapost", "CreateShipment", ["foreign_links"])

        result = run_fulfil("labels", "create", "--json", env=fulfil_env)

        assert elsewhere.requests() == []  # no request, so no credential, ever went there
    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"]
    assert len(create_requests(sandbox)) == 1
    row = shipments(db)[order_id]
    assert_valid_label(row)
    assert row["cp_api_label_url"].startswith(sandbox.base_url)


def test_a_link_to_another_host_in_a_look_up_leaves_the_purchase_unsettled(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    with RecordingServer() as elsewhere:
        sandbox.set_faults("canadapost", Faults(foreign_base_url=elsewhere.url))
        sandbox.script_faults("canadapost", "CreateShipment", ["commit_then_drop"])
        sandbox.script_faults("canadapost", "GetShipments", ["foreign_links"] * 3)

        result = run_fulfil("labels", "create", "--json", env=fulfil_env)

        assert elsewhere.requests() == []
    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "unsettled"
    assert "127.0.0.1" in record["error"] or "host" in record["error"]
    assert shipments(db)[order_id]["status"] == "label_creation_initiated"
    assert len(create_requests(sandbox)) == 1


def test_the_http_layer_refuses_to_send_credentials_to_another_origin(
    database_url: str, db: psycopg.Connection
) -> None:
    from fulfil.audit.log import ApiCallLog
    from fulfil.audit.outcome import FailureClass
    from fulfil.audit.redaction import Redactor
    from fulfil.audit.sender import AuditedHttp
    from fulfil.audit.transport import BasicAuth

    log = ApiCallLog(database_url, redactor=Redactor([PASSWORD]))
    with RecordingServer() as configured, RecordingServer() as elsewhere:
        http = AuditedHttp(
            log,
            service="CanadaPost",
            origin=configured.url,
            auth=BasicAuth(USER, PASSWORD),
            connect_timeout=1,
            read_timeout=2,
        )
        outcome = http.send("GET", f"{elsewhere.url}/ers/artifact/1/0", endpoint="GetArtifact")
        also = http.send("GET", f"{configured.url}/ers/artifact/1/0", endpoint="GetArtifact")
        assert elsewhere.requests() == []
        assert configured.authorization_headers()  # the configured host does get them
    log.close()
    assert outcome.failure is FailureClass.NOT_SENT
    assert not outcome.repeatable
    assert "refused" in (outcome.error or "")
    assert also.status_code is not None
    refused = db.execute("SELECT failure_class, error FROM api_calls ORDER BY call_id LIMIT 1").fetchone()
    assert refused is not None
    assert refused[0] == "not_sent"
    assert "refused" in refused[1]


def test_a_hostile_pin_is_never_recorded_and_never_bought_again(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    sandbox.script_faults("canadapost", "CreateShipment", ["bad_pin"])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"]
    assert len(create_requests(sandbox)) == 1
    row = shipments(db)[order_id]
    assert row["tracking_pin"] == sold_pins(sandbox)[order_id][0]
    assert_valid_label(row)


# ------------------------------------------------------------------------------------------------
# 10 and 11. Bodies PostgreSQL cannot store, and credentials an error page repeats
# ------------------------------------------------------------------------------------------------


def test_nul_bytes_in_an_answer_do_not_stop_the_run(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 2)
    sandbox.script_faults("canadapost", "CreateShipment", ["nul_body"])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert sorted(r["outcome"] for r in json_lines(result.stdout)) == ["adopted", "bought"]
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)
    first = api_calls(db, "CreateShipment")[0]
    assert first["response_body"] is not None
    assert "\x00" not in first["response_body"]


def test_an_error_page_repeating_the_credentials_leaves_them_nowhere(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    seed_orders(db, 1)
    sandbox.script_faults("canadapost", "CreateShipment", ["echo_headers"])

    result = run_fulfil("-vv", "labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3  # a 500: unknown, waits to be settled
    everything = result.stdout + result.stderr
    everything += json.dumps(
        [r[0] for r in db.execute("SELECT row_to_json(a) FROM api_calls a")], default=str
    )
    everything += json.dumps(
        [r[0] for r in db.execute("SELECT row_to_json(s) FROM shipments s")], default=str
    )
    assert "Authorization" in " ".join(str(c["response_body"]) for c in api_calls(db, "CreateShipment"))
    for form in (PASSWORD, BASIC, quote(BASIC, safe=""), quote(PASSWORD, safe="")):
        assert form not in everything


# ------------------------------------------------------------------------------------------------
# 6. The labels directory is checked before anything is bought; a PDF that cannot be written is
#    recorded as download_failed and the run goes on
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["a file", "under a file"])
def test_a_labels_directory_that_cannot_take_labels_stops_before_buying(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path, shape: str
) -> None:
    seed_orders(db, 2)
    blocker = tmp_path / "labels.pdf"
    blocker.write_text("not a directory")
    labels_dir = blocker if shape == "a file" else blocker / "labels"
    env = {**fulfil_env, "FULFIL_LABELS_DIR": str(labels_dir)}

    result = run_fulfil("labels", "create", env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "FULFIL_LABELS_DIR" in result.stderr
    assert create_requests(sandbox) == []
    assert bought_per_order(sandbox) == {}
    check = run_fulfil("config", "check", env=env)
    assert check.returncode == 2
    assert "FULFIL_LABELS_DIR" in check.stdout + check.stderr


def test_a_pdf_that_cannot_be_written_after_buying_is_recorded_and_the_run_goes_on(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    first_id, second_id = seed_orders(db, 2)
    labels_dir = Path(fulfil_env["FULFIL_LABELS_DIR"])
    blocked = label_path(labels_dir, first_id)
    blocked.mkdir(parents=True)  # the file's name is taken by a directory: the write fails

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records[first_id]["outcome"] == "download_failed"
    assert "could not be written" in records[first_id]["error"]
    assert records[second_id]["outcome"] == "bought"
    rows = shipments(db)
    assert rows[first_id]["status"] == "label_created"  # the purchase is kept
    assert rows[first_id]["tracking_pin"] == sold_pins(sandbox)[first_id][0]
    assert_valid_label(rows[second_id])

    blocked.rmdir()
    again = run_fulfil("labels", "download", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert_valid_label(shipments(db)[first_id])
    assert bought_per_order(sandbox) == {first_id: 1, second_id: 1}


# ------------------------------------------------------------------------------------------------
# 14. Non-contract reconcile reads the listing once and each shipment's details at most once
# ------------------------------------------------------------------------------------------------


def test_non_contract_reconcile_matches_every_purchase_against_one_listing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    from fulfil.sandbox.orders import generate_orders
    from tests.labels.helpers import buy_directly, insert_orders, record_request_only, seed_initiated

    fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    orders = generate_orders(10, seed=31)
    insert_orders(db, orders)
    lost, others = orders[:4], orders[4:]
    for order in lost:
        seed_initiated(db, order["order_id"], cp_mode="noncontract", request_id=f"F{order['order_id']}")
        record_request_only(db, order["order_id"], "<non-contract-shipment/>", endpoint="CreateNCShipment")
        buy_directly(fulfil_env, order, "unused")  # bought; the answer was lost
    for order in others:
        buy_directly(fulfil_env, order, "unused")  # other orders' labels in the same window

    result = run_fulfil("labels", "reconcile", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"] * len(lost)
    reads = [e["endpoint"] for e in sandbox.request_log()]
    assert reads.count("GetNCShipments") == 1
    assert reads.count("GetNCShipmentDetails") == len(orders)  # each listed shipment once
    for order in lost:
        assert shipments(db)[order["order_id"]]["status"] == "label_created"


def test_the_settle_window_counts_from_the_last_attempt_not_from_the_claim(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    from tests.labels.helpers import record_request_only, seed_initiated

    [order_id] = seed_orders(db, 1)
    # Claimed an hour ago; its latest attempt went out a moment ago and may still be in flight
    # for the next minute (its deadline, recorded with it, is in the future).
    seed_initiated(db, order_id, request_id="F" + "c" * 32, started_ago_s=3600)
    record_request_only(db, order_id, "<shipment/>")
    db.execute(
        "UPDATE api_calls SET deadline_at = now() + interval '1 minute' WHERE related_id = %s", (order_id,)
    )

    result = run_fulfil("labels", "reconcile", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "unsettled"
    assert shipments(db)[order_id]["status"] == "label_creation_initiated"
    assert create_requests(sandbox) == []
