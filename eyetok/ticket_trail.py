"""What the ticket trail writes for an incident's next snapshot (pure).

The trail reads the incidents' snapshots in journal order and compares each with the one
before it: a new incident of a ticketed SEV channel opens a conversation; an
acknowledgement, a re-notification, an escalation, an ``escalation_recommended`` and a
resolve each append a note; the resolve then closes the conversation. Repeats (the
event count going up) are coalesced by the actor into at most one note a minute
(:class:`TrailPlanner`). The playbooks' audit lines of a ticketed, unresolved incident
(a proposal, each approval, a rejection, a run started, held, finished or cut short)
each append a note too (:meth:`TrailPlanner.playbook_line`): they are few, and each is a
human's decision or what it caused, so none is coalesced.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import msgspec

from eyetok.messages import Incident, SevChannel

OpKind = Literal["open", "note", "close"]


class TrailOp(msgspec.Struct, frozen=True, kw_only=True):
    """One FreeScout call the trail owes, an outbox row before it is attempted."""

    op_id: str  # the row id (see op_id): ids sort in the order the ops are owed
    incident: Incident
    kind: OpKind
    text: str  # the note's text (an opening's text is written when it is sent)
    planned_at: datetime


def _when(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def steps_between(before: Incident, after: Incident) -> list[str]:
    """The notes for what changed between two snapshots of one ticketed incident, the
    resolve last (the repeats are the actor's: see :func:`repeat_note`)."""
    notes = []
    if after.escalation_recommended is not None and (
        after.escalation_recommended != before.escalation_recommended
    ):
        notes.append(
            f"escalation_recommended: {after.escalation_recommended.value}. The agent "
            "recommends it; an operator acknowledges before anything is re-posted louder."
        )
    if after.sev_channel != before.sev_channel and after.sev_channel is not None:
        was = before.sev_channel.value if before.sev_channel else "no channel"
        notes.append(f"SEV channel changed from {was} to {after.sev_channel.value}.")
    if after.acknowledged_at is not None and before.acknowledged_at is None:
        notes.append(
            f"Acknowledged by {after.acknowledged_by or 'someone'} at "
            f"{_when(after.acknowledged_at)}; its escalation stopped."
        )
    if after.renotified_at is not None and before.renotified_at is None:
        notes.append(
            f"Not acknowledged yet: the on-call was re-notified at {_when(after.renotified_at)}."
        )
    if after.escalated_at is not None and before.escalated_at is None:
        notes.append(
            "Not acknowledged yet: escalation to the secondary was planned at "
            f"{_when(after.escalated_at)}."
        )
    if after.status == "resolved" and before.status != "resolved":
        at = after.resolved_at or after.last_seen_at
        notes.append(f"Resolved at {_when(at)} after {after.event_count} event(s).")
    return notes


PLAYBOOK_NOTES = {
    "playbook_proposed": "Playbook proposal, waiting for approval",
    "playbook_approved": "Playbook approval",
    "playbook_rejected": "Playbook proposal rejected",
    "playbook_run_held": "Playbook run held",
    "playbook_run_started": "Playbook run started",
    "playbook_run_finished": "Playbook run finished",
    "playbook_run_interrupted": "Playbook run interrupted",
}


def playbook_note(event: str, detail: str) -> str:
    """The note for one of the playbooks' audit lines (its detail says who and what)."""
    return f"{PLAYBOOK_NOTES.get(event, event.replace('_', ' '))}: {detail}."


def repeat_note(incident: Incident, noted_count: int) -> str:
    """The note for the repeats since ``noted_count`` events had been noted."""
    more = incident.event_count - noted_count
    return (
        f"Repeated: {more} more event(s) (total {incident.event_count}), the last at "
        f"{_when(incident.last_seen_at)}."
    )


def opens(before: Incident | None, after: Incident, channels: tuple[SevChannel, ...]) -> bool:
    """Whether ``after`` opens a conversation: it is in a ticketed SEV channel, not
    resolved, and was not ticketed before (new, or re-posted louder into one)."""
    if after.status == "resolved" or after.sev_channel not in channels:
        return False
    return before is None or before.sev_channel not in channels


def op_id(incident_id: str, kind: str, seq: int, n: int) -> str:
    """An op's row id; ids sort in the order the ops are owed (journal order, then the
    n-th op of one snapshot)."""
    return f"fs_{seq:012d}_{n:03d}_{incident_id}_{kind}"


class TrailPlanner:
    """The trail's memory between snapshots and the ops each snapshot owes.

    ``seen``: every unresolved incident as last seen; ``ticketed``: the incidents whose
    opening was planned; a drill tenant's incidents (synthetic outages) are never
    ticketed. Per ticketed incident it remembers the event count its notes
    told of and when the last repeat note was planned (after a restart: "told of
    everything so far"), and the repeats still waiting for their minute.
    """

    def __init__(
        self,
        *,
        channels: tuple[SevChannel, ...],
        every: timedelta,
        seen: dict[str, Incident],
        ticketed: set[str],
        drill_tenants: frozenset[str] = frozenset(),
    ) -> None:
        self.channels, self.every, self.drill_tenants = channels, every, drill_tenants
        self.seen, self.ticketed = seen, ticketed
        self.noted: dict[str, tuple[int, datetime | None]] = {
            i: (seen[i].event_count, None) for i in ticketed if i in seen
        }
        self.untold: dict[str, Incident] = {}

    def snapshot(self, seq: int, incident: Incident, now: datetime) -> list[TrailOp]:
        """The ops owed for snapshot ``seq`` of ``incident``, in the order owed."""
        iid = incident.incident_id
        before = self.seen.get(iid)
        if incident.status == "resolved":
            self.seen.pop(iid, None)
        else:
            self.seen[iid] = incident
        if iid not in self.ticketed:
            if incident.tenant in self.drill_tenants or not opens(before, incident, self.channels):
                return []
            self.ticketed.add(iid)
            self.noted[iid] = (incident.event_count, None)
            return [_op(iid, "open", seq, 0, incident, "", now)]
        if before is None:
            return []
        notes = steps_between(before, incident)
        resolved = incident.status == "resolved"
        told, last = self.noted.get(iid, (before.event_count, None))
        if incident.event_count > told:
            if resolved or last is None or now - last >= self.every:
                notes.insert(0, repeat_note(incident, told))
                self.noted[iid] = (incident.event_count, now)
                self.untold.pop(iid, None)
            else:
                self.untold[iid] = incident
        ops = [_op(iid, "note", seq, n, incident, text, now) for n, text in enumerate(notes)]
        if resolved:
            ops.append(_op(iid, "close", seq, len(notes), incident, "", now))
            self.noted.pop(iid, None)
            self.untold.pop(iid, None)
        return ops

    def playbook_line(
        self, line_key: str, incident_id: str, event: str, detail: str, seq: int, now: datetime
    ) -> TrailOp | None:
        """The note a playbook audit line owes (None: its incident is not ticketed, or
        resolved: its conversation is closed). ``seq``: the cursor."""
        incident = self.seen.get(incident_id)
        if incident_id not in self.ticketed or incident is None:
            return None
        text = playbook_note(event, detail)
        return _op(incident_id, f"playbook-{line_key[:12]}", seq, 600, incident, text, now)

    def repeats_due(self, now: datetime, seq: int) -> list[TrailOp]:
        """The coalesced repeat notes whose minute has passed (``seq``: the cursor)."""
        ops = []
        for iid, incident in list(self.untold.items()):
            told, last = self.noted.get(iid, (incident.event_count, None))
            if last is not None and now - last < self.every:
                continue
            ops.append(_op(iid, "repeat", seq, 500, incident, repeat_note(incident, told), now))
            self.noted[iid] = (incident.event_count, now)
            del self.untold[iid]
        return ops

    def next_repeat_in(self, now: datetime) -> float:
        """Seconds until the next coalesced repeat falls due (inf: none waits)."""
        dues = [
            (last + self.every - now).total_seconds()
            for iid in self.untold
            if (last := self.noted.get(iid, (0, None))[1]) is not None
        ]
        return max(0.0, min(dues, default=float("inf")))


def _op(
    iid: str, what: str, seq: int, n: int, incident: Incident, text: str, now: datetime
) -> TrailOp:
    kind: OpKind = "open" if what == "open" else "close" if what == "close" else "note"
    return TrailOp(
        op_id=op_id(iid, what, seq, n), incident=incident, kind=kind, text=text, planned_at=now
    )
