"""Prometheus metrics of this process."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry()


class Buckets:
    """The observations of one label value of a LatencyHistogram."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class LatencyHistogram:
    """A Prometheus histogram kept as plain counts: observed once per push, it costs a
    bisection and two additions instead of prometheus_client's locked walk of every bucket
    (only the event loop's thread observes, so no lock is needed)."""

    def __init__(self, name: str, documentation: str, label: str,
                 buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(sorted(buckets))
        self._children: dict[str, Buckets] = {}

    def children(self) -> dict[str, Buckets]:
        """The counts of every label value observed so far."""
        return dict(self._children)

    def labels(self, value: str) -> Buckets:
        """The counts of one label value."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = Buckets(self.bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        """The histogram as Prometheus exposes it (cumulative buckets)."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, child in sorted(self._children.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*map(floatToGoString, self.bounds), "+Inf"), child.counts,
                                strict=True):
                cumulative += n
                buckets.append((bound, cumulative))
            family.add_metric([value], buckets, child.total)
        yield family

ORDERS = Counter("alertd_orders_total", "Orders accepted, by action.", ["action"],
                 registry=REGISTRY)
DELIVERIES = Counter("alertd_deliveries_total", "Delivery attempts by service and outcome.",
                     ["service", "outcome"], registry=REGISTRY)
SEND_LATENCY = LatencyHistogram(
    "alertd_send_seconds", "Time of one push request to APNs or FCM.", "service",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REGISTRY.register(SEND_LATENCY)
OUTBOX_DEPTH = Gauge("alertd_outbox_depth", "Deliveries waiting to be sent, by service.",
                     ["service"], registry=REGISTRY)
FEED_ITEMS = Counter("alertd_feed_items_total", "Items taken from a feed.", ["feed"],
                     registry=REGISTRY)
FEED_SKIPPED = Counter("alertd_feed_skipped_total",
                       "Entries of a feed index with neither a link nor inline CAP.", ["feed"],
                       registry=REGISTRY)
FEED_ERRORS = Counter("alertd_feed_errors_total", "Failed polls of a feed.", ["feed"],
                      registry=REGISTRY)
FEED_LAST_SUCCESS = Gauge("alertd_feed_last_success_timestamp_seconds",
                          "When a feed was last polled successfully.", ["feed"],
                          registry=REGISTRY)
COMPUTE_JOBS = Counter(
    "alertd_compute_jobs_total", "CPU-heavy request steps by where they ran and how they ended "
    "(inline, done, timeout, lost, overloaded).", ["outcome"], registry=REGISTRY)
INDEX_POINTS = Gauge("alertd_index_points", "Points in this node's geofence index.",
                     registry=REGISTRY)
RATE_LIMITED = Counter("alertd_rate_limited_total", "Requests refused 429 by a rate limit.",
                       ["limit"], registry=REGISTRY)

JOB_RUNS = Counter("alertd_job_runs_total", "Runs of scheduled jobs, by job and outcome (ok, "
                   "error).", ["job", "outcome"], registry=REGISTRY)
JOB_LAST_SUCCESS = Gauge("alertd_job_last_success_timestamp_seconds",
                         "When a scheduled job last ran to its end on this node.", ["job"],
                         registry=REGISTRY)
JOB_ITEMS = Counter("alertd_job_items_total", "What scheduled jobs did, by job and what (orders "
                    "expired, pushes cancelled, locations dropped, devices erased, rows purged "
                    "per table, tips sent, ...).", ["job", "what"], registry=REGISTRY)
SCHEDULER_LEADER = Gauge("alertd_scheduler_leader", "1 while this node runs the scheduled jobs "
                         "(holds the scheduler's lock), else 0.", registry=REGISTRY)


def render() -> bytes:
    """The exposition text of every metric."""
    return generate_latest(REGISTRY)
