"""What the playbooks actor tells of a recorded event, pure: the thread post on the
route's Slack sinks, the louder re-post of a promotion (through
:func:`eyetok.escalation.promote`) and the audit line."""

from __future__ import annotations

import msgspec

from actors.router import deliveries_about, delivery_id
from eyetok.config import Settings
from eyetok.escalation import promote
from eyetok.messages import Deliver, IncidentAction, PlaybookPost, Rewrite
from eyetok.playbooks.kinds import shown
from eyetok.playbooks.ledger import Ledger, PlaybookEvent
from eyetok.playbooks.posts import post_of, proposal_now, recommendation_now
from eyetok.policy import destinations_for


def thread_posts(event: PlaybookEvent, ledger: Ledger, settings: Settings) -> tuple[Deliver, ...]:
    """The event's post in the incident's thread, on the Slack sinks of its route."""
    incident = event.incident
    post = post_of(event, ledger.proposals.get(event.proposal_id))
    tenant = settings.tenants.get(incident.tenant)
    if post is None or tenant is None:
        return ()
    route = destinations_for(tenant.policy, incident.sev_channel, settings.sink_types())
    slack = [dest for dest in route if dest.sink_type == "slack"]
    posts = deliveries_about(
        event.event_id,
        incident,
        slack,
        action=IncidentAction.UPDATE,
        at=event.at,
        step="playbook",
        post=post,
    )
    decided = _decided_post(event, ledger)
    if decided is None:
        return posts
    origin, now = decided
    return tuple(
        msgspec.structs.replace(
            d,
            rewrite=Rewrite(
                delivery_id=delivery_id(origin, d.destination), text=now.text, buttons=now.buttons
            ),
        )
        for d in posts
    )


def _decided_post(event: PlaybookEvent, ledger: Ledger) -> tuple[str, PlaybookPost] | None:
    """The post ``event`` decided on (the origin it was posted from) as it now reads."""
    proposal = ledger.proposals.get(event.proposal_id)
    if proposal is not None and proposal.proposed_event:
        now = proposal_now(event, proposal)
        return (proposal.proposed_event, now) if now is not None else None
    recommendation = ledger.recommendations.get(event.incident.incident_id)
    if recommendation is None or recommendation.to is not event.to:
        return None
    now = recommendation_now(event, recommendation.because)
    return (recommendation.event_id, now) if now is not None and recommendation.event_id else None


def promotion_posts(
    event: PlaybookEvent, ledger: Ledger, settings: Settings
) -> tuple[Deliver, ...]:
    """A ``promoted`` event's re-post in the louder channel and its route's sinks. It goes
    through :func:`promote`: without the recorded acknowledgement it raises."""
    assert event.to is not None
    acknowledgement = ledger.acknowledgements.get((event.incident.incident_id, event.to))
    louder_incident = promote(event.incident, event.to, acknowledgement)
    tenant = settings.tenants.get(louder_incident.tenant)
    if tenant is None:
        return ()
    route = destinations_for(tenant.policy, event.to, settings.sink_types())
    return deliveries_about(
        f"{event.event_id}:promoted",
        louder_incident,
        route,
        action=IncidentAction.OPEN,
        at=event.at,
    )


def audit_detail(event: PlaybookEvent) -> str:
    call = shown(event.call) if event.call is not None else ""
    result = f": {event.result.finding}, {event.result.summary}" if event.result else ""
    match event.event:
        case "matched" | "examined":
            return f"playbook {event.playbook} {event.event}"
        case "triage_ran":
            return f"{event.what} ({call}){result}"
        case "proposed":
            return (
                f"{event.playbook} proposes {event.what} ({call}) by {event.by} "
                f"(proposal {event.proposal_id})"
            )
        case "withdrawn":
            return f"{event.what} withdrawn: the incident resolved (proposal {event.proposal_id})"
        case "approved" | "rejected":
            return f"{event.what} {event.event} by {event.by} (proposal {event.proposal_id})"
        case "run_held":
            return (
                f"{event.what} approved by {event.by}, not run: {event.because} "
                f"(proposal {event.proposal_id})"
            )
        case "run_started" | "run_interrupted":
            return (
                f"{event.what} ({call}) {event.event.replace('_', ' ')} "
                f"(proposal {event.proposal_id})"
            )
        case "run_finished":
            return f"{event.what} ({call}){result} (proposal {event.proposal_id})"
        case "escalation_recommended":
            assert event.to is not None
            return f"escalation_recommended: {event.to.value} ({event.because})"
        case "escalation_acknowledged" | "promoted":
            assert event.to is not None
            return f"{event.event.replace('_', ' ')} to {event.to.value} by {event.by}"
