"""The incidents actor: the one owner of the open incidents.

It classifies each signal (severity rule and SEV channel at the signal's receipt time,
in the tenant's business-hours window), decides open / update / resolve / audit, and
hands the decision to the router. State is rebuilt from the history on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.incidents import IncidentKey, apply, decide
from eyetok.messages import Incident, IncidentAction, IncidentChanged, SignalReceived
from eyetok.severity import classify
from state.history import queries
from state.history.store import HistoryStore


@dataclass(frozen=True)
class IncidentsDeps:
    settings: Settings
    store: HistoryStore


async def run_incidents(
    deps: IncidentsDeps,
    inbox: trio.MemoryReceiveChannel[SignalReceived],
    outbox: trio.MemorySendChannel[IncidentChanged],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("incidents")
    open_incidents: dict[IncidentKey, Incident] = {
        (i.tenant, i.dedup_key): i for i in await deps.store.read(queries.open_incidents)
    }
    logger.info("incidents_rehydrated", open=len(open_incidents))
    task_status.started()
    async for message in inbox:
        match message:
            case SignalReceived(signal=signal, reply=reply):
                tenant = deps.settings.tenants[signal.tenant]
                routing = classify(signal, window=tenant.policy.business_hours)
                action, incident = decide(open_incidents, signal, routing)
                apply(open_incidents, action, incident)
                if incident is not None and action is not IncidentAction.UPDATE:
                    logger.info(
                        "incident_resolved"
                        if action is IncidentAction.RESOLVE
                        else "incident_opened",
                        tenant=incident.tenant,
                        incident_id=incident.incident_id,
                        severity=incident.severity.value,
                        sev_channel=incident.sev_channel.value if incident.sev_channel else None,
                        rule=routing.rule,
                        dedup_key=incident.dedup_key,
                        signal_id=signal.signal_id,
                    )
                await outbox.send(
                    IncidentChanged(
                        signal=signal,
                        routing=routing,
                        action=action,
                        incident=incident,
                        reply=reply,
                    )
                )
            case _:
                assert_never(message)
