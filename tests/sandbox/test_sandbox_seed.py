"""`fulfil sandbox serve` seeds: a fresh random seed per start unless --seed is given.

Two sandboxes started one after the other against one fulfil database used to share the fixed
default seed, so they handed out the same PINs and shipment ids (and, with --orders, the same order
ids), and fulfil put the orders of the second run in needs_review. Now every start without --seed
draws its own seeds and prints them; an explicit --seed gives exactly the run it always gave.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

from fulfil.sandbox import Sandbox, SandboxConfig
from fulfil.sandbox import cli as sandbox_cli
from fulfil.sandbox.orders import generate_orders
from tests.sandbox.conftest import BestBuy, CanadaPost, contract_request, parse

SEED_LINE_PREFIX = "# seed "


# --- choosing the seeds ----------------------------------------------------------------------------


def scripted_draws(monkeypatch: pytest.MonkeyPatch, *values: int) -> list[int]:
    """Make secrets.randbelow answer ``values`` in turn; returns the limits it was called with."""
    answers = iter(values)
    limits: list[int] = []

    def randbelow(limit: int) -> int:
        limits.append(limit)
        return next(answers)

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    return limits


@pytest.mark.unit
def test_each_start_without_seeds_draws_fresh_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = scripted_draws(monkeypatch, 123_456_789, 42, 987_654_321, 7)
    assert sandbox_cli.choose_seeds(None, None) == (123_456_789, 42)
    assert sandbox_cli.choose_seeds(None, None) == (987_654_321, 7)
    assert limits == [2**31] * 4


@pytest.mark.unit
def test_a_given_seed_is_kept_and_keeps_the_orders_seed_of_old(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = scripted_draws(monkeypatch, 555)
    assert sandbox_cli.choose_seeds(7, None) == (7, 1)
    assert sandbox_cli.choose_seeds(0, None) == (0, 1)  # the old default, still reproducible
    assert sandbox_cli.choose_seeds(7, 9) == (7, 9)
    assert limits == []  # nothing random when --seed is given
    assert sandbox_cli.choose_seeds(None, 9) == (555, 9)
    assert limits == [2**31]


@pytest.mark.unit
def test_serve_has_no_fixed_seed_and_says_so() -> None:
    command = typer.main.get_command(sandbox_cli.sandbox_app).commands["serve"]  # type: ignore[attr-defined]
    defaults = {param.name: param.default for param in command.params}
    assert defaults["seed"] is None
    assert defaults["orders_seed"] is None
    help_text = CliRunner().invoke(sandbox_cli.sandbox_app, ["serve", "--help"], env={"COLUMNS": "80"})
    assert help_text.exit_code == 0
    flat = " ".join(help_text.output.replace("│", " ").split())
    assert "same seed + same calls = same run. Default: a fresh random one, printed at start." in flat
    assert "Seed of the generated orders. Default: 1 with --seed, else random." in flat


@pytest.mark.unit
def test_the_banner_names_the_seeds_that_repeat_the_run() -> None:
    assert sandbox_cli._seed_banner(123, None) == "seed 123 (pass --seed 123 to repeat this run)"
    assert sandbox_cli._seed_banner(123, 45) == (
        "seed 123, orders seed 45 (pass --seed 123 --orders-seed 45 to repeat this run)"
    )


def pin_and_shipment_id(base_url: str) -> tuple[str, str]:
    """Buy one contract label; its tracking PIN and shipment id."""
    client = CanadaPost(base_url)
    try:
        answer = client.create(contract_request())
    finally:
        client.session.close()
    assert answer.status_code == 200, answer.text
    root = parse(answer.content)
    return root.findtext("{*}tracking-pin") or "", root.findtext("{*}shipment-id") or ""


def first_label_with_seed(seed: int) -> tuple[str, str]:
    """The PIN and shipment id of the first label bought from a sandbox with this seed."""
    with Sandbox(SandboxConfig(seed=seed), port=0) as sandbox:
        return pin_and_shipment_id(sandbox.base_url)


def test_chosen_seeds_hand_out_different_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_draws(monkeypatch, 123_456_789, 1, 987_654_321, 2)
    first, _ = sandbox_cli.choose_seeds(None, None)
    second, _ = sandbox_cli.choose_seeds(None, None)
    first_pin, first_shipment = first_label_with_seed(first)
    second_pin, second_shipment = first_label_with_seed(second)
    assert first_pin != second_pin
    assert first_shipment != second_shipment
    # The collision of the issue: the same seed hands out the same PIN in every run.
    assert first_label_with_seed(first) == (first_pin, first_shipment)


# --- `fulfil sandbox serve` itself -----------------------------------------------------------------


@dataclass
class Served:
    url: str
    printed: list[str]

    @property
    def seed_line(self) -> str:
        lines = [line for line in self.printed if line.startswith(SEED_LINE_PREFIX)]
        assert len(lines) == 1, self.printed
        return lines[0]

    def seeds(self) -> tuple[int, int | None]:
        """The seed and orders seed the start-up message names (None: no orders seed named)."""
        words = self.seed_line.removeprefix(SEED_LINE_PREFIX).split(" (", 1)[0].split(", orders seed ")
        return int(words[0]), int(words[1]) if len(words) > 1 else None

    def order_ids(self) -> list[str]:
        client = BestBuy(self.url)
        try:
            answer = client.orders()
        finally:
            client.session.close()
        assert answer.status_code == 200, answer.text
        return sorted(order["order_id"] for order in answer.json()["orders"])


@contextmanager
def serving(*options: str) -> Iterator[Served]:
    """`python -m fulfil sandbox serve --port 0 OPTIONS`, until it prints its last start-up line."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FULFIL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "fulfil", "sandbox", "serve", "--port", "0", *options],
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
        yield Served(printed[0].rsplit(" ", 1)[-1], printed)
        process.send_signal(signal.SIGTERM)
        _output, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_two_starts_without_seed_hand_out_different_pins_and_orders() -> None:
    with serving("--orders", "3") as one, serving("--orders", "3") as other:
        seeds = [one.seeds(), other.seeds()]
        labels = [pin_and_shipment_id(one.url), pin_and_shipment_id(other.url)]
        orders = [one.order_ids(), other.order_ids()]
    # Two fresh draws below 2**31 are equal once in two billion starts: not worth a retry.
    assert seeds[0][0] != seeds[1][0], seeds
    assert labels[0][0] != labels[1][0], labels
    assert labels[0][1] != labels[1][1], labels
    assert orders[0] != orders[1], orders
    for (seed, orders_seed), label, order_ids, served in zip(
        seeds, labels, orders, (one, other), strict=True
    ):
        # The message tells the truth: its seeds repeat the run.
        assert served.seed_line == (
            f"# seed {seed}, orders seed {orders_seed} "
            f"(pass --seed {seed} --orders-seed {orders_seed} to repeat this run)"
        )
        assert orders_seed is not None
        assert first_label_with_seed(seed) == label
        assert order_ids == sorted(order["order_id"] for order in generate_orders(3, seed=orders_seed))


def test_an_explicit_seed_is_used_as_given_and_printed() -> None:
    with serving("--seed", "7", "--orders", "2") as served:
        label = pin_and_shipment_id(served.url)
        order_ids = served.order_ids()
    assert served.seed_line == "# seed 7, orders seed 1 (pass --seed 7 --orders-seed 1 to repeat this run)"
    # Exactly the run --seed 7 always gave: ids from seed 7, orders from the orders seed 1.
    assert label == first_label_with_seed(7)
    assert order_ids == sorted(order["order_id"] for order in generate_orders(2, seed=1))


def test_without_orders_only_the_seed_is_printed() -> None:
    with serving("--seed", "31") as served:
        assert served.seed_line == "# seed 31 (pass --seed 31 to repeat this run)"
