"""`fulfil demo`: the whole pipeline, end to end, with nothing configured and nothing real touched.

A database of its own (``fulfil_demo`` on the embedded PostgreSQL, made afresh each time, never
FULFIL_DATABASE_URL), the sandbox on a free port standing in for Canada Post and Best Buy, and
sample orders generated from a seed. Then the same code paths a seller runs: ``orders pull``,
``labels create``, ``tracking push``, ``tracking refresh``. With ``faults``, some orders cannot
ship and the sandbox misbehaves the way the real services do, so ``fulfil status`` has something
to show. With ``manifest`` end_of_day, the labels go into the day's group and the demo transmits
it (``manifest transmit``) before the parcels travel; with ``serve`` too, it leaves the day's group
open instead, for the user's own void, replacement and transmit.

Tracking takes days in real life. The demo's sandbox runs on a clock the demo moves forward
(a few simulated hours a step), its parcels live the sandbox's mix of lives (most delivered; some
attempted, held, returned or never scanned), and the real refresher asks about them every step
under a demo refresh policy (every parcel due again a fraction of a second after its answer),
with the demo key treated as an upgraded one (group E at 30,000 calls a minute, on both sides) so
three days of parcels fit in a few seconds. With ``serve`` it skips that and leaves the sandbox
running instead, on a clock ten simulated hours a real minute, for the user's own `tracking
refresh` and `tracking show` in another terminal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from fulfil.canadapost.tracking import CarrierStatus
from fulfil.carrier_tracking.schedule import RefreshPolicy
from fulfil.config import Settings, load_settings
from fulfil.db import connect, query
from fulfil.demo_catalogue import RULES_FILE, SPLIT_ORDER_SKU, write_demo_inputs
from fulfil.embedded_db import start_server
from fulfil.manifest_settings import MANIFEST_ENV, ManifestMode
from fulfil.migrations import migrate
from fulfil.output import Output
from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.config import DEFAULT_CREDENTIALS, DEFAULT_TIME_SCALE
from fulfil.sandbox.orders import generate_orders, with_extra_line
from fulfil.sandbox.throttle import GroupLimits
from fulfil.services import label_workflow, open_session, tracking_refresher, tracking_workflow

DEMO_DATABASE = "fulfil_demo"
DEMO_SENDER = {
    "FULFIL_SENDER_NAME": "Shipping Desk",
    "FULFIL_SENDER_COMPANY": "Demo Electronics Inc.",
    "FULFIL_SENDER_PHONE": "613-555-0100",
    "FULFIL_SENDER_ADDRESS_LINE_1": "111 Wellington St",
    "FULFIL_SENDER_CITY": "Ottawa",
    "FULFIL_SENDER_PROVINCE": "ON",
    "FULFIL_SENDER_POSTAL_CODE": "K1A0A9",
    "FULFIL_PARCEL_WEIGHT_KG": "1.4",
    "FULFIL_PARCEL_LENGTH_CM": "35",
    "FULFIL_PARCEL_WIDTH_CM": "25",
    "FULFIL_PARCEL_HEIGHT_CM": "12",
}
# Where Canada Post would answer about a refund (a void after the label was transmitted).
DEMO_REFUND_EMAIL = "shipping@demo-electronics.example"
DEMO_CONTRACT_ID = "0042708517"


# Group E for the demo, on both sides: an upgraded key, so every parcel can be asked every step.
DEMO_TRACKING_RATE = 30000
# The demo's parcels, from their labels to three days later, a few simulated hours a step.
DEMO_TRACKING_HOURS = 80
DEMO_STEP_HOURS = 4
# Between two steps, a real pause longer than the demo policy's intervals: every parcel still on
# its way is due again at the next step.
DEMO_STEP_PAUSE_SECONDS = 0.15
DEMO_POLICY = RefreshPolicy(
    intervals={
        status: timedelta(seconds=0.1) for status in CarrierStatus if status is not CarrierStatus.DELIVERED
    },
    cool_down=timedelta(0),
)
# With ``serve``: simulated seconds per real second, ten hours a minute (delivered in about five
# minutes), and the intervals the user's own commands are told (the shortest a setting allows).
SERVE_TIME_SCALE = 600.0
SERVE_TRACKING_MINUTES = "1"


class DemoClock:
    """The sandbox's clock: real time, plus however far the demo has moved it on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class DemoReport:
    database_url: str
    sandbox_url: str
    labels_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    api_calls: int = 0
    seconds: float = 0.0
    phases: dict[str, dict[str, int]] = field(default_factory=dict)
    # The parcels' carrier statuses at each step of the tracking phase (simulated hours, counts).
    tracking_steps: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    serve_env: dict[str, str] = field(default_factory=dict)  # with ``serve``: for another terminal
    serve_time_scale: float = SERVE_TIME_SCALE
    manifest: ManifestMode = ManifestMode.AUTO

    @property
    def shipped(self) -> int:
        return sum(1 for row in self.rows if row["order_status"] == "shipped")

    @property
    def needs_attention(self) -> bool:
        return self.shipped < len(self.rows)


def demo_settings(sandbox_url: str, labels_dir: Path, manifest: ManifestMode = ManifestMode.AUTO) -> Settings:
    """Settings for the sandbox only: the user's own credentials and database are never read."""
    environ = {
        **DEFAULT_CREDENTIALS,
        **DEMO_SENDER,
        "FULFIL_CANADAPOST_BASE_URL": sandbox_url,
        "FULFIL_BESTBUY_BASE_URL": sandbox_url,
        "FULFIL_CANADAPOST_CONTRACT_ID": DEMO_CONTRACT_ID,
        "FULFIL_CANADAPOST_REFUND_EMAIL": DEMO_REFUND_EMAIL,
        MANIFEST_ENV: manifest.value,
        "FULFIL_LABELS_DIR": str(labels_dir),
        "FULFIL_CONFIG": str(labels_dir / RULES_FILE),
        "FULFIL_HTTP_CONNECT_TIMEOUT": "2",
        "FULFIL_HTTP_READ_TIMEOUT": "5",
        "FULFIL_CANADAPOST_RATE_E": f"{DEMO_TRACKING_RATE}/60",
    }
    return load_settings(environ, cwd=labels_dir)


def serve_environment(
    sandbox_url: str, database_url: str, labels_dir: Path, manifest: ManifestMode = ManifestMode.AUTO
) -> dict[str, str]:
    """What another terminal exports to work on the demo's world while ``serve`` keeps it up:
    everything the user's own commands need, the void and refund settings included."""
    return {
        **DEFAULT_CREDENTIALS,
        **DEMO_SENDER,
        "FULFIL_DATABASE_URL": database_url,
        "FULFIL_CANADAPOST_BASE_URL": sandbox_url,
        "FULFIL_BESTBUY_BASE_URL": sandbox_url,
        "FULFIL_CANADAPOST_CONTRACT_ID": DEMO_CONTRACT_ID,
        "FULFIL_CANADAPOST_REFUND_EMAIL": DEMO_REFUND_EMAIL,
        MANIFEST_ENV: manifest.value,
        "FULFIL_LABELS_DIR": str(labels_dir),
        "FULFIL_CONFIG": str(labels_dir / RULES_FILE),
        "FULFIL_CANADAPOST_RATE_E": f"{DEMO_TRACKING_RATE}/60",
        **{
            f"FULFIL_TRACKING_{name}_MINUTES": SERVE_TRACKING_MINUTES
            for name in ("OUT_FOR_DELIVERY", "ATTEMPTED", "IN_TRANSIT", "PRE_TRANSIT")
        },
    }


def fresh_demo_database(data_dir: Path) -> str:
    """Drop and re-create the demo database on the embedded server; returns its URL."""
    server = start_server(data_dir)
    with connect(server.get_uri(), autocommit=True, application_name="fulfil-demo") as conn:
        name = sql.Identifier(DEMO_DATABASE)
        conn.execute(sql.SQL(query("migrations", "drop_database")).format(name))
        conn.execute(sql.SQL(query("migrations", "create_database")).format(name))
    return server.get_uri(database=DEMO_DATABASE)


def run_demo(
    *,
    orders: int,
    faults: bool,
    data_dir: Path,
    labels_dir: Path,
    output: Output,
    seed: int = 2026,
    serve: Any = None,
    serve_time_scale: float = SERVE_TIME_SCALE,
    manifest: ManifestMode = ManifestMode.AUTO,
) -> DemoReport:
    """The demo. ``serve``: called with the report once the orders are shipped, while the sandbox
    is still up (it returns when the user is done); the tracking phase is then left to the user."""
    started = time.monotonic()
    url = fresh_demo_database(data_dir)
    migrate(url)
    problems = min(3, orders // 5) if faults else 0
    _clear_old_labels(labels_dir)
    profiles_file, _ = write_demo_inputs(labels_dir)
    clock = DemoClock()
    config = SandboxConfig(
        seed=seed,
        tracking_default="mix",
        canadapost_limits=GroupLimits(limits={"E": DEMO_TRACKING_RATE}),
        time_scale=serve_time_scale if serve is not None else DEFAULT_TIME_SCALE,
    )
    with Sandbox(config, host="127.0.0.1", port=0, clock=clock) as sandbox:
        # Orders placed over the last hours, so their shipping deadlines lie ahead as in real life.
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
        sample = generate_orders(orders, seed=seed, problems=problems, start=start)
        if len(sample) >= 10:
            # One customer buys a monitor too: it ships alone (the demo's profiles), so that order
            # is two parcels, two labels, and Best Buy gets the first one's tracking number.
            middle = len(sample) // 2
            sample[middle] = with_extra_line(sample[middle], SPLIT_ORDER_SKU)
        sandbox.add_orders(sample)
        if faults:
            _misbehave(sandbox)
        settings = demo_settings(sandbox.base_url, labels_dir, manifest)
        report = DemoReport(
            database_url=url, sandbox_url=sandbox.base_url, labels_dir=labels_dir, manifest=manifest
        )
        output.info(
            f"fulfil demo: {orders} sample orders, Canada Post and Best Buy played by the sandbox at "
            f"{sandbox.base_url}, database {DEMO_DATABASE} on the embedded PostgreSQL"
        )
        report.phases["orders pull"] = _pull(url, settings, output)
        report.phases["parcels import"] = _import_profiles(url, profiles_file, output)
        if faults and orders:
            # A customer cancels after the label was bought: Best Buy must not be told it shipped.
            _cancel_after_labels(sandbox, url, settings, output, report)
        else:
            report.phases["labels create"] = _labels(url, settings, output, orders)
        report.phases["tracking push"] = _tracking(url, settings, output)
        if manifest is ManifestMode.END_OF_DAY and serve is None:
            # The day's end: the group goes to Canada Post before the parcels leave the building.
            report.phases["manifest transmit"] = _transmit(url, settings, output)
        if serve is None:
            report.phases["tracking refresh"] = _follow_parcels(url, settings, sandbox, clock, output, report)
        report.rows = _results(url)
        report.api_calls = _count_calls(url)
        report.seconds = time.monotonic() - started
        if serve is not None:
            report.serve_env = serve_environment(sandbox.base_url, url, labels_dir, manifest)
            report.serve_time_scale = serve_time_scale
            serve(report)
    return report


def _follow_parcels(
    url: str, settings: Settings, sandbox: Sandbox, clock: DemoClock, output: Output, report: DemoReport
) -> dict[str, int]:
    """The parcels' first days, a few simulated hours a step, each step one refresh cycle."""
    counts: dict[str, int] = {}
    with open_session(url, settings, "tracking refresh") as session:
        with tracking_refresher(session, policy=DEMO_POLICY) as refresher:
            for hours in range(0, DEMO_TRACKING_HOURS + 1, DEMO_STEP_HOURS):
                cycle = refresher.refresh_due()
                for outcome, n in cycle.counts().items():
                    counts[outcome] = counts.get(outcome, 0) + n
                statuses = _carrier_statuses(url)
                if not report.tracking_steps or report.tracking_steps[-1][1] != statuses:
                    report.tracking_steps.append((hours, statuses))
                    output.info(f"  tracking, {hours:>2} h after the labels: {_describe(statuses)}")
                if cycle.fatal is not None or (hours > 0 and not cycle.due):
                    break
                clock.offset += DEMO_STEP_HOURS * 3600 / sandbox.config.time_scale
                time.sleep(DEMO_STEP_PAUSE_SECONDS)
        session.run.finish(url, 3 if "failed" in counts else 0, {"counts": counts})
    output.info(f"  tracking refresh: {_describe(counts)}")
    return counts


def _carrier_statuses(url: str) -> dict[str, int]:
    with connect(url, application_name="fulfil-demo") as conn:
        return {status: int(n) for status, n in conn.execute(query("demo", "carrier_statuses")).fetchall()}


def _misbehave(sandbox: Sandbox) -> None:
    # The second purchase is made but its answer is lost: fulfil must find it, not buy it again.
    sandbox.script_faults("canadapost", "CreateShipment", ["none", "commit_then_drop"])
    # The first label is not ready on the first fetch.
    sandbox.script_faults("canadapost", "GetArtifact", ["label_not_ready"])
    # Best Buy throttles once and fails a ship confirmation once.
    sandbox.set_faults("bestbuy", Faults(retry_after_s=1))
    sandbox.script_faults("bestbuy", "OR23", ["none", "rate_limit"])
    sandbox.script_faults("bestbuy", "OR24", ["none", "none", "http_503"])


def _cancel_after_labels(
    sandbox: Sandbox, url: str, settings: Settings, output: Output, report: DemoReport
) -> None:
    report.phases["labels create"] = _labels(url, settings, output, None)
    with connect(url, application_name="fulfil-demo") as conn:
        row = conn.execute(query("demo", "newest_label")).fetchone()
    if row:
        sandbox.set_order_state(row[0], "CANCELED")


def _pull(url: str, settings: Settings, output: Output) -> dict[str, int]:
    from fulfil.bestbuy.client import BestBuyClient
    from fulfil.workflows.order_import import OrderPull

    with open_session(url, settings, "orders pull") as session:
        client = BestBuyClient(settings.bestbuy(), session.bestbuy_http())
        run = OrderPull(database_url=url, client=client, run_id=session.run.run_id).pull(
            ["SHIPPING"], force=True
        )
        counts = run.counts()
        session.run.finish(url, 0 if not run.needs_attention else 3, {"counts": counts})
    output.info(f"  orders pull:    {_describe(counts)}")
    return counts


def _labels(url: str, settings: Settings, output: Output, total: int | None) -> dict[str, int]:
    with open_session(url, settings, "labels create") as session:
        count = label_workflow(url, settings, session).count_eligible(None)
        with output.progress(count, "Buying labels") as tick:
            run = label_workflow(url, settings, session, lambda result: tick(item=result.order_id)).create()
        counts = run.counts()
        session.run.finish(url, 3 if run.needs_attention else 0, {"counts": counts, "stopped": run.stopped})
    output.info(f"  labels create:  {_describe(counts)}")
    with connect(url, application_name="fulfil-demo") as conn:
        services = conn.execute(query("demo", "services_bought")).fetchall()
        split = conn.execute(query("demo", "split_orders")).fetchone()
    if split and split[0]:
        orders_split = "1 order" if split[0] == 1 else f"{split[0]} orders"
        output.info(f"  parcels:        {orders_split} in several parcels, {split[1]} labels for them")
    if services:
        bought_as = ", ".join(
            f"{n} {code}" + (f" (rule {rule!r})" if rule else "") for code, rule, n in services
        )
        output.info(f"  services:       {bought_as}")
    return counts


def _import_profiles(url: str, profiles_file: Path, output: Output) -> dict[str, int]:
    """The catalogue's parcel profiles, read and stored as `fulfil parcels import` does."""
    from fulfil.parcels.profiles import read_profiles_csv
    from fulfil.parcels.store import ParcelProfileStore

    profiles, rejected = read_profiles_csv(profiles_file.read_text(encoding="utf-8"))
    assert not rejected, rejected  # the demo's own file
    with ParcelProfileStore.open(url) as store:
        result = store.upsert(profiles)
    output.info(f"  parcels import: {len(result.inserted)} SKU profiles from {profiles_file}")
    return {"inserted": len(result.inserted)}


def _tracking(url: str, settings: Settings, output: Output) -> dict[str, int]:
    with open_session(url, settings, "tracking push") as session:
        count = tracking_workflow(url, settings, session).count_pushable(None)
        with output.progress(count, "Pushing tracking") as tick:
            run = tracking_workflow(url, settings, session, lambda result: tick(item=result.order_id)).push()
        counts = run.counts()
        session.run.finish(url, 3 if run.needs_attention else 0, {"counts": counts, "stopped": run.stopped})
    output.info(f"  tracking push:  {_describe(counts)}")
    return counts


def _transmit(url: str, settings: Settings, output: Output) -> dict[str, int]:
    from fulfil.canadapost.groups import canada_post_day
    from fulfil.manifests.transmit import transmitter

    counts: dict[str, int] = {}
    with open_session(url, settings, "manifest transmit") as session:
        with transmitter(session) as worker:
            results = worker.run(canada_post_day())
        for result in results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        attention = any(result.needs_attention for result in results)
        session.run.finish(url, 3 if attention else 0, {"outcomes": [r.outcome for r in results]})
    output.info(f"  manifest transmit: {_describe(counts)}")
    return counts


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing to do"


def _results(url: str) -> list[dict[str, Any]]:
    with connect(url, row_factory=dict_row, application_name="fulfil-demo") as conn:
        return conn.execute(query("demo", "demo_results")).fetchall()


def _count_calls(url: str) -> int:
    with connect(url, application_name="fulfil-demo") as conn:
        row = conn.execute(query("demo", "count_calls")).fetchone()
    return int(row[0]) if row else 0


def _clear_old_labels(labels_dir: Path) -> None:
    """Labels, manifests and prints of an earlier demo belong to orders that no longer exist in
    the fresh database."""
    for folder in (labels_dir, labels_dir / "manifests", labels_dir / "prints"):
        if folder.is_dir():
            for old in folder.glob("*.pdf"):
                old.unlink()
