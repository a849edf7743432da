"""Seeding orders and shipments, and reading back what happened, for the label tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.label_files import looks_like_pdf
from fulfil.sandbox.orders import generate_orders


def insert_orders(
    db: psycopg.Connection, orders: list[dict[str, Any]], status: str = "accepted"
) -> list[str]:
    for order in orders:
        created = order.get("created_date") or datetime.now(UTC).isoformat()
        db.execute(
            "INSERT INTO orders (order_id, status, raw_order_data, created_at) VALUES (%s, %s, %s, %s)",
            (order["order_id"], status, Jsonb(order), created),
        )
    return [order["order_id"] for order in orders]


def seed_orders(db: psycopg.Connection, n: int, seed: int = 7, problems: int = 0) -> list[str]:
    return insert_orders(db, generate_orders(n, seed=seed, problems=problems))


def shipments(db: psycopg.Connection) -> dict[str, dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM shipments ORDER BY shipment_id").fetchall()
    return {row["order_id"]: row for row in rows}


def api_calls(db: psycopg.Connection, endpoint: str | None = None) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM api_calls WHERE %(endpoint)s::text IS NULL OR endpoint = %(endpoint)s "
            "ORDER BY call_id",
            {"endpoint": endpoint},
        ).fetchall()
    return rows


def bought_per_order(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.labels_bought_per_order())


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_valid_label(row: dict[str, Any]) -> None:
    assert row["status"] == "label_created", row
    assert row["tracking_pin"]
    path = Path(row["label_pdf_path"])
    data = path.read_bytes()
    assert looks_like_pdf(data), path
    assert row["label_pdf_bytes"] == len(data)
    assert row["tracking_pin"].encode() in data or row["tracking_pin"] in _pdf_text(data)


def _pdf_text(data: bytes) -> str:
    """Best-effort text of the sandbox's simple PDFs (uncompressed content streams)."""
    return data.decode("latin-1", errors="replace")


def label_settings(env: dict[str, str]) -> Any:
    """The settings a CLI run with this environment would use."""
    from fulfil.config import load_settings

    return load_settings(env, Path(env.get("PWD", "/")))


def buy_directly(env: dict[str, str], order: dict[str, Any], request_id: str) -> dict[str, str]:
    """Buy a label at the sandbox as a lost earlier attempt would have (outside fulfil's records)."""
    import requests

    from fulfil.canadapost.responses import parse_shipment_info
    from fulfil.canadapost.shipment_request import build_shipment_request

    settings = label_settings(env)
    cp = settings.canadapost()
    request = build_shipment_request(
        order_id=order["order_id"],
        order=order,
        canadapost=cp,
        sender=settings.sender(),
        parcel=settings.parcel(),
        request_id=request_id,
    )
    number = cp.customer_number
    url = (
        f"{cp.base_url}/rs/{number}/{number}/shipment"
        if request.contract
        else f"{cp.base_url}/rs/{number}/ncshipment"
    )
    response = requests.post(
        url,
        data=request.xml,
        auth=(cp.username, cp.password),
        headers={"Content-Type": request.media_type, "Accept": request.media_type},
        timeout=5,
    )
    response.raise_for_status()
    info = parse_shipment_info(response.content)
    return {"shipment_id": info.shipment_id, "tracking_pin": info.tracking_pin, "body": response.text}


def let_the_purchase_time_out(db: psycopg.Connection, shipment_id: int) -> None:
    """Time passes for the run buying this shipment (a paused VM): its lease and its attempt's
    settle window run out, whatever Canada Post is doing with the request meanwhile."""
    db.execute(
        "UPDATE shipments SET lease_expires_at = now() - interval '1 second', "
        "purchase_started_at = purchase_started_at - interval '1 hour' WHERE shipment_id = %s",
        (shipment_id,),
    )
    db.execute(
        "UPDATE api_calls SET started_at = started_at - interval '1 hour', "
        "deadline_at = deadline_at - interval '1 hour' WHERE shipment_id = %s",
        (shipment_id,),
    )


def seed_initiated(
    db: psycopg.Connection,
    order_id: str,
    *,
    cp_mode: str | None = "contract",
    request_id: str = "F" + "a" * 32,
    started_ago_s: float = 1.0,
    lease_owner: str | None = "elsewhere/1/1/gone",
    lease_left_s: float = -1.0,
) -> None:
    """A shipment left in label_creation_initiated by a run that is gone."""
    db.execute(
        """
        INSERT INTO shipments (order_id, status, cp_mode, cp_request_id, purchase_started_at, attempts,
                               lease_owner, lease_expires_at)
        VALUES (%(order_id)s, 'label_creation_initiated', %(mode)s, %(request_id)s,
                now() - make_interval(secs => %(ago)s), 1, %(owner)s,
                CASE WHEN %(owner)s::text IS NULL THEN NULL ELSE now() + make_interval(secs => %(left)s) END)
        """,
        {
            "order_id": order_id,
            "mode": cp_mode,
            "request_id": request_id,
            "ago": started_ago_s,
            "owner": lease_owner,
            "left": lease_left_s,
        },
    )


def record_request_only(
    db: psycopg.Connection, order_id: str, body: str, endpoint: str = "CreateShipment"
) -> None:
    """An api_calls row as the write-ahead log leaves it when the process dies after sending."""
    db.execute(
        "INSERT INTO api_calls (service, endpoint, related_id, method, url, request_payload) "
        "VALUES ('CanadaPost', %s, %s, 'POST', 'http://sandbox/rs/x/x/shipment', %s)",
        (endpoint, order_id, Jsonb(body)),
    )


def record_answered(
    db: psycopg.Connection, order_id: str, answer: str, endpoint: str = "CreateShipment"
) -> None:
    """A completed, successful api_calls row: the answer arrived and was logged, the crash came after."""
    db.execute(
        "INSERT INTO api_calls (service, endpoint, related_id, method, url, request_payload, status_code, "
        "is_success, response_body, finished_at) "
        "VALUES ('CanadaPost', %s, %s, 'POST', 'http://sandbox/rs/x/x/shipment', '\"<shipment/>\"', "
        "200, true, %s, now())",
        (endpoint, order_id, answer),
    )


def kill_when(
    args: list[str], env: dict[str, str], reached: Callable[[], bool], what: str, *, timeout: float = 30
) -> None:
    """Run ``fulfil ARGS`` and SIGKILL it the moment ``reached()`` holds (``what``: the moment,
    for the failure message): a crash at exactly that point."""
    run = subprocess.Popen(
        [sys.executable, "-m", "fulfil", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while not reached():
            assert run.poll() is None, f"the run ended before {what}"
            assert time.monotonic() < deadline, f"the run never got to {what}"
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
