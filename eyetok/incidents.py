"""The incident decision, pure: what a routed signal does to its incident.

The incidents actor keeps the open incidents and calls :func:`decide`; replay calls the
same function over an in-memory map, so ``--explain`` and the daemon cannot disagree.
Both also keep the keys resolved in the last :data:`RECENTLY_RESOLVED`: with the open
ones, they are what EyeTok *knows* (:func:`knows`), which decides whether an issue whose
payload does not say is new.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta

import msgspec

from eyetok.ids import random_hex
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

RECENTLY_RESOLVED = timedelta(hours=24)

# What a resolve of a key with nothing open says (the hook's answer, replay --explain and
# the resolve_of_nothing_open log line): it is a resolve, and it opens and sends nothing.
NOTHING_OPEN = "no open incident has this key: nothing to resolve, nothing opened or sent"
"""How long a resolved incident keeps its issue known to EyeTok (not new again)."""

_LOUDNESS = {SevChannel.SEV3: 0, SevChannel.SEV2_5: 1, SevChannel.SEV2: 2, SevChannel.SEV1: 3}


def new_incident_id() -> str:
    return "inc_" + random_hex(8)


def key_of(signal: Signal) -> IncidentKey:
    return (signal.tenant, signal.dedup_key)


def louder(a: SevChannel | None, b: SevChannel | None) -> bool:
    """Whether channel ``a`` is louder than channel ``b``."""
    if a is None:
        return False
    if b is None:
        return True
    return _LOUDNESS[a] > _LOUDNESS[b]


def knows(
    open_incidents: Mapping[IncidentKey, Incident],
    recently_resolved: Mapping[IncidentKey, datetime],
    key: IncidentKey,
    at: datetime,
) -> bool:
    """Whether EyeTok has an open, or a recently resolved, incident for ``key`` at ``at``."""
    if key in open_incidents:
        return True
    resolved_at = recently_resolved.get(key)
    return resolved_at is not None and at - resolved_at <= RECENTLY_RESOLVED


def decide(
    open_incidents: Mapping[IncidentKey, Incident],
    signal: Signal,
    routing: Routing,
    *,
    new_id: Callable[[], str] = new_incident_id,
) -> tuple[IncidentAction, Incident | None]:
    """The action and the incident's new snapshot (None for audit-only signals).

    - a resolve-type signal resolves the open incident with the same key; with none
      open it is still a resolve, of nothing (no incident: it opens and sends nothing);
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
            return IncidentAction.RESOLVE, None
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
    # An open incident outlives its signal: the fields that repeat across incidents (a
    # tenant, a culprit, an environment, a project, a level) are kept as one shared string
    # each, not one copy per incident decoded from each payload. Built as a copy of
    # _OPENING (every field a signal sets, replaced): msgspec builds a 30-field struct
    # by keyword at over twice the CPU of a replace (a batch hook opens a hundred).
    shared = sys.intern
    opened = _replace(
        _OPENING,
        incident_id=new_id(),
        tenant=shared(signal.tenant),
        dedup_key=signal.dedup_key,
        title=signal.title,
        severity=routing.severity,
        sev_channel=routing.sev_channel,
        rule=routing.rule,
        opened_at=now,
        last_seen_at=now,
        url=signal.url,
        culprit=shared(signal.culprit),
        environment=shared(signal.environment),
        project=shared(signal.project),
        level=shared(signal.level),
    )
    return IncidentAction.OPEN, opened


_replace = msgspec.structs.replace
_EPOCH = datetime.fromtimestamp(0, UTC)
_OPENING = Incident(  # what decide's openings are copies of: status open, seen once
    incident_id="",
    tenant="",
    dedup_key="",
    title="",
    severity=Severity.MEDIUM,
    sev_channel=None,
    rule="",
    status="open",
    opened_at=_EPOCH,
    last_seen_at=_EPOCH,
    event_count=1,
)


def apply(
    open_incidents: dict[IncidentKey, Incident],
    action: IncidentAction,
    incident: Incident | None,
    recently_resolved: MutableMapping[IncidentKey, datetime] | None = None,
) -> None:
    """Fold a decision into the map of open incidents (the caller owns the map), and a
    resolution into ``recently_resolved`` (forgetting those older than the window)."""
    if incident is None:
        return
    key = (incident.tenant, incident.dedup_key)
    if action is IncidentAction.RESOLVE:
        open_incidents.pop(key, None)
        if recently_resolved is not None and incident.resolved_at is not None:
            if len(recently_resolved) % 1024 == 1023:  # amortised: one sweep per 1024
                horizon = incident.resolved_at - RECENTLY_RESOLVED
                for old in [k for k, at in recently_resolved.items() if at < horizon]:
                    del recently_resolved[old]
            recently_resolved[key] = incident.resolved_at
    else:
        open_incidents[key] = incident
