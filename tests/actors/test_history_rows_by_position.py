"""The history's hot-path rows are built by position (actors/history.py ``_file_signal``,
state/history/journal.py ``snapshot_row``): each value must land in its own column. Every
field here has a value of its own, so a row whose fields were reordered, or a value put in
a neighbour's place, differs from the row built by keyword."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from actors.history import Frame, _file_signal
from eyetok.messages import (
    Incident,
    IncidentAction,
    JournalSignal,
    Routing,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
)
from state.history.journal import AuditRow, SignalRow, SnapshotRow, snapshot_row

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
JOURNALLED = RECEIVED + timedelta(seconds=1)
OPENED = RECEIVED - timedelta(minutes=5)
RESOLVED = RECEIVED + timedelta(seconds=2)

SIGNAL = Signal(
    signal_id="sig_1",
    tenant="acme",
    source="alertmanager",
    resource="am-resource",
    action="resolved",
    kind=SignalKind.RESOLVE,
    dedup_key="am:abc",
    title="Pod p is crash looping",
    received_at=RECEIVED,
    level="warning",
    cluster_key="tls|AS1|npm",
)
ROUTING = Routing(
    severity=Severity.HIGH, rule="declared-high", sev_channel=SevChannel.SEV2, business_hours=True
)
INCIDENT = Incident(
    incident_id="inc_1",
    tenant="acme",
    dedup_key="am:abc",
    title="Pod p is crash looping (opened)",
    severity=Severity.CRITICAL,
    sev_channel=SevChannel.SEV1,
    rule="fatal",
    status="resolved",
    opened_at=OPENED,
    last_seen_at=RECEIVED,
    event_count=7,
    resolved_at=RESOLVED,
)


def _json(value: msgspec.Struct) -> str:
    return msgspec.json.encode(value).decode()


def test_a_signal_and_its_snapshot_land_in_their_columns() -> None:
    frame = Frame()
    message = JournalSignal(
        signal=SIGNAL,
        routing=ROUTING,
        action=IncidentAction.RESOLVE,
        incident=INCIDENT,
        deliveries=(),
    )
    _file_signal(frame, message, JOURNALLED, 42)
    assert frame.signals == [
        SignalRow(
            signal_id="sig_1",
            tenant="acme",
            source="alertmanager",
            resource="am-resource",
            action="resolved",
            kind="resolve",
            dedup_key="am:abc",
            title="Pod p is crash looping",
            level="warning",
            received_at=RECEIVED,
            journalled_at=JOURNALLED,
            severity="high",
            rule="declared-high",
            sev_channel="SEV2",
            business_hours=True,
            incident_action="resolve",
            incident_id="inc_1",
            cluster_key="tls|AS1|npm",
            signal_json=_json(SIGNAL),
        )
    ]
    assert frame.snapshots == [
        SnapshotRow(
            incident_id="inc_1",
            tenant="acme",
            dedup_key="am:abc",
            status="resolved",
            severity="critical",
            sev_channel="SEV1",
            rule="fatal",
            title="Pod p is crash looping (opened)",
            opened_at=OPENED,
            last_seen_at=RECEIVED,
            resolved_at=RESOLVED,
            event_count=7,
            recorded_at=JOURNALLED,
            seq=42,
            snapshot_json=_json(INCIDENT),
        )
    ]
    # the enums' values as plain strings: the same frame bytes, and DuckDB gets str
    row = frame.signals[0]
    assert {type(v) for v in (row.kind, row.severity, row.sev_channel)} == {str}
    assert {type(v) for v in (frame.snapshots[0].severity, frame.snapshots[0].sev_channel)} == {str}
    assert snapshot_row(INCIDENT, recorded_at=JOURNALLED, seq=42) == frame.snapshots[0]


def test_an_audit_only_signal_lands_in_its_columns() -> None:
    frame = Frame()
    info = Routing(severity=Severity.INFO, rule="info-debug-audit", sev_channel=None,
                   business_hours=False)  # fmt: skip
    message = JournalSignal(
        signal=SIGNAL, routing=info, action=IncidentAction.AUDIT, incident=None, deliveries=()
    )
    _file_signal(frame, message, JOURNALLED, 1)
    assert frame.snapshots == []
    assert frame.signals[0].sev_channel is None
    assert frame.signals[0].incident_id is None
    assert frame.audits == [
        AuditRow(
            logged_at=JOURNALLED,
            tenant="acme",
            event="signal_audit_only",
            detail="am-resource/resolved level=warning rule=info-debug-audit: "
            "Pod p is crash looping",
            incident_id=None,
            signal_id="sig_1",
        )
    ]
