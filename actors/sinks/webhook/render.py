"""Webhook payloads, pure: an incident and what happened -> one Standard Webhooks event.

Every payload carries exactly one event::

    {"type": "incident.opened", "timestamp": "2025-06-01T09:30:00Z",
     "data": {"incident_id": ..., "tenant": ..., "title": ..., ...}}

``type`` is ``incident.opened``, ``incident.updated``, ``incident.resolved`` or
``eyetok.notice`` (an operator notice: ``data`` is ``{"text": ...}``, the whole message).
``timestamp`` is when the event happened (not when it is delivered: that is the
``webhook-timestamp`` header). Every string that came from upstream goes through
:func:`eyetok.guard.scrub`, so an IP literal in a title never leaves EyeTok.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from eyetok.guard import scrub
from eyetok.messages import Deliver, IncidentAction, SevChannel, Severity

EventType = Literal["incident.opened", "incident.updated", "incident.resolved", "eyetok.notice"]

# The router never plans deliveries for audit-only signals; if one comes, it is an update.
_EVENT_TYPES: dict[IncidentAction, EventType] = {
    IncidentAction.OPEN: "incident.opened",
    IncidentAction.UPDATE: "incident.updated",
    IncidentAction.RESOLVE: "incident.resolved",
    IncidentAction.AUDIT: "incident.updated",
}


class IncidentData(msgspec.Struct, frozen=True, kw_only=True):
    incident_id: str
    tenant: str
    title: str
    severity: Severity
    sev_channel: SevChannel | None
    status: str
    rule: str
    event_count: int
    opened_at: str
    last_seen_at: str
    resolved_at: str | None
    url: str
    environment: str
    project: str


class NoticeData(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One event, as the JSON body of one POST."""

    type: EventType
    timestamp: str
    data: IncidentData | NoticeData
    late: str | None = None  # held for the sink's verification: how late, and why


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as the spec's examples write it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_again(moment: datetime, written: datetime, text: str) -> str:
    """``iso(moment)``, reusing ``text`` (``iso(written)``) when both are the same
    instant: aware datetimes that compare equal are one instant in UTC (a naive one is
    written afresh)."""
    if moment.tzinfo is not None and written.tzinfo is not None and moment == written:
        return text
    return iso(moment)


def render(deliver: Deliver) -> WebhookPayload:
    if deliver.notice is not None:
        return WebhookPayload(
            type="eyetok.notice",
            timestamp=iso(deliver.planned_at),
            data=NoticeData(text=scrub(deliver.notice)),
            late=deliver.late,
        )
    incident = deliver.incident
    # an instant written once: the event's timestamp is one of the incident's, and a
    # new incident was last seen when it opened
    opened_at = iso(incident.opened_at)
    last_seen_at = _iso_again(incident.last_seen_at, incident.opened_at, opened_at)
    resolved_at = (
        _iso_again(incident.resolved_at, incident.last_seen_at, last_seen_at)
        if incident.resolved_at
        else None
    )
    match deliver.action:
        case IncidentAction.OPEN:
            timestamp = opened_at
        case IncidentAction.RESOLVE:
            timestamp = resolved_at or last_seen_at
        case IncidentAction.UPDATE | IncidentAction.AUDIT:
            timestamp = last_seen_at
    return WebhookPayload(
        type=_EVENT_TYPES[deliver.action],
        timestamp=timestamp,
        data=IncidentData(
            incident_id=incident.incident_id,
            tenant=incident.tenant,
            title=scrub(incident.title),
            severity=incident.severity,
            sev_channel=incident.sev_channel,
            status=incident.status,
            rule=deliver.rule,
            event_count=incident.event_count,
            opened_at=opened_at,
            last_seen_at=last_seen_at,
            resolved_at=resolved_at,
            url=scrub(incident.url),
            environment=scrub(incident.environment),
            project=scrub(incident.project),
        ),
        late=deliver.late,
    )
