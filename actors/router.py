"""The router: a decided incident -> the destinations its tenant's policy names.

Each planned delivery gets a stable id (the outbox row id and idempotency key), derived
from the signal and the destination so a re-plan after a crash yields the same id. The
router sends the signal and its plan to the history actor, which journals both in one
transaction before anything is answered or sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import assert_never

import trio

from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.messages import (
    Deliver,
    Destination,
    IncidentAction,
    IncidentChanged,
    JournalSignal,
)
from eyetok.policy import destinations_for


@dataclass(frozen=True)
class RouterDeps:
    settings: Settings
    # sink id -> type, computed once (Settings.sink_types() builds it on every call)
    sink_types: dict[str, str] = field(default_factory=dict)


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


async def run_router(
    deps: RouterDeps,
    inbox: trio.MemoryReceiveChannel[IncidentChanged],
    outbox: trio.MemorySendChannel[JournalSignal],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    sink_types = deps.sink_types or deps.settings.sink_types()
    task_status.started()
    async for message in inbox:
        match message:
            case IncidentChanged():
                await outbox.send(
                    JournalSignal(
                        signal=message.signal,
                        routing=message.routing,
                        action=message.action,
                        incident=message.incident,
                        deliveries=plan(message, deps.settings, sink_types),
                        reply=message.reply,
                    )
                )
            case _:
                assert_never(message)
