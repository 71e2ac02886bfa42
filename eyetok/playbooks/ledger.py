"""Proposals, runs, triage and escalation recommendations as a fold over recorded events.

The playbooks actor records a :class:`PlaybookEvent` (committed) *before* it acts on it:
the intent to run a remediation (``run_started``) is on disk before the HTTP call, so a
restart that finds a run started and never finished marks it ``run_interrupted`` and does
not call again. :class:`Ledger` is the state those events fold into; its ``decide_*``
methods are pure: they answer what the next events are, and the actor records them.

Who proposes: EyeTok itself (``eyetok:playbook:<name>``) when an incident matches, or the
human who presses ``Propose again`` on a proposal that was rejected or did not run. Who
approves: any human but the proposer; a ``high_impact`` remediation needs two distinct
approvers. Any human but the proposer may reject; a rejection is final for that proposal.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec

from eyetok.incidents import louder
from eyetok.messages import Acknowledgement, Incident, SevChannel
from eyetok.playbooks.kinds import Call, Result

EventName = Literal[
    "matched",  # a playbook matched an opening: its checks (and proposal) are owed
    "examined",  # ... and were made (a restart re-runs a matched, unexamined one)
    "proposed",
    "approved",
    "rejected",
    "withdrawn",  # the incident resolved before anyone approved: it never runs
    "run_started",
    "run_finished",
    "run_interrupted",
    "run_held",  # told, never recorded: an approval whose run's intent Postgres refused
    "triage_ran",
    "escalation_recommended",
    "escalation_acknowledged",
    "promoted",
]


class PlaybookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded fact of the playbooks actor (the ``playbook_events`` table)."""

    event_id: str
    event: EventName
    at: datetime
    incident: Incident  # the snapshot the event is about
    playbook: str
    by: str = ""  # the proposer, approver, rejecter or acknowledger ("eyetok:..." if EyeTok)
    proposal_id: str = ""
    what: str = ""  # remediation or step name
    call: Call | None = None
    high_impact: bool = False
    result: Result | None = None
    to: SevChannel | None = None  # escalation_*: the louder channel
    because: str = ""  # escalation_recommended: the step and its finding


def new_event_id() -> str:
    return "pbe_" + secrets.token_hex(8)


def eyetok_proposer(playbook: str) -> str:
    return f"eyetok:playbook:{playbook}"


ProposalState = Literal[
    "proposed", "approved", "rejected", "withdrawn", "running", "ran", "interrupted"
]


@dataclass
class Proposal:
    proposal_id: str
    incident: Incident
    playbook: str
    what: str
    call: Call
    high_impact: bool
    proposer: str
    approvers: list[str] = field(default_factory=list)
    state: ProposalState = "proposed"
    rejected_by: str = ""
    result: Result | None = None
    proposed_event: str = ""  # the event whose post carries Approve and Reject

    @property
    def required(self) -> int:
        return 2 if self.high_impact else 1


@dataclass
class Recommendation:
    incident: Incident
    to: SevChannel
    because: str
    promoted: bool = False
    event_id: str = ""  # the event whose post carries Acknowledge escalation


Verdict = Literal[
    "counted",  # an approval, more are needed
    "approved",  # the approval that made the quorum: the run starts
    "rejected",
    "proposer",  # the proposer may not approve their own proposal
    "again",  # this person has approved already
    "closed",  # rejected, running or done: nothing changes
    "unknown",
]


@dataclass
class Ledger:
    """The fold of every recorded event (rebuilt from the table on every start)."""

    proposals: dict[str, Proposal] = field(default_factory=dict)
    recommendations: dict[str, Recommendation] = field(default_factory=dict)
    # (incident id, channel) -> the human acknowledgement of that recommendation
    acknowledgements: dict[tuple[str, SevChannel], Acknowledgement] = field(default_factory=dict)
    # incident id -> the match whose checks and proposal are owed (not examined yet)
    owed: dict[str, PlaybookEvent] = field(default_factory=dict)
    matched: set[str] = field(default_factory=set)  # incident ids a playbook matched

    def fold(self, event: PlaybookEvent) -> None:
        incident_id = event.incident.incident_id
        proposal = self.proposals.get(event.proposal_id)
        match event.event:
            case "proposed":
                assert event.call is not None
                self.proposals[event.proposal_id] = Proposal(
                    proposal_id=event.proposal_id,
                    incident=event.incident,
                    playbook=event.playbook,
                    what=event.what,
                    call=event.call,
                    high_impact=event.high_impact,
                    proposer=event.by,
                    proposed_event=event.event_id,
                )
            case "approved" if proposal is not None:
                proposal.approvers.append(event.by)
                if len(proposal.approvers) >= proposal.required:
                    proposal.state = "approved"
            case "rejected" if proposal is not None:
                proposal.state, proposal.rejected_by = "rejected", event.by
            case "withdrawn" if proposal is not None:
                proposal.state = "withdrawn"
            case "run_started" if proposal is not None:
                proposal.state = "running"
            case "run_finished" if proposal is not None:
                proposal.state, proposal.result = "ran", event.result
            case "run_interrupted" if proposal is not None:
                proposal.state = "interrupted"
            case "matched":
                self.matched.add(incident_id)
                self.owed[incident_id] = event
            case "examined":
                self.owed.pop(incident_id, None)
            case "escalation_recommended" if event.to is not None:
                current = self.recommendations.get(incident_id)
                if current is None or louder(event.to, current.to):
                    self.recommendations[incident_id] = Recommendation(
                        incident=event.incident,
                        to=event.to,
                        because=event.because,
                        event_id=event.event_id,
                    )
            case "escalation_acknowledged" if event.to is not None:
                # kept apart from the recommendation: a louder one recorded meanwhile
                # (a check still running) does not unmake this acknowledgement
                self.acknowledgements[(incident_id, event.to)] = Acknowledgement(
                    incident_id=incident_id, to=event.to, by=event.by, at=event.at
                )
            case "promoted":
                rec = self.recommendations.get(incident_id)
                if rec is not None:
                    rec.promoted = True
            case _:
                pass

    @classmethod
    def of(cls, events: list[PlaybookEvent]) -> Ledger:
        ledger = cls()
        for event in events:
            ledger.fold(event)
        return ledger

    def verdict(self, proposal_id: str, by: str, approve: bool) -> Verdict:
        """What an approval or rejection by ``by`` does to the proposal (pure)."""
        proposal = self.proposals.get(proposal_id)
        if proposal is None:
            return "unknown"
        if proposal.state != "proposed":
            return "closed"
        if not approve:
            return "rejected"  # anyone may stop it, the human proposer too
        if same_person(by, proposal.proposer):
            return "proposer"
        if any(same_person(by, a) for a in proposal.approvers):
            return "again"
        return "approved" if len(proposal.approvers) + 1 >= proposal.required else "counted"

    def interrupted(self) -> list[Proposal]:
        """Runs started and never finished: a restart cut them (never called again; the
        quorum's approval and ``run_started`` are committed together)."""
        return [p for p in self.proposals.values() if p.state == "running"]

    def open_proposal(self, incident_id: str) -> Proposal | None:
        return next(
            (
                p
                for p in self.proposals.values()
                if p.incident.incident_id == incident_id and p.state in ("proposed", "approved")
            ),
            None,
        )


def person_of(who: str) -> str:
    """The identity in ``slack:<name> (<user id>)``: the Slack user id when it is there
    (a renamed user is the same person), else the whole string."""
    if who.endswith(")") and " (" in who:
        return who.rsplit(" (", 1)[1][:-1]
    return who


def same_person(a: str, b: str) -> bool:
    return person_of(a) == person_of(b)
