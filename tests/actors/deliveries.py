"""Deliveries as the router plans them, for the tests of the actors between history and
delivery (suppression, budgets)."""

from __future__ import annotations

from datetime import datetime

from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    SevChannel,
    Severity,
)


def deliver(
    tenant: str,
    n: int,
    *,
    at: datetime,
    key: str | None = None,
    severity: Severity = Severity.HIGH,
    sink: str = "hook",
    action: IncidentAction = IncidentAction.OPEN,
    incident: str | None = None,
    signal: str | None = None,
) -> Deliver:
    incident_id = incident or f"inc_{tenant}_{n}"
    return Deliver(
        delivery_id=f"dlv_{tenant}_{n}_{sink}",
        tenant=tenant,
        destination=Destination(
            sink_id=f"{tenant}-{sink}", sink_type="webhook", target="https://hooks.example/x"
        ),
        incident=Incident(
            incident_id=incident_id,
            tenant=tenant,
            dedup_key=f"probe:{tenant}:{n}",
            title=f"{tenant} alert {n}",
            severity=severity,
            sev_channel=SevChannel.SEV2,
            rule="synthetic-check-failure",
            status="open",
            opened_at=at,
            last_seen_at=at,
            event_count=1,
        ),
        action=action,
        rule="synthetic-check-failure",
        planned_at=at,
        received_at=at,
        signal_id=signal or f"sig_{tenant}_{n}",
        cluster_key=key,
    )
