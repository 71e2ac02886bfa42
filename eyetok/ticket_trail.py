"""What the ticket trail writes for an incident's next snapshot (pure).

The trail reads the incidents' snapshots in journal order and compares each with the one
before it: a new incident of a ticketed SEV channel opens a conversation; an
acknowledgement, a re-notification, an escalation, an ``escalation_recommended`` and a
resolve each append a note; the resolve then closes the conversation. Repeats (the
event count going up) are coalesced by the actor into at most one note a minute
(:func:`repeat_note`).
"""

from __future__ import annotations

from datetime import datetime
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
        notes.append(f"Escalated from {was} to {after.sev_channel.value}.")
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
