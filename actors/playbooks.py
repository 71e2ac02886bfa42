"""The playbooks actor: the one owner of proposals, runs, triage and escalation
recommendations.

Its inbox: the router's decided incidents (a playbook may match an opening; a louder
repeat of a SEV3 incident recommends an escalation) and the humans' clicks
(:class:`~eyetok.messages.PlaybookClick`). Its outbox: the history (audit lines, and the
thread posts as outbox rows: :class:`~eyetok.messages.PlanDeliveries`).

Every fact is recorded in its ledger (:mod:`state.playbooks.ledger_file`, fsynced) before
it is acted on or told: an approval that completes the quorum is recorded together with
``run_started`` before the HTTP call, so a kill between approval and answer leaves a run
that a restart marks ``run_interrupted`` and never calls again. A triage step is
read-only (the registry refuses any other), so it runs by itself. An escalation is only
*recommended*; the incident is re-posted louder through :func:`eyetok.escalation.promote`,
which refuses without the human acknowledgement recorded here first.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import msgspec
import trio

from actors.playbook_posts import audit_detail, promotion_posts, thread_posts
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.escalation import is_human
from eyetok.incidents import louder
from eyetok.messages import (
    AuditRecorded,
    HistoryMessage,
    Incident,
    IncidentAction,
    IncidentChanged,
    IngestMessage,
    PlanDeliveries,
    PlaybookClick,
    PlaybookMessage,
    PromoteIncident,
    ProposalTenantAsked,
    SevChannel,
)
from eyetok.playbooks.config import Playbook
from eyetok.playbooks.kinds import Call, Result, call_of, perform
from eyetok.playbooks.ledger import (
    Ledger,
    PlaybookEvent,
    Proposal,
    eyetok_proposer,
    new_event_id,
)
from eyetok.tls import OnDemandClient
from state.playbooks.record import IntentNotRecorded, PlaybookRecord


@dataclass(frozen=True)
class PlaybooksDeps:
    settings: Settings
    ledger_path: Path
    database_url: str | None = None  # the ledger in Postgres too (a fresh dyno's start)
    # the incidents actor: a promotion moves the incident to the louder channel there too
    incidents: trio.MemorySendChannel[IngestMessage] | None = None


CONCURRENT_CALLS = 4  # playbook HTTP calls in flight at once


@contextlib.asynccontextmanager
async def _closed_after(book: PlaybookRecord) -> AsyncIterator[None]:
    try:
        yield
    finally:
        book.close()


async def run_playbooks(
    deps: PlaybooksDeps,
    inbox: trio.MemoryReceiveChannel[PlaybookMessage],
    outbox: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("playbooks")
    settings = deps.settings
    registry = settings.playbooks
    book = PlaybookRecord(deps.ledger_path, deps.database_url, settings.tenants)
    ledger = Ledger.of(await book.load())

    async def record(*events: PlaybookEvent, intent: bool = False) -> None:
        """Commit the events (fsynced; with ``intent``, in Postgres too or raise), fold
        them, then audit and post each."""
        await book.commit(events, intent=intent)
        for event in events:
            ledger.fold(event)
        for event in events:
            await tell(event)

    async def tell(event: PlaybookEvent) -> None:
        logger.info(
            f"playbook_{event.event}",
            tenant=event.incident.tenant,
            incident_id=event.incident.incident_id,
            playbook=event.playbook,
            proposal_id=event.proposal_id or None,
            what=event.what or None,
            by=event.by or None,
            finding=event.result.finding if event.result else None,
        )
        await outbox.send(
            AuditRecorded(
                at=event.at,
                tenant=event.incident.tenant,
                event=f"playbook_{event.event}",
                detail=audit_detail(event),
                incident_id=event.incident.incident_id,
            )
        )
        posts = thread_posts(event, ledger, settings)
        if event.event == "promoted":
            posts += promotion_posts(event, ledger, settings)
        if posts:
            await outbox.send(PlanDeliveries(origin=event.event_id, deliveries=posts))
        if event.event == "promoted" and event.to is not None:
            await louder_from_now_on(event.incident.incident_id, event.to)

    promotions_tx, promotions_rx = trio.open_memory_channel[PromoteIncident](math.inf)

    async def forward_promotions() -> None:
        async with promotions_rx:
            async for promotion in promotions_rx:
                if deps.incidents is not None:
                    await deps.incidents.send(promotion)

    async def louder_from_now_on(incident_id: str, to: SevChannel) -> None:
        """The incidents actor moves the incident to ``to`` (it calls promote() with the
        recorded acknowledgement; one that is louder already refuses, changing nothing)."""
        acknowledgement = ledger.acknowledgements.get((incident_id, to))
        if deps.incidents is None or acknowledgement is None:
            return
        # not sent from here: the incidents actor's inbox may be full while it waits on
        # the router, which waits on this actor; a task of its own forwards it
        promotions_tx.send_nowait(PromoteIncident(acknowledgement=acknowledgement, at=clock.now()))

    def event(name: str, incident: Incident, playbook: str, **fields: object) -> PlaybookEvent:
        return msgspec.convert(
            {
                "event_id": new_event_id(),
                "event": name,
                "at": clock.now(),
                "incident": incident,
                "playbook": playbook,
                **fields,
            },
            PlaybookEvent,
            from_attributes=True,
        )

    for cut in ledger.interrupted():
        await record(
            event(
                "run_interrupted",
                cut.incident,
                cut.playbook,
                proposal_id=cut.proposal_id,
                what=cut.what,
                call=cut.call,
            )
        )
    async with (
        OnDemandClient(timeout=registry.integrations.timeout_s, follow_redirects=False) as client,
        _closed_after(book),
        trio.open_nursery() as work,
    ):
        # the calls (triage, runs) go on in ``work``, a few at a time: the inbox keeps
        # draining (the router never waits on a slow API) and a click is answered at
        # once (Slack wants its answer within 3 s)
        calling = trio.CapacityLimiter(CONCURRENT_CALLS)

        async def call(what: Call) -> Result:
            async with calling:
                return await perform(what, registry, client(), now_s=int(clock.now().timestamp()))

        async def run(proposal: Proposal, said: dict[str, object]) -> None:
            result = await call(proposal.call)
            await record(
                event("run_finished", proposal.incident, proposal.playbook, **said, result=result)
            )

        async def triage(incident: Incident, playbook: Playbook) -> None:
            for step in playbook.triage:
                planned = call_of(step.action, incident, registry.integrations)
                result = await call(planned)
                await record(
                    event(
                        "triage_ran",
                        incident,
                        playbook.name,
                        what=step.name,
                        call=planned,
                        result=result,
                    )
                )
                rule = step.escalate_if
                if rule is None or result.finding not in rule.finding:
                    continue
                to = SevChannel(rule.to)
                current = ledger.recommendations.get(incident.incident_id)
                if louder(to, incident.sev_channel) and (current is None or louder(to, current.to)):
                    await record(
                        event(
                            "escalation_recommended",
                            incident,
                            playbook.name,
                            to=to,
                            because=f"triage step `{step.name}` found {result.finding}: "
                            f"{result.summary}",
                        )
                    )

        async def propose(incident: Incident, playbook: Playbook, proposer: str) -> None:
            remediation = playbook.remediation
            assert remediation is not None
            await record(
                event(
                    "proposed",
                    incident,
                    playbook.name,
                    by=proposer,
                    proposal_id="prp_" + new_event_id()[4:],
                    what=remediation.name,
                    call=call_of(remediation.action, incident, registry.integrations),
                    high_impact=remediation.high_impact,
                )
            )

        async def changed(change: IncidentChanged) -> None:
            incident = change.incident
            assert incident is not None
            if change.action is IncidentAction.RESOLVE:
                waiting = [
                    p
                    for p in ledger.proposals.values()
                    if p.incident.incident_id == incident.incident_id and p.state == "proposed"
                ]
                for proposal in waiting:
                    await record(
                        event(
                            "withdrawn",
                            incident,
                            proposal.playbook,
                            proposal_id=proposal.proposal_id,
                            what=proposal.what,
                            call=proposal.call,
                        )
                    )
                return
            if change.action is IncidentAction.UPDATE:
                to = incident.escalation_recommended
                current = ledger.recommendations.get(incident.incident_id)
                if to is not None and (current is None or louder(to, current.to)):
                    await record(
                        event(
                            "escalation_recommended",
                            incident,
                            "",
                            to=to,
                            because=f"a repeat now classified {to.value} by rule "
                            f"`{change.routing.rule}`",
                        )
                    )
                return
            playbook = registry.match(
                incident, source=change.signal.source, tags=dict(change.signal.tags)
            )
            if playbook is None or incident.incident_id in ledger.matched:
                return
            await record(event("matched", incident, playbook.name))
            work.start_soon(examine, incident, playbook)

        async def examine(incident: Incident, playbook: Playbook) -> None:
            """An opening a playbook matched: its checks, then its proposal (once: a
            restart that finds it unexamined checks again, read-only, but proposes only
            if no proposal was recorded)."""
            await triage(incident, playbook)
            proposed = any(
                p.incident.incident_id == incident.incident_id for p in ledger.proposals.values()
            )
            if playbook.remediation is not None and not proposed:
                await propose(incident, playbook, eyetok_proposer(playbook.name))
            await record(event("examined", incident, playbook.name))

        async def clicked(click: PlaybookClick) -> str:
            if click.action == "acknowledge_escalation":
                return await acknowledge_escalation(click)
            proposal = ledger.proposals.get(click.target)
            if proposal is None:
                return f"no proposal {click.target}"
            if click.action == "repropose":
                if proposal.state in ("proposed", "approved", "running"):
                    return f"{proposal.what} is still {proposal.state}"
                playbook = registry.named(proposal.playbook)
                if playbook is None or playbook.remediation is None:
                    return f"playbook {proposal.playbook} is no longer configured"
                await propose(proposal.incident, playbook, click.by)
                return f"{proposal.what} proposed again by {click.by}"
            verdict = ledger.verdict(click.target, click.by, approve=click.action == "approve")
            said = dict(
                proposal_id=proposal.proposal_id,
                what=proposal.what,
                call=proposal.call,
                by=click.by,
            )
            match verdict:
                case "counted":
                    await record(event("approved", proposal.incident, proposal.playbook, **said))
                case "approved":
                    try:
                        await record(
                            event("approved", proposal.incident, proposal.playbook, **said),
                            event("run_started", proposal.incident, proposal.playbook, **said),
                            intent=True,
                        )
                    except IntentNotRecorded as exc:
                        why = f"the intent to run could not be recorded in Postgres ({exc})"
                        await tell(
                            event(
                                "run_held",
                                proposal.incident,
                                proposal.playbook,
                                **said,
                                because=why,
                            )
                        )
                        return f"not run: {why}"
                    work.start_soon(run, proposal, said)
                case "rejected":
                    await record(event("rejected", proposal.incident, proposal.playbook, **said))
                case "proposer" | "again" | "closed" | "unknown":
                    why = {
                        "proposer": f"{click.by} proposed it and cannot approve it",
                        "again": f"{click.by} has approved it already",
                        "closed": f"it is {proposal.state}",
                        "unknown": "unknown proposal",
                    }[verdict]
                    await outbox.send(
                        AuditRecorded(
                            at=click.at,
                            tenant=proposal.incident.tenant,
                            event="playbook_click_refused",
                            detail=f"{click.action} of {proposal.what} by {click.by} "
                            f"refused: {why}",
                            incident_id=proposal.incident.incident_id,
                        )
                    )
                    logger.info(
                        "playbook_click_refused",
                        proposal_id=proposal.proposal_id,
                        action=click.action,
                        by=click.by,
                        why=why,
                    )
                    return f"refused: {why}"
                case _:
                    assert_never(verdict)
            return f"{click.action}: {verdict}"

        async def acknowledge_escalation(click: PlaybookClick) -> str:
            recommendation = ledger.recommendations.get(click.target)
            if recommendation is None:
                return f"no escalation is recommended for {click.target}"
            known = ledger.acknowledgements.get((click.target, recommendation.to))
            if known is not None:
                return f"acknowledged already by {known.by}"
            if not is_human(click.by):
                return "an escalation is acknowledged by a human"
            said = dict(to=recommendation.to, by=click.by)
            # one commit: the acknowledgement is recorded before promote() is asked
            await record(
                event("escalation_acknowledged", recommendation.incident, "", **said),
                event("promoted", recommendation.incident, "", **said),
            )
            return f"escalated to {recommendation.to.value} by {click.by}"

        logger.info(
            "playbooks_ready",
            playbooks=[p.name for p in registry.playbooks],
            proposals_open=sum(1 for p in ledger.proposals.values() if p.state == "proposed"),
            interrupted=len(ledger.interrupted()),
        )
        for owed in list(ledger.owed.values()):  # a restart cut its checks short
            playbook = registry.named(owed.playbook)
            if playbook is not None:
                logger.info(
                    "playbook_examination_resumed",
                    incident_id=owed.incident.incident_id,
                    playbook=owed.playbook,
                )
                work.start_soon(examine, owed.incident, playbook)
        work.start_soon(forward_promotions)
        task_status.started()
        for incident_id, recommendation in list(ledger.recommendations.items()):
            if recommendation.promoted:  # a restart may have cut the move short: again
                await louder_from_now_on(incident_id, recommendation.to)
        with promotions_tx:
            async for message in inbox:
                match message:
                    case IncidentChanged():
                        await changed(message)
                    case PlaybookClick():
                        answer = await clicked(message)
                        if message.reply is not None:
                            message.reply.send(answer)
                    case ProposalTenantAsked():
                        asked = ledger.proposals.get(message.proposal_id)
                        message.reply.send(asked.incident.tenant if asked is not None else "")
                    case _:
                        assert_never(message)
