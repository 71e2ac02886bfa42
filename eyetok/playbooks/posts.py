"""What a playbook says in an incident's thread, pure: a recorded event -> a post.

Each post says only what the event records: a proposal (what would run, with which
parameters; never a credential) with ``Approve`` and ``Reject``; who approved, rejected,
what ran and what it answered; what a triage step checked and what it found; an
``escalation_recommended`` with ``Acknowledge escalation``. No post mentions anyone: the
incident's own post already did where its channel calls for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from eyetok.messages import Incident, PlaybookPost, PostButton, SevChannel
from eyetok.playbooks.config import Playbook
from eyetok.playbooks.kinds import Call, Result, shown
from eyetok.playbooks.ledger import EventName, PlaybookEvent, Proposal, eyetok_proposer
from eyetok.wording import when

APPROVE_ACTION = "eyetok_playbook_approve"
REJECT_ACTION = "eyetok_playbook_reject"
REPROPOSE_ACTION = "eyetok_playbook_repropose"
ACKNOWLEDGE_ESCALATION_ACTION = "eyetok_escalation_acknowledge"
PLAYBOOK_ACTIONS = {
    APPROVE_ACTION: "approve",
    REJECT_ACTION: "reject",
    REPROPOSE_ACTION: "repropose",
    ACKNOWLEDGE_ESCALATION_ACTION: "acknowledge_escalation",
}


def announce(playbook: Playbook) -> str:
    """The line the incident's first post carries when a playbook matched it."""
    parts = []
    if playbook.triage:
        parts.append("its read-only checks run now and report in this thread")
    if playbook.remediation is not None:
        parts.append(
            f"it proposes `{playbook.remediation.name}` in this thread; nothing runs "
            "without approval"
        )
    return f"Playbook `{playbook.name}` matched: " + "; ".join(parts) + "."


def _approvals(proposal: Proposal) -> str:
    return f"{len(proposal.approvers)} of {proposal.required} approval" + (
        "s" if proposal.required > 1 else ""
    )


def _proposal_text(proposal: Proposal) -> str:
    rule = (
        "high impact: two approvers, neither of them the proposer"
        if proposal.high_impact
        else "one approver who is not the proposer"
    )
    return (
        f":clipboard: Playbook `{proposal.playbook}` proposes `{proposal.what}`: "
        f"`{shown(proposal.call)}`. Proposed by {proposal.proposer}; needs {rule}."
    )


def _decision_buttons(proposal: Proposal) -> tuple[PostButton, ...]:
    value = f"proposal:{proposal.proposal_id}"
    return (
        PostButton(action_id=APPROVE_ACTION, text="Approve", value=value, style="primary"),
        PostButton(action_id=REJECT_ACTION, text="Reject", value=value, style="danger"),
    )


def proposal_now(event: PlaybookEvent, proposal: Proposal) -> PlaybookPost | None:
    """The proposal's own post (Approve, Reject) as it reads after ``event``, a decision
    on it: who did what and when, and only the buttons still possible (None: the event
    changes nothing there)."""
    at = when(event.at)
    approved = " and ".join(proposal.approvers)
    match event.event:
        case "approved" if proposal.state == "proposed":
            return PlaybookPost(
                text=f"{_proposal_text(proposal)} :ballot_box_with_check: Approved by "
                f"{approved} ({_approvals(proposal)}), last at {at}; waiting for a "
                "second approver. Nothing runs until then.",
                buttons=_decision_buttons(proposal),
            )
        case "approved":
            return PlaybookPost(
                text=f"{_proposal_text(proposal)} :ballot_box_with_check: Approved by "
                f"{approved} at {at}: it runs (the result follows in this thread)."
            )
        case "rejected":
            return PlaybookPost(
                text=f"{_proposal_text(proposal)} :no_entry: Rejected by {event.by} at {at}; "
                "it was not run."
            )
        case "withdrawn":
            return PlaybookPost(
                text=f"{_proposal_text(proposal)} :heavy_minus_sign: Withdrawn at {at}: the "
                "incident resolved before anyone approved it; it was not run."
            )
        case "run_finished" if event.result is not None:
            return PlaybookPost(
                text=f"{_proposal_text(proposal)} :ballot_box_with_check: Approved by "
                f"{approved}; ran at {at}: {event.result.finding}, {event.result.summary}."
            )
        case _:
            return None


def recommendation_now(event: PlaybookEvent, because: str) -> PlaybookPost | None:
    """The ``escalation_recommended`` post as it reads once a human acknowledged it (and
    once it was re-posted louder): no button left."""
    if event.to is None:
        return None
    recommended = f":arrow_double_up: `escalation_recommended: {event.to.value}` ({because})."
    match event.event:
        case "escalation_acknowledged":
            return PlaybookPost(
                text=f"{recommended} :white_check_mark: Acknowledged by {event.by} at "
                f"{when(event.at)}."
            )
        case "promoted":
            return PlaybookPost(
                text=f"{recommended} :white_check_mark: Acknowledged by {event.by}; "
                f"re-posted in {event.to.value}'s channel at {when(event.at)}."
            )
        case _:
            return None


def post_of(event: PlaybookEvent, proposal: Proposal | None) -> PlaybookPost | None:
    """The thread post for ``event`` (None: it is not posted). ``proposal`` is the
    proposal it concerns, as it stands after the event."""
    call = f"`{shown(event.call)}`" if event.call is not None else ""
    result = event.result
    match event.event:
        case "proposed":
            assert proposal is not None
            return PlaybookPost(
                text=f"{_proposal_text(proposal)} Nothing runs until then.",
                buttons=_decision_buttons(proposal),
            )
        case "approved":
            assert proposal is not None
            if proposal.state == "proposed":
                return PlaybookPost(
                    text=f":ballot_box_with_check: `{event.what}` approved by {event.by} "
                    f"({_approvals(proposal)}); not run yet."
                )
            return PlaybookPost(
                text=f":ballot_box_with_check: `{event.what}` approved by {event.by} "
                f"({_approvals(proposal)}): running {call}."
            )
        case "rejected":
            return PlaybookPost(
                text=f":no_entry: `{event.what}` rejected by {event.by}; it was not run.",
                buttons=(
                    PostButton(
                        action_id=REPROPOSE_ACTION,
                        text="Propose again",
                        value=f"proposal:{event.proposal_id}",
                    ),
                ),
            )
        case "withdrawn":
            return PlaybookPost(
                text=f":heavy_minus_sign: `{event.what}` withdrawn: the incident resolved "
                "before anyone approved it; it was not run."
            )
        case "run_started" | "matched" | "examined":
            return None  # the approval that started it, the first post, the posts between
        case "run_finished":
            assert result is not None
            icon = ":white_check_mark:" if result.finding == "ok" else ":x:"
            return PlaybookPost(
                text=f"{icon} Ran `{event.what}` ({call}): {result.finding}, {result.summary}."
            )
        case "run_interrupted":
            return PlaybookPost(
                text=f":warning: The run of `{event.what}` ({call}) was started, then EyeTok "
                "restarted before its answer was recorded. It is not run again: check the "
                "result at its source.",
                buttons=(
                    PostButton(
                        action_id=REPROPOSE_ACTION,
                        text="Propose again",
                        value=f"proposal:{event.proposal_id}",
                    ),
                ),
            )
        case "run_held":
            return PlaybookPost(
                text=f":warning: Approval of `{event.what}` by {event.by} not counted and "
                f"nothing ran: {event.because}. Press Approve again once it is back."
            )
        case "triage_ran":
            assert result is not None
            icon = ":mag:" if result.finding == "ok" else ":warning:"
            return PlaybookPost(
                text=f"{icon} Checked `{event.what}` ({call}): {result.finding}, {result.summary}."
            )
        case "escalation_recommended":
            assert event.to is not None
            return PlaybookPost(
                text=f":arrow_double_up: `escalation_recommended: {event.to.value}` "
                f"({event.because}). It stays in this channel until a human acknowledges.",
                buttons=(
                    PostButton(
                        action_id=ACKNOWLEDGE_ESCALATION_ACTION,
                        text="Acknowledge escalation",
                        value=f"incident:{event.incident.incident_id}",
                        style="primary",
                    ),
                ),
            )
        case "escalation_acknowledged":
            assert event.to is not None
            return PlaybookPost(
                text=f":white_check_mark: Escalation to {event.to.value} acknowledged by "
                f"{event.by}."
            )
        case "promoted":
            assert event.to is not None
            return PlaybookPost(
                text=f":arrow_double_up: Re-posted in {event.to.value}'s channel and sinks "
                f"(acknowledged by {event.by})."
            )


def sample_posts(incident: Incident) -> Iterator[tuple[str, PlaybookPost]]:
    """One post of every kind about ``incident`` (``eyetok check`` runs the payload
    guard over them; the upstream title and a quoted answer are in some)."""
    call = Call(
        kind="heroku.restart_dyno",
        method="DELETE",
        url="https://api.heroku.com/apps/raxx-prod/dynos/web",
        bearer_env="HEROKU_API_TOKEN",
    )
    proposal = Proposal(
        proposal_id="prp_0123456789abcdef",
        incident=incident,
        playbook="raxx-h12-storm",
        what="restart web dynos",
        call=call,
        high_impact=True,
        proposer=eyetok_proposer("raxx-h12-storm"),
        approvers=["slack:dana (U0DANA)"],
    )
    found = Result(finding="failed", status=503, summary=f"answered 503: {incident.title}")
    said: dict[str, object] = {
        "incident": incident,
        "playbook": proposal.playbook,
        "proposal_id": proposal.proposal_id,
        "what": proposal.what,
        "call": call,
        "by": "slack:dana (U0DANA)",
        "at": incident.last_seen_at,
        "to": SevChannel.SEV2,
        "because": "triage step `health` found failed: answered 503",
    }
    names: tuple[EventName, ...] = (
        "proposed",
        "approved",
        "rejected",
        "withdrawn",
        "run_finished",
        "run_interrupted",
        "run_held",
        "triage_ran",
        "escalation_recommended",
        "escalation_acknowledged",
        "promoted",
    )
    for name in names:
        event = msgspec.convert(
            {**said, "event_id": f"pbe_{name}", "event": name, "result": found},
            PlaybookEvent,
            from_attributes=True,
        )
        post = post_of(event, proposal)
        if post is not None:
            yield name, post
