"""History rows as a previous incarnation would have journalled them."""

from __future__ import annotations

from datetime import datetime

import msgspec

from eyetok.messages import IncidentAction
from state.history.journal import DeliveryRow, OutcomeRow, SignalRow, delivery_row
from tests.actors.deliveries import deliver


def delivered_signal_rows(tenant: str, n: int, *, at: datetime) -> list[msgspec.Struct]:
    """A signal, its one planned delivery, and that delivery's ``delivered`` outcome."""
    d = deliver(tenant, n, at=at)
    signal = SignalRow(
        signal_id=d.signal_id,
        tenant=tenant,
        source="probe",
        resource="probe",
        action="down",
        kind="alert",
        dedup_key=d.incident.dedup_key,
        title=d.incident.title,
        level="error",
        received_at=at,
        journalled_at=at,
        severity=d.incident.severity.value,
        rule=d.rule,
        sev_channel=None,
        business_hours=False,
        incident_action=IncidentAction.OPEN.value,
        incident_id=d.incident.incident_id,
        cluster_key=None,
        signal_json="{}",
        incident_json=None,
    )
    planned: DeliveryRow = delivery_row(d, origin=d.signal_id)
    outcome = OutcomeRow(
        delivery_id=d.delivery_id,
        outcome="delivered",
        attempts=1,
        latency_ms=5.0,
        finished_at=at,
        detail="",
        external_ref="",
        thread_ref="",
    )
    return [signal, planned, outcome]
