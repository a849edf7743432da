"""The sandbox's parcels have varied tracking lives: delivered, attempted, exception, returned,
never scanned, each after a stretch of 004 (No Pin History). Every answer is read with fulfil's
own parser over real sockets, on a clock the test drives, and checked against the official XSDs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import typer
from lxml import etree
from typer.testing import CliRunner

from fulfil.canadapost.tracking import CarrierStatus, no_pin_history, parse_tracking_detail, status_of_code
from fulfil.sandbox import Sandbox, SandboxConfig, tracking
from fulfil.sandbox import cli as sandbox_cli
from fulfil.sandbox.throttle import GroupLimits
from tests.sandbox.conftest import (
    TRACK_MEDIA,
    CanadaPost,
    OfficialSchemas,
    contract_request,
    nc_request,
    parse,
)
from tests.shared_reference import canadapost_samples

START = 1_756_742_400.0  # 2025-09-01 16:00 UTC
NO_HISTORY = "no_history"  # what the sequences below call a 004 answer
NO_HISTORY_HOURS = 1.0
SCENARIO_ORDERS = {f"ORDER-{name}": name for name in tracking.SCENARIOS}
S = CarrierStatus
# What fulfil must read of each scenario over time (repeats collapsed).
EXPECTED_SEQUENCES: dict[str, list[str]] = {
    "delivered": [NO_HISTORY, S.PRE_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED],
    "attempted": [
        NO_HISTORY,
        S.PRE_TRANSIT,
        S.IN_TRANSIT,
        S.OUT_FOR_DELIVERY,
        S.DELIVERY_ATTEMPTED,
        S.DELIVERED,
    ],
    "exception": [
        NO_HISTORY,
        S.PRE_TRANSIT,
        S.IN_TRANSIT,
        S.EXCEPTION,
        S.IN_TRANSIT,
        S.OUT_FOR_DELIVERY,
        S.DELIVERED,
    ],
    "returned": [
        NO_HISTORY,
        S.PRE_TRANSIT,
        S.IN_TRANSIT,
        S.OUT_FOR_DELIVERY,
        S.DELIVERY_ATTEMPTED,
        S.RETURNED,
    ],
    "never_scanned": [NO_HISTORY, S.PRE_TRANSIT],
}
# Every simulated hour for four days (no two events are less than two hours apart), then later on.
SAMPLE_HOURS = [0.0, 0.5, *(float(hour) for hour in range(1, 97)), 24.0 * 10, 24.0 * 30]


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    sandbox: Sandbox
    clock: FakeClock
    client: CanadaPost

    def buy(self, order_id: str, *, contract: bool = True) -> str:
        """A label for ``order_id`` bought now; its PIN."""
        if contract:
            answer = self.client.create(contract_request(request_id=f"{order_id}-a1", reference=order_id))
        else:
            answer = self.client.create_nc(nc_request(reference=order_id))
        assert answer.status_code == 200, answer.text
        pin = parse(answer.content).findtext("{*}tracking-pin")
        assert pin
        return pin

    def at(self, label_time: float, simulated_hours: float) -> None:
        """The clock ``simulated_hours`` after a label bought at ``label_time``."""
        self.clock.now = label_time + simulated_hours * 3600 / self.sandbox.config.time_scale

    def detail(self, pin: str) -> bytes:
        return self.client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA).content

    def status(self, pin: str) -> str:
        """fulfil's reading of the detail answer now: a carrier status, or NO_HISTORY for 004."""
        answer = self.client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA)
        if answer.status_code == 404:
            assert no_pin_history(answer.content), answer.text
            return NO_HISTORY
        assert answer.status_code == 200, answer.text
        return parse_tracking_detail(answer.content, pin=pin).status


@pytest.fixture(scope="module")
def module_world(schema_dir: Path) -> Iterator[World]:
    clock = FakeClock()
    config = SandboxConfig(
        xsd_dir=schema_dir,
        tracking_scenarios=SCENARIO_ORDERS,
        tracking_no_history_hours=NO_HISTORY_HOURS,
        # Hundreds of tracking calls a simulated week; Canada Post's 20 a minute is tested elsewhere.
        canadapost_limits=GroupLimits(enabled=False),
    )
    with Sandbox(config, clock=clock) as sandbox:
        client = CanadaPost(sandbox.base_url)
        yield World(sandbox, clock, client)
        client.session.close()


@pytest.fixture
def world(module_world: World) -> World:
    module_world.sandbox.reset()
    module_world.clock.now = START
    return module_world


def collapsed(statuses: list[str]) -> list[str]:
    return [status for index, status in enumerate(statuses) if index == 0 or statuses[index - 1] != status]


# --- each scenario, as fulfil reads it --------------------------------------------------------


@pytest.mark.parametrize("scenario", list(tracking.SCENARIOS))
def test_each_scenario_reads_in_fulfil_as_it_should_over_time(
    world: World, official: OfficialSchemas, scenario: str
) -> None:
    order_id = f"ORDER-{scenario}"
    pin = world.buy(order_id)
    bought_at = world.clock.now
    assert world.sandbox.canadapost.tracking_scenario(pin) == scenario
    seen = []
    for hours in SAMPLE_HOURS:
        world.at(bought_at, hours)
        detail = world.client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA)
        summary = world.client.get(f"/vis/track/pin/{pin}/summary", TRACK_MEDIA)
        if hours < NO_HISTORY_HOURS:
            for answer in (detail, summary):
                assert answer.status_code == 404
                assert no_pin_history(answer.content)
                assert official.errors(answer.content) is None
            seen.append(NO_HISTORY)
            continue
        assert (detail.status_code, summary.status_code) == (200, 200), (hours, detail.text, summary.text)
        assert official.errors(detail.content) is None, hours
        assert official.errors(summary.content) is None, hours
        parsed = parse_tracking_detail(detail.content, pin=pin)
        assert parsed.events, hours
        assert_summary_reflects(parse(summary.content).find("{*}pin-summary"), parse(detail.content))
        seen.append(parsed.status)
    assert collapsed(seen) == EXPECTED_SEQUENCES[scenario]
    assert world.sandbox.invalid_responses() == []


def assert_summary_reflects(pin_summary: etree._Element | None, detail: etree._Element) -> None:
    """The summary tells the newest event of the detail, with the dates it settles."""
    assert pin_summary is not None
    newest = detail.find("{*}significant-events/{*}occurrence")
    assert newest is not None
    assert pin_summary.findtext("{*}event-description") == newest.findtext("{*}event-description")
    stamp = newest.findtext("{*}event-date", "").replace("-", "") + ":"
    stamp += newest.findtext("{*}event-time", "").replace(":", "")
    assert pin_summary.findtext("{*}event-date-time") == stamp
    assert pin_summary.findtext("{*}event-location") == newest.findtext("{*}event-site")
    newest_status = status_of_code(
        newest.findtext("{*}event-identifier", ""), newest.findtext("{*}event-description", "")
    )
    if newest_status is CarrierStatus.DELIVERED:
        assert pin_summary.findtext("{*}event-type") == "DELIVERED"
        assert pin_summary.findtext("{*}actual-delivery-date") == newest.findtext("{*}event-date")
        assert pin_summary.findtext("{*}delivery-option-completed-ind") == "1"
        assert pin_summary.findtext("{*}signatory-name")
    else:
        assert not pin_summary.findtext("{*}actual-delivery-date")
        assert pin_summary.findtext("{*}delivery-option-completed-ind") == "0"


@pytest.mark.parametrize(("scenario", "final"), [("returned", S.RETURNED), ("never_scanned", S.PRE_TRANSIT)])
def test_returned_and_never_scanned_parcels_are_never_delivered(
    world: World, scenario: str, final: CarrierStatus
) -> None:
    pin = world.buy(f"ORDER-{scenario}")
    bought_at = world.clock.now
    for days in (3, 10, 30, 365, 3650):
        world.at(bought_at, 24 * days)
        assert world.status(pin) == final
        parsed = parse_tracking_detail(world.detail(pin), pin=pin)
        assert parsed.delivered_at is None
        assert all(event.status is not CarrierStatus.DELIVERED for event in parsed.events)
    if scenario == "never_scanned":
        assert [event.code for event in parsed.events] == ["3000"]
    else:
        # Its return is told by the words, as fulfil reads Canada Post: the newest two say so.
        assert [event.status for event in parsed.events[:3]] == [
            S.RETURNED,
            S.RETURNED,
            S.DELIVERY_ATTEMPTED,
        ]


def test_the_scenarios_use_real_codes_that_fulfil_maps_as_intended() -> None:
    codes = {
        name: [
            (milestone.code, status_of_code(milestone.code, milestone.description))
            for milestone in s.timeline
        ]
        for name, s in tracking.SCENARIOS.items()
    }
    assert codes["attempted"][-3:] == [
        ("0168", S.DELIVERY_ATTEMPTED),
        ("1701", S.DELIVERY_ATTEMPTED),
        ("1441", S.DELIVERED),
    ]
    assert ("0173", S.EXCEPTION) in codes["exception"]
    assert codes["returned"][-3:] == [
        ("1415", S.DELIVERY_ATTEMPTED),
        ("0100", S.RETURNED),
        ("0100", S.RETURNED),
    ]
    assert codes["never_scanned"] == [("3000", S.PRE_TRANSIT)]
    for timeline in codes.values():
        assert timeline[0] == ("3000", S.PRE_TRANSIT)
        assert all(status not in (None, S.UNKNOWN) for _code, status in timeline)
    # The pick-up at the post office comes a simulated day after the card was left.
    attempted = {milestone.code: milestone.hours for milestone in tracking.SCENARIOS["attempted"].timeline}
    assert attempted["1441"] - attempted["0168"] == 24


def test_an_attempt_dates_the_summary_and_a_delay_moves_the_expected_date(world: World) -> None:
    attempted = world.buy("ORDER-attempted")
    attempted_at = world.clock.now
    world.at(attempted_at, 47)
    summary = parse(world.client.get(f"/vis/track/pin/{attempted}/summary", TRACK_MEDIA).content)
    attempt_date = summary.findtext("{*}pin-summary/{*}attempted-date")
    newest = parse(world.detail(attempted)).find("{*}significant-events/{*}occurrence")
    assert newest is not None
    assert newest.findtext("{*}event-identifier") == "0168"
    assert attempt_date == newest.findtext("{*}event-date")
    world.at(attempted_at, 71)  # picked up at the post office: the attempt's date stays
    summary = parse(world.client.get(f"/vis/track/pin/{attempted}/summary", TRACK_MEDIA).content)
    assert summary.findtext("{*}pin-summary/{*}attempted-date") == attempt_date
    assert summary.findtext("{*}pin-summary/{*}event-type") == "DELIVERED"

    world.clock.now = START
    delayed = world.buy("ORDER-exception")
    delayed_at = world.clock.now
    world.at(delayed_at, 29)
    before = parse_tracking_detail(world.detail(delayed), pin=delayed).expected_delivery
    assert before is not None
    world.at(delayed_at, 31)
    after = parse_tracking_detail(world.detail(delayed), pin=delayed)
    assert after.status is S.EXCEPTION
    assert after.expected_delivery == before + timedelta(days=1)
    detail = parse(world.detail(delayed))
    assert "addressing error" in (detail.findtext("{*}changed-expected-delivery-reason") or "")
    summary = parse(world.client.get(f"/vis/track/pin/{delayed}/summary", TRACK_MEDIA).content)
    assert (
        date.fromisoformat(summary.findtext("{*}pin-summary/{*}expected-delivery-date", ""))
        == after.expected_delivery
    )


def test_the_004_answer_is_canada_posts(world: World) -> None:
    pin = world.buy("ORDER-delivered")
    for kind in ("detail", "summary"):
        answer = world.client.get(f"/vis/track/pin/{pin}/{kind}", TRACK_MEDIA)
        assert answer.status_code == 404
        assert answer.headers["Content-Type"] == TRACK_MEDIA
        root = parse(answer.content)
        sample = etree.parse(
            str(canadapost_samples() / "error-tracking-004-no-pin-history.activeshipping.xml")
        ).getroot()
        assert etree.QName(root) == etree.QName(sample)
        assert [(m.findtext("{*}code"), m.findtext("{*}description")) for m in root] == [
            ("004", "No Pin History")
        ]
        assert [(m.findtext("{*}code"), m.findtext("{*}description")) for m in sample] == [
            ("004", "No Pin History")
        ]
    world.at(world.clock.now, NO_HISTORY_HOURS)
    assert world.status(pin) == S.PRE_TRANSIT


# --- which scenario a parcel gets ---------------------------------------------------------------


def test_the_order_decides_for_contract_and_non_contract_labels_alike(world: World) -> None:
    contract = world.buy("ORDER-returned")
    non_contract = world.buy("ORDER-never_scanned", contract=False)
    other = world.buy("ORDER-not-chosen")
    assert world.sandbox.canadapost.tracking_scenario(contract) == "returned"
    assert world.sandbox.canadapost.tracking_scenario(non_contract) == "never_scanned"
    # Not named in the config: the default, which the config keeps at delivered.
    assert world.sandbox.canadapost.tracking_scenario(other) == "delivered"
    assert world.sandbox.canadapost.tracking_scenario("7999000000000001") is None


def test_a_scenario_chosen_at_run_time_lasts_until_a_reset(world: World) -> None:
    canadapost = world.sandbox.canadapost
    pin = world.buy("ORDER-live")
    bought_at = world.clock.now
    world.at(bought_at, 100)
    assert world.status(pin) == S.DELIVERED
    canadapost.set_tracking_scenario("ORDER-live", "returned")
    assert canadapost.tracking_scenario(pin) == "returned"
    assert world.status(pin) == S.RETURNED
    canadapost.set_tracking_scenario("ORDER-returned", "delivered")  # over the configured choice
    configured = world.buy("ORDER-returned")
    assert canadapost.tracking_scenario(configured) == "delivered"
    canadapost.set_tracking_scenario("ORDER-returned", None)
    assert canadapost.tracking_scenario(configured) == "returned"
    with pytest.raises(ValueError, match="unknown tracking scenario 'lost'; scenarios: delivered"):
        canadapost.set_tracking_scenario("ORDER-live", "lost")

    world.sandbox.reset()
    again = world.buy("ORDER-live")
    assert canadapost.tracking_scenario(again) == "delivered"


def test_the_mix_is_stable_per_pin_and_has_every_scenario() -> None:
    pins = [f"70232100{number:08d}" for number in range(500)]
    first = [tracking.mixed_scenario(pin) for pin in pins]
    assert first == [tracking.mixed_scenario(pin) for pin in pins]
    counts = {name: first.count(name) for name in tracking.SCENARIOS}
    assert all(counts.values()), counts
    assert max(counts, key=counts.__getitem__) == "delivered"
    assert counts["delivered"] > len(pins) / 2
    assert sum(share for _name, share in tracking.MIX_SHARES) == 100
    assert [name for name, _share in tracking.MIX_SHARES] == list(tracking.SCENARIOS)


def test_a_mixing_sandbox_gives_each_pin_its_scenario_and_the_orders_theirs(schema_dir: Path) -> None:
    clock = FakeClock()
    config = SandboxConfig(
        tracking_default="mix", tracking_scenarios={"ORDER-pinned": "exception"}, xsd_dir=schema_dir
    )
    with Sandbox(config, clock=clock) as sandbox:
        world = World(sandbox, clock, CanadaPost(sandbox.base_url))
        pins = [world.buy(f"ORDER-{number}") for number in range(12)]
        assert [sandbox.canadapost.tracking_scenario(pin) for pin in pins] == [
            tracking.mixed_scenario(pin) for pin in pins
        ]
        pinned = world.buy("ORDER-pinned")
        assert sandbox.canadapost.tracking_scenario(pinned) == "exception"
        world.at(clock.now, 31)
        assert world.status(pinned) == S.EXCEPTION
        world.client.session.close()


def test_the_default_config_keeps_every_parcel_delivered_and_scanned_at_once(sandbox: Sandbox) -> None:
    assert SandboxConfig().tracking_default == "delivered"
    assert SandboxConfig().tracking_no_history_hours == 0
    client = CanadaPost(sandbox.base_url)
    for number in range(10):
        pin = parse(
            client.create(contract_request(request_id=f"r-{number}", reference=f"O-{number}")).content
        )
        found = pin.findtext("{*}tracking-pin") or ""
        assert sandbox.canadapost.tracking_scenario(found) == "delivered"
        # The electronic notice at once: tests of fulfil's refresh count on it.
        assert (
            parse_tracking_detail(
                client.get(f"/vis/track/pin/{found}/detail", TRACK_MEDIA).content, pin=found
            ).status
            is S.PRE_TRANSIT
        )
    client.session.close()


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (
            {"tracking_scenarios": {"A-1": "lost"}},
            "order 'A-1': unknown tracking scenario 'lost'; scenarios: delivered, attempted, exception, "
            "returned, never_scanned",
        ),
        ({"tracking_scenarios": {"A-1": "mix"}}, "order 'A-1': unknown tracking scenario 'mix'"),
        ({"tracking_scenarios": {"": "returned"}}, "tracking_scenarios needs order ids"),
        (
            {"tracking_default": "sometimes"},
            "tracking_default: unknown tracking scenario 'sometimes'; "
            "scenarios: delivered, attempted, exception, returned, never_scanned, mix",
        ),
        ({"tracking_no_history_hours": -1.0}, "tracking_no_history_hours"),
        ({"tracking_no_history_hours": float("nan")}, "tracking_no_history_hours"),
    ],
)
def test_bad_tracking_settings_are_refused_with_a_clear_message(
    settings: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        SandboxConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.unit
def test_the_config_keeps_its_own_copy_of_the_choices() -> None:
    choices = {"A-1": "returned"}
    config = SandboxConfig(tracking_scenarios=choices)
    choices["A-1"] = "delivered"
    assert config.tracking_scenarios == {"A-1": "returned"}
    with pytest.raises(TypeError):
        config.tracking_scenarios["A-1"] = "attempted"  # type: ignore[index]


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--tracking-scenario", "A-1=lost"], "unknown tracking scenario 'lost'"),
        (["--tracking-scenario", "A-1"], "ORDER=SCENARIO"),
        (["--tracking-scenario", "=returned"], "ORDER=SCENARIO"),
        (["--tracking-scenario", "A-1=returned", "--tracking-scenario", "A-1=delivered"], "two tracking"),
        (["--tracking-default", "often"], "unknown tracking scenario 'often'"),
        (["--tracking-no-history-hours", "-1"], "tracking-no-history-hours"),
    ],
)
def test_bad_tracking_options_are_usage_errors(arguments: list[str], complaint: str) -> None:
    result = CliRunner().invoke(
        sandbox_cli.sandbox_app, ["serve", "--port", "0", *arguments], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2, result.output
    assert complaint in " ".join(result.output.split())


@pytest.mark.unit
def test_serve_mixes_by_default_after_an_hour_of_no_history() -> None:
    command = typer.main.get_command(sandbox_cli.sandbox_app).commands["serve"]  # type: ignore[attr-defined]
    defaults = {param.name: param.default for param in command.params}
    assert defaults["tracking_default"] == "mix"
    assert defaults["tracking_no_history_hours"] == 1.0
    assert defaults["tracking_scenario"] is None
    assert ", ".join(tracking.SCENARIOS) == sandbox_cli.SCENARIO_NAMES
    help_text = CliRunner().invoke(sandbox_cli.sandbox_app, ["serve", "--help"], env={"COLUMNS": "200"})
    for option in ("--tracking-scenario", "--tracking-default", "--tracking-no-history-hours"):
        assert option in help_text.output


def test_serve_options_choose_the_scenarios() -> None:
    code = "from fulfil.sandbox.cli import sandbox_app; sandbox_app()"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FULFIL_")}
    options = ["--tracking-scenario", "ORDER-quiet=never_scanned", "--tracking-default", "returned"]
    # A thousand simulated hours a second: a tenth of a second carries a parcel to its end.
    options += ["--time-scale", "3600000", "--tracking-no-history-hours", "0.5"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        printed: list[str] = []
        while not printed or not printed[-1].startswith("# state:"):
            line = process.stdout.readline()
            assert line, f"serve stopped early: {printed}"
            printed.append(line.strip())
        url = printed[0].rsplit(" ", 1)[-1]
        banner = (
            "# tracking: every parcel returned (refused at the door and returned to sender; never "
            "delivered); 004 (No Pin History) for 0.5 simulated h after a label"
        )
        assert banner in printed
        assert "# tracking of order ORDER-quiet: never_scanned" in printed
        client = CanadaPost(url)
        quiet = parse(client.create(contract_request(request_id="q-1", reference="ORDER-quiet")).content)
        other = parse(client.create(contract_request(request_id="o-1", reference="ORDER-other")).content)
        time.sleep(0.2)  # 200 simulated hours
        for created, final in ((quiet, S.PRE_TRANSIT), (other, S.RETURNED)):
            pin = created.findtext("{*}tracking-pin") or ""
            answer = client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA)
            assert answer.status_code == 200, answer.text
            assert parse_tracking_detail(answer.content, pin=pin).status is final
        client.session.close()
        process.send_signal(signal.SIGTERM)
        _output, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
