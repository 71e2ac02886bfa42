"""The router: a decided incident -> the destinations its tenant's policy names.

Each planned delivery gets a stable id (the outbox row id and idempotency key), derived
from the signal and the destination so a re-plan after a crash yields the same id. The
router sends the signal and its plan to the history actor, which journals both in one
transaction before anything is answered or sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

import msgspec
import trio

from actors.forward import Inbox, forward
from actors.tenants import effective_settings
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    DeliveryStep,
    Destination,
    FlushHistory,
    HistoryMessage,
    Incident,
    IncidentAction,
    IncidentChanged,
    IncidentRecorded,
    IncidentsChanged,
    IncidentStepped,
    JournalSignal,
    JournalSignals,
    PlanDeliveries,
    PlaybookMessage,
    PlaybookPost,
    RouterMessage,
    TenantConfigChanged,
)
from eyetok.playbooks.posts import announce
from eyetok.policy import destinations_for
from state.history.store import HistoryStore


@dataclass(frozen=True)
class RouterDeps:
    settings: Settings
    store: HistoryStore | None = None  # with it: the tenants' API routes apply from start
    # the playbooks actor's inbox: openings a playbook may match, SEV3 louder repeats
    playbooks: trio.MemorySendChannel[PlaybookMessage] | None = None


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
    if not destinations:  # a channel the tenant routes nowhere: no playbook to look for
        return ()
    playbook = (
        settings.playbooks.match(
            incident, source=change.signal.source, tags=dict(change.signal.tags)
        )
        if change.action is IncidentAction.OPEN and settings.playbooks.playbooks
        else None
    )
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
            playbook_note=announce(playbook) if playbook is not None else None,
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


# the sinks that hear of an acknowledgement or a re-notification: Slack (in the incident's
# thread) and PagerDuty (acknowledge, re-trigger); an email or a webhook would only repeat
# the incident
_LOOP_SINK_TYPES = ("slack", "pagerduty")
_AUDIT_EVENTS = {
    "acknowledged": "incident_acknowledged",
    "renotify": "renotified",
    "escalated": "escalated",
    "ticketed": "ticket_opened",
    "promoted": "incident_promoted",
    "resolved": "resolved_by_human",
}


def step_plan(
    stepped: IncidentStepped, settings: Settings, sink_types: dict[str, str]
) -> tuple[Deliver, ...]:
    """Who hears of a step of SEV1's human loop: the route's Slack and PagerDuty sinks of
    an acknowledgement, a human resolve or a re-notification; the tenant's secondary of an
    escalation."""
    incident = stepped.incident
    tenant = settings.tenants.get(incident.tenant)
    if tenant is None or stepped.step == "ticketed" or stepped.step == "promoted":
        return ()
    if stepped.step == "escalated":
        secondary = tenant.escalation.secondary
        if secondary is None or secondary.sink not in sink_types:
            return ()
        destinations: tuple[Destination, ...] = (
            Destination(
                sink_id=secondary.sink,
                sink_type=sink_types[secondary.sink],
                target=secondary.target,
            ),
        )
        action = IncidentAction.OPEN  # a destination that has not heard of it yet
    elif stepped.step == "resolved":  # by a human: every sink of the route hears of it
        destinations = destinations_for(tenant.policy, incident.sev_channel, sink_types)
        action = IncidentAction.RESOLVE
    else:
        destinations = tuple(
            d
            for d in destinations_for(tenant.policy, incident.sev_channel, sink_types)
            if d.sink_type in _LOOP_SINK_TYPES
        )
        action = IncidentAction.UPDATE
    origin = f"{incident.incident_id}:{stepped.step}"
    return deliveries_about(
        origin, incident, destinations, action=action, at=stepped.at, step=stepped.step
    )


def deliveries_about(
    origin: str,
    incident: Incident,
    destinations: Iterable[Destination],
    *,
    action: IncidentAction,
    at: datetime,
    step: DeliveryStep | None = None,
    post: PlaybookPost | None = None,
) -> tuple[Deliver, ...]:
    """Deliveries no signal caused (a step of SEV1's loop, a playbook's post), planned
    at ``at``, their ids derived from ``origin`` and the destination."""
    return tuple(
        Deliver(
            delivery_id=delivery_id(origin, dest),
            tenant=incident.tenant,
            destination=dest,
            incident=incident,
            action=action,
            rule=incident.rule,
            planned_at=at,
            received_at=at,
            step=step,
            post=post,
        )
        for dest in destinations
    )


def step_records(
    stepped: IncidentStepped, settings: Settings, sink_types: dict[str, str]
) -> list[HistoryMessage]:
    """What the history journals of one step: the snapshot, the audit line, the
    deliveries (and the flush its asker waits for), in this order."""
    incident = stepped.incident
    plan = step_plan(stepped, settings, sink_types)
    where = ", ".join(f"{d.destination.sink_id} {d.destination.target}" for d in plan) or "no sink"
    match stepped.step:
        case "acknowledged":
            detail = f"acknowledged by {incident.acknowledged_by}; told: {where}"
        case "resolved":
            note = (
                f' with the note "{incident.resolution_note}"' if incident.resolution_note else ""
            )
            detail = f"resolved by {incident.resolved_by}{note}; told: {where}"
        case "renotify":
            detail = f"not acknowledged yet: on-call re-notified on {where}"
        case "escalated":
            detail = (
                f"not acknowledged yet: escalated to the secondary, {where}"
                if plan
                else "not acknowledged yet: no secondary escalation target is configured "
                "(tenants.<id>.escalation.secondary); nothing was sent"
            )
        case "ticketed":
            detail = f"FreeScout conversation {incident.freescout_conversation_id} opened"
        case "promoted":
            channel = incident.sev_channel.value if incident.sev_channel else "none"
            detail = f"now {channel}: its repeats go to that channel's thread"
    records: list[HistoryMessage] = [
        IncidentRecorded(incident=incident),
        AuditRecorded(
            at=stepped.at,
            tenant=incident.tenant,
            event=_AUDIT_EVENTS[stepped.step],
            detail=detail,
            incident_id=incident.incident_id,
        ),
    ]
    if plan:
        records.append(
            PlanDeliveries(origin=f"{incident.incident_id}:{stepped.step}", deliveries=plan)
        )
    if stepped.flushed is not None:
        records.append(FlushHistory(reply=stepped.flushed))
    return records


async def run_router(
    deps: RouterDeps,
    inbox: trio.MemoryReceiveChannel[RouterMessage],
    outbox: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    settings = deps.settings
    if deps.store is not None:
        settings = await effective_settings(deps.settings, deps.store)
    # sink id -> type, computed once per settings (Settings.sink_types() builds it per call)
    sink_types = settings.sink_types()

    async def tell_playbooks(changes: tuple[IncidentChanged, ...]) -> None:
        """After the journal entry: a playbook's posts follow the incident's own."""
        if deps.playbooks is None:
            return
        for change in changes:
            if settings.playbooks.hears(change):
                await deps.playbooks.send(msgspec.structs.replace(change, reply=None))

    task_status.started()
    async for message in Inbox(inbox):
        match message:
            case TenantConfigChanged():
                settings = message.settings
                sink_types = settings.sink_types()
            case IncidentChanged():
                await forward(outbox, journal_entry(message, settings, sink_types))
                await tell_playbooks((message,))
            case IncidentsChanged(changes=changes, reply=reply):
                items = tuple(journal_entry(c, settings, sink_types) for c in changes)
                await forward(outbox, JournalSignals(items=items, reply=reply))
                await tell_playbooks(changes)
            case IncidentStepped():
                for record in step_records(message, settings, sink_types):
                    await outbox.send(record)
            case _:
                assert_never(message)
