"""Prometheus metrics for node_exporter's textfile collector (``--metrics-file PATH``, or
``FULFIL_METRICS_FILE``), written when a command ends.

A command is a short process (cron runs one every few minutes), so its counters would reset at
every run if each wrote only its own: Prometheus cannot tell five calls from five new calls. So a
counter in the file is cumulative: the previous file is read (with prometheus_client's parser)
and this run's counts are added to it, under an exclusive lock on ``PATH.lock`` so that commands
ending at the same moment on this host add up rather than overwrite each other, and the result is
written atomically (a temporary file renamed over the old one: node_exporter never reads half a
file). Deleting the file starts the counters again from zero, which Prometheus treats as a reset.
Gauges (parcels by carrier status, budgets, pauses) are the state of the database when the
command ended, shared by every host; a gauge this command did not measure keeps its last value.

What a run did is read back from the database (its api_calls rows, by run id) rather than counted
in the request path: the calls of every worker are counted, and a run with no metrics file pays
nothing.

Every metric is listed in METRICS (the README's list is checked against it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

# Seconds: an answer in a few hundred milliseconds is normal, a read timeout is 30 s.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class MetricSpec:
    kind: str
    labels: tuple[str, ...]
    help: str


METRICS: Mapping[str, MetricSpec] = {
    "fulfil_api_calls": MetricSpec(
        COUNTER,
        ("service", "endpoint", "outcome"),
        "Calls to Canada Post and Best Buy (outcome: ok, definitive, not_sent, indeterminate, "
        "rate_limited, error, no_answer)",
    ),
    "fulfil_api_call_duration_seconds": MetricSpec(
        HISTOGRAM, ("service", "endpoint"), "How long each call took, from its first byte to its answer"
    ),
    "fulfil_labels_bought": MetricSpec(
        COUNTER, (), "Labels bought (or adopted after a crash) by labels create"
    ),
    "fulfil_labels_failed": MetricSpec(COUNTER, (), "Orders labels create could not buy a label for"),
    "fulfil_order_results": MetricSpec(
        COUNTER, ("command", "outcome"), "Results of the commands that work order by order, by outcome"
    ),
    "fulfil_tracking_refresh_attempts": MetricSpec(COUNTER, (), "Tracking refreshes asked of Canada Post"),
    "fulfil_tracking_refresh_successes": MetricSpec(
        COUNTER, (), "Tracking refreshes answered (events, or 004: no scan yet)"
    ),
    "fulfil_tracking_refresh_failures": MetricSpec(
        COUNTER, (), "Tracking refreshes that got no usable answer (backed off)"
    ),
    "fulfil_tracking_refresh_held_back": MetricSpec(
        COUNTER, (), "Tracking refreshes not sent (no budget slot in time, Canada Post unreachable)"
    ),
    "fulfil_tracking_show_cache_hits": MetricSpec(
        COUNTER, (), "Parcels tracking show answered from the database"
    ),
    "fulfil_tracking_show_cache_misses": MetricSpec(
        COUNTER, (), "Parcels tracking show asked Canada Post about first"
    ),
    "fulfil_command_runs": MetricSpec(COUNTER, ("command", "exit_code"), "Commands run, by exit code"),
    "fulfil_command_last_run_timestamp_seconds": MetricSpec(
        GAUGE, ("command",), "When the command last ended (Unix time)"
    ),
    "fulfil_command_last_exit_code": MetricSpec(GAUGE, ("command",), "The command's last exit code"),
    "fulfil_command_last_duration_seconds": MetricSpec(GAUGE, ("command",), "How long it last ran"),
    "fulfil_carrier_tracking_parcels": MetricSpec(
        GAUGE, ("carrier_status",), "Parcels with a label, by their carrier status"
    ),
    "fulfil_rate_budget_limit": MetricSpec(GAUGE, ("budget",), "Calls a budget admits per window"),
    "fulfil_rate_budget_calls_in_window": MetricSpec(
        GAUGE, ("budget",), "Calls admitted under the budget in its last window, by every process and host"
    ),
    "fulfil_rate_budget_paused": MetricSpec(
        GAUGE, ("budget",), "1 while a throttle answer has the budget paused for everyone"
    ),
    "fulfil_tracking_refreshes_paused": MetricSpec(GAUGE, (), "1 while `fulfil tracking pause` is in force"),
    "fulfil_tracking_daily_calls": MetricSpec(
        GAUGE, (), "Tracking calls taken today under FULFIL_TRACKING_DAILY_CALLS (Eastern time)"
    ),
}

Labels = tuple[tuple[str, str], ...]


@dataclass
class Histogram:
    buckets: list[float]  # cumulative counts, one per DURATION_BUCKETS bound, then +Inf
    sum: float = 0.0

    @classmethod
    def empty(cls) -> Histogram:
        return cls([0.0] * (len(DURATION_BUCKETS) + 1))

    def observe(self, value: float) -> None:
        for i, bound in enumerate(DURATION_BUCKETS):
            if value <= bound:
                self.buckets[i] += 1
        self.buckets[-1] += 1
        self.sum += value

    def add(self, other: Histogram) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.sum += other.sum


@dataclass
class Metrics:
    """What this process measured, until ``write`` adds it to the file."""

    counters: dict[tuple[str, Labels], float] = field(default_factory=dict)
    gauges: dict[tuple[str, Labels], float] = field(default_factory=dict)
    histograms: dict[tuple[str, Labels], Histogram] = field(default_factory=dict)

    def _key(self, name: str, kind: str, labels: Mapping[str, str]) -> tuple[str, Labels]:
        spec = METRICS[name]
        if spec.kind != kind or set(labels) != set(spec.labels):
            raise ValueError(f"{name} is a {spec.kind} labelled {spec.labels}, not {kind} {sorted(labels)}")
        return name, tuple((label, str(labels[label])) for label in spec.labels)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, COUNTER, labels)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self.gauges[self._key(name, GAUGE, labels)] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.histograms.setdefault(self._key(name, HISTOGRAM, labels), Histogram.empty()).observe(value)

    # --- what commands report --------------------------------------------------------------

    def order_results(self, command: str, counts: Mapping[str, int]) -> None:
        for outcome, count in counts.items():
            self.inc("fulfil_order_results", count, command=command, outcome=outcome)
        if command == "labels create":
            self.inc("fulfil_labels_bought", counts.get("bought", 0) + counts.get("adopted", 0))
            self.inc("fulfil_labels_failed", counts.get("failed", 0))
        if command in ("tracking refresh", "tracking watch"):
            answered = counts.get("refreshed", 0) + counts.get("no_history", 0)
            failed = counts.get("failed", 0)
            self.inc("fulfil_tracking_refresh_attempts", answered + failed)
            self.inc("fulfil_tracking_refresh_successes", answered)
            self.inc("fulfil_tracking_refresh_failures", failed)
            self.inc("fulfil_tracking_refresh_held_back", counts.get("held_back", 0))

    def tracking_show(self, *, hits: int, misses: int) -> None:
        self.inc("fulfil_tracking_show_cache_hits", hits)
        self.inc("fulfil_tracking_show_cache_misses", misses)

    def calls_of_run(self, conn: Any, run_id: str) -> None:
        """Every call of this run (its workers' included), from its api_calls rows."""
        from fulfil.db import query

        for service, endpoint, outcome, duration_ms in conn.execute(
            query("metrics", "calls_of_run"), {"run_id": run_id}
        ).fetchall():
            self.inc("fulfil_api_calls", service=service, endpoint=endpoint, outcome=outcome)
            if duration_ms is not None:
                self.observe(
                    "fulfil_api_call_duration_seconds", duration_ms / 1000, service=service, endpoint=endpoint
                )

    def state_of_database(self, conn: Any) -> None:
        """The gauges every host shares: parcels by carrier status, budgets, pauses."""
        from fulfil.audit.budget import budget_states
        from fulfil.canadapost.tracking import CarrierStatus
        from fulfil.db import query

        parcels = dict(conn.execute(query("metrics", "parcels_by_carrier_status")).fetchall())
        for status in CarrierStatus:
            self.set(
                "fulfil_carrier_tracking_parcels", parcels.get(status.value, 0), carrier_status=status.value
            )
        for budget in budget_states(conn):
            if budget.limit is not None:
                self.set("fulfil_rate_budget_limit", budget.limit, budget=budget.name)
            self.set("fulfil_rate_budget_calls_in_window", budget.calls_in_window, budget=budget.name)
            self.set("fulfil_rate_budget_paused", 1 if budget.paused_until else 0, budget=budget.name)
        paused, daily_calls = conn.execute(query("metrics", "tracking_switches")).fetchone()
        self.set("fulfil_tracking_refreshes_paused", 1 if paused else 0)
        self.set("fulfil_tracking_daily_calls", daily_calls)

    def command_finished(self, command: str, exit_code: int, seconds: float, ended_at: float) -> None:
        self.inc("fulfil_command_runs", command=command, exit_code=str(exit_code))
        self.set("fulfil_command_last_run_timestamp_seconds", ended_at, command=command)
        self.set("fulfil_command_last_exit_code", exit_code, command=command)
        self.set("fulfil_command_last_duration_seconds", seconds, command=command)

    # --- the file ----------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        """Add this process's counts to the file's, set its gauges, and replace the file atomically."""
        from prometheus_client import CollectorRegistry, write_to_textfile

        with _locked(path):
            merged = read_file(path)
            merged.add(self)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Snapshot(merged))
            write_to_textfile(str(path), registry)

    def add(self, other: Metrics) -> None:
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + value
        self.gauges.update(other.gauges)
        for key, histogram in other.histograms.items():
            self.histograms.setdefault(key, Histogram.empty()).add(histogram)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_file(path: Path) -> Metrics:
    """The metrics a previous command wrote to ``path`` (fulfil's own; anything else is dropped,
    and an unreadable file counts as empty: the counters start again, which Prometheus reads as
    a reset)."""
    from prometheus_client.parser import text_string_to_metric_families

    found = Metrics()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return found
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return found
    bounds = {_bound_text(bound): i for i, bound in enumerate(DURATION_BUCKETS)}
    for family in families:
        spec = METRICS.get(family.name)
        if spec is None or spec.kind != family.type:
            continue
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            if set(labels) != set(spec.labels):
                continue
            key = (family.name, tuple((label, labels[label]) for label in spec.labels))
            if spec.kind == COUNTER and sample.name == f"{family.name}_total":
                found.counters[key] = sample.value
            elif spec.kind == GAUGE:
                found.gauges[key] = sample.value
            elif spec.kind == HISTOGRAM:
                histogram = found.histograms.setdefault(key, Histogram.empty())
                if sample.name.endswith("_bucket"):
                    le = sample.labels.get("le", "")
                    index = len(DURATION_BUCKETS) if le == "+Inf" else bounds.get(le)
                    if index is not None:
                        histogram.buckets[index] = sample.value
                elif sample.name.endswith("_sum"):
                    histogram.sum = sample.value
    return found


def _bound_text(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(bound))


class _Snapshot:
    """A prometheus_client collector that yields the merged values as they are."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for name, spec in METRICS.items():
            if spec.kind == COUNTER:
                counter = CounterMetricFamily(name, spec.help, labels=spec.labels)
                for (metric, labels), value in sorted(self.metrics.counters.items()):
                    if metric == name:
                        counter.add_metric([v for _, v in labels], value)
                if counter.samples:
                    yield counter
            elif spec.kind == GAUGE:
                gauge = GaugeMetricFamily(name, spec.help, labels=spec.labels)
                for (metric, labels), value in sorted(self.metrics.gauges.items()):
                    if metric == name:
                        gauge.add_metric([v for _, v in labels], value)
                if gauge.samples:
                    yield gauge
            else:
                histogram = HistogramMetricFamily(name, spec.help, labels=spec.labels)
                for (metric, labels), values in sorted(self.metrics.histograms.items(), key=lambda kv: kv[0]):
                    if metric == name:
                        bounds = [_bound_text(b) for b in DURATION_BUCKETS] + ["+Inf"]
                        histogram.add_metric(
                            [v for _, v in labels], list(zip(bounds, values.buckets, strict=True)), values.sum
                        )
                if histogram.samples:
                    yield histogram


def metrics_path(option: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where to write: --metrics-file, else FULFIL_METRICS_FILE, else nowhere."""
    env = os.environ if environ is None else environ
    raw = option or env.get("FULFIL_METRICS_FILE") or None
    return Path(raw) if raw else None
