"""The incidents actor: the one owner of the open incidents.

It classifies each signal (severity rule and SEV channel at the signal's receipt time,
in the tenant's business-hours window), decides open / update / resolve / audit, and
hands the decision to the router. It is where EyeTok's knowledge of incidents lives, so
it tells the severity rules whether the signal's issue is already known (an open or
recently resolved incident with its key): that decides "new" when the payload does not.
State (open incidents, recent resolutions) is rebuilt from the history on every start.

It also keeps SEV1's human loop. A human acknowledges an incident (a Slack button,
``eyetok ack``, PagerDuty): the incident becomes ``acknowledged`` (by whom, when) and its
escalation stops; a human resolve (the Slack modal, PagerDuty) closes it. A SEV1 nobody
acknowledged is re-notified once after the tenant's ``ack_renotify_s`` and escalated
once to its secondary after ``ack_escalate_s``. The timers are state, not tasks: each is
derived from the incident's snapshot (opened, acknowledged, re-notified, escalated at),
which is journalled with every step, so after a restart or on a fresh dyno (incidents
rehydrated from Postgres) each step fires once. The loop only tells people; it never
acts on a SEV1 by itself.

An incident whose source never says "resolved" (a Heroku log drain's) is resolved here
when it falls quiet (``actors/quiet_periods.py``), derived from its snapshot likewise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Literal, assert_never

import msgspec
import trio

from actors.due_times import DueTimes
from actors.forward import Inbox, forward
from actors.quiet_periods import QuietPeriods
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Escalation, Settings
from eyetok.escalation import PromotionRefused, promote
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
    AcknowledgeIncident,
    Incident,
    IncidentAction,
    IncidentChanged,
    IncidentsChanged,
    IncidentStepped,
    IngestMessage,
    PromoteIncident,
    Reply,
    ResolveIncident,
    SevChannel,
    Signal,
    SignalReceived,
    SignalsReceived,
    TicketOpened,
)
from eyetok.severity import classify
from state.history import queries
from state.history.store import HistoryStore


def acknowledged(
    incident: Incident, by: str, at: datetime, *, by_id: str | None = None
) -> Incident:
    """The incident acknowledged by ``by`` at ``at`` (its escalation stops)."""
    return msgspec.structs.replace(
        incident,
        status="acknowledged",
        acknowledged_by=by,
        acknowledged_at=at,
        acknowledged_by_id=by_id,
    )


def resolved_by_human(incident: Incident, decision: ResolveIncident) -> Incident:
    """The incident resolved by the human of ``decision`` (its escalation stops)."""
    return msgspec.structs.replace(
        incident,
        status="resolved",
        resolved_at=decision.at,
        resolved_by=decision.by,
        resolved_by_id=decision.by_id,
        resolution_note=decision.note or None,
    )


LoopStep = Literal["renotify", "escalated"]


def loop_due(incident: Incident, escalation: Escalation) -> tuple[LoopStep, datetime] | None:
    """The next step of SEV1's human loop and when it falls due (None: nothing is
    pending: not a SEV1, acknowledged, resolved, or both steps taken)."""
    if incident.sev_channel is not SevChannel.SEV1 or incident.status != "open":
        return None
    if incident.renotified_at is None:
        return "renotify", incident.opened_at + timedelta(seconds=escalation.ack_renotify_s)
    if incident.escalated_at is None:
        return "escalated", incident.opened_at + timedelta(seconds=escalation.ack_escalate_s)
    return None


def take_step(incident: Incident, step: LoopStep, at: datetime) -> Incident:
    """The incident with ``step`` recorded as taken at ``at``."""
    if step == "renotify":
        return msgspec.structs.replace(incident, renotified_at=at)
    return msgspec.structs.replace(incident, escalated_at=at)


async def _ask(
    ingest: trio.MemorySendChannel[IngestMessage],
    make: Callable[[Reply[tuple[Incident | None, bool]], Reply[bool]], IngestMessage],
) -> tuple[Incident | None, bool]:
    reply: Reply[tuple[Incident | None, bool]] = Reply()
    flushed: Reply[bool] = Reply()
    await ingest.send(make(reply, flushed))
    with trio.fail_after(30):
        incident, counted = await reply.wait()
        if incident is not None:
            await flushed.wait()
    return incident, counted


async def ask_acknowledge(
    ingest: trio.MemorySendChannel[IngestMessage], incident_id: str, by: str, at: datetime
) -> tuple[Incident | None, bool]:
    """Ask the incidents actor to record a human's acknowledgement: the incident as it now
    stands (None: no open incident has this id) and whether this acknowledgement counted
    (False: acknowledged already); answered once it is in the tables."""
    return await _ask(
        ingest,
        lambda reply, flushed: AcknowledgeIncident(
            incident_id=incident_id, by=by, at=at, reply=reply, flushed=flushed
        ),
    )


async def ask_resolve(
    ingest: trio.MemorySendChannel[IngestMessage], incident_id: str, by: str, at: datetime
) -> Incident | None:
    """Ask the incidents actor to record a human's resolve: the incident as resolved (None:
    no open incident has this id); answered once it is in the tables."""
    incident, _ = await _ask(
        ingest,
        lambda reply, flushed: ResolveIncident(
            incident_id=incident_id, by=by, at=at, reply=reply, flushed=flushed
        ),
    )
    return incident


# A batch hook's decisions are logged this many to a line: one line for all cost 0.45 us
# of CPU per signal where a line each cost 5.2 (the event loop's busiest path), and 20
# entries stay far under the 10,000 bytes Heroku's Logplex passes whole in a line.
DECIDED_PER_LINE = 20


@dataclass(frozen=True)
class IncidentsDeps:
    settings: Settings
    store: HistoryStore


async def run_incidents(
    deps: IncidentsDeps,
    inbox: trio.MemoryReceiveChannel[IngestMessage],
    outbox: trio.MemorySendChannel[IncidentChanged | IncidentsChanged | IncidentStepped],
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

    def decided(
        signal: Signal,
        reply: Reply[Accepted] | None = None,
        lines: dict[str, list[dict[str, object]]] | None = None,
    ) -> IncidentChanged:
        """The signal's decision, applied. What it opened, resolved or found nothing open
        to resolve is logged: a line of its own, or, given ``lines`` (a batch hook's
        signals), an entry under its tenant there, for one line per tenant and batch."""
        tenant = deps.settings.tenants[signal.tenant]
        known = knows(open_incidents, recently_resolved, key_of(signal), signal.received_at)
        routing = classify(signal, known=known, window=tenant.policy.business_hours)
        action, incident = decide(open_incidents, signal, routing)
        apply(open_incidents, action, incident, recently_resolved)
        fields: dict[str, object] | None = None
        if incident is None and action is IncidentAction.RESOLVE:
            fields = {
                "event": "resolve_of_nothing_open",
                "dedup_key": signal.dedup_key,
                "signal_id": signal.signal_id,
                "reason": NOTHING_OPEN,
            }
        elif incident is not None and action is not IncidentAction.UPDATE:
            fields = {
                "event": "incident_resolved"
                if action is IncidentAction.RESOLVE
                else "incident_opened",
                "incident_id": incident.incident_id,
                # str() of a StrEnum is its value, without the enum's ``value`` property
                "severity": str(incident.severity),
                "sev_channel": str(incident.sev_channel) if incident.sev_channel else None,
                "rule": routing.rule,
                "known_to_eyetok": known,
                "dedup_key": incident.dedup_key,
                "signal_id": signal.signal_id,
            }
        if fields is not None:
            if lines is not None:
                lines.setdefault(signal.tenant, []).append(fields)
            else:
                event = fields.pop("event")
                logger.info(event, tenant=signal.tenant, **fields)
        return IncidentChanged(
            signal=signal, routing=routing, action=action, incident=incident, reply=reply
        )

    def log_decided(lines: dict[str, list[dict[str, object]]], signals: int) -> None:
        """A batch's decisions: a line per tenant and ``DECIDED_PER_LINE`` entries, each
        entry the line a signal of its own would have had (its ``event`` and fields, the
        tenant once for all); ``batch`` is how many signals the batch held."""
        for tenant_id, decisions in lines.items():
            for start in range(0, len(decisions), DECIDED_PER_LINE):
                entries = decisions[start : start + DECIDED_PER_LINE]
                logger.info(
                    "incidents_decided",
                    tenant=tenant_id,
                    batch=signals,
                    opened=sum(d["event"] == "incident_opened" for d in entries),
                    resolved=sum(d["event"] == "incident_resolved" for d in entries),
                    nothing_open=sum(d["event"] == "resolve_of_nothing_open" for d in entries),
                    decisions=entries,
                )

    def escalation_of(incident: Incident) -> Escalation:
        tenant = deps.settings.tenants.get(incident.tenant)
        return tenant.escalation if tenant is not None else Escalation()

    # the SEV1s with a step of the loop pending, and when it falls due (a burst leaves
    # thousands open: a turn of the loop finds the due ones without scanning them)
    pending: DueTimes[IncidentKey] = DueTimes()

    def track(key: IncidentKey) -> None:
        incident = open_incidents.get(key)
        # only an open SEV1 has a step of the loop to take (loop_due says None for any
        # other, and its tenant's escalation need not be looked up: most signals of a batch)
        if incident is None or incident.sev_channel is not SevChannel.SEV1:
            pending.discard(key)
            return
        due = loop_due(incident, escalation_of(incident))
        if due is None:
            pending.discard(key)
        else:
            pending.set(key, due[1])

    # drain incidents (Heroku never says an error stopped) and when they fall quiet
    quiet = QuietPeriods(deps.settings)

    for known_key, known_incident in open_incidents.items():
        track(known_key)
        quiet.track(known_key, known_incident)

    async def fire_due() -> None:
        now = clock.now()
        for key in pending.due_at(now):
            incident = open_incidents[key]
            while (due := loop_due(incident, escalation_of(incident))) and due[1] <= now:
                step = due[0]
                incident = take_step(incident, step, now)
                open_incidents[key] = incident
                logger.warning(
                    "sev1_not_acknowledged",
                    tenant=incident.tenant,
                    incident_id=incident.incident_id,
                    step=step,
                    open_for_s=round((now - incident.opened_at).total_seconds()),
                )
                await outbox.send(IncidentStepped(incident=incident, step=step, at=now))
            track(key)

    def decided_on(
        message: AcknowledgeIncident | ResolveIncident,
    ) -> tuple[IncidentKey, Incident] | None:
        """The open incident a human's decision names, or None (answered: no such open
        incident, or not of the tenant whose webhook sent it)."""
        key = next(
            (k for k, i in open_incidents.items() if i.incident_id == message.incident_id), None
        )
        if key is not None and message.tenants is not None and key[0] not in message.tenants:
            key = None
        if key is None and message.reply is not None:
            message.reply.send((None, False))
        return None if key is None else (key, open_incidents[key])

    async def acknowledge(message: AcknowledgeIncident) -> None:
        found = decided_on(message)
        if found is None:
            return
        key, incident = found
        if incident.acknowledged_at is not None:
            if message.reply is not None:
                message.reply.send((incident, False))
            if message.flushed is not None:
                message.flushed.send(True)
            return
        incident = acknowledged(incident, message.by, message.at, by_id=message.by_id)
        open_incidents[key] = incident
        track(key)
        logger.info(
            "incident_acknowledged",
            tenant=incident.tenant,
            incident_id=incident.incident_id,
            by=message.by,
        )
        await told(message, incident, "acknowledged")

    async def resolve(message: ResolveIncident) -> None:
        found = decided_on(message)
        if found is None:
            return
        key, incident = found
        incident = resolved_by_human(incident, message)
        apply(open_incidents, IncidentAction.RESOLVE, incident, recently_resolved)
        track(key)
        logger.info(
            "incident_resolved_by_human",
            tenant=incident.tenant,
            incident_id=incident.incident_id,
            by=message.by,
            with_note=bool(message.note),
        )
        await told(message, incident, "resolved")

    async def told(
        message: AcknowledgeIncident | ResolveIncident,
        incident: Incident,
        step: Literal["acknowledged", "resolved"],
    ) -> None:
        """A human's decision counted: the router hears of it, then the asker."""
        await outbox.send(
            IncidentStepped(incident=incident, step=step, at=message.at, flushed=message.flushed)
        )
        if message.reply is not None:
            message.reply.send((incident, True))

    def key_of_open(incident_id: str) -> IncidentKey | None:
        return next((k for k, i in open_incidents.items() if i.incident_id == incident_id), None)

    async def ticketed(message: TicketOpened) -> None:
        """Keep the FreeScout conversation id on the open incident (a resolved one keeps
        it in the ticket trail's own table)."""
        key = key_of_open(message.incident_id)
        if key is None or open_incidents[key].freescout_conversation_id is not None:
            return
        incident = msgspec.structs.replace(
            open_incidents[key], freescout_conversation_id=message.conversation_id
        )
        open_incidents[key] = incident
        await outbox.send(IncidentStepped(incident=incident, step="ticketed", at=message.at))

    async def promoted(message: PromoteIncident) -> None:
        """A human acknowledged a louder channel: the open incident moves there, only
        through :func:`promote` (refused, and logged, when it is louder already)."""
        ack = message.acknowledgement
        key = key_of_open(ack.incident_id)
        if key is None:
            return
        try:
            incident = promote(open_incidents[key], ack.to, ack)
        except PromotionRefused as exc:
            logger.info("incident_not_promoted", incident_id=ack.incident_id, why=str(exc))
            return
        open_incidents[key] = incident
        track(key)
        about = {"tenant": incident.tenant, "incident_id": incident.incident_id}
        logger.info("incident_promoted", **about, sev_channel=ack.to.value, by=ack.by)
        await outbox.send(IncidentStepped(incident=incident, step="promoted", at=message.at))

    async def resolve_quiet() -> None:
        for signal in quiet.fall_due(open_incidents, clock.now()):
            logger.info(
                "incident_fell_quiet",
                tenant=signal.tenant,
                dedup_key=signal.dedup_key,
                signal_id=signal.signal_id,
                reason=signal.message,
            )
            change = decided(signal)
            track(key_of(signal))
            quiet.track(key_of(signal), None)
            await outbox.send(change)

    messages = Inbox(inbox)

    async def next_message() -> IngestMessage | None:
        """The next message, or None when a step of the loop or a quiet period falls due
        first. A message already waiting is taken without arming a timer or a schedule
        point (under load that is every turn; :class:`Inbox` lets the others run every
        so many); as with ``receive``, none is taken once this actor is cancelled (it
        stays in the inbox for the next incarnation)."""
        message = await messages.waiting()
        if message is not None:
            return message
        dues = [at for at in (pending.next_due(), quiet.next_due()) if at is not None]
        if not dues:  # nothing falls due: no timer to arm
            return await messages.receive()
        with trio.move_on_after(max((min(dues) - clock.now()).total_seconds(), 0.0)):
            return await messages.receive()
        return None

    try:
        while True:
            await fire_due()
            await resolve_quiet()
            try:
                message = await next_message()
            except trio.EndOfChannel:
                return
            match message:
                case None:  # a step of the loop fell due
                    pass
                case SignalReceived(signal=signal, reply=reply):
                    change = decided(signal, reply)
                    track(key_of(signal))
                    quiet.track(key_of(signal), open_incidents.get(key_of(signal)))
                    await forward(outbox, change)
                case SignalsReceived(signals=signals, reply=batch_reply):
                    lines: dict[str, list[dict[str, object]]] = {}
                    changes = tuple(decided(signal, lines=lines) for signal in signals)
                    log_decided(lines, len(signals))
                    for signal in signals:
                        key = key_of(signal)
                        track(key)
                        quiet.track(key, open_incidents.get(key))
                    await forward(outbox, IncidentsChanged(changes=changes, reply=batch_reply))
                case AcknowledgeIncident():
                    await acknowledge(message)
                case TicketOpened():
                    await ticketed(message)
                case ResolveIncident():
                    await resolve(message)
                case PromoteIncident():
                    await promoted(message)
                case _:
                    assert_never(message)
    finally:
        # what this actor holds, for the bench (bench/ingest/footprint.py) and for anyone
        # reading the log of a dyno that grew
        logger.info(
            "incidents_held_at_stop",
            open=len(open_incidents),
            recently_resolved=len(recently_resolved),
            steps_pending=len(pending),
        )
