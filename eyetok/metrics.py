"""``/metrics``: what EyeTok counts, in the Prometheus text format (prometheus-client).

Two kinds of figure:

- **counted as it happens** (:data:`METRICS`, its own :class:`CollectorRegistry`): signals
  received by source and outcome (the hooks), routing decisions by severity and SEV
  channel, deliveries by sink type and outcome and their latency, suppression and budget
  events (all seen by the history actor, the one place every fact passes), the journal's
  group-commit latency, the mirror's buffered changes. A hot path pays one dictionary
  lookup and one counter increment: label children are resolved once and kept.
- **read when scraped** (:class:`DaemonGauges`): each actor's inbox depth and restarts,
  read from the daemon's channels and supervisor at scrape time, so nothing on the hot
  path keeps them.

The exposition is optionally behind a bearer token (``EYETOK_METRICS_TOKEN``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from eyetok.messages import (
    AuditRecorded,
    DeliveryFinished,
    HistoryMessage,
    JournalSignal,
    JournalSignals,
    SuppressionRecorded,
)

M = TypeVar("M", bound=MetricWrapperBase)

# delivery latency from receipt to the sink's answer, seconds (Slack's rate limit and a
# retry's backoff put some in tens of seconds)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# one group commit (fsync), seconds
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _Children(Generic[M]):
    """A labelled metric's children by label values, resolved once each (``labels()``
    takes a lock and builds a key on every call)."""

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._known: dict[tuple[str, ...], M] = {}

    def of(self, *values: str) -> M:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self._metric.labels(*values)
        return child


class Metrics:
    """The figures counted as they happen, in their own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.signals = _Children(
            Counter(
                "eyetok_signals_received",
                "Signals that reached a hook, by source and what EyeTok answered "
                "(accepted, duplicate, refused, overloaded)",
                ["source", "outcome"],
                registry=registry,
            )
        )
        self.routing = _Children(
            Counter(
                "eyetok_routing_decisions",
                "Routing decisions journalled, by canonical severity and SEV channel "
                "(none: audit log only)",
                ["severity", "sev_channel"],
                registry=registry,
            )
        )
        self.deliveries = _Children(
            Counter(
                "eyetok_deliveries",
                "Outbox rows finished, by sink type and outcome (delivered, refused, dead...)",
                ["sink_type", "outcome"],
                registry=registry,
            )
        )
        self.delivery_latency = _Children(
            Histogram(
                "eyetok_delivery_latency_seconds",
                "From the signal's receipt to the sink's answer, by sink type",
                ["sink_type"],
                buckets=DELIVERY_BUCKETS,
                registry=registry,
            )
        )
        self.suppression = _Children(
            Counter(
                "eyetok_suppression_events",
                "Cross-tenant suppression clusters fired, cleared or acknowledged",
                ["event"],
                registry=registry,
            )
        )
        self.budget = _Children(
            Counter(
                "eyetok_budget_events",
                "Budget events from the audit log (budget_capped, ...)",
                ["event"],
                registry=registry,
            )
        )
        self.journal_commit = Histogram(
            "eyetok_journal_commit_seconds",
            "One group commit of the history journal (encode, write, fsync)",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self.mirror_buffered = Gauge(
            "eyetok_mirror_buffered_changes",
            "Changes waiting to be written to the Postgres mirror (its lag)",
            registry=registry,
        )

    def exposition(self, *more: CollectorRegistry) -> bytes:
        return generate_latest(self.registry) + b"".join(generate_latest(r) for r in more)


METRICS = Metrics()


def observe_history(message: HistoryMessage) -> None:
    """Count what one message to the history actor records: routing decisions,
    finished deliveries and their latency, suppression and budget events."""
    match message:
        case JournalSignals(items=items):  # a batch hook's chunk: one count per decision
            decisions = collections.Counter(
                (item.routing.severity, item.routing.sev_channel) for item in items
            )
            for (severity, sev_channel), count in decisions.items():
                label = str(sev_channel) if sev_channel else "none"
                METRICS.routing.of(str(severity), label).inc(count)
        case JournalSignal(routing=routing):
            # str() of a StrEnum is its value, without the enum's ``value`` property
            channel = str(routing.sev_channel) if routing.sev_channel else "none"
            METRICS.routing.of(str(routing.severity), channel).inc()
        case DeliveryFinished(sink_type=sink_type, outcome=outcome, latency_ms=latency_ms):
            METRICS.deliveries.of(sink_type, outcome).inc()
            METRICS.delivery_latency.of(sink_type).observe(latency_ms / 1000.0)
        case SuppressionRecorded(event=event):
            METRICS.suppression.of(event).inc()
        case AuditRecorded(event=event) if event.startswith("budget"):
            METRICS.budget.of(event).inc()
        case _:
            pass


def signal_answered(source: str, outcome: str, count: int = 1) -> None:
    """A hook answered ``count`` signals with ``outcome`` (an unknown hook path is not a
    source: its 404 is not counted)."""
    if count > 0:
        METRICS.signals.of(source, outcome).inc(count)


class DaemonGauges(Collector):
    """Each actor's inbox depth and restarts, read when scraped."""

    def __init__(
        self,
        inboxes: Callable[[], Mapping[str, int]],
        restarts: Callable[[], Mapping[str, int]],
    ) -> None:
        self._inboxes = inboxes
        self._restarts = restarts

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "eyetok_inbox_depth", "Messages waiting in an actor's inbox", labels=["actor"]
        )
        for actor, waiting in sorted(self._inboxes().items()):
            depth.add_metric([actor], waiting)
        yield depth
        restarts = CounterMetricFamily(
            "eyetok_actor_restarts",
            "Times the supervisor restarted an actor since the process started",
            labels=["actor"],
        )
        for actor, count in sorted(self._restarts().items()):
            restarts.add_metric([actor], count)
        yield restarts


def daemon_registry(gauges: DaemonGauges) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(gauges)
    return registry
