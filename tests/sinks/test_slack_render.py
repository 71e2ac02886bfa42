"""Slack posts read on a phone: ET times with UTC in brackets, plurals, the SOP in the
SEV1 notification line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.sinks.slack.render import render
from eyetok.config import SlackOptions
from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    SevChannel,
    Severity,
)
from eyetok.wording import duration, plural, when

OPENED = datetime(2026, 11, 24, 3, 0, 12, tzinfo=UTC)  # Mon 23 Nov 22:00 EST
OPTIONS = SlackOptions(emergency_sop_url="https://runbooks.raxx.example/sop")


def _deliver(action: IncidentAction, channel: SevChannel, **changes: object) -> Deliver:
    fields: dict[str, object] = {
        "incident_id": "inc_0f3a9c2e7b1d4e56",
        "tenant": "operator",
        "dedup_key": "sentry:1",
        "title": "Database unreachable",
        "severity": Severity.CRITICAL if channel is SevChannel.SEV1 else Severity.MEDIUM,
        "sev_channel": channel,
        "rule": "fatal",
        "status": "open",
        "opened_at": OPENED,
        "last_seen_at": OPENED,
        "event_count": 1,
    } | changes
    incident = Incident(**fields)  # type: ignore[arg-type]
    return Deliver(
        delivery_id="dlv_1",
        tenant="operator",
        destination=Destination(sink_id="slack", sink_type="slack", target="#sev"),
        incident=incident,
        action=action,
        rule="fatal",
        planned_at=OPENED,
        received_at=OPENED,
    )


def test_the_sev1_notification_line_carries_the_sop_link() -> None:
    message = render(
        _deliver(IncidentAction.OPEN, SevChannel.SEV1), thread_ts=None, options=OPTIONS
    )
    assert message.text == (
        "[SEV1] Database unreachable · Emergency SOP: https://runbooks.raxx.example/sop"
    )
    sev3 = render(_deliver(IncidentAction.OPEN, SevChannel.SEV3), thread_ts=None, options=OPTIONS)
    assert "SOP" not in sev3.text


def test_a_resolve_after_one_event_says_one_event_in_new_york_time() -> None:
    resolved_at = OPENED + timedelta(hours=1, minutes=2)
    message = render(
        _deliver(IncidentAction.RESOLVE, SevChannel.SEV1, resolved_at=resolved_at),
        thread_ts="1.2",
        options=OPTIONS,
    )
    assert message.text == (
        "Resolved at Mon 23 Nov 23:02 EST (04:02 UTC Tue 24 Nov) after 1 event, open 1 h 2 min"
    )


def test_a_repeat_counts_its_events_and_says_edt_in_summer() -> None:
    summer = datetime(2026, 7, 1, 16, 5, tzinfo=UTC)
    message = render(
        _deliver(IncidentAction.UPDATE, SevChannel.SEV3, event_count=7, last_seen_at=summer),
        thread_ts="1.2",
        options=OPTIONS,
    )
    assert message.text == "Seen again: 7 events, last at Wed 1 Jul 12:05 EDT (16:05 UTC)"


def test_the_wording_helpers() -> None:
    assert [plural(n, "event") for n in (0, 1, 2)] == ["0 events", "1 event", "2 events"]
    assert plural(1, "sink", "sinks") == "1 sink"
    assert duration(timedelta(seconds=45)) == "45 s"
    assert duration(timedelta(minutes=17, seconds=3)) == "17 min"
    assert duration(timedelta(hours=3)) == "3 h"
    assert duration(timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"
    # the spring-forward night: 01:59 EST then 03:00 EDT
    assert when(datetime(2026, 3, 8, 6, 59, tzinfo=UTC)) == "Sun 8 Mar 01:59 EST (06:59 UTC)"
    assert when(datetime(2026, 3, 8, 7, 0, tzinfo=UTC)) == "Sun 8 Mar 03:00 EDT (07:00 UTC)"
