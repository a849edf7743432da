"""`fulfil sandbox serve`: run the Canada Post + Best Buy sandbox in the foreground.

Only typer and the standard library are imported here; the server (and lxml with it) is imported
by the command itself, so `fulfil --help` stays light.
"""

import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fulfil.output import Output
    from fulfil.sandbox.config import SandboxConfig
    from fulfil.sandbox.sandbox import Sandbox

# fulfil.cli.shared's JsonOption, spelled out again: the sandbox imports nothing of fulfil.cli
# (tests/test_import_graph.py), so its --json reads the same and `fulfil --json sandbox serve`
# is read from the root's state (see _output_of).
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]

sandbox_app = typer.Typer(
    help=(
        "A local Canada Post + Best Buy (Mirakl) server that speaks the real wire formats, with "
        "fault injection, for tests and demos that must never touch production.\n\nExamples:\n\n"
        "    fulfil sandbox serve --port 8765 --orders 5\n"
        "    fulfil sandbox serve --port 0 --cp-error-rate 0.1 --seed 7"
    ),
    no_args_is_help=True,
)


@sandbox_app.callback()
def sandbox_group() -> None:
    """A local Canada Post + Best Buy (Mirakl) server for tests and demos.

    Example:

        fulfil sandbox serve --port 8765 --orders 5
    """
    # A callback keeps `sandbox` a group, so `serve` is a subcommand even while it is the only one.


CP = "Canada Post faults"
BB = "Best Buy faults"
RATE = "Probability per request, 0 to 1."
THROTTLE = "Throttling"
TRACKING = "Tracking"
# Repeated here, not imported: the scenarios live in sandbox.tracking, which pulls in lxml.
SCENARIO_NAMES = "delivered, attempted, exception, returned, never_scanned"
# The orders seed of a run given --seed but no --orders-seed: the one `serve` always used, so an
# explicit --seed still repeats a run exactly as it did before seeds became random by default.
ORDERS_SEED_WITH_SEED = 1
SEED_LIMIT = 2**31


@sandbox_app.command(
    "serve",
    help=(
        "Serve both APIs on one port until Ctrl-C or SIGTERM, then exit 0. Point fulfil at the printed "
        "base URL (FULFIL_CANADAPOST_BASE_URL and FULFIL_BESTBUY_BASE_URL). Credentials are fulfil's own "
        "FULFIL_CANADAPOST_USERNAME / _PASSWORD / _CUSTOMER_NUMBER and FULFIL_BESTBUY_API_KEY when set, "
        "fake printed defaults otherwise. GET /_sandbox/state shows what happened; POST /_sandbox/reset "
        "starts over. With --json, stdout is one JSON object once it listens (url, port, seed, the "
        "environment to export) and one more when it stops.\n\nExamples:\n\n"
        "    fulfil sandbox serve --port 8765 --orders 5\n"
        "    fulfil sandbox serve --port 0 --json > sandbox.jsonl &\n"
        "    fulfil sandbox serve --port 8765 --orders 5 --problem-orders 1 --seed 7 \\\n"
        "        --cp-drop-rate 0.2 --bb-rate-limit-rate 0.1 \\\n"
        "        --tracking-scenario 261250893-A=returned"
    ),
)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.", metavar="ADDRESS")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535, metavar="PORT")
    ] = 8765,
    seed: Annotated[
        int | None,
        typer.Option(
            help=(
                "Seed for ids and faults: same seed + same calls = same run. "
                "Default: a fresh random one, printed at start."
            ),
            show_default=False,
            metavar="SEED",
        ),
    ] = None,
    orders: Annotated[
        int, typer.Option(help="Best Buy orders to generate at start.", min=0, metavar="N")
    ] = 0,
    orders_seed: Annotated[
        int | None,
        typer.Option(
            help=f"Seed of the generated orders. Default: {ORDERS_SEED_WITH_SEED} with --seed, else random.",
            show_default=False,
            metavar="SEED",
        ),
    ] = None,
    orders_state: Annotated[
        str,
        typer.Option(
            help="State of generated orders: WAITING_ACCEPTANCE, SHIPPING or SHIPPED.", metavar="STATE"
        ),
    ] = "SHIPPING",
    problem_orders: Annotated[
        int,
        typer.Option(
            help="How many generated orders carry an address Canada Post refuses.", min=0, metavar="N"
        ),
    ] = 0,
    xsd_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="FULFIL_SANDBOX_XSD_DIR",
            help="Directory of Canada Post's XSDs: requests and answers are also checked against them.",
            metavar="DIR",
        ),
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            help="Simulated tracking seconds per real second (3600: an hour a second).", metavar="FACTOR"
        ),
    ] = 3600.0,
    debit_delay: Annotated[
        float,
        typer.Option(
            help="Seconds an accepted order waits for its debit before SHIPPING.", min=0, metavar="SECONDS"
        ),
    ] = 0.0,
    json_mode: JsonOption = False,
    tracking_scenario: Annotated[
        list[str] | None,
        typer.Option(
            help=(
                "ORDER=SCENARIO: the parcels of this order (its customer-ref-1) follow this tracking "
                f"scenario ({SCENARIO_NAMES}). Repeatable."
            ),
            metavar="ORDER=SCENARIO",
            rich_help_panel=TRACKING,
        ),
    ] = None,
    tracking_default: Annotated[
        str,
        typer.Option(
            help=(
                "Scenario of every other parcel; mix: one per PIN by a stable hash, mostly delivered "
                "(70%), some attempted, exception (10% each), returned, never_scanned (5% each)."
            ),
            metavar="SCENARIO|mix",
            rich_help_panel=TRACKING,
        ),
    ] = "mix",
    tracking_no_history_hours: Annotated[
        float,
        typer.Option(
            help="Simulated hours after a label during which tracking answers 004 (No Pin History).",
            min=0,
            rich_help_panel=TRACKING,
            metavar="HOURS",
        ),
    ] = 1.0,
    cp_latency_ms: Annotated[
        float, typer.Option(help="Added latency, ms.", rich_help_panel=CP, metavar="MS")
    ] = 0.0,
    cp_jitter_ms: Annotated[
        float, typer.Option(help="Random extra latency up to, ms.", rich_help_panel=CP, metavar="MS")
    ] = 0.0,
    cp_error_rate: Annotated[
        float, typer.Option(help=f"500/502/503 answers. {RATE}", rich_help_panel=CP, metavar="P")
    ] = 0.0,
    cp_gateway_rate: Annotated[
        float, typer.Option(help=f"HTML 502/504 gateway pages. {RATE}", rich_help_panel=CP, metavar="P")
    ] = 0.0,
    cp_rate_limit_rate: Annotated[
        float,
        typer.Option(help=f'"Rejected by SLM Monitor" (HTTP 503). {RATE}', rich_help_panel=CP, metavar="P"),
    ] = 0.0,
    cp_drop_rate: Annotated[
        float,
        typer.Option(help=f"Perform the call, then lose the answer. {RATE}", rich_help_panel=CP, metavar="P"),
    ] = 0.0,
    cp_drop_mode: Annotated[
        str,
        typer.Option(
            help="close: drop the connection; late: answer after --cp-late-answer-s.",
            rich_help_panel=CP,
            metavar="MODE",
        ),
    ] = "close",
    cp_late_answer_s: Annotated[
        float, typer.Option(help="Delay of a late answer, s.", rich_help_panel=CP, metavar="SECONDS")
    ] = 65.0,
    cp_truncate_rate: Annotated[
        float, typer.Option(help=f"Bodies cut short. {RATE}", rich_help_panel=CP, metavar="P")
    ] = 0.0,
    cp_garbage_rate: Annotated[
        float, typer.Option(help=f"Garbage bodies. {RATE}", rich_help_panel=CP, metavar="P")
    ] = 0.0,
    cp_label_not_ready: Annotated[
        int,
        typer.Option(
            help="First K fetches of every label answer 202 (not ready).",
            min=0,
            rich_help_panel=CP,
            metavar="K",
        ),
    ] = 0,
    bb_latency_ms: Annotated[
        float, typer.Option(help="Added latency, ms.", rich_help_panel=BB, metavar="MS")
    ] = 0.0,
    bb_jitter_ms: Annotated[
        float, typer.Option(help="Random extra latency up to, ms.", rich_help_panel=BB, metavar="MS")
    ] = 0.0,
    bb_error_rate: Annotated[
        float, typer.Option(help=f"500/502/503 answers. {RATE}", rich_help_panel=BB, metavar="P")
    ] = 0.0,
    bb_gateway_rate: Annotated[
        float, typer.Option(help=f"HTML 502/504 gateway pages. {RATE}", rich_help_panel=BB, metavar="P")
    ] = 0.0,
    bb_rate_limit_rate: Annotated[
        float, typer.Option(help=f"429 with Retry-After. {RATE}", rich_help_panel=BB, metavar="P")
    ] = 0.0,
    bb_retry_after: Annotated[
        int, typer.Option(help="Retry-After seconds of a 429.", min=0, rich_help_panel=BB, metavar="SECONDS")
    ] = 2,
    bb_drop_rate: Annotated[
        float,
        typer.Option(help=f"Perform the call, then lose the answer. {RATE}", rich_help_panel=BB, metavar="P"),
    ] = 0.0,
    bb_drop_mode: Annotated[
        str,
        typer.Option(
            help="close: drop the connection; late: answer after --bb-late-answer-s.",
            rich_help_panel=BB,
            metavar="MODE",
        ),
    ] = "close",
    bb_late_answer_s: Annotated[
        float, typer.Option(help="Delay of a late answer, s.", rich_help_panel=BB, metavar="SECONDS")
    ] = 65.0,
    bb_truncate_rate: Annotated[
        float, typer.Option(help=f"Bodies cut short. {RATE}", rich_help_panel=BB, metavar="P")
    ] = 0.0,
    bb_garbage_rate: Annotated[
        float, typer.Option(help=f"Garbage bodies. {RATE}", rich_help_panel=BB, metavar="P")
    ] = 0.0,
    cp_throttle: Annotated[
        bool,
        typer.Option(
            help=(
                'Throttle like Canada Post: per API key and group of calls in a rolling window, "Rejected '
                'by SLM Monitor" (HTTP 503) over the limit, then the group is blocked for the window.'
            ),
            rich_help_panel=THROTTLE,
        ),
    ] = True,
    cp_throttle_limit: Annotated[
        list[str] | None,
        typer.Option(
            help=(
                "GROUP=CALLS per window instead of Canada Post's default (A 646: create/get shipment, "
                "artifact; B 468: void, refund; C 730: get shipments; E 20: tracking). Repeatable."
            ),
            metavar="GROUP=CALLS",
            rich_help_panel=THROTTLE,
        ),
    ] = None,
    cp_throttle_scale: Annotated[
        float,
        typer.Option(
            help="Multiply Canada Post's default limits (rounded down, at least 1).",
            rich_help_panel=THROTTLE,
            metavar="FACTOR",
        ),
    ] = 1.0,
    cp_throttle_window_s: Annotated[
        float,
        typer.Option(
            help="Canada Post's rolling window and block, s.", rich_help_panel=THROTTLE, metavar="SECONDS"
        ),
    ] = 60.0,
    bb_throttle_limit: Annotated[
        list[str] | None,
        typer.Option(
            help=(
                "ENDPOINT=CALLS/SECONDS, e.g. OR11=1/60: beyond it, and before a 429's Retry-After has "
                "elapsed, Best Buy answers 429 with Retry-After. Repeatable."
            ),
            metavar="ENDPOINT=CALLS/SECONDS",
            rich_help_panel=THROTTLE,
        ),
    ] = None,
) -> None:
    from fulfil.sandbox.config import DEFAULT_CREDENTIALS, SandboxConfig
    from fulfil.sandbox.faults import Faults
    from fulfil.sandbox.sandbox import Sandbox
    from fulfil.sandbox.throttle import (
        EndpointLimits,
        GroupLimits,
        parse_endpoint_limit,
        parse_group_limit,
    )

    out = _output_of(ctx, json_mode)
    try:
        canadapost_faults = Faults(
            latency_ms=cp_latency_ms,
            jitter_ms=cp_jitter_ms,
            error_rate=cp_error_rate,
            gateway_rate=cp_gateway_rate,
            rate_limit_rate=cp_rate_limit_rate,
            drop_rate=cp_drop_rate,
            drop_mode=cp_drop_mode,
            late_answer_s=cp_late_answer_s,
            truncate_rate=cp_truncate_rate,
            garbage_rate=cp_garbage_rate,
            label_not_ready_fetches=cp_label_not_ready,
        )
        bestbuy_faults = Faults(
            latency_ms=bb_latency_ms,
            jitter_ms=bb_jitter_ms,
            error_rate=bb_error_rate,
            gateway_rate=bb_gateway_rate,
            rate_limit_rate=bb_rate_limit_rate,
            retry_after_s=bb_retry_after,
            drop_rate=bb_drop_rate,
            drop_mode=bb_drop_mode,
            late_answer_s=bb_late_answer_s,
            truncate_rate=bb_truncate_rate,
            garbage_rate=bb_garbage_rate,
        )
        seed, orders_seed = choose_seeds(seed, orders_seed)
        overrides: dict[str, object] = {
            "seed": seed,
            "time_scale": time_scale,
            "tracking_scenarios": _scenario_choices(tracking_scenario or ()),
            "tracking_default": tracking_default,
            "tracking_no_history_hours": tracking_no_history_hours,
            "debit_delay_s": debit_delay,
            "canadapost_faults": canadapost_faults,
            "bestbuy_faults": bestbuy_faults,
            "generated_orders": orders,
            "orders_seed": orders_seed,
            "orders_state": orders_state,
            "problem_orders": problem_orders,
            "canadapost_limits": GroupLimits(
                enabled=cp_throttle,
                limits=dict(parse_group_limit(text) for text in cp_throttle_limit or ()),
                scale=cp_throttle_scale,
                window_s=cp_throttle_window_s,
            ),
            "bestbuy_limits": EndpointLimits(
                dict(parse_endpoint_limit(text) for text in bb_throttle_limit or ())
            ),
        }
        if xsd_dir is not None:
            overrides["xsd_dir"] = xsd_dir
        config = SandboxConfig.from_environment(**overrides)  # type: ignore[arg-type]
        sandbox = Sandbox(config, host=host, port=port)
    except (ValueError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from None
    try:
        sandbox.start()
    except OSError as error:
        out.warn(f"fulfil: error: cannot listen on {host}:{port}: {error.strerror or error}")
        raise typer.Exit(1) from None

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = sandbox.base_url
        if out.json_mode:
            listening = _written(lambda: out.record(_listening_record(sandbox, config, DEFAULT_CREDENTIALS)))
        else:
            lines = "\n".join(_listening_lines(url, config, DEFAULT_CREDENTIALS))
            listening = _written(lambda: typer.echo(lines))
        if not listening:
            stop.set()  # no one is reading: no one would learn where to find the sandbox
        while not stop.wait(0.2):
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sandbox.stop()
    if out.json_mode:
        _written(lambda: out.record({"event": "stopped", "url": url}))
    else:
        _written(lambda: typer.echo("fulfil sandbox stopped"))


def _output_of(ctx: typer.Context, json_mode: bool) -> "Output":
    """Where the command writes: the `fulfil` root's output when it runs under it (so the root's
    --json counts too), else one of its own (the sandbox's app run alone); --json turns on JSON."""
    from fulfil.output import Output

    output = getattr(ctx.obj, "output", None)
    if not isinstance(output, Output):
        output = Output()
    if json_mode:
        output.json_mode = True
    return output


def _written(write: Callable[[], object]) -> bool:
    """Run ``write`` (to stdout); False when the reader went away (`… --json | head -1`), which is
    not an error of ours: stdout then goes to /dev/null, so the interpreter's last flush at exit
    does not complain on stderr."""
    try:
        write()
    except BrokenPipeError:
        _silence_stdout()
        return False
    return True


def _listening_lines(url: str, config: "SandboxConfig", default_credentials: dict[str, str]) -> list[str]:
    """What a person reads once the sandbox listens: the `export` lines to point fulfil at it and
    `#` lines on what it does."""
    lines = [
        f"fulfil sandbox listening on {url}",
        f"export FULFIL_CANADAPOST_BASE_URL={url}",
        f"export FULFIL_BESTBUY_BASE_URL={url}",
    ]
    if config.uses_default_credentials():
        lines.extend(f"export {name}={value}" for name, value in default_credentials.items())
    else:
        lines.append("# credentials: the FULFIL_CANADAPOST_* and FULFIL_BESTBUY_API_KEY of this environment")
    if config.xsd_dir is not None:
        lines.append(f"# checking requests and answers against the XSDs in {config.xsd_dir}")
    lines.append(f"# tracking: {_tracking_banner(config.tracking_default, config.tracking_no_history_hours)}")
    lines.extend(
        f"# tracking of order {order_id}: {name}" for order_id, name in config.tracking_scenarios.items()
    )
    limits = config.canadapost_limits
    if limits.enabled:
        groups = ", ".join(f"{group} {calls}" for group, calls in limits.per_group().items())
        lines.append(f"# Canada Post throttles per {limits.window_s:g} s: {groups}")
    for endpoint, endpoint_limit in config.bestbuy_limits.limits.items():
        lines.append(
            f"# Best Buy {endpoint}: at most {endpoint_limit.calls} per {endpoint_limit.window_s:g} s, "
            "then 429 with Retry-After"
        )
    lines.append(f"# {_seed_banner(config.seed, config.orders_seed if config.generated_orders else None)}")
    lines.append(f"# state: curl {url}/_sandbox/state    stop: Ctrl-C")
    return lines


def _listening_record(
    sandbox: "Sandbox", config: "SandboxConfig", default_credentials: dict[str, str]
) -> dict[str, object]:
    """The same facts as `_listening_lines`, as one JSON object for a script (`--json`)."""
    url = sandbox.base_url
    environment = {"FULFIL_CANADAPOST_BASE_URL": url, "FULFIL_BESTBUY_BASE_URL": url}
    default_credentials_used = config.uses_default_credentials()
    if default_credentials_used:
        environment.update(default_credentials)
    limits = config.canadapost_limits
    return {
        "event": "listening",
        "url": url,
        "host": sandbox.host,
        "port": sandbox.port,
        "seed": config.seed,
        # As the banner: the orders seed only when orders were generated.
        "orders": config.generated_orders,
        "orders_seed": config.orders_seed if config.generated_orders else None,
        "environment": environment,
        # "sandbox": the printed defaults (in "environment"); "environment": fulfil's own variables.
        "credentials": "sandbox" if default_credentials_used else "environment",
        "xsd_dir": config.xsd_dir,
        "tracking": {
            "default": config.tracking_default,
            "no_history_hours": config.tracking_no_history_hours,
            "orders": dict(config.tracking_scenarios),
        },
        "canadapost_throttle": (
            {"window_s": limits.window_s, "groups": limits.per_group()} if limits.enabled else None
        ),
        "bestbuy_throttle": {
            endpoint: {"calls": limit.calls, "window_s": limit.window_s}
            for endpoint, limit in config.bestbuy_limits.limits.items()
        },
        "state_url": f"{url}/_sandbox/state",
    }


def _silence_stdout() -> None:
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def choose_seeds(seed: int | None, orders_seed: int | None) -> tuple[int, int]:
    """The (seed, orders seed) of a run: those given; without --seed a fresh random seed, and
    without --orders-seed a fresh random one too unless --seed was given (then 1, as always).

    Every run started without --seed hands out its own PINs and shipment ids (and other orders), so
    two runs one after the other against one fulfil database do not collide; the seeds are printed,
    and passing them back repeats the run.
    """
    given = seed is not None
    if seed is None:
        seed = _random_seed()
    if orders_seed is None:
        orders_seed = ORDERS_SEED_WITH_SEED if given else _random_seed()
    return seed, orders_seed


def _random_seed() -> int:
    import secrets  # here, not at the top: `fulfil --help` imports this module

    return secrets.randbelow(SEED_LIMIT)


def _seed_banner(seed: int, orders_seed: int | None) -> str:
    """Which seeds the run uses and how to repeat it; the orders seed only when orders were made."""
    if orders_seed is None:
        return f"seed {seed} (pass --seed {seed} to repeat this run)"
    return (
        f"seed {seed}, orders seed {orders_seed} "
        f"(pass --seed {seed} --orders-seed {orders_seed} to repeat this run)"
    )


def _scenario_choices(texts: Iterable[str]) -> dict[str, str]:
    """The --tracking-scenario options as order id -> scenario; an order named twice is refused."""
    from fulfil.sandbox.tracking import parse_scenario_choice

    chosen: dict[str, str] = {}
    for text in texts:
        order_id, name = parse_scenario_choice(text)
        if order_id in chosen and chosen[order_id] != name:
            raise ValueError(
                f"order {order_id!r} is given two tracking scenarios: {chosen[order_id]}, {name}"
            )
        chosen[order_id] = name
    return chosen


def _tracking_banner(default: str, no_history_hours: float) -> str:
    from fulfil.sandbox.tracking import MIX, SCENARIOS

    if default == MIX:
        parcels = "a mix of scenarios, by PIN"
    else:
        parcels = f"every parcel {default} ({SCENARIOS[default].summary})"
    if no_history_hours:
        return f"{parcels}; 004 (No Pin History) for {no_history_hours:g} simulated h after a label"
    return parcels
