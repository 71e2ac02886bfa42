"""The conversation actor: a human's reply in an incident's Slack thread, understood.

``POST /slack/events`` hands it each verified human message in a thread (and each
``app_mention``); it finds the incident whose first post opened the thread, reads the verb
(:mod:`eyetok.thread_verbs`) and acts through the same paths as everything else:

- ``ack`` and ``resolve`` go to the incidents actor as the Acknowledge button and the
  operator API do; the thread hears of them from the step's own reply (and PagerDuty too,
  where it is on the route), so the conversation adds a line only when nothing happened
  (acknowledged or resolved already);
- ``why`` answers from the stored first signal, judged again at its receipt time;
- ``status`` answers from the incident's latest snapshot;
- ``mute`` asks the mutes actor to silence the incident's tenant;

Who may: ``ack`` and ``resolve`` are ``acknowledge`` on the incident's tenant (a
``responder`` of it, or the tenant's ``tenant_scoped_operator`` hat); ``mute`` changes the
tenant's sinks, ``configure_tenant``: the ``tenant_scoped_operator`` hat for it. The people
actor decides (eyetok/access.py ``authorise``, open mode allowing all); a refusal does
nothing but answer in the thread with the role needed;
- anything else gets the one-line help.

Answers are outbox rows (a notice in the incident's thread), so a Slack outage delays
them rather than losing them. Slack re-sends an event it thinks was not received
(``X-Slack-Retry-Num``); every event id answered is remembered (and rebuilt on start from
the ``thread_verb`` audit rows of the last hour), so a retry never acts twice. A message
in a thread EyeTok did not open is left alone.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import trio

from actors.incidents import ask_acknowledge, ask_resolve
from actors.mutes import MuteMessage
from actors.sinks.slack.names import SlackNames, by_of
from eyetok import log
from eyetok.access import Action
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    Destination,
    FlushHistory,
    HistoryMessage,
    Incident,
    IncidentAction,
    IngestMessage,
    PlanDeliveries,
    Reply,
)
from eyetok.severity import classify, facts_of, why
from eyetok.thread_verbs import (
    ActiveMute,
    Command,
    MuteTenant,
    ShowMute,
    ThreadMessageSeen,
    UnmuteTenant,
    Verb,
    help_line,
    mute_line,
    parse,
    status_line,
    why_line,
)
from eyetok.wording import when
from state.history import conversation_queries as queries
from state.history.conversation_queries import ThreadOwner
from state.history.store import HistoryStore

T = TypeVar("T")
REMEMBERED = 10_000  # event ids kept against Slack's retries (it retries within minutes)
REMEMBERED_FOR = timedelta(hours=1)


# the verbs that act on the incident, as eyetok/access.py knows actions
ACTS: dict[Verb, Action] = {
    Verb.ACK: Action.ACKNOWLEDGE,
    Verb.RESOLVE: Action.ACKNOWLEDGE,
    Verb.MUTE: Action.CONFIGURE_TENANT,
}


@dataclass(frozen=True)
class ConversationDeps:
    settings: Settings
    store: HistoryStore
    # (slack user id, action, tenant) -> None, or the refusal naming the role needed
    may: Callable[[str, Action, str], Awaitable[str | None]] | None = None
    names: SlackNames | None = None  # who wrote, by name (users.info); else by user id


async def _ask_mutes(
    to_mutes: trio.MemorySendChannel[MuteMessage],
    asking: Callable[[Reply[T]], MuteMessage],
) -> T:
    """Ask the mutes actor (mute, unmute, show) and wait for its answer."""
    reply: Reply[T] = Reply()
    await to_mutes.send(asking(reply))
    with trio.fail_after(30):
        return await reply.wait()


async def run_conversation(
    deps: ConversationDeps,
    inbox: trio.MemoryReceiveChannel[ThreadMessageSeen],
    to_ingest: trio.MemorySendChannel[IngestMessage],
    to_mutes: trio.MemorySendChannel[MuteMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("conversation")
    since = clock.now() - REMEMBERED_FOR
    seen: OrderedDict[str, None] = OrderedDict.fromkeys(
        await deps.store.read(lambda con: queries.answered_events(con, since))
    )
    task_status.started()

    async def flushed() -> None:
        reply: Reply[bool] = Reply()
        await to_history.send(FlushHistory(reply=reply))
        await reply.wait()

    async def explain(incident: Incident) -> str:
        found = await deps.store.read(lambda con: queries.first_signal(con, incident.incident_id))
        tenant = deps.settings.tenants.get(incident.tenant)
        if found is None or tenant is None:
            return f"I have no stored signal for `{incident.incident_id}`, so I cannot say why."
        signal, rule = found
        window = tenant.policy.business_hours
        # was the key known to EyeTok then? the stored rule says which judgment was made
        known = classify(signal, known=False, window=window).rule != rule
        routing = classify(signal, known=known, window=window)
        return why_line(
            why(facts_of(signal, known=known)),
            received_at=signal.received_at,
            window=window,
            channel=routing.sev_channel.value if routing.sev_channel else None,
            business=routing.business_hours,
        )

    async def answer(command: Command, owner: ThreadOwner, by: str, now: datetime) -> str | None:
        """Act on ``command``; the line to post in the thread (None: the step posts it)."""
        incident = owner.incident
        action = ACTS.get(command.verb)
        if action is not None and deps.may is not None:
            refused = await deps.may(by.removeprefix("slack:"), action, incident.tenant)
            if refused is not None:
                logger.info(
                    "thread_verb_refused",
                    incident_id=incident.incident_id,
                    verb=command.verb.value,
                    by=by,
                    why=refused,
                )
                return f"Not done: {refused}"
        match command.verb:
            case Verb.ACK:
                acked, counted = await ask_acknowledge(to_ingest, incident.incident_id, by, now)
                if counted:
                    return None
                if acked is None:
                    return f"`{incident.incident_id}` is not open: nothing to acknowledge."
                return f"Already acknowledged by {acked.acknowledged_by}" + (
                    f" {when(acked.acknowledged_at)}." if acked.acknowledged_at else "."
                )
            case Verb.RESOLVE:
                if await ask_resolve(to_ingest, incident.incident_id, by, now) is not None:
                    return None
                return f"`{incident.incident_id}` is not open: nothing to resolve."
            case Verb.WHY:
                return await explain(incident)
            case Verb.STATUS:
                muted: tuple[ActiveMute, ...] = await _ask_mutes(
                    to_mutes, lambda r: ShowMute(tenant=incident.tenant, reply=r)
                )
                return status_line(incident) + "".join(mute_line(m) for m in muted)
            case Verb.UNMUTE:
                ended_ones: tuple[ActiveMute, ...] = await _ask_mutes(
                    to_mutes,
                    lambda r: UnmuteTenant(
                        tenant=incident.tenant,
                        by=by,
                        at=now,
                        incident_id=incident.incident_id,
                        reply=r,
                    ),
                )
                if not ended_ones:
                    return f"Tenant `{incident.tenant}` is not muted: nothing to unmute."
                [ended] = ended_ones
                return (
                    f"Unmuted tenant `{incident.tenant}` (muted by {ended.by} until "
                    f"{when(ended.until)}), by {by}: its deliveries are sent again."
                )
            case Verb.MUTE:
                mute_for = command.mute_for
                assert mute_for is not None
                until: datetime = await _ask_mutes(
                    to_mutes,
                    lambda r: MuteTenant(
                        tenant=incident.tenant,
                        until=now + mute_for,
                        by=by,
                        at=now,
                        incident_id=incident.incident_id,
                        reply=r,
                    ),
                )
                return (
                    f"Muted tenant `{incident.tenant}` until {when(until)} (by {by}): its "
                    "deliveries end `muted` in the notification stream and are not sent; "
                    "SEV1 still pages."
                )
            case Verb.HELP:
                return help_line(command)

    async def handle(message: ThreadMessageSeen) -> str:
        # a retry repeats the event id; a mention in a reply comes twice (``message`` and
        # ``app_mention``, two event ids): the message's own ts says it is the same one
        said = f"msg:{message.channel}:{message.ts}"
        if message.event_id in seen or said in seen:
            logger.info("thread_event_repeated", event_id=message.event_id, message=said)
            return "repeated"
        await flushed()
        owner = await deps.store.read(lambda con: queries.thread_owner(con, message.thread_ts))
        if owner is None:
            logger.info("thread_not_ours", thread_ts=message.thread_ts, event_id=message.event_id)
            return "not an incident thread"
        seen[message.event_id] = seen[said] = None
        while len(seen) > REMEMBERED:
            seen.popitem(last=False)
        command = parse(message.text)
        if deps.names is not None:
            by = await deps.names.by(owner.sink_id, message.user)
        else:
            by = by_of(message.user, None)
        now = clock.now()
        line = await answer(command, owner, by, now)
        incident = owner.incident
        if line is not None:
            key = hashlib.sha256(f"thread|{message.event_id}".encode()).hexdigest()
            reply = Deliver(
                delivery_id="dlv_" + key[:24],
                tenant=incident.tenant,
                destination=Destination(
                    sink_id=owner.sink_id, sink_type="slack", target=owner.target
                ),
                incident=incident,
                action=IncidentAction.UPDATE,  # in the incident's thread
                rule=incident.rule,
                planned_at=now,
                received_at=now,
                notice=line,
            )
            await to_history.send(
                PlanDeliveries(origin=f"thread:{message.event_id}", deliveries=(reply,))
            )
        detail = {"event_id": message.event_id, "message": said, "verb": command.verb.value}
        detail["by"] = by
        detail["answer"] = line or "the step's own thread reply"
        await to_history.send(
            AuditRecorded(
                at=now,
                tenant=incident.tenant,
                event="thread_verb",
                detail=json.dumps(detail, sort_keys=True),
                incident_id=incident.incident_id,
            )
        )
        logger.info(
            "thread_verb_answered",
            tenant=incident.tenant,
            incident_id=incident.incident_id,
            verb=command.verb.value,
            by=by,
            event_id=message.event_id,
        )
        return command.verb.value

    try:
        async for message in inbox:
            done = await handle(message)
            if message.answered is not None:
                message.answered.send(done)
    finally:
        logger.info(
            "conversation_held_at_stop", remembered_event_ids=len(seen), remembered_max=REMEMBERED
        )
