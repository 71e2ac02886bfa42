"""What the history actor's messages count, in the exposition prometheus_client parses."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from eyetok.messages import (
    AuditRecorded,
    DeliveryFinished,
    IncidentAction,
    JournalSignal,
    JournalSignals,
    Routing,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
    SuppressionRecorded,
)
from eyetok.metrics import METRICS, DaemonGauges, daemon_registry, observe_history

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _value(name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(METRICS.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_deliveries_suppression_and_budget_events_are_counted() -> None:
    delivered = ("eyetok_deliveries_total", {"sink_type": "webhook", "outcome": "dead"})
    latency = ("eyetok_delivery_latency_seconds_count", {"sink_type": "webhook"})
    slow = ("eyetok_delivery_latency_seconds_bucket", {"sink_type": "webhook", "le": "1.0"})
    fired = ("eyetok_suppression_events_total", {"event": "fired"})
    capped = ("eyetok_budget_events_total", {"event": "budget_capped"})
    before = [_value(n, **labels) for n, labels in (delivered, latency, slow, fired, capped)]
    dead = {"delivery_id": "dlv_1", "tenant": "acme", "incident_id": "inc_1", "sink_id": "hook"}
    dead |= {"sink_type": "webhook", "target": "https://example.invalid/", "outcome": "dead"}
    observe_history(
        DeliveryFinished(
            **dead, action=IncidentAction.OPEN, attempts=5, latency_ms=2500.0, finished_at=AT
        )
    )
    observe_history(SuppressionRecorded(cluster_id="cl_1", event="fired", at=AT, cluster_key="k"))
    observe_history(AuditRecorded(at=AT, tenant="acme", event="budget_capped", detail="cap"))
    observe_history(AuditRecorded(at=AT, tenant="acme", event="tenant_token_issued", detail=""))
    after = [_value(n, **labels) for n, labels in (delivered, latency, slow, fired, capped)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 0, 1, 1]


def test_inbox_depths_and_restarts_are_read_when_scraped() -> None:
    depths = {"history": 3, "router": 0}
    registry = daemon_registry(DaemonGauges(lambda: depths, lambda: {"router": 2}))
    text = METRICS.exposition(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("eyetok_inbox_depth", (("actor", "history"),))] == 3
    assert samples[("eyetok_actor_restarts_total", (("actor", "router"),))] == 2
    depths["history"] = 0
    text = METRICS.exposition(registry).decode()
    assert 'eyetok_inbox_depth{actor="history"} 0.0' in text


def test_a_chunk_of_signals_counts_each_routing_decision() -> None:
    def journalled(n: int, severity: Severity, channel: SevChannel | None) -> JournalSignal:
        signal = Signal(
            signal_id=f"sig_{n}",
            tenant="acme",
            source="alertmanager",
            resource="alertmanager",
            action="firing",
            kind=SignalKind.ALERT,
            dedup_key=f"am:{n}",
            title="t",
            received_at=AT,
        )
        routing = Routing(severity=severity, rule="r", sev_channel=channel, business_hours=True)
        return JournalSignal(
            signal=signal, routing=routing, action=IncidentAction.OPEN, incident=None, deliveries=()
        )

    low = ("eyetok_routing_decisions_total", {"severity": "low", "sev_channel": "SEV3"})
    info = ("eyetok_routing_decisions_total", {"severity": "info", "sev_channel": "none"})
    before = [_value(n, **labels) for n, labels in (low, info)]
    chunk = (
        journalled(1, Severity.LOW, SevChannel.SEV3),
        journalled(2, Severity.INFO, None),
        journalled(3, Severity.LOW, SevChannel.SEV3),
    )
    observe_history(JournalSignals(items=chunk))
    observe_history(journalled(4, Severity.LOW, SevChannel.SEV3))  # one on its own
    after = [_value(n, **labels) for n, labels in (low, info)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3.0, 1.0]
