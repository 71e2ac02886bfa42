"""The incident decision, pure: what a routed signal does to its incident.

The incidents actor keeps the open incidents and calls :func:`decide`; replay calls the
same function over an in-memory map, so ``--explain`` and the daemon cannot disagree.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

import msgspec

from eyetok.messages import (
    Incident,
    IncidentAction,
    Routing,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
)

IncidentKey = tuple[str, str]  # (tenant, dedup_key)

_LOUDNESS = {SevChannel.SEV3: 0, SevChannel.SEV2_5: 1, SevChannel.SEV2: 2, SevChannel.SEV1: 3}


def new_incident_id() -> str:
    return "inc_" + secrets.token_hex(8)


def key_of(signal: Signal) -> IncidentKey:
    return (signal.tenant, signal.dedup_key)


def louder(a: SevChannel | None, b: SevChannel | None) -> bool:
    """Whether channel ``a`` is louder than channel ``b``."""
    if a is None:
        return False
    if b is None:
        return True
    return _LOUDNESS[a] > _LOUDNESS[b]


def decide(
    open_incidents: Mapping[IncidentKey, Incident],
    signal: Signal,
    routing: Routing,
    *,
    new_id: Callable[[], str] = new_incident_id,
) -> tuple[IncidentAction, Incident | None]:
    """The action and the incident's new snapshot (None for audit-only signals).

    - a resolve-type signal resolves the open incident with the same key, else is audited;
    - an info/debug signal is audited and touches nothing;
    - a repeat of an open incident updates it (count, last seen). Its severity and
      channel never rise by themselves: a louder repeat of a SEV3 incident only sets
      ``escalation_recommended`` (the SEV3 escalation invariant);
    - anything else opens a new incident.
    """
    existing = open_incidents.get(key_of(signal))
    now = signal.received_at
    if signal.kind is SignalKind.RESOLVE:
        if existing is None:
            return IncidentAction.AUDIT, None
        resolved = msgspec.structs.replace(
            existing, status="resolved", resolved_at=now, last_seen_at=now
        )
        return IncidentAction.RESOLVE, resolved
    if routing.severity is Severity.INFO:
        return IncidentAction.AUDIT, None
    if existing is not None:
        recommended = existing.escalation_recommended
        if existing.sev_channel is SevChannel.SEV3 and louder(
            routing.sev_channel, recommended or existing.sev_channel
        ):
            recommended = routing.sev_channel
        updated = msgspec.structs.replace(
            existing,
            event_count=existing.event_count + 1,
            last_seen_at=now,
            escalation_recommended=recommended,
        )
        return IncidentAction.UPDATE, updated
    opened = Incident(
        incident_id=new_id(),
        tenant=signal.tenant,
        dedup_key=signal.dedup_key,
        title=signal.title,
        severity=routing.severity,
        sev_channel=routing.sev_channel,
        rule=routing.rule,
        status="open",
        opened_at=now,
        last_seen_at=now,
        event_count=1,
        url=signal.url,
        culprit=signal.culprit,
        environment=signal.environment,
        project=signal.project,
        level=signal.level,
    )
    return IncidentAction.OPEN, opened


def apply(
    open_incidents: dict[IncidentKey, Incident],
    action: IncidentAction,
    incident: Incident | None,
) -> None:
    """Fold a decision into the map of open incidents (the caller owns the map)."""
    if incident is None:
        return
    key = (incident.tenant, incident.dedup_key)
    if action is IncidentAction.RESOLVE:
        open_incidents.pop(key, None)
    else:
        open_incidents[key] = incident
