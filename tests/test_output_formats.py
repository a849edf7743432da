"""The shared output options (issue 15): `--format table|json|csv|tsv` and `--no-headers` on every
command that lists things, a warning on a bought label in a column of its own, a quote's answer
on a pipe, and usage errors in one `fulfil: error:` line. Output's forms directly, then the real
CLI on a real PostgreSQL and the sandbox."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import psycopg
import pytest

from fulfil.output import Output
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines, seed_orders

ROWS = [["261250893-A", 'say "hi", twice', None], ["2", "tab\there\nand a line", "c:\\dir"]]


def written(**options: Any) -> str:
    stream = io.StringIO()
    Output(stdout=stream, **options).table("Title", ["order_id", "note", "path"], ROWS)
    return stream.getvalue()


@pytest.mark.unit
def test_csv_quotes_what_needs_it_and_reads_back_as_written() -> None:
    text = written(table_format="csv")
    assert list(csv.reader(io.StringIO(text))) == [
        ["order_id", "note", "path"],
        ["261250893-A", 'say "hi", twice', ""],
        ["2", "tab\there\nand a line", "c:\\dir"],
    ]


@pytest.mark.unit
def test_tsv_keeps_every_row_on_one_line_by_escaping_tabs_and_line_breaks() -> None:
    assert written(table_format="tsv").splitlines() == [
        "order_id\tnote\tpath",
        '261250893-A\tsay "hi", twice\t',
        "2\ttab\\there\\nand a line\tc:\\\\dir",
    ]


@pytest.mark.unit
@pytest.mark.parametrize("form", ["csv", "tsv"])
def test_no_headers_leaves_out_the_header_row_only(form: str) -> None:
    with_headers = written(table_format=form).splitlines()
    assert written(table_format=form, headers=False).splitlines() == with_headers[1:]


@pytest.mark.unit
def test_the_table_format_draws_a_table_even_off_a_terminal_and_drops_its_header_on_request() -> None:
    table = written(table_format="table")
    assert "order_id" in table
    assert "┃" in table
    assert "261250893-A" in table
    bare = written(table_format="table", headers=False)
    assert "order_id" not in bare
    assert "261250893-A" in bare


@pytest.mark.unit
def test_without_a_format_a_pipe_gets_tab_separated_text() -> None:
    assert written() == written(table_format="tsv")


def test_calls_in_csv_and_tsv_without_headers(fulfil_env: dict[str, str], db: psycopg.Connection) -> None:
    seed_orders(db, 2)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0

    as_csv = run_fulfil("calls", "--format", "csv", env=fulfil_env)
    as_json = run_fulfil("calls", "--json", env=fulfil_env)
    bare = run_fulfil("calls", "--format", "tsv", "--no-headers", env=fulfil_env)

    assert (as_csv.returncode, as_csv.stderr) == (0, "")
    header, *rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert "endpoint" in header
    assert len(rows) == len(json_lines(as_json.stdout)) >= 2
    assert all(len(row) == len(header) for row in rows)
    lines = bare.stdout.splitlines()
    assert len(lines) == len(rows)
    assert all(line.count("\t") == len(header) - 1 for line in lines)
    assert "endpoint" not in bare.stdout


def test_format_json_is_json_and_json_with_another_format_is_refused(
    fulfil_env: dict[str, str], db: psycopg.Connection
) -> None:
    as_format = run_fulfil("status", "--format", "json", env=fulfil_env)
    assert as_format.returncode == 0, as_format.stderr
    assert json_lines(as_format.stdout) == json_lines(run_fulfil("status", "--json", env=fulfil_env).stdout)

    both = run_fulfil("status", "--json", "--format", "csv", env=fulfil_env)
    assert both.returncode == 2
    assert both.stdout == ""
    assert both.stderr == "fulfil: error: --json and --format csv ask for two forms: give one\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--format", "xml"], "'xml' is not one of table, json, csv, tsv"),
        (["status", "--bogus"], "No such option: --bogus"),
        (["labels", "keep"], "Missing argument 'ORDER_ID'"),
        (["statsu"], "No such command 'statsu'"),
    ],
)
def test_a_usage_error_is_one_line_that_says_where_the_help_is(
    args: list[str], message: str, cli_env: dict[str, str]
) -> None:
    result = run_fulfil(*args, env=cli_env)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("fulfil: error: ")
    assert message in line
    assert re.search(r"\(see `fulfil[a-z ]*-h`\)$", line), line


def test_a_label_bought_with_a_warning_shows_it_beside_an_empty_error(
    fulfil_env: dict[str, str], db: psycopg.Connection
) -> None:
    # Seeded orders have no parcel profile: each label is bought with a warning saying so.
    seed_orders(db, 2)

    result = run_fulfil("labels", "create", "--format", "csv", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a warning on a bought label is not a problem to mail
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["outcome"] for r in records] == ["bought", "bought"]
    assert all(r["error"] == "" for r in records)
    assert all("no parcel profile" in r["warnings"] for r in records)


def test_on_a_pipe_a_run_says_nothing_unless_a_format_is_asked_for(
    fulfil_env: dict[str, str], db: psycopg.Connection
) -> None:
    seed_orders(db, 3)
    assert run_fulfil("labels", "create", "--limit", "1", env=fulfil_env).stdout == ""

    listed = run_fulfil("labels", "create", "--format", "tsv", "--no-headers", env=fulfil_env)

    assert listed.returncode == 0, listed.stderr
    # Every result, not the terminal's first rows: each a line of the table's 7 columns.
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.split("\t")[1] == "bought" for line in lines)
    assert all(line.count("\t") == 6 for line in lines)


def test_a_quote_on_a_pipe_prints_its_answer(fulfil_env: dict[str, str], db: psycopg.Connection) -> None:
    [order_id] = seed_orders(db, 1)

    result = run_fulfil("labels", "quote", "--order", order_id, env=fulfil_env)

    assert result.returncode == 0, result.stderr
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert header[:4] == ["order_id", "parcel", "weight_kg", "service_code"]
    assert rows
    assert all(row[0] == order_id and len(row) == len(header) for row in rows)
    chosen = [row for row in rows if row[header.index("chosen")]]
    assert len(chosen) == 1


@pytest.mark.unit
def test_a_table_too_wide_for_the_terminal_leaves_out_whole_identifier_columns_from_the_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    stdout, stderr = io.StringIO(), io.StringIO()
    columns = ["order_id", "pin", "shipment_id", "path", "carrier", "error"]
    row = ["261250893-A", "7023210039414604", "340531309186521749", "labels/261250893-A.pdf", "DOM.EP", "x"]
    Output(stdout=stdout, stderr=stderr, verbose=1, table_format="table").table(None, columns, [row])

    table = stdout.getvalue()
    assert all(len(line) <= 60 for line in table.splitlines())
    assert "261250893-A" in table  # the row's key whole
    assert "70232100394146" in table  # the leftmost identifiers kept, at most shortened a little
    assert "error" in table  # free text is never left out
    assert "carrier" not in table
    assert "DOM.EP" not in table
    assert "carrier" in stderr.getvalue()
    assert "--format tsv or --json shows every column" in stderr.getvalue()
