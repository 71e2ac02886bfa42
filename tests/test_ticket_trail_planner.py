"""eyetok/ticket_trail.py: which FreeScout calls each snapshot of an incident owes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from eyetok.messages import Incident, SevChannel, Severity
from eyetok.ticket_trail import TrailOp, TrailPlanner
from tests.pg import incident

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
CHANNELS = (SevChannel.SEV1, SevChannel.SEV2, SevChannel.SEV2_5)


def _planner() -> TrailPlanner:
    return TrailPlanner(channels=CHANNELS, every=timedelta(minutes=1), seen={}, ticketed=set())


def _sev1(**changes: object) -> Incident:
    base = msgspec.structs.replace(
        incident("inc_1"), severity=Severity.CRITICAL, sev_channel=SevChannel.SEV1
    )
    return msgspec.structs.replace(base, **changes)


def _kinds(ops: list[TrailOp]) -> list[tuple[str, str]]:
    return [(op.kind, op.text.split(":")[0].split(" ")[0]) for op in ops]


def test_a_sev1_life_owes_open_notes_and_close_in_order() -> None:
    planner = _planner()
    assert _kinds(planner.snapshot(1, _sev1(), T0)) == [("open", "")]
    acked = _sev1(acknowledged_at=T0, acknowledged_by="sam", status="acknowledged")
    assert _kinds(planner.snapshot(2, acked, T0)) == [("note", "Acknowledged")]
    stepped = msgspec.structs.replace(acked, renotified_at=T0, escalated_at=T0)
    [renotified, escalated] = planner.snapshot(3, stepped, T0)
    assert "re-notified" in renotified.text
    assert "secondary" in escalated.text
    resolved = msgspec.structs.replace(stepped, status="resolved", resolved_at=T0)
    ops = planner.snapshot(4, resolved, T0)
    assert _kinds(ops) == [("note", "Resolved"), ("close", "")]
    ids = [op.op_id for op in ops]
    assert ids == sorted(ids)  # the rows sort in the order they are owed


def test_a_sev3_is_not_ticketed_until_it_is_reposted_louder() -> None:
    planner = _planner()
    quiet = _sev1(severity=Severity.MEDIUM, sev_channel=SevChannel.SEV3)
    assert planner.snapshot(1, quiet, T0) == []
    recommended = msgspec.structs.replace(quiet, escalation_recommended=SevChannel.SEV2)
    assert planner.snapshot(2, recommended, T0) == []
    louder = msgspec.structs.replace(recommended, sev_channel=SevChannel.SEV2)
    assert _kinds(planner.snapshot(3, louder, T0)) == [("open", "")]


def test_an_escalation_recommendation_of_a_ticketed_incident_is_a_note() -> None:
    planner = _planner()
    high = _sev1(severity=Severity.HIGH, sev_channel=SevChannel.SEV2)
    planner.snapshot(1, high, T0)
    [note] = planner.snapshot(
        2, msgspec.structs.replace(high, escalation_recommended=SevChannel.SEV1), T0
    )
    assert note.text.startswith("escalation_recommended: SEV1")


def test_repeats_are_coalesced_to_one_note_a_minute() -> None:
    planner = _planner()
    planner.snapshot(1, _sev1(), T0)
    [first] = planner.snapshot(2, _sev1(event_count=2), T0 + timedelta(seconds=1))
    assert "total 2" in first.text
    for n in range(3, 10):  # seven more within the minute: held
        assert planner.snapshot(n, _sev1(event_count=n), T0 + timedelta(seconds=n)) == []
    assert planner.next_repeat_in(T0 + timedelta(seconds=10)) == 51.0
    assert planner.repeats_due(T0 + timedelta(seconds=30), 9) == []
    [held] = planner.repeats_due(T0 + timedelta(seconds=61), 9)
    assert "7 more event(s) (total 9)" in held.text
    assert planner.repeats_due(T0 + timedelta(seconds=200), 9) == []


def test_a_resolve_flushes_the_held_repeats_before_closing() -> None:
    planner = _planner()
    planner.snapshot(1, _sev1(), T0)
    planner.snapshot(2, _sev1(event_count=2), T0)
    planner.snapshot(3, _sev1(event_count=3), T0 + timedelta(seconds=5))
    ops = planner.snapshot(4, _sev1(event_count=3, status="resolved"), T0 + timedelta(seconds=6))
    assert _kinds(ops) == [("note", "Repeated"), ("note", "Resolved"), ("close", "")]
    assert planner.repeats_due(T0 + timedelta(minutes=5), 4) == []


def test_a_restart_picks_up_from_what_was_seen() -> None:
    older = _sev1(incident_id="inc_0")  # open before the trail ever ran: never ticketed
    seen = {"inc_1": _sev1(event_count=4), "inc_0": older}
    planner = TrailPlanner(
        channels=CHANNELS, every=timedelta(minutes=1), seen=seen, ticketed={"inc_1"}
    )
    [note] = planner.snapshot(9, _sev1(event_count=6), T0)
    assert "2 more event(s) (total 6)" in note.text
    assert planner.snapshot(10, msgspec.structs.replace(older, event_count=2), T0) == []


def test_a_drill_tenants_incidents_are_never_ticketed() -> None:
    planner = TrailPlanner(
        channels=CHANNELS,
        every=timedelta(minutes=1),
        seen={},
        ticketed=set(),
        drill_tenants=frozenset({"drill"}),
    )
    assert planner.snapshot(1, _sev1(tenant="drill"), T0) == []
    assert _kinds(planner.snapshot(2, _sev1(incident_id="inc_2"), T0)) == [("open", "")]
