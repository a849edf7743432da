"""What the benchmarks share: the seller they ship as, and a fresh migrated database per run."""

from __future__ import annotations

from typing import Any

import psycopg

from fulfil.migrations import migrate

# A contract seller in Ottawa with a default parcel (the suite's seller is in tests/conftest.py).
SENDER_ENV = {
    "FULFIL_SENDER_NAME": "Shipping Desk",
    "FULFIL_SENDER_COMPANY": "Bench Co",
    "FULFIL_SENDER_PHONE": "613-555-0100",
    "FULFIL_SENDER_ADDRESS_LINE_1": "111 Wellington St",
    "FULFIL_SENDER_CITY": "Ottawa",
    "FULFIL_SENDER_PROVINCE": "ON",
    "FULFIL_SENDER_POSTAL_CODE": "K1A0A9",
    "FULFIL_PARCEL_WEIGHT_KG": "1.0",
    "FULFIL_PARCEL_LENGTH_CM": "30",
    "FULFIL_PARCEL_WIDTH_CM": "20",
    "FULFIL_PARCEL_HEIGHT_CM": "10",
    "FULFIL_CANADAPOST_CONTRACT_ID": "0042708517",
}


def fresh_database(server: Any, name: str) -> str:
    """Database ``name`` on the embedded server, dropped if it was there, migrated; its URL."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = str(server.get_uri(database=name))
    migrate(url)
    return url
