"""The output contract of every command (issue 15, item 5), run for real: each leaf command of the
click tree, in a populated database with the sandbox, with `--json` and on a pipe.

1. stdout carries only data. `--json`: every line one JSON object. On a pipe with no form asked
   for, a command that changes things prints nothing when it succeeds, and a command that answers
   a question prints its answer as tab-separated text: a header row, then rows of as many fields
   (several tables a blank line apart, each so). `--format csv` is CSV of the same shape,
   `--format tsv --no-headers` the rows without the headers. A command that shows a document
   (`calls show`) prints it, or one JSON object.
2. stderr carries one `fulfil: LEVEL: message` line per problem and nothing else: empty on success.
3. An order id fulfil does not have, given to any command that takes order ids, exits 3 with a
   `fulfil: error:` line naming it; `--format xml`, and `--json` with `--format csv`, exit 2.

CONTRACT says, for every command, which kind it is and how to run it in a world made for it (a
command that changes things gets two pieces of work: one for its `--json` run, one for its run on
a pipe, whose work is checked, so that its silence means something). A command added to fulfil
and not to CONTRACT fails test_every_command_is_in_the_contract. A breach found is kept as a test
marked xfail(strict=True), with what breaks in `broken`, for fulfil to fix. Each test collects
every problem of its command before failing, so one run says all that is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from fulfil.sandbox.orders import generate_orders
from tests.conftest import CliResult, run_fulfil
from tests.labels.helpers import buy_directly, insert_orders, record_request_only, seed_initiated
from tests.tracking.helpers import move_as_a_run_would, seed_labelled

CHANGES = "changes things"  # on a pipe: nothing on stdout when it succeeds
ANSWERS = "answers a question"  # on a pipe: its answer as tab-separated text
PRINTS_A_PATH = "prints a path"  # `labels print`: the path of the PDF it wrote, for `lp "$(…)"`
# `calls show`: one call's request and answer, headers and bodies, as a person reads them (or one
# JSON object): a document, not rows, so no --format.
SHOWS_A_DOCUMENT = "shows a document"
EXCLUDED = "excluded"

PROBLEM_LINE = re.compile(r"^fulfil: (error|warning|note): ")
UNKNOWN = "NOPE-404-A"  # an order id fulfil does not have


# ------------------------------------------------------------------------------------------------
# A world to run commands in
# ------------------------------------------------------------------------------------------------


@dataclass
class World:
    db: psycopg.Connection
    sandbox: Any
    env: dict[str, str]
    tmp: Path
    seeds: Iterator[int] = field(default_factory=lambda: iter(range(41, 10_000)))
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def run(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        return run_fulfil(*args, env={**self.env, **(env or {})})

    def setup_run(self, *args: str) -> CliResult:
        result = self.run(*args)
        assert result.returncode == 0, f"setting up, `fulfil {' '.join(args)}` failed: {result.stderr}"
        return result

    def new_orders(self, n: int) -> list[dict[str, Any]]:
        """n SHIPPING orders at Best Buy, not yet in fulfil."""
        orders = generate_orders(n, seed=next(self.seeds))
        self.sandbox.add_orders(orders)
        return orders

    def accepted(self, n: int) -> list[str]:
        """n orders accepted in fulfil (and SHIPPING at Best Buy), waiting for a label."""
        return insert_orders(self.db, self.new_orders(n))

    def labelled(self, n: int) -> list[str]:
        """n orders with a label bought from the sandbox by `labels create`."""
        ids = self.accepted(n)
        self.setup_run("labels", "create", *orders_option(ids))
        assert {self.shipment(order_id)["status"] for order_id in ids} == {"label_created"}
        return ids

    def shipment(self, order_id: str) -> dict[str, Any]:
        with self.db.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT * FROM shipments WHERE order_id = %s ORDER BY shipment_id LIMIT 1", (order_id,)
            ).fetchone()
        assert row is not None, f"order {order_id} has no shipment"
        return row

    def value(self, sql: str, *params: Any) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def order_statuses(self, ids: list[str]) -> set[str]:
        rows = self.db.execute("SELECT status FROM orders WHERE order_id = ANY(%s)", (ids,)).fetchall()
        return {row[0] for row in rows} if len(rows) == len(ids) else {"(missing)"}

    def empty_database(self) -> str:
        """The URL of a new database with nothing in it (dropped after the test)."""
        info = self.db.info
        name = f"contract_{uuid.uuid4().hex[:12]}"
        self.db.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            self.db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        self.cleanups.append(drop)
        return f"postgresql://{info.user}@/{name}?host={info.host}&port={info.port}"


def end_of_day(w: World) -> None:
    """Labels bought from now on wait in the day's group for `manifest transmit`."""
    w.env["FULFIL_CANADAPOST_MANIFEST"] = "end_of_day"


def orders_option(ids: list[str]) -> list[str]:
    return [arg for order_id in ids for arg in ("--order", order_id)]


def ids_of(orders: list[dict[str, Any]]) -> list[str]:
    return [order["order_id"] for order in orders]


def outcomes(records: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(record.get("order_id"), record.get("outcome")) for record in records]


@dataclass
class Change:
    """How to run a command that changes things: once with --json on one piece of work, once on a
    pipe on another, and how to tell that each did its work."""

    json_args: list[str]
    pipe_args: list[str]
    json_done: Callable[[list[dict[str, Any]]], bool]  # the --json run's records say it did it
    pipe_done: Callable[[], bool]  # the pipe run did its work (its silence is a success's)
    before_pipe: Callable[[], None] = lambda: None
    pipe_first: bool = False  # the work can be done once only: the pipe run does it
    json_env: dict[str, str] = field(default_factory=dict)
    pipe_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Question:
    """How to ask a command its question, and a value its answer must hold (a whole field of a row
    in the tables, somewhere in the JSON)."""

    args: list[str]
    needle: str
    code: int = 0


# ------------------------------------------------------------------------------------------------
# Each command's piece of work
# ------------------------------------------------------------------------------------------------


def orders_import(w: World) -> Change:
    first, second = generate_orders(2, seed=next(w.seeds)), generate_orders(2, seed=next(w.seeds))
    files = []
    for name, orders in (("first.json", first), ("second.json", second)):
        path = w.tmp / name
        path.write_text(json.dumps(orders))
        files.append(str(path))
    return Change(
        ["orders", "import", files[0]],
        ["orders", "import", files[1]],
        json_done=lambda records: sorted(outcomes(records)) == sorted((i, "new") for i in ids_of(first)),
        pipe_done=lambda: w.order_statuses(ids_of(second)) == {"accepted"},
    )


def orders_pull(w: World) -> Change:
    first = w.new_orders(2)
    second = generate_orders(2, seed=next(w.seeds))
    return Change(
        ["orders", "pull", "--force"],
        ["orders", "pull", "--force"],
        json_done=lambda records: sorted(outcomes(records)) == sorted((i, "new") for i in ids_of(first)),
        before_pipe=lambda: w.sandbox.add_orders(second),
        pipe_done=lambda: w.order_statuses(ids_of(second)) == {"accepted"},
    )


def labels_create(w: World) -> Change:
    mine, piped = w.accepted(2)
    return Change(
        ["labels", "create", "--order", mine],
        ["labels", "create", "--order", piped],
        json_done=lambda records: outcomes(records) == [(mine, "bought")],
        pipe_done=lambda: w.shipment(piped)["status"] == "label_created",
    )


def labels_reconcile(w: World) -> Change:
    ids = []
    for letter in "cd":
        # A purchase sent by a run that died waiting for the answer: Canada Post sold the label.
        [order] = generate_orders(1, seed=next(w.seeds))
        insert_orders(w.db, [order])
        request_id = "F" + letter * 32
        seed_initiated(w.db, order["order_id"], request_id=request_id)
        record_request_only(w.db, order["order_id"], "<shipment/>")
        buy_directly(w.env, order, request_id)
        ids.append(order["order_id"])
    mine, piped = ids
    return Change(
        ["labels", "reconcile", "--order", mine],
        ["labels", "reconcile", "--order", piped],
        json_done=lambda records: outcomes(records) == [(mine, "adopted")],
        pipe_done=lambda: w.shipment(piped)["status"] == "label_created",
    )


def labels_download(w: World) -> Change:
    mine, piped = w.labelled(2)
    for order_id in (mine, piped):
        Path(w.shipment(order_id)["label_pdf_path"]).unlink()
    return Change(
        ["labels", "download", "--order", mine],
        ["labels", "download", "--order", piped],
        json_done=lambda records: outcomes(records) == [(mine, "downloaded")],
        pipe_done=lambda: Path(w.shipment(piped)["label_pdf_path"]).is_file(),
    )


def labels_print(w: World) -> Change:
    mine, piped = w.labelled(2)
    return Change(
        ["labels", "print", "--order", mine],
        ["labels", "print", "--order", piped],
        json_done=lambda records: (
            [(r["orders"], Path(r["path"]).is_file()) for r in records] == [([mine], True)]
        ),
        pipe_done=lambda: w.shipment(piped)["label_print_id"] is not None,
    )


def labels_keep(w: World) -> Change:
    kept: dict[str, str] = {}
    for letter in "ef":
        # Two labels sold under one request id: the order waits for the seller to keep one.
        [order] = generate_orders(1, seed=next(w.seeds))
        insert_orders(w.db, [order])
        request_id = "F" + letter * 32
        seed_initiated(w.db, order["order_id"], request_id=request_id)
        record_request_only(w.db, order["order_id"], "<shipment/>")
        buy_directly(w.env, order, request_id)
        kept[order["order_id"]] = buy_directly(w.env, order, request_id)["shipment_id"]
    review = w.run("labels", "create")
    assert review.returncode == 3, review.stderr
    mine, piped = kept
    assert {w.shipment(mine)["status"], w.shipment(piped)["status"]} == {"needs_review"}
    return Change(
        ["labels", "keep", mine, kept[mine]],
        ["labels", "keep", piped, kept[piped]],
        json_done=lambda records: outcomes(records) == [(mine, "kept")],
        pipe_done=lambda: (
            (w.shipment(piped)["status"], w.shipment(piped)["cp_shipment_id"])
            == ("label_created", kept[piped])
        ),
    )


def labels_retry(w: World) -> Change:
    mine, piped = w.accepted(2)
    for order_id in (mine, piped):
        # Refused for its data, which was then fixed elsewhere (the sender settings, say).
        w.db.execute(
            "INSERT INTO shipments (order_id, status, cp_request_id) VALUES (%s, 'label_pending', %s)",
            (order_id, "F" + uuid.uuid4().hex),
        )
        w.db.execute(
            "UPDATE shipments SET status = 'label_failed', last_error = 'refused', "
            "failed_order_data_hash = (SELECT md5(raw_order_data::text) FROM orders WHERE order_id = %s) "
            "WHERE order_id = %s "
            "AND fulfil_shipment_move(shipment_id, 'refuse_order_data', NULL, NULL, 'refused')",
            (order_id, order_id),
        )
    return Change(
        ["labels", "retry", mine],
        ["labels", "retry", piped],
        json_done=lambda records: outcomes(records) == [(mine, "retryable")],
        pipe_done=lambda: w.shipment(piped)["status"] == "label_pending",
    )


def labels_prices(w: World) -> Change:
    mine, piped = w.labelled(2)
    # As labels bought before fulfil kept prices are: no price on record.
    w.db.execute("DELETE FROM label_costs")
    return Change(
        ["labels", "prices", "--order", mine],
        ["labels", "prices", "--order", piped],
        json_done=lambda records: outcomes(records) == [(mine, "priced")],
        pipe_done=lambda: w.value("SELECT count(*) FROM label_costs WHERE order_id = %s", piped) == 1,
    )


def labels_void(w: World) -> Change:
    end_of_day(w)  # not transmitted yet: voided, where a transmitted label needs a refund request
    mine, piped = w.labelled(2)
    return Change(
        ["labels", "void", mine],
        ["labels", "void", piped],
        json_done=lambda records: outcomes(records) == [(mine, "voided")],
        pipe_done=lambda: w.shipment(piped)["status"] == "label_voided",
    )


def tracking_push(w: World) -> Change:
    mine, piped = ids_of(seed_labelled(w.db, w.sandbox, 2, seed=next(w.seeds)))
    return Change(
        ["tracking", "push", "--order", mine],
        ["tracking", "push", "--order", piped],
        json_done=lambda records: outcomes(records) == [(mine, "shipped")],
        pipe_done=lambda: w.shipment(piped)["status"] == "tracking_updated",
    )


def tracking_refresh(w: World) -> Change:
    mine, piped = w.labelled(2)
    refreshed = (
        "SELECT refreshed_at FROM carrier_tracking JOIN shipments USING (shipment_id) WHERE order_id = %s"
    )
    return Change(
        ["tracking", "refresh", "--order", mine],
        ["tracking", "refresh", "--order", piped],
        json_done=lambda records: [r["order_id"] for r in records] == [mine] and not records[0]["error"],
        pipe_done=lambda: w.value(refreshed, piped) is not None,
    )


def tracking_retry(w: World) -> Change:
    mine, piped = ids_of(seed_labelled(w.db, w.sandbox, 2, seed=next(w.seeds)))
    for order_id in (mine, piped):
        move_as_a_run_would(
            w.db,
            order_id,
            "refuse_push",
            "last_error = 'refused', lease_owner = NULL, lease_expires_at = NULL",
        )
    return Change(
        ["tracking", "retry", mine],
        ["tracking", "retry", piped],
        json_done=lambda records: outcomes(records) == [(mine, "retryable")],
        pipe_done=lambda: w.shipment(piped)["status"] == "label_created",
    )


AUTO_REFRESH = (
    "SELECT auto_refresh FROM carrier_tracking JOIN shipments USING (shipment_id) WHERE order_id = %s"
)


def tracking_pause(w: World) -> Change:
    mine, piped = ids_of(seed_labelled(w.db, w.sandbox, 2, seed=next(w.seeds)))
    return Change(
        ["tracking", "pause", "--order", mine, "--reason", "picked up in store"],
        ["tracking", "pause", "--order", piped, "--reason", "picked up in store"],
        json_done=lambda records: records == [{"order_id": mine, "auto_refresh": False}],
        pipe_done=lambda: w.value(AUTO_REFRESH, piped) is False,
    )


def tracking_resume(w: World) -> Change:
    mine, piped = ids_of(seed_labelled(w.db, w.sandbox, 2, seed=next(w.seeds)))
    w.db.execute(
        "UPDATE carrier_tracking SET auto_refresh = false, auto_refresh_stopped_reason = 'paused by hand: x' "
        "WHERE shipment_id IN (SELECT shipment_id FROM shipments WHERE order_id = ANY(%s))",
        ([mine, piped],),
    )
    return Change(
        ["tracking", "resume", "--order", mine],
        ["tracking", "resume", "--order", piped],
        json_done=lambda records: records == [{"order_id": mine, "auto_refresh": True}],
        pipe_done=lambda: w.value(AUTO_REFRESH, piped) is True,
    )


def manifest_transmit(w: World) -> Change:
    end_of_day(w)
    w.labelled(2)
    # A day's group is transmitted once: the pipe run transmits it, the --json run finds it done.
    return Change(
        ["manifest", "transmit"],
        ["manifest", "transmit"],
        pipe_first=True,
        pipe_done=lambda: w.value("SELECT sum(shipment_count) FROM manifests") == 2,
        json_done=lambda records: len(records) == 1 and records[0]["group_id"].startswith("fulfil-"),
    )


def db_migrate(w: World) -> Change:
    migrations = len(list(Path(__file__).resolve().parent.parent.joinpath("sql").glob("[0-9]*.sql")))
    mine, piped = w.empty_database(), w.empty_database()

    def applied(url: str) -> Any:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM fulfil_schema_migrations").fetchone()

    return Change(
        ["db", "migrate"],
        ["db", "migrate"],
        json_env={"FULFIL_DATABASE_URL": mine},
        pipe_env={"FULFIL_DATABASE_URL": piped},
        json_done=lambda records: len(records) == migrations and all("applied" in r for r in records),
        pipe_done=lambda: applied(piped) == (migrations,),
    )


def db_stop(w: World) -> Change:
    # No embedded server runs here (the database is the test's own): nothing to stop, said so.
    return Change(
        ["db", "stop"],
        ["db", "stop"],
        json_done=lambda records: [r["stopped"] for r in records] == [False],
        pipe_done=lambda: True,
    )


PROFILES_HEADER = "sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone\n"


def parcels_import(w: World) -> Change:
    mine, piped = w.tmp / "mine.csv", w.tmp / "piped.csv"
    mine.write_text(PROFILES_HEADER + "CONTRACT-SKU-1,1.25,30,20,10,B1,false\n")
    piped.write_text(PROFILES_HEADER + "CONTRACT-SKU-2,2.5,40,30,20,B2,true\n")
    return Change(
        ["parcels", "import", str(mine)],
        ["parcels", "import", str(piped)],
        json_done=lambda records: (
            [(r["sku"], r["outcome"]) for r in records] == [("CONTRACT-SKU-1", "inserted")]
        ),
        pipe_done=lambda: (
            w.value("SELECT weight_kg FROM parcel_profiles WHERE sku = 'CONTRACT-SKU-2'") == 2.5
        ),
    )


def status(w: World) -> Question:
    seed_labelled(w.db, w.sandbox, 2, seed=next(w.seeds))
    # The generated orders' shipping deadline is past: something needs attention, exit 3.
    return Question(["status"], needle="label_created", code=3)


def calls(w: World) -> Question:
    [order_id] = w.labelled(1)
    return Question(["calls"], needle=order_id)


def calls_show(w: World) -> Question:
    w.labelled(1)
    call_id = w.value("SELECT min(call_id) FROM api_calls WHERE endpoint = 'CreateShipment'")
    return Question(["calls", "show", str(call_id)], needle="CreateShipment")


def orders_show(w: World) -> Question:
    [order_id] = w.labelled(1)
    return Question(["orders", "show", order_id], needle=w.shipment(order_id)["tracking_pin"])


def tracking_show(w: World) -> Question:
    [order_id] = w.labelled(1)
    w.setup_run("tracking", "refresh")
    return Question(["tracking", "show", order_id, "--cached"], needle=w.shipment(order_id)["tracking_pin"])


def parcels_list(w: World) -> Question:
    path = w.tmp / "profiles.csv"
    path.write_text(PROFILES_HEADER + "CONTRACT-SKU-1,1.25,30,20,10,B1,false\nCONTRACT-SKU-2,2.5,,,,,\n")
    w.setup_run("parcels", "import", str(path))
    return Question(["parcels", "list"], needle="CONTRACT-SKU-2")


def parcels_check(w: World) -> Question:
    [order_id] = w.accepted(1)
    sku = w.value(
        "SELECT raw_order_data->'order_lines'->0->>'offer_sku' FROM orders WHERE order_id = %s", order_id
    )
    # SKUs without a profile: listed on stdout, counted on stderr, exit 3 (for cron to mail).
    return Question(["parcels", "check"], needle=sku, code=3)


def transmitted(w: World) -> str:
    """The PO number of the manifest of today's two labels."""
    end_of_day(w)
    w.labelled(2)
    w.setup_run("manifest", "transmit")
    po_number = w.value("SELECT po_number FROM manifests")
    assert po_number, "no manifest was recorded"
    return str(po_number)


def manifest_list(w: World) -> Question:
    return Question(["manifest", "list"], needle=transmitted(w))


def manifest_show(w: World) -> Question:
    po_number = transmitted(w)
    return Question(
        ["manifest", "show", po_number], needle=str(w.value("SELECT min(order_id) FROM shipments"))
    )


def db_status(w: World) -> Question:
    return Question(["db", "status"], needle="applied")


def config_check(w: World) -> Question:
    return Question(["config", "check"], needle="FULFIL_DATABASE_URL")


def report_costs(w: World) -> Question:
    w.labelled(2)
    return Question(["report", "costs"], needle="total")


def labels_quote(w: World) -> Question:
    [order_id] = w.accepted(1)
    return Question(["labels", "quote", "--order", order_id], needle=order_id)


# ------------------------------------------------------------------------------------------------
# The table: every command of fulfil, its kind, how to run it
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str
    prepare: Callable[[World], Any] | None = None
    why: str = ""  # why a command is excluded
    # How the command breaks the contract today, for fulfil to fix: its test is xfail(strict) until
    # it keeps it (then the xfail must go).
    broken: str | None = None
    unknown_id_broken: str | None = None  # the same for rule 3, an order id fulfil does not have


CONTRACT: dict[str, Entry] = {
    "orders import": Entry(CHANGES, orders_import),
    "orders pull": Entry(CHANGES, orders_pull),
    "orders show": Entry(ANSWERS, orders_show),
    "labels create": Entry(CHANGES, labels_create),
    "labels reconcile": Entry(CHANGES, labels_reconcile),
    "labels download": Entry(CHANGES, labels_download),
    "labels print": Entry(PRINTS_A_PATH, labels_print),
    "labels keep": Entry(CHANGES, labels_keep),
    "labels retry": Entry(CHANGES, labels_retry),
    "labels quote": Entry(ANSWERS, labels_quote),
    "labels prices": Entry(CHANGES, labels_prices),
    "labels void": Entry(CHANGES, labels_void),
    "tracking push": Entry(CHANGES, tracking_push),
    "tracking refresh": Entry(CHANGES, tracking_refresh),
    "tracking show": Entry(ANSWERS, tracking_show),
    "tracking pause": Entry(CHANGES, tracking_pause),
    "tracking resume": Entry(CHANGES, tracking_resume),
    "tracking retry": Entry(CHANGES, tracking_retry),
    "tracking watch": Entry(
        EXCLUDED, why="runs until stopped: tests/tracking/test_tracking_watch_and_metrics.py"
    ),
    "manifest transmit": Entry(CHANGES, manifest_transmit),
    "manifest list": Entry(ANSWERS, manifest_list),
    "manifest show": Entry(ANSWERS, manifest_show),
    "parcels import": Entry(CHANGES, parcels_import),
    "parcels list": Entry(ANSWERS, parcels_list),
    "parcels check": Entry(ANSWERS, parcels_check),
    "status": Entry(ANSWERS, status),
    "calls": Entry(ANSWERS, calls),
    "calls show": Entry(SHOWS_A_DOCUMENT, calls_show),
    "config check": Entry(ANSWERS, config_check),
    "report costs": Entry(ANSWERS, report_costs),
    "db migrate": Entry(CHANGES, db_migrate),
    "db status": Entry(ANSWERS, db_status),
    "db stop": Entry(CHANGES, db_stop),
    "sandbox serve": Entry(EXCLUDED, why="serves until stopped: tests/sandbox"),
    "demo": Entry(EXCLUDED, why="a whole day in one command, with its own tests: tests/test_demo.py"),
}


def xfail_if(breach: str | None) -> list[Any]:
    return [pytest.mark.xfail(strict=True, raises=AssertionError, reason=breach)] if breach else []


def commands(*kinds: str) -> list[Any]:
    return [
        pytest.param(name, id=name, marks=xfail_if(entry.broken))
        for name, entry in CONTRACT.items()
        if entry.kind in kinds
    ]


def leaf_commands() -> dict[str, Any]:
    """Every command of the real click tree by its name ("labels create"); a group that runs
    without a subcommand (`fulfil calls`) is a command too."""
    import typer

    from fulfil.cli import application

    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None or (path and getattr(command, "invoke_without_command", False)):
            found[" ".join(path)] = command
        for name, subcommand in (subcommands or {}).items():
            walk(subcommand, [*path, name])

    walk(typer.main.get_command(application()), [])
    return found


def options_of(command: Any) -> set[str]:
    return {option for param in command.params for option in param.opts}


# ------------------------------------------------------------------------------------------------
# Checking what a run printed
# ------------------------------------------------------------------------------------------------


def shown(result: CliResult) -> str:
    return f"exit {result.returncode}\n  stdout: {result.stdout!r}\n  stderr: {result.stderr!r}"


def problems_of_stderr(what: str, result: CliResult, success: bool) -> list[str]:
    lines = result.stderr.splitlines()
    problems = [
        f"{what}: stderr line is not `fulfil: LEVEL: …`: {line!r}"
        for line in lines
        if not PROBLEM_LINE.match(line)
    ]
    if success and lines:
        problems.append(f"{what}: stderr is not empty on success: {result.stderr!r}")
    return problems


def problems_of_json(what: str, result: CliResult) -> tuple[list[str], list[dict[str, Any]]]:
    problems: list[str] = []
    records: list[dict[str, Any]] = []
    for line in result.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"{what}: stdout line is not JSON: {line!r}")
            continue
        if not isinstance(record, dict):
            problems.append(f"{what}: stdout line is JSON but not an object: {line!r}")
            continue
        records.append(record)
    if not records and not problems:
        problems.append(f"{what}: no JSON record on stdout")
    return problems, records


def tables_of(rows: list[list[str]]) -> list[list[list[str]]]:
    """The tables of a CSV or TSV answer: a command that shows several writes them one after
    another, a blank line between (csv reads it as [], a split TSV line as [""])."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for row in rows:
        if row in ([], [""]):
            if current:
                tables.append(current)
            current = []
        else:
            current.append(row)
    if current:
        tables.append(current)
    return tables


def problems_of_table(what: str, rows: list[list[str]], needle: str) -> list[str]:
    """One or more tables, a blank line between: each a header row and rows of its width; some
    row somewhere, and the needle one of its fields."""
    tables = tables_of(rows)
    if not any(len(table) >= 2 for table in tables):
        return [f"{what}: not a header row and rows: {rows!r}"]
    problems = [
        f"{what}: row {number} has {len(row)} fields, its header {len(header)} ({header!r}): {row!r}"
        for header, *data in tables
        for number, row in enumerate(data, 2)
        if len(row) != len(header)
    ]
    if not any(needle in row for _, *data in tables for row in data):
        problems.append(f"{what}: no row has the field {needle!r}")
    return problems


def run_and_check(
    world: World, what: str, args: list[str], env: dict[str, str] | None, code: int
) -> tuple[CliResult, list[str]]:
    result = world.run(*args, env=env)
    problems = [] if result.returncode == code else [f"{what}: exit {result.returncode}, not {code}"]
    problems += problems_of_stderr(what, result, success=code == 0)
    return result, problems


def report(command: str, problems: list[str], results: list[tuple[str, CliResult]]) -> str:
    runs = "\n".join(f"- {what}: {shown(result)}" for what, result in results)
    return (
        f"`fulfil {command}` breaks the output contract:\n"
        + "\n".join(f"  {p}" for p in problems)
        + f"\nThe runs:\n{runs}"
    )


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_command_is_in_the_contract() -> None:
    leaves = leaf_commands()
    missing = sorted(set(leaves) - set(CONTRACT))
    gone = sorted(set(CONTRACT) - set(leaves))
    assert not missing, (
        f"commands with no entry in CONTRACT (say how they keep the output contract): {missing}"
    )
    assert not gone, f"CONTRACT lists commands fulfil does not have: {gone}"
    without_json = sorted(
        name
        for name, entry in CONTRACT.items()
        if entry.kind != EXCLUDED and "--json" not in options_of(leaves[name])
    )
    assert not without_json, f"commands without --json: {without_json}"
    # Every command that answers with rows takes the shared output options.
    without_format = sorted(
        name
        for name, entry in CONTRACT.items()
        if entry.kind == ANSWERS and not {"--format", "--no-headers"} <= options_of(leaves[name])
    )
    assert not without_format, f"commands that list things without --format/--no-headers: {without_format}"
    for name, entry in CONTRACT.items():
        assert (entry.prepare is None) == (entry.kind == EXCLUDED), name
        assert entry.kind != EXCLUDED or entry.why, f"{name}: excluded without saying why"


@pytest.fixture
def world(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> Iterator[World]:
    made = World(db=db, sandbox=sandbox, env=dict(fulfil_env), tmp=tmp_path)
    yield made
    for cleanup in made.cleanups:
        cleanup()


@pytest.mark.parametrize("command", commands(CHANGES, PRINTS_A_PATH))
def test_a_command_that_changes_things_keeps_the_contract(command: str, world: World) -> None:
    entry = CONTRACT[command]
    assert entry.prepare is not None
    plan: Change = entry.prepare(world)
    problems: list[str] = []
    results: list[tuple[str, CliResult]] = []

    def json_run() -> None:
        what = "with --json"
        result, found = run_and_check(world, what, [*plan.json_args, "--json"], plan.json_env, 0)
        results.append((what, result))
        problems.extend(found)
        bad, records = problems_of_json(what, result)
        problems.extend(bad)
        if not bad and not plan.json_done(records):
            problems.append(f"{what}: the records do not say the work was done: {records!r}")

    def pipe_run() -> None:
        what = "on a pipe"
        result, found = run_and_check(world, what, plan.pipe_args, plan.pipe_env, 0)
        results.append((what, result))
        problems.extend(found)
        if entry.kind == PRINTS_A_PATH:
            lines = result.stdout.splitlines()
            if len(lines) != 1 or not Path(lines[0]).is_file() or not lines[0].endswith(".pdf"):
                problems.append(f"{what}: stdout is not the path of the PDF written: {result.stdout!r}")
        elif result.stdout:
            problems.append(f"{what}: stdout is not empty on success: {result.stdout!r}")
        if not plan.pipe_done():
            problems.append(f"{what}: its work was not done, so its silence proves nothing")

    if plan.pipe_first:
        pipe_run()
        json_run()
    else:
        json_run()
        plan.before_pipe()
        pipe_run()
    assert not problems, report(command, problems, results)


@pytest.mark.parametrize("command", commands(ANSWERS))
def test_a_command_that_answers_a_question_keeps_the_contract(command: str, world: World) -> None:
    entry = CONTRACT[command]
    assert entry.prepare is not None
    plan: Question = entry.prepare(world)
    problems: list[str] = []
    results: list[tuple[str, CliResult]] = []

    def ask(what: str, *options: str) -> CliResult:
        result, found = run_and_check(world, what, [*plan.args, *options], None, plan.code)
        results.append((what, result))
        problems.extend(found)
        return result

    as_json = ask("with --json", "--json")
    bad, records = problems_of_json("with --json", as_json)
    problems.extend(bad)
    if records and plan.needle not in as_json.stdout:
        problems.append(f"with --json: {plan.needle!r} is in no record")

    piped = ask("on a pipe")
    tsv = [line.split("\t") for line in piped.stdout.splitlines()]
    problems.extend(problems_of_table("on a pipe (tab-separated)", tsv, plan.needle))

    as_csv = ask("--format csv", "--format", "csv")
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    problems.extend(problems_of_table("--format csv", table, plan.needle))
    csv_headers = [t[0] for t in tables_of(table)]
    tsv_tables = tables_of(tsv)
    tsv_headers = [t[0] for t in tsv_tables]
    if csv_headers != tsv_headers:
        problems.append(f"--format csv: headers {csv_headers!r} are not the pipe's {tsv_headers!r}")

    bare = ask("--format tsv --no-headers", "--format", "tsv", "--no-headers")
    lines = [line for line in bare.stdout.splitlines() if line]
    rows_piped = sum(len(t) - 1 for t in tsv_tables)
    if len(lines) != rows_piped:
        problems.append(f"--format tsv --no-headers: {len(lines)} rows, not the pipe's {rows_piped}")
    problems += [
        f"--format tsv --no-headers: a header row is there: {header!r}"
        for header in tsv_headers
        if "\t".join(header) in lines and not any(header in t[1:] for t in tsv_tables)
    ]
    widths = {len(header) for header in tsv_headers}
    problems += [
        f"--format tsv --no-headers: a row of {line.count(chr(9)) + 1} fields, no table's width: {line!r}"
        for line in lines
        if line.count("\t") + 1 not in widths
    ]
    assert not problems, report(command, problems, results)


@pytest.mark.parametrize("command", commands(SHOWS_A_DOCUMENT))
def test_a_command_that_shows_a_document_keeps_the_contract(command: str, world: World) -> None:
    entry = CONTRACT[command]
    assert entry.prepare is not None
    plan: Question = entry.prepare(world)
    problems: list[str] = []
    results: list[tuple[str, CliResult]] = []
    for what, options in (("with --json", ["--json"]), ("on a pipe", [])):
        result, found = run_and_check(world, what, [*plan.args, *options], None, plan.code)
        results.append((what, result))
        problems.extend(found)
        if plan.needle not in result.stdout:
            problems.append(f"{what}: {plan.needle!r} is not on stdout")
    bad, records = problems_of_json("with --json", results[0][1])
    problems.extend(bad)
    if len(records) != 1:
        problems.append(f"with --json: {len(records)} objects, not one")
    assert not problems, report(command, problems, results)


def placeholder_arguments(command: Any, source: Path) -> list[str]:
    """Arguments naming nothing fulfil has: an order id it does not know, and so on."""
    placeholders = {
        "source": str(source),
        "shipment_id": "340531309186521749",
        "key": "P404",
        "call_id": "404404",
    }
    args = [
        placeholders.get(param.name, UNKNOWN)
        for param in command.params
        if param.param_type_name == "argument"
    ]
    if "--order" in options_of(command):
        args += ["--order", UNKNOWN]
    return args


def takes_order_ids(command: Any) -> bool:
    return "--order" in options_of(command) or any(
        param.param_type_name == "argument" and "ORDER" in (param.metavar or "") for param in command.params
    )


def order_id_takers() -> list[Any]:
    """Every command (of the click tree) that takes order ids: --order, or ORDER_ID arguments."""
    leaves = leaf_commands()
    return [
        pytest.param(name, id=name, marks=xfail_if(entry.unknown_id_broken))
        for name, entry in CONTRACT.items()
        if entry.kind != EXCLUDED and name in leaves and takes_order_ids(leaves[name])
    ]


@pytest.mark.unit
def test_the_commands_that_take_order_ids_are_found_in_the_tree() -> None:
    found = {param.values[0] for param in order_id_takers()}
    assert found >= {
        "labels create",
        "labels reconcile",
        "labels download",
        "labels print",
        "labels keep",
        "labels retry",
        "labels quote",
        "labels prices",
        "labels void",
        "tracking push",
        "tracking refresh",
        "tracking show",
        "tracking pause",
        "tracking resume",
        "tracking retry",
        "orders show",
        "calls",
    }, sorted(found)
    assert not found & {"status", "db migrate", "db status"}


@pytest.mark.parametrize("command", order_id_takers())
def test_an_order_id_fulfil_does_not_have_is_an_error_naming_it(command: str, world: World) -> None:
    # Orders waiting for every step: a command that took the unknown id for "every order" would
    # work on them.
    labelled = ids_of(seed_labelled(world.db, world.sandbox, 1, seed=next(world.seeds)))
    [accepted] = world.accepted(1)
    source = world.tmp / "empty.json"
    source.write_text("[]")
    args = [*command.split(), *placeholder_arguments(leaf_commands()[command], source)]

    result = world.run(*args)

    problems = [] if result.returncode == 3 else [f"exit {result.returncode}, not 3"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("fulfil: error: ")]
    if not any(UNKNOWN in line for line in errors):
        problems.append(f"no `fulfil: error:` line names {UNKNOWN}")
    problems += [
        f"a stderr line is not `fulfil: LEVEL: …`: {line!r}"
        for line in result.stderr.splitlines()
        if not PROBLEM_LINE.match(line)
    ]
    if world.shipment(labelled[0])["status"] != "label_created" or world.value(
        "SELECT count(*) FROM shipments WHERE order_id = %s", accepted
    ):
        problems.append("it worked on the orders fulfil has")
    assert not problems, f"`fulfil {' '.join(args)}`: {'; '.join(problems)}\n{shown(result)}"


@pytest.mark.parametrize(
    ("options", "said"),
    [(["--format", "xml"], "'xml'"), (["--json", "--format", "csv"], "--json and --format csv")],
    ids=["--format xml", "--json --format csv"],
)
def test_a_bad_format_and_two_forms_at_once_are_usage_errors(
    options: list[str], said: str, world: World
) -> None:
    source = world.tmp / "empty.json"
    source.write_text("[]")
    leaves = leaf_commands()
    failures: list[str] = []
    tried = 0
    for name, entry in CONTRACT.items():
        if entry.kind == EXCLUDED or "--format" not in options_of(leaves[name]):
            continue
        args = [*name.split(), *placeholder_arguments(leaves[name], source), *options]
        result = world.run(*args)
        tried += 1
        lines = result.stderr.splitlines()
        if not (
            result.returncode == 2
            and result.stdout == ""
            and len(lines) == 1
            and lines[0].startswith("fulfil: error: ")
            and said in lines[0]
        ):
            failures.append(f"`fulfil {' '.join(args)}`: {shown(result)}")
    assert tried >= 25, f"only {tried} commands have --format"
    assert world.value("SELECT count(*) FROM runs") == 0, "a command refused for its options ran anyway"
    assert not failures, f"not exit 2 and one `fulfil: error:` line saying {said}:\n" + "\n".join(failures)
