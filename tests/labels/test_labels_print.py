"""`fulfil labels print`: the labels bought through the real command line against the sandbox, as
one PDF (page count and page size read back with pypdf), marked printed, in a stable order, with
a missing file downloaded again first and one that cannot be had named, never skipped silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from pypdf import PdfReader

from tests.conftest import run_fulfil, run_fulfil_together
from tests.labels.helpers import json_lines, seed_orders


def bought(db: psycopg.Connection, env: dict[str, str], n: int) -> list[str]:
    orders = seed_orders(db, n)
    result = run_fulfil("labels", "create", env=env)
    assert result.returncode == 0, result.stderr
    return orders


def printed(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = run_fulfil("labels", "print", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    return record


def page_sizes(path: str) -> list[tuple[float, float]]:
    return [(float(page.mediabox.width), float(page.mediabox.height)) for page in PdfReader(path).pages]


@pytest.mark.parametrize(
    ("bought_as", "layout", "pages", "size"),
    [
        ("8.5x11", "4x6", 3, (288.0, 432.0)),
        ("4x6", "4x6", 3, (288.0, 432.0)),
        ("4x6", "8.5x11", 2, (612.0, 792.0)),  # two 4x6 labels a letter page
        ("8.5x11", "8.5x11", 3, (612.0, 792.0)),  # a letter label keeps its page
    ],
)
def test_the_layouts_put_each_label_on_its_page_size(
    db: psycopg.Connection,
    fulfil_env: dict[str, str],
    sandbox: Any,
    tmp_path: Path,
    bought_as: str,
    layout: str,
    pages: int,
    size: tuple[float, float],
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_LABEL_FORMAT": bought_as}
    bought(db, env, 3)
    record = printed(env, "--layout", layout, "--output", str(tmp_path / "today.pdf"))
    assert record["path"] == str(tmp_path / "today.pdf")
    assert (record["labels"], record["pages"]) == (3, pages)
    assert page_sizes(record["path"]) == [size] * pages


def test_printed_labels_are_marked_and_not_printed_again_unless_asked(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 3)
    first = printed(fulfil_env)
    assert sorted(first["orders"]) == sorted(orders)
    assert Path(first["path"]).is_file()
    marks = db.execute(
        "SELECT count(*) FROM shipments WHERE label_print_id = %s", (first["print_id"],)
    ).fetchone()
    assert marks == (3,)
    # Nothing new: nothing printed, no file.
    again = printed(fulfil_env)
    assert (again["path"], again["labels"]) == (None, 0)
    # A new label: only it.
    [new] = seed_orders(db, 1, seed=99)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    assert printed(fulfil_env)["orders"] == [new]
    # --reprint: all of them, and --order narrows it.
    assert sorted(printed(fulfil_env, "--reprint")["orders"]) == sorted([*orders, new])
    assert printed(fulfil_env, "--reprint", "--order", orders[0])["orders"] == [orders[0]]
    runs = db.execute("SELECT count(*) FROM label_prints").fetchone()
    assert runs == (4,)


def test_the_order_is_stable_by_order_sku_or_postal_code(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 4)
    by_order = printed(fulfil_env, "--reprint", "--sort", "order")["orders"]
    assert by_order == sorted(orders)
    postal = dict(
        db.execute(
            "SELECT order_id, raw_order_data #>> '{customer,shipping_address,zip_code}' FROM orders"
        ).fetchall()
    )
    by_postal = printed(fulfil_env, "--reprint", "--sort", "postal")["orders"]
    assert by_postal == sorted(orders, key=lambda o: (postal[o].replace(" ", "").upper(), o))
    sku = dict(
        db.execute("SELECT order_id, raw_order_data #>> '{order_lines,0,offer_sku}' FROM orders").fetchall()
    )
    by_sku = printed(fulfil_env, "--reprint", "--sort", "sku")["orders"]
    assert by_sku == sorted(orders, key=lambda o: (sku[o], o))
    assert printed(fulfil_env, "--reprint", "--sort", "sku")["orders"] == by_sku


def test_a_missing_label_file_is_downloaded_again_before_the_print(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 2)
    path = db.execute("SELECT label_pdf_path FROM shipments WHERE order_id = %s", (orders[0],)).fetchone()[0]  # type: ignore[index]
    Path(path).unlink()
    record = printed(fulfil_env)
    assert sorted(record["orders"]) == sorted(orders)
    assert Path(path).is_file()
    fetched = db.execute(
        "SELECT count(*) FROM api_calls WHERE endpoint = 'GetArtifact' AND related_id = %s", (orders[0],)
    ).fetchone()
    assert fetched == (2,)  # bought, then fetched again for the print


def test_a_label_that_cannot_be_had_is_named_and_the_others_are_printed(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 2)
    path = db.execute("SELECT label_pdf_path FROM shipments WHERE order_id = %s", (orders[0],)).fetchone()[0]  # type: ignore[index]
    Path(path).write_bytes(b"%PDF-1.4 not the label that was downloaded")
    unreachable = {**fulfil_env, "FULFIL_CANADAPOST_BASE_URL": "http://127.0.0.1:9"}
    result = run_fulfil("labels", "print", "--json", env=unreachable)
    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["orders"] == [orders[1]]
    assert "changed since it was downloaded" in record["not_printed"][orders[0]]
    assert f"order {orders[0]}: label not printed" in result.stderr
    # Not marked: the next print (the file fixed) takes it.
    unmarked = db.execute("SELECT label_print_id FROM shipments WHERE order_id = %s", (orders[0],)).fetchone()
    assert unmarked == (None,)


def test_two_prints_at_once_never_put_one_label_in_both_files(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 6)
    results = run_fulfil_together(2, "labels", "print", "--json", env=fulfil_env)
    assert [result.returncode for result in results] == [0, 0], [result.stderr for result in results]
    taken = [json_lines(result.stdout)[0]["orders"] for result in results]
    assert sorted(taken[0] + taken[1]) == sorted(orders)


@pytest.mark.parametrize(("option", "value"), [("--layout", "A4"), ("--sort", "weight"), ("--since", "soon")])
def test_a_bad_option_is_a_usage_error(fulfil_env: dict[str, str], option: str, value: str) -> None:
    result = run_fulfil("labels", "print", option, value, env=fulfil_env)
    assert result.returncode == 2
    assert option in result.stderr


def test_status_says_how_many_labels_wait_to_be_printed(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 2)
    before = json_lines(run_fulfil("status", "--json", env=fulfil_env).stdout)
    [waiting] = [record for record in before if record["type"] == "unprinted_labels"]
    assert waiting["labels"] == 2
    assert "2 labels not printed yet" in run_fulfil("status", "--format", "table", env=fulfil_env).stdout
    printed(fulfil_env)
    after = json_lines(run_fulfil("status", "--json", env=fulfil_env).stdout)
    assert [record for record in after if record["type"] == "unprinted_labels"] == []


def test_a_label_file_is_every_byte_canada_post_sent_and_prints_without_a_word(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    # The sandbox's labels say "fulfil sandbox", and "sandbox" is its user name, a secret: the file
    # must still be the label as sent (a redacted byte would break its cross-reference table).
    [order_id] = bought(db, fulfil_env, 1)
    path = db.execute("SELECT label_pdf_path FROM shipments WHERE order_id = %s", (order_id,)).fetchone()[0]  # type: ignore[index]
    data = Path(path).read_bytes()
    assert b"(fulfil sandbox)" in data
    offset = int(data[data.rindex(b"startxref") + len(b"startxref") :].split()[0])
    assert data[offset : offset + 4] == b"xref"
    result = run_fulfil("labels", "print", env=fulfil_env)
    assert result.returncode == 0
    assert result.stderr == ""
