"""The router: a decided incident -> the destinations its tenant's policy names.

Each planned delivery gets a stable id (the outbox row id and idempotency key), derived
from the signal and the destination so a re-plan after a crash yields the same id. The
router sends the signal and its plan to the history actor, which journals both in one
transaction before anything is answered or sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import assert_never

import trio

from actors.tenants import effective_settings
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.messages import (
    Deliver,
    Destination,
    IncidentAction,
    IncidentChanged,
    IncidentsChanged,
    JournalSignal,
    JournalSignals,
    RouterMessage,
    TenantConfigChanged,
)
from eyetok.policy import destinations_for
from state.history.store import HistoryStore


@dataclass(frozen=True)
class RouterDeps:
    settings: Settings
    store: HistoryStore | None = None  # with it: the tenants' API routes apply from start


def delivery_id(signal_id: str, destination: Destination) -> str:
    digest = hashlib.sha256(
        f"{signal_id}|{destination.sink_id}|{destination.target}".encode()
    ).hexdigest()
    return "dlv_" + digest[:24]


def plan(
    change: IncidentChanged, settings: Settings, sink_types: dict[str, str] | None = None
) -> tuple[Deliver, ...]:
    """The deliveries for one decided signal (none for audit-only signals)."""
    incident = change.incident
    if change.action is IncidentAction.AUDIT or incident is None:
        return ()
    policy = settings.tenants[incident.tenant].policy
    types = sink_types if sink_types is not None else settings.sink_types()
    destinations = destinations_for(policy, incident.sev_channel, types)
    return tuple(
        Deliver(
            delivery_id=delivery_id(change.signal.signal_id, dest),
            tenant=incident.tenant,
            destination=dest,
            incident=incident,
            action=change.action,
            rule=change.routing.rule,
            planned_at=change.signal.received_at,
            received_at=change.signal.received_at,
            signal_id=change.signal.signal_id,
            cluster_key=change.signal.cluster_key,
        )
        for dest in destinations
    )


def journal_entry(
    change: IncidentChanged, settings: Settings, sink_types: dict[str, str]
) -> JournalSignal:
    """A decided signal and its planned deliveries, for the journal."""
    return JournalSignal(
        signal=change.signal,
        routing=change.routing,
        action=change.action,
        incident=change.incident,
        deliveries=plan(change, settings, sink_types),
        reply=change.reply,
    )


async def run_router(
    deps: RouterDeps,
    inbox: trio.MemoryReceiveChannel[RouterMessage],
    outbox: trio.MemorySendChannel[JournalSignal | JournalSignals],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    settings = deps.settings
    if deps.store is not None:
        settings = await effective_settings(deps.settings, deps.store)
    # sink id -> type, computed once per settings (Settings.sink_types() builds it per call)
    sink_types = settings.sink_types()
    task_status.started()
    async for message in inbox:
        match message:
            case TenantConfigChanged():
                settings = message.settings
                sink_types = settings.sink_types()
            case IncidentChanged():
                await outbox.send(journal_entry(message, settings, sink_types))
            case IncidentsChanged(changes=changes, reply=reply):
                items = tuple(journal_entry(c, settings, sink_types) for c in changes)
                await outbox.send(JournalSignals(items=items, reply=reply))
            case _:
                assert_never(message)
