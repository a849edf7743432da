"""At a terminal: tables, colour unless NO_COLOR. (Elsewhere: plain and quiet, tested with each
command.) A pseudo-terminal stands in for the person."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from typing import Any

import psycopg

from tests.conftest import run_fulfil
from tests.labels.helpers import seed_orders

ESCAPE = re.compile(rb"\x1b\[")
SGR = re.compile(rb"\x1b\[([0-9;]*)m")


def colours(output: bytes) -> set[str]:
    """The SGR sequences that set a colour (bold or italic are not colour: NO_COLOR allows them)."""
    found = set()
    for params in SGR.findall(output):
        codes = [int(c) for c in params.decode().split(";") if c.isdigit()]
        extended = 38 in codes or 48 in codes  # 38;5;n and 38;2;r;g;b: their arguments are not codes
        basic = any(30 <= c <= 37 or 40 <= c <= 47 or 90 <= c <= 107 for c in codes)
        if extended or basic:
            found.add(params.decode())
    return found


def run_at_a_terminal(*args: str, env: dict[str, str], timeout: float = 60, columns: int = 160) -> bytes:
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fulfil", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"},
    )
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], timeout)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=timeout)
    os.close(main)
    return output


def test_a_person_gets_tables_in_colour_unless_no_color(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)

    bought = run_at_a_terminal("labels", "create", env=fulfil_env)
    assert order_id.encode() in bought
    assert b"labels create" in bought  # the table's title
    assert b"1 order: 1 bought" in bought

    call = run_fulfil("calls", "--json", "--limit", "1", "--endpoint", "CreateShipment", env=fulfil_env)
    call_id = call.stdout.split('"call_id":')[1].split(",")[0]
    coloured = run_at_a_terminal("calls", "show", call_id, env=fulfil_env)
    assert b"shipment-info" in coloured
    assert colours(coloured)  # the XML is highlighted

    plain = run_at_a_terminal("calls", "show", call_id, env={**fulfil_env, "NO_COLOR": "1"})
    assert b"shipment-info" in plain
    assert not colours(plain)

    # The same command in a pipe: tab-separated text, no colour, no decoration.
    piped = run_fulfil("status", env=fulfil_env)
    assert piped.stdout.splitlines()[0] == "status\tcount"
    assert "\x1b[" not in piped.stdout


def test_at_80_columns_identifiers_are_shortened_never_broken_and_the_progress_bar_says_where_it_is(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    ids = seed_orders(db, 3)

    shown = run_at_a_terminal("labels", "create", env={**fulfil_env, "NO_COLOR": "1"}, columns=80)

    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", shown).decode("utf-8", "replace")
    pins = [row[0] for row in db.execute("SELECT tracking_pin FROM shipments ORDER BY shipment_id")]
    table = text[text.index("labels create") :]
    for order_id, pin in zip(ids, pins, strict=True):
        [row] = [line for line in table.splitlines() if line.startswith(f"│ {order_id} ")]
        # The PIN whole on the order's own line, or cut short with an ellipsis; never folded onto
        # the next line, where it could not be copied.
        assert pin in row or "…" in row, row
        assert not any(pin[8:] in line and pin not in line for line in table.splitlines())
    assert all(len(line) <= 80 for line in table.splitlines())
    # The progress bar (on the same terminal, before the table): rate, ETA and the order just done.
    progress = text[: text.index("labels create")]
    assert "ETA" in progress
    assert any(order_id in progress for order_id in ids)
