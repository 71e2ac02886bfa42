"""The incidents actor: the one owner of the open incidents.

It classifies each signal (severity rule and SEV channel at the signal's receipt time,
in the tenant's business-hours window), decides open / update / resolve / audit, and
hands the decision to the router. It is where EyeTok's knowledge of incidents lives, so
it tells the severity rules whether the signal's issue is already known (an open or
recently resolved incident with its key): that decides "new" when the payload does not.
State (open incidents, recent resolutions) is rebuilt from the history on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import assert_never

import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.incidents import (
    NOTHING_OPEN,
    RECENTLY_RESOLVED,
    IncidentKey,
    apply,
    decide,
    key_of,
    knows,
)
from eyetok.messages import (
    Accepted,
    Incident,
    IncidentAction,
    IncidentChanged,
    IncidentsChanged,
    IngestMessage,
    Reply,
    Signal,
    SignalReceived,
    SignalsReceived,
)
from eyetok.severity import classify
from state.history import queries
from state.history.store import HistoryStore


@dataclass(frozen=True)
class IncidentsDeps:
    settings: Settings
    store: HistoryStore


async def run_incidents(
    deps: IncidentsDeps,
    inbox: trio.MemoryReceiveChannel[IngestMessage],
    outbox: trio.MemorySendChannel[IncidentChanged | IncidentsChanged],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("incidents")
    open_incidents: dict[IncidentKey, Incident] = {
        (i.tenant, i.dedup_key): i for i in await deps.store.read(queries.open_incidents)
    }
    since = clock.now() - RECENTLY_RESOLVED
    recently_resolved = await deps.store.read(partial(queries.resolved_since, since=since))
    logger.info(
        "incidents_rehydrated", open=len(open_incidents), recently_resolved=len(recently_resolved)
    )
    task_status.started()

    def decided(signal: Signal, reply: Reply[Accepted] | None = None) -> IncidentChanged:
        tenant = deps.settings.tenants[signal.tenant]
        known = knows(open_incidents, recently_resolved, key_of(signal), signal.received_at)
        routing = classify(signal, known=known, window=tenant.policy.business_hours)
        action, incident = decide(open_incidents, signal, routing)
        apply(open_incidents, action, incident, recently_resolved)
        if incident is None and action is IncidentAction.RESOLVE:
            logger.info(
                "resolve_of_nothing_open",
                tenant=signal.tenant,
                dedup_key=signal.dedup_key,
                signal_id=signal.signal_id,
                reason=NOTHING_OPEN,
            )
        if incident is not None and action is not IncidentAction.UPDATE:
            logger.info(
                "incident_resolved" if action is IncidentAction.RESOLVE else "incident_opened",
                tenant=incident.tenant,
                incident_id=incident.incident_id,
                severity=incident.severity.value,
                sev_channel=incident.sev_channel.value if incident.sev_channel else None,
                rule=routing.rule,
                known_to_eyetok=known,
                dedup_key=incident.dedup_key,
                signal_id=signal.signal_id,
            )
        return IncidentChanged(
            signal=signal, routing=routing, action=action, incident=incident, reply=reply
        )

    async for message in inbox:
        match message:
            case SignalReceived(signal=signal, reply=reply):
                await outbox.send(decided(signal, reply))
            case SignalsReceived(signals=signals, reply=batch_reply):
                changes = tuple(decided(signal) for signal in signals)
                await outbox.send(IncidentsChanged(changes=changes, reply=batch_reply))
            case _:
                assert_never(message)
