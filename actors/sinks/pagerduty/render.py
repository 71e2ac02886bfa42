"""PagerDuty Events API v2 events, pure: an incident and what happened -> one event.

- an opened incident is a ``trigger``; so is an update, because PagerDuty folds a trigger
  with an open alert's ``dedup_key`` into that alert (the update carries the latest summary);
- an incident whose status is ``acknowledged`` sends ``acknowledge``; a resolve (or a
  ``resolved`` status) sends ``resolve``. Both carry only the routing and dedup keys, as the
  API asks;
- the ``dedup_key`` is EyeTok's, stable and tenant-scoped: ``eyetok:{tenant}:{incident_id}``
  (hashed if it would pass PagerDuty's 255 characters), so a retry after a crash folds into
  the same alert instead of paging twice;
- an operator notice (``Deliver.notice``) is a trigger whose summary is the notice text,
  keyed by its delivery id.

Every upstream-derived string is scrubbed of IP literals; the summary is cut to 1,024
characters. One event per body: the Events API has no batches.
"""

from __future__ import annotations

import hashlib
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from actors.sinks.pagerduty.config import CLIENT_NAME, MAX_DEDUP_KEY, MAX_SUMMARY
from eyetok.guard import scrub
from eyetok.messages import Deliver, Incident, IncidentAction, Severity

__all__ = [
    "EventAction",
    "PagerDutyDetails",
    "PagerDutyEvent",
    "PagerDutyLink",
    "PagerDutyPayload",
    "PdSeverity",
    "dedup_key",
    "notice_dedup_key",
    "pd_severity",
    "render",
]

EventAction = Literal["trigger", "acknowledge", "resolve"]
PdSeverity = Literal["critical", "error", "warning", "info"]


class PagerDutyDetails(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``payload.custom_details``: what EyeTok knows that PagerDuty has no field for."""

    incident_id: str
    rule: str
    sev_channel: str  # SEV1 | SEV2 | SEV2.5 | SEV3 | audit
    event_count: int
    severity: str  # EyeTok's own severity (critical | high | medium | low | info)
    escalation_recommended: str | None = None
    delivery_id: str | None = None  # operator notices only
    kind: str = "incident"  # incident | operator_notice
    late: str | None = None  # held for the sink's verification: how late, and why


class PagerDutyPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The PD-CEF ``payload`` of a trigger: summary, source and severity are required."""

    summary: str
    source: str
    severity: PdSeverity
    timestamp: str | None = None  # ISO 8601
    component: str | None = None
    group: str | None = None
    class_: str | None = msgspec.field(default=None, name="class")
    custom_details: PagerDutyDetails | None = None


class PagerDutyLink(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    href: str
    text: str | None = None


class PagerDutyEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One Events API v2 body (``POST /v2/enqueue``)."""

    routing_key: str
    event_action: EventAction
    dedup_key: str
    payload: PagerDutyPayload | None = None  # triggers only
    links: tuple[PagerDutyLink, ...] = ()
    client: str | None = None
    client_url: str | None = None


def pd_severity(severity: Severity) -> PdSeverity:
    """EyeTok's severity on PagerDuty's four-step scale."""
    match severity:
        case Severity.CRITICAL:
            return "critical"
        case Severity.HIGH:
            return "error"
        case Severity.MEDIUM | Severity.LOW:
            return "warning"
        case Severity.INFO:
            return "info"


def _bounded_key(text: str, *, tenant: str, kind: str) -> str:
    key = f"eyetok:{tenant}:{text}"
    if len(key) <= MAX_DEDUP_KEY and scrub(key) == key:
        return key
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
    return f"eyetok:{tenant}:{kind}:{digest}"


def dedup_key(incident: Incident) -> str:
    """The incident's PagerDuty dedup key: stable for the incident's life, tenant-scoped."""
    return _bounded_key(incident.incident_id, tenant=incident.tenant, kind="h")


def notice_dedup_key(deliver: Deliver) -> str:
    """An operator notice's dedup key: one alert per notice (its delivery id)."""
    return _bounded_key(f"notice:{deliver.delivery_id}", tenant=deliver.tenant, kind="notice")


def _clean(text: str) -> str | None:
    """Scrubbed upstream text, or None when there is nothing to say."""
    cleaned = scrub(text).strip()
    return cleaned or None


def _summary(text: str) -> str:
    text = " ".join(scrub(text).split()) or "(untitled incident)"
    if len(text) > MAX_SUMMARY:
        text = text[: MAX_SUMMARY - 1] + "…"
    return text


def _issue_links(url: str) -> tuple[PagerDutyLink, ...]:
    """A link to the upstream issue, if it is an http(s) URL without an IP literal (a
    scrubbed URL would not lead anywhere, so it is left out instead)."""
    if not url or scrub(url) != url:
        return ()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ()
    return (PagerDutyLink(href=url, text="Issue"),)


def _event_action(deliver: Deliver) -> EventAction:
    status = deliver.incident.status
    match deliver.action:
        case IncidentAction.RESOLVE:
            return "resolve"
        case IncidentAction.OPEN | IncidentAction.AUDIT:
            return "trigger"
        case IncidentAction.UPDATE:
            if status == "resolved":
                return "resolve"
            if status == "acknowledged":
                return "acknowledge"
            return "trigger"


def _incident_summary(deliver: Deliver) -> str:
    incident = deliver.incident
    label = incident.sev_channel.value if incident.sev_channel else "audit"
    text = f"[{label}] {incident.title}"
    if incident.environment:
        text += f" ({incident.environment})"
    if deliver.action is IncidentAction.UPDATE:
        count = incident.event_count
        text += " · seen once" if count == 1 else f" · seen {count} times"
        if incident.escalation_recommended is not None:
            text += f" · escalation_recommended: {incident.escalation_recommended.value}"
    return text


def render(deliver: Deliver, *, routing_key: str) -> PagerDutyEvent:
    """The Events API v2 body for ``deliver`` (sent with ``routing_key``)."""
    incident = deliver.incident
    source = f"eyetok/{deliver.tenant}"
    if deliver.notice is not None:
        return PagerDutyEvent(
            routing_key=routing_key,
            event_action="trigger",
            dedup_key=notice_dedup_key(deliver),
            payload=PagerDutyPayload(
                summary=_summary(deliver.notice),
                source=source,
                severity=pd_severity(incident.severity),
                timestamp=deliver.planned_at.isoformat(timespec="milliseconds"),
                component="eyetok",
                class_="notice",
                custom_details=PagerDutyDetails(
                    incident_id=incident.incident_id,
                    rule=deliver.rule,
                    sev_channel=incident.sev_channel.value if incident.sev_channel else "audit",
                    event_count=incident.event_count,
                    severity=incident.severity.value,
                    delivery_id=deliver.delivery_id,
                    kind="operator_notice",
                    late=deliver.late,
                ),
            ),
            client=CLIENT_NAME,
        )
    action = _event_action(deliver)
    key = dedup_key(incident)
    if action != "trigger":
        return PagerDutyEvent(routing_key=routing_key, event_action=action, dedup_key=key)
    severity = "info" if deliver.action is IncidentAction.AUDIT else pd_severity(incident.severity)
    return PagerDutyEvent(
        routing_key=routing_key,
        event_action="trigger",
        dedup_key=key,
        payload=PagerDutyPayload(
            summary=_summary(_incident_summary(deliver)),
            source=source,
            severity=severity,
            timestamp=incident.last_seen_at.isoformat(timespec="milliseconds"),
            component=_clean(incident.project),
            group=_clean(incident.environment),
            class_=_clean(deliver.rule),
            custom_details=PagerDutyDetails(
                incident_id=incident.incident_id,
                rule=scrub(deliver.rule),
                sev_channel=incident.sev_channel.value if incident.sev_channel else "audit",
                event_count=incident.event_count,
                severity=incident.severity.value,
                escalation_recommended=(
                    incident.escalation_recommended.value
                    if incident.escalation_recommended
                    else None
                ),
                late=deliver.late,
            ),
        ),
        links=_issue_links(incident.url),
        client=CLIENT_NAME,
    )
