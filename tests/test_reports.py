"""`fulfil status`, `fulfil calls` and `fulfil config check` on a real database and the sandbox."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines, record_request_only, seed_orders


def attention(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["problem"], r["order_id"]): r for r in records if r["type"] == "attention"}


def test_status_of_a_quiet_database_is_exit_0(fulfil_env: dict[str, str]) -> None:
    result = run_fulfil("status", "--format", "table", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert "Nothing needs attention." in result.stdout
    piped = run_fulfil("status", env=fulfil_env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("status\tcount\n")
    assert "Nothing needs attention." not in piped.stdout  # a pipe gets tables only


def test_status_lists_every_kind_of_problem_with_its_fix(
    fulfil_env: dict[str, str], db: psycopg.Connection
) -> None:
    ids = seed_orders(db, 7)
    db.execute(
        """
        INSERT INTO shipments (order_id, status, last_error, tracking_pin, cp_mode, cp_request_id,
                               purchase_started_at, lease_owner, lease_expires_at, label_created_at)
        VALUES (%(a)s, 'label_failed', 'order a: customer.shipping_address.zip_code: bad', NULL, NULL, NULL,
                NULL, NULL, NULL, NULL),
               (%(b)s, 'needs_review', 'two labels', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
               (%(c)s, 'label_creation_initiated', NULL, NULL, 'contract', 'Fxyz', now() - interval '1 hour',
                'otherhost/1/1/x', now() - interval '1 minute', NULL),
               (%(d)s, 'label_created', NULL, '7000000000000001', NULL, NULL, NULL, NULL, NULL, now()),
               (%(e)s, 'label_created', NULL, '7000000000000002', NULL, NULL, NULL, NULL, NULL,
                now() - interval '30 hours'),
               (%(g)s, 'tracking_failed', 'order g: OR23: the carrier code is unknown', '7000000000000003',
                NULL, NULL, NULL, NULL, NULL, now())
        """,
        {"a": ids[0], "b": ids[1], "c": ids[2], "d": ids[3], "e": ids[4], "g": ids[6]},
    )
    db.execute(
        "UPDATE shipments SET label_pdf_path = '/x.pdf', label_pdf_sha256 = 'ab' WHERE order_id = %s",
        (ids[4],),
    )
    db.execute(
        "UPDATE orders SET raw_order_data = raw_order_data || %s WHERE order_id = %s",
        (psycopg.types.json.Jsonb({"shipping_deadline": "2020-01-01T00:00:00Z"}), ids[5]),
    )
    record_request_only(db, ids[2], "<shipment/>")  # sent, answer lost: only Canada Post can tell
    run_fulfil("labels", "reconcile", env={**fulfil_env, "FULFIL_CANADAPOST_BASE_URL": "http://127.0.0.1:9"})

    result = run_fulfil("status", "--json", env=fulfil_env)

    assert result.returncode == 3
    records = json_lines(result.stdout)
    found = attention(records)
    assert "fulfil labels retry" in found[("label_failed", ids[0])]["fix"]
    assert "zip_code" in found[("label_failed", ids[0])]["reason"]
    assert "--not-bought" in found[("needs_review", ids[1])]["fix"]
    assert found[("label_without_pdf", ids[3])]["fix"] == f"`fulfil labels download --order {ids[3]}`"
    assert "fulfil tracking push" in found[("tracking_not_pushed", ids[4])]["fix"]
    # A refused push is taken again only after `tracking retry`: `tracking push --order` alone refuses it.
    assert found[("tracking_failed", ids[6])]["fix"].startswith(
        "see the error; once fixed, `fulfil tracking retry "
    )
    assert "2020-01-01" in found[("past_shipping_deadline", ids[5])]["reason"]
    interrupted = found[("interrupted_purchase", ids[2])]
    assert interrupted["fix"] == "`fulfil labels reconcile`"
    assert "could not check Canada Post" in interrupted["reason"]  # the reconcile above could not reach it
    counts = {r["status"]: r["count"] for r in records if r["type"] == "shipments"}
    assert counts["label_created"] == 2
    assert counts["tracking_failed"] == 1
    runs = {r["command"]: r for r in records if r["type"] == "run"}
    assert runs["labels reconcile"]["exit_code"] == 3


def test_calls_lists_and_shows_what_was_sent_for_an_order(
    fulfil_env: dict[str, str], db: psycopg.Connection
) -> None:
    [order_id] = seed_orders(db, 1)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0

    listed = run_fulfil("calls", "--order", order_id, "--json", env=fulfil_env)
    assert listed.returncode == 0, listed.stderr
    calls = json_lines(listed.stdout)
    assert [c["endpoint"] for c in calls] == ["GetArtifact", "CreateShipment"]  # newest first
    assert {c["outcome"] for c in calls} == {"ok"}
    assert run_fulfil("calls", "--service", "bestbuy", "--json", env=fulfil_env).stdout == ""
    assert run_fulfil("calls", "--failed", "--json", env=fulfil_env).stdout == ""

    create = next(c for c in calls if c["endpoint"] == "CreateShipment")
    shown = run_fulfil("calls", "show", str(create["call_id"]), env=fulfil_env)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "CanadaPost CreateShipment" in text
    assert "POST http://127.0.0.1:" in text
    assert '\n<shipment xmlns="http://www.canadapost.ca/ws/shipment-v8">\n  <customer-request-id>' in text
    assert "<tracking-pin>" in text
    assert "Authorization: [redacted]" in text
    assert DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"] not in text

    as_json = run_fulfil("calls", "show", str(create["call_id"]), "--json", env=fulfil_env)
    assert json.loads(as_json.stdout)["related_id"] == order_id
    missing = run_fulfil("calls", "show", "999999", env=fulfil_env)
    assert missing.returncode == 2
    assert "no api call 999999" in missing.stderr


def test_calls_rejects_a_bad_filter(fulfil_env: dict[str, str]) -> None:
    assert run_fulfil("calls", "--service", "fedex", env=fulfil_env).returncode == 2
    bad_since = run_fulfil("calls", "--since", "yesterday", env=fulfil_env)
    assert bad_since.returncode == 2
    assert "--since" in bad_since.stderr


def test_config_check_reports_sources_masks_secrets_and_names_what_is_missing(
    cli_env: dict[str, str], tmp_path: Any
) -> None:
    (tmp_path / "fulfil.toml").write_text('[canadapost]\nservice_code = "DOM.RP"\n')
    cli_env["FULFIL_CANADAPOST_PASSWORD"] = "very-secret-password"
    result = run_fulfil("config", "check", "--json", env=cli_env, cwd=tmp_path)

    assert result.returncode == 2
    assert "very-secret-password" not in result.stdout
    records = json_lines(result.stdout)
    settings = {r["name"]: r for r in records if r["type"] == "setting"}
    assert settings["FULFIL_CANADAPOST_SERVICE_CODE"]["source"] == "file"
    assert settings["FULFIL_CANADAPOST_PASSWORD"]["source"] == "environment"
    assert settings["FULFIL_CANADAPOST_PASSWORD"]["value"] == "ve****rd"
    assert settings["FULFIL_BESTBUY_CARRIER_CODE"]["source"] == "default"
    checks = {r["check"]: r for r in records if r["type"] == "check"}
    labels = checks["labels create / reconcile / download"]
    assert labels["ok"] is False
    assert "FULFIL_CANADAPOST_USERNAME" in labels["message"]
    assert "FULFIL_BESTBUY_API_KEY" in checks["tracking push, orders pull"]["message"]


def test_config_check_online_accepts_good_credentials(fulfil_env: dict[str, str]) -> None:
    result = run_fulfil("config", "check", "--online", "--json", env=fulfil_env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {r["check"]: r for r in json_lines(result.stdout) if r["type"] == "check"}
    assert checks["Canada Post credentials"]["ok"] is True
    assert checks["Best Buy API key"]["ok"] is True


def test_config_check_online_says_which_credential_is_wrong(fulfil_env: dict[str, str]) -> None:
    fulfil_env["FULFIL_CANADAPOST_PASSWORD"] = "wrong-password-1"
    fulfil_env["FULFIL_BESTBUY_API_KEY"] = "wrong-key-12345"
    result = run_fulfil("config", "check", "--online", "--json", env=fulfil_env)
    assert result.returncode == 2
    checks = {r["check"]: r for r in json_lines(result.stdout) if r["type"] == "check"}
    assert (
        "FULFIL_CANADAPOST_USERNAME or FULFIL_CANADAPOST_PASSWORD is wrong (E002"
        in (checks["Canada Post credentials"]["message"])
    )
    assert "FULFIL_BESTBUY_API_KEY" in checks["Best Buy API key"]["message"]
    assert "wrong-password-1" not in result.stdout
    assert "wrong-key-12345" not in result.stdout
