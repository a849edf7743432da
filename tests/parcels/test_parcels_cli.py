"""`fulfil parcels import | list | check` through the real command line, against a real PostgreSQL:
exit codes, one stderr line per rejected row, JSON lines, and what ends up in the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import run_fulfil

HEADER = "sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone\n"
GOOD = HEADER + "MUG-1,0.45,12,12,10,small,no\nTV-55,18.2,140,85,16,tv box,yes\nCABLE,0.05,,,,,\n"


@pytest.fixture
def env(cli_env: dict[str, str], database_url: str) -> dict[str, str]:
    return {**cli_env, "FULFIL_DATABASE_URL": database_url}


def profiles(db: psycopg.Connection) -> dict[str, tuple[Any, ...]]:
    rows = db.execute(
        "SELECT sku, weight_kg::text, length_cm::text, box, ships_alone FROM parcel_profiles ORDER BY sku"
    ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_import_writes_every_good_row_and_exits_0(
    env: dict[str, str], db: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text(GOOD, encoding="utf-8")
    result = run_fulfil("parcels", "import", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # cron: silent on success
    assert result.stdout == ""
    assert profiles(db) == {
        "CABLE": ("0.050", None, None, False),
        "MUG-1": ("0.450", "12.0", "small", False),
        "TV-55": ("18.200", "140.0", "tv box", True),
    }

    again = run_fulfil("-v", "parcels", "import", str(path), env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "parcels import: 0 inserted, 0 updated, 3 unchanged, 0 rejected"


def test_rejected_rows_are_one_stderr_line_each_and_exit_3(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    text = GOOD + "BAD-W,abc,,,,,\nHALF,1,10,10,,,\nMUG-1,2,,,,,\nALONE,1,,,,,maybe\nOK-2,1.5,,,,,\n"
    result = run_fulfil("parcels", "import", "-", env=env, input_text=text)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        'fulfil: error: line 5: weight_kg: "abc" is not a number',
        "fulfil: error: line 6: height_cm: missing while length_cm and width_cm given: give all three "
        "dimensions or none",
        'fulfil: error: line 7: sku: "MUG-1" is also on line 2 (once per file)',
        'fulfil: error: line 8: ships_alone: "maybe" is not one of true, false, yes, no, 1, 0 (or empty)',
    ]
    assert result.stdout.strip() == "parcels import: 4 inserted, 0 updated, 0 unchanged, 4 rejected"
    assert set(profiles(db)) == {"CABLE", "MUG-1", "OK-2", "TV-55"}
    assert profiles(db)["MUG-1"][0] == "0.450"  # the first row of the SKU, not the rejected second


def test_import_json_has_one_object_per_row(env: dict[str, str], db: psycopg.Connection) -> None:
    db.execute("INSERT INTO parcel_profiles (sku, weight_kg) VALUES ('CABLE', 0.05), ('MUG-1', 1)")
    result = run_fulfil("parcels", "import", "--json", "-", env=env, input_text=GOOD + "X,99,,,,,\n")
    assert result.returncode == 3
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["sku"], r["outcome"], r["field"]) for r in records] == [
        (2, "MUG-1", "updated", None),
        (3, "TV-55", "inserted", None),
        (4, "CABLE", "unchanged", None),
        (5, None, "rejected", "weight_kg"),
    ]
    assert records[3]["error"] == "99 kg: more than the 30 kg Canada Post takes"


def test_dry_run_checks_the_file_and_writes_nothing(env: dict[str, str], db: psycopg.Connection) -> None:
    result = run_fulfil("parcels", "import", "--dry-run", "-", env=env, input_text=GOOD + "B,0,,,,,\n")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "fulfil: error: line 5: weight_kg: 0 kg: a weight must be more than 0"
    ]
    assert result.stdout.strip() == "parcels import: 3 valid, 1 rejected (dry run: nothing written)"
    assert profiles(db) == {}

    clean = run_fulfil("parcels", "import", "--dry-run", "-", env=env, input_text=GOOD)
    assert clean.returncode == 0, clean.stderr
    assert profiles(db) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sku,weight,length_cm,width_cm,height_cm\nA,1,,,\n",
            'fulfil: error: line 1: header: unknown column "weight"',
        ),
        ("", "fulfil: error: the file is empty"),
        (HEADER + 'A,"1,,,,,\n', "fulfil: error: line 2: not readable as CSV"),
    ],
)
def test_a_file_that_cannot_be_read_imports_nothing_and_exits_2(
    env: dict[str, str], db: psycopg.Connection, text: str, message: str
) -> None:
    result = run_fulfil("parcels", "import", "-", env=env, input_text=text)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)
    assert profiles(db) == {}


def test_a_missing_file_or_bytes_that_are_not_utf8_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    missing = run_fulfil("parcels", "import", str(tmp_path / "nope.csv"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith("fulfil: error: cannot read")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes((HEADER + "A,1,,,,Boîte,\n").encode("latin-1"))
    result = run_fulfil("parcels", "import", str(latin), env=env)
    assert result.returncode == 2
    assert "line 2: not UTF-8 text" in result.stderr


def test_list_shows_every_profile(env: dict[str, str]) -> None:
    empty = run_fulfil("parcels", "list", env=env)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == ""
    assert run_fulfil("parcels", "import", "-", env=env, input_text=GOOD).returncode == 0

    table = run_fulfil("parcels", "list", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split("\t") == [
        "sku",
        "weight_kg",
        "length_cm",
        "width_cm",
        "height_cm",
        "box",
        "ships_alone",
        "updated_at",
    ]
    assert [line.split("\t")[:7] for line in lines[1:]] == [
        ["CABLE", "0.050", "", "", "", "", "no"],
        ["MUG-1", "0.450", "12.0", "12.0", "10.0", "small", "no"],
        ["TV-55", "18.200", "140.0", "85.0", "16.0", "tv box", "yes"],
    ]

    listed = run_fulfil("parcels", "list", "--json", env=env)
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert records[2] == {
        "sku": "TV-55",
        "weight_kg": "18.200",
        "length_cm": "140.0",
        "width_cm": "85.0",
        "height_cm": "16.0",
        "box": "tv box",
        "ships_alone": True,
        "updated_at": records[2]["updated_at"],
    }


def seed_order(db: psycopg.Connection, order_id: str, status: str, lines: list[dict[str, Any]]) -> None:
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) VALUES (%s, %s, %s)",
        (order_id, status, Jsonb({"order_id": order_id, "order_lines": lines})),
    )


def line(sku: Any, quantity: int = 1, state: str = "SHIPPING", title: str = "A thing") -> dict[str, Any]:
    return {"offer_sku": sku, "quantity": quantity, "order_line_state": state, "product_title": title}


def test_check_lists_the_skus_still_to_label_without_a_profile(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    db.execute("INSERT INTO parcel_profiles (sku, weight_kg) VALUES ('MUG-1', 0.45)")
    seed_order(db, "1-A", "accepted", [line("MUG-1"), line("GHOST", 2, title="Ghost lamp")])
    seed_order(db, "2-A", "accepted", [line("GHOST"), line(" SPOOK ", title="Spook box")])
    seed_order(db, "3-A", "accepted", [line("MUG-1"), line("CANCELED-ONE", state="CANCELED")])
    seed_order(db, "4-A", "accepted", [line("LABELLED")])  # its label is bought already
    db.execute(
        "INSERT INTO shipments (order_id, status, tracking_pin) VALUES ('4-A', 'label_created', '111')"
    )
    seed_order(db, "5-A", "accepted", [line("PENDING")])  # a shipment, no label yet
    db.execute("INSERT INTO shipments (order_id, status) VALUES ('5-A', 'label_pending')")
    seed_order(db, "6-A", "shipped", [line("SHIPPED-ONE")])
    seed_order(db, "7-A", "accepted", [line(12345), {"not": "a line"}])  # no SKU in text: left out
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) VALUES ('8-A', 'accepted', %s)",
        (Jsonb({"order_lines": 3}),),
    )

    result = run_fulfil("parcels", "check", env=env)
    assert result.returncode == 3, result.stderr
    assert [row.split("\t") for row in result.stdout.splitlines()] == [
        ["sku", "orders", "example_order", "product_title"],
        ["GHOST", "2", "1-A", "Ghost lamp"],
        ["PENDING", "1", "5-A", "A thing"],
        ["SPOOK", "1", "2-A", "Spook box"],
    ]
    assert result.stderr.splitlines() == [
        "fulfil: error: 3 SKUs of orders still to label have no parcel profile: their labels would use the "
        "default parcel (`fulfil parcels import` adds profiles)"
    ]

    as_json = run_fulfil("parcels", "check", "--json", env=env)
    assert as_json.returncode == 3
    assert [json.loads(row)["sku"] for row in as_json.stdout.splitlines()] == ["GHOST", "PENDING", "SPOOK"]

    fixed = run_fulfil(
        "parcels", "import", "-", env=env, input_text=HEADER + "GHOST,1,,,,,\nPENDING,2,,,,,\nSPOOK,3,,,,,\n"
    )
    assert fixed.returncode == 0, fixed.stderr
    clean = run_fulfil("parcels", "check", env=env)
    assert clean.returncode == 0, clean.stderr
    assert (clean.stdout, clean.stderr) == ("", "")


def test_every_parcels_command_has_help_with_an_example(env: dict[str, str]) -> None:
    group = run_fulfil("parcels", "--help", env=env)
    assert group.returncode == 0
    for command in ("import", "list", "check"):
        assert command in group.stdout
        shown = run_fulfil("parcels", command, "--help", env=env)
        assert shown.returncode == 0, shown.stderr
        assert f"fulfil parcels {command}" in shown.stdout
