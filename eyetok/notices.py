"""Notices EyeTok writes itself: to the operator (a cluster fired, a tenant hit its cap)
or to a tenant (its hourly digest). Each is a :class:`Deliver` whose ``notice`` text is
sent instead of an incident; its incident is a stand-in that names what it is about, so
every sink's renderer, the payload guard and the outbox treat it like any delivery.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from eyetok.messages import Deliver, Destination, Incident, IncidentAction, Severity


def notice_id(*parts: str) -> str:
    """A stable delivery id for a notice: the same cause never makes two notices."""
    return "dlv_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def notice(
    *,
    delivery_id: str,
    tenant: str,
    destination: Destination,
    about: str,
    title: str,
    text: str,
    at: datetime,
    rule: str,
    severity: Severity = Severity.INFO,
    acknowledge: str | None = None,
) -> Deliver:
    """``about`` is the stand-in incident id (a cluster id, a budget window)."""
    incident = Incident(
        incident_id=about,
        tenant=tenant,
        dedup_key=about,
        title=title,
        severity=severity,
        sev_channel=None,
        rule=rule,
        status="open",
        opened_at=at,
        last_seen_at=at,
        event_count=1,
    )
    return Deliver(
        delivery_id=delivery_id,
        tenant=tenant,
        destination=destination,
        incident=incident,
        action=IncidentAction.OPEN,
        rule=rule,
        planned_at=at,
        received_at=at,
        notice=text,
        acknowledge=acknowledge,
    )
