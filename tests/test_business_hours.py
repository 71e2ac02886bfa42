"""ET business hours (design section 3): the edges of the window, weekends, both 2026 DST
transitions, custom windows in another zone, and invalid windows.

Every edge is asserted on the channel a high-severity signal gets (``sev_channel_for``),
with the instant built both from UTC and from ``America/New_York`` local time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from eyetok.business_hours import ET_BUSINESS_HOURS, BusinessWindow, is_business_hours
from eyetok.errors import ConfigError
from eyetok.messages import SevChannel, Severity
from eyetok.severity import sev_channel_for

ET = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SEV1, SEV2, SEV2_5, SEV3 = SevChannel.SEV1, SevChannel.SEV2, SevChannel.SEV2_5, SevChannel.SEV3


def et(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, *, fold: int = 0) -> datetime:
    """A New York wall time; ``fold=1`` is the second 01:xx of the fall-back night."""
    return datetime(y, mo, d, h, mi, s, tzinfo=ET, fold=fold)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def high_channel(at: datetime) -> SevChannel | None:
    return sev_channel_for(Severity.HIGH, at)[0]


# (instant, channel of a high signal). Tuesday 2026-11-24 is EST (UTC-5).
EDGES: list[tuple[str, datetime, SevChannel]] = [
    ("tue-07:59-et", et(2026, 11, 24, 7, 59), SEV2),
    ("tue-08:00-et", et(2026, 11, 24, 8, 0), SEV2_5),
    ("tue-18:29-et", et(2026, 11, 24, 18, 29), SEV2_5),
    ("tue-18:30-et", et(2026, 11, 24, 18, 30), SEV2),
    ("tue-07:59:59-et", et(2026, 11, 24, 7, 59, 59), SEV2),
    ("tue-18:29:59-et", et(2026, 11, 24, 18, 29, 59), SEV2_5),
    ("tue-07:59-utc", utc(2026, 11, 24, 12, 59), SEV2),
    ("tue-08:00-utc", utc(2026, 11, 24, 13, 0), SEV2_5),
    ("tue-18:29-utc", utc(2026, 11, 24, 23, 29), SEV2_5),
    ("tue-18:30-utc", utc(2026, 11, 24, 23, 30), SEV2),
    # Summer (EDT, UTC-4): Wednesday 2026-07-15.
    ("summer-07:59-utc", utc(2026, 7, 15, 11, 59), SEV2),
    ("summer-08:00-utc", utc(2026, 7, 15, 12, 0), SEV2_5),
    ("summer-18:29-utc", utc(2026, 7, 15, 22, 29), SEV2_5),
    ("summer-18:30-utc", utc(2026, 7, 15, 22, 30), SEV2),
    # Friday evening and the weekend.
    ("fri-20:00-et", et(2026, 11, 27, 20, 0), SEV2),
    ("fri-20:00-utc", utc(2026, 11, 28, 1, 0), SEV2),
    ("fri-18:29-et", et(2026, 11, 27, 18, 29), SEV2_5),
    ("sat-12:00-et", et(2026, 11, 28, 12, 0), SEV2),
    ("sat-12:00-utc", utc(2026, 11, 28, 17, 0), SEV2),
    ("sun-12:00-et", et(2026, 11, 29, 12, 0), SEV2),
    ("sun-12:00-utc", utc(2026, 11, 29, 17, 0), SEV2),
    ("mon-00:00-et", et(2026, 11, 30, 0, 0), SEV2),
    ("mon-08:00-et", et(2026, 11, 30, 8, 0), SEV2_5),
    # Spring forward: Sunday 2026-03-08 is a weekend day, busy hours or not.
    ("dst-sun-10:00-et", et(2026, 3, 8, 10, 0), SEV2),
    ("dst-sun-10:00-utc", utc(2026, 3, 8, 14, 0), SEV2),
    # The Friday before: still EST, 08:00 = 13:00 UTC.
    ("dst-fri-07:59-et", utc(2026, 3, 6, 12, 59), SEV2),
    ("dst-fri-08:00-et", utc(2026, 3, 6, 13, 0), SEV2_5),
    ("dst-fri-08:00-local", et(2026, 3, 6, 8, 0), SEV2_5),
    ("dst-fri-07:59-local", et(2026, 3, 6, 7, 59), SEV2),
    # The Monday after: EDT, 08:00 = 12:00 UTC.
    ("dst-mon-07:59-utc", utc(2026, 3, 9, 11, 59), SEV2),
    ("dst-mon-08:00-utc", utc(2026, 3, 9, 12, 0), SEV2_5),
    ("dst-mon-08:00-local", et(2026, 3, 9, 8, 0), SEV2_5),
    ("dst-mon-07:59-local", et(2026, 3, 9, 7, 59), SEV2),
    # Fall back: Sunday 2026-11-01, 01:30 happens twice; both are weekend.
    ("fallback-01:30-edt", et(2026, 11, 1, 1, 30, fold=0), SEV2),
    ("fallback-01:30-est", et(2026, 11, 1, 1, 30, fold=1), SEV2),
    ("fallback-01:30-edt-utc", utc(2026, 11, 1, 5, 30), SEV2),
    ("fallback-01:30-est-utc", utc(2026, 11, 1, 6, 30), SEV2),
    ("fallback-sun-10:00", et(2026, 11, 1, 10, 0), SEV2),
    # The Monday after: EST again, 08:00 = 13:00 UTC.
    ("fallback-mon-07:59-utc", utc(2026, 11, 2, 12, 59), SEV2),
    ("fallback-mon-08:00-utc", utc(2026, 11, 2, 13, 0), SEV2_5),
    ("fallback-mon-08:00-local", et(2026, 11, 2, 8, 0), SEV2_5),
    ("fallback-mon-18:30-local", et(2026, 11, 2, 18, 30), SEV2),
]


@pytest.mark.parametrize(("at", "channel"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES])
def test_high_channel_at_the_edges(at: datetime, channel: SevChannel) -> None:
    assert high_channel(at) is channel
    assert sev_channel_for(Severity.HIGH, at)[1] is (channel is SEV2_5)


@pytest.mark.parametrize(("at", "channel"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES])
def test_the_same_instant_in_any_zone_gets_the_same_channel(
    at: datetime, channel: SevChannel
) -> None:
    for zone in (UTC, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Los_Angeles"), LONDON):
        assert high_channel(at.astimezone(zone)) is channel
    assert high_channel(at.astimezone(timezone(timedelta(hours=5, minutes=30)))) is channel


def test_the_two_fall_back_instants_are_an_hour_apart() -> None:
    first, second = et(2026, 11, 1, 1, 30, fold=0), et(2026, 11, 1, 1, 30, fold=1)
    assert first.astimezone(UTC) == utc(2026, 11, 1, 5, 30)
    assert second.astimezone(UTC) == utc(2026, 11, 1, 6, 30)


def test_the_utc_window_moves_with_daylight_saving() -> None:
    # 12:30 UTC is 08:30 EDT in July (open) but 07:30 EST in November (closed): the window
    # is resolved in America/New_York, never as a fixed UTC range.
    assert high_channel(utc(2026, 7, 15, 12, 30)) is SEV2_5
    assert high_channel(utc(2026, 11, 18, 12, 30)) is SEV2
    # 23:00 UTC is 19:00 EDT (closed) but 18:00 EST (open).
    assert high_channel(utc(2026, 7, 15, 23, 0)) is SEV2
    assert high_channel(utc(2026, 11, 18, 23, 0)) is SEV2_5


@pytest.mark.parametrize(("at", "_"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES])
def test_other_severities_ignore_the_clock(at: datetime, _: SevChannel) -> None:
    assert sev_channel_for(Severity.CRITICAL, at)[0] is SEV1
    assert sev_channel_for(Severity.MEDIUM, at)[0] is SEV3
    assert sev_channel_for(Severity.LOW, at)[0] is SEV3
    assert sev_channel_for(Severity.INFO, at)[0] is None


# --- a custom window in another zone ---------------------------------------------------

LONDON_HOURS = BusinessWindow(
    zone="Europe/London",
    days=("mon", "tue", "wed", "thu", "fri", "sat"),
    start="09:00",
    end="17:00",
)


@pytest.mark.parametrize(
    ("at", "business"),
    [
        # Winter (GMT = UTC): 09:00 London is 09:00 UTC.
        (utc(2026, 11, 24, 8, 59), False),
        (utc(2026, 11, 24, 9, 0), True),
        (utc(2026, 11, 24, 16, 59), True),
        (utc(2026, 11, 24, 17, 0), False),
        # Summer (BST = UTC+1): 09:00 London is 08:00 UTC.
        (utc(2026, 7, 15, 7, 59), False),
        (utc(2026, 7, 15, 8, 0), True),
        (utc(2026, 7, 15, 15, 59), True),
        (utc(2026, 7, 15, 16, 0), False),
        # Saturday is a working day in this window, Sunday is not.
        (datetime(2026, 11, 28, 10, 0, tzinfo=LONDON), True),
        (datetime(2026, 11, 29, 10, 0, tzinfo=LONDON), False),
        # 08:30 ET on a Tuesday is 13:30 in London: open in both zones.
        (et(2026, 11, 24, 8, 30), True),
        # 17:30 ET is 22:30 in London: ET is open, London is not.
        (et(2026, 11, 24, 17, 30), False),
    ],
)
def test_a_custom_window_is_judged_in_its_own_zone(at: datetime, business: bool) -> None:
    assert is_business_hours(at, LONDON_HOURS) is business
    channel, flag = sev_channel_for(Severity.HIGH, at, LONDON_HOURS)
    assert channel is (SEV2_5 if business else SEV2)
    assert flag is business


def test_london_and_new_york_disagree_on_the_same_instant() -> None:
    at = utc(2026, 11, 24, 22, 0)  # 22:00 London, 17:00 New York
    assert is_business_hours(at, LONDON_HOURS) is False
    assert is_business_hours(at, ET_BUSINESS_HOURS) is True


def test_the_default_window_is_the_adr_one() -> None:
    assert BusinessWindow() == ET_BUSINESS_HOURS
    assert ET_BUSINESS_HOURS.zone == "America/New_York"
    assert ET_BUSINESS_HOURS.days == ("mon", "tue", "wed", "thu", "fri")
    assert (ET_BUSINESS_HOURS.start, ET_BUSINESS_HOURS.end) == ("08:00", "18:30")


# --- invalid windows and naive instants ------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "needle"),
    [
        ({"zone": "Mars/Olympus_Mons"}, "business_hours.zone", "Mars/Olympus_Mons"),
        ({"zone": "EST+5:bogus"}, "business_hours.zone", "EST+5:bogus"),
        ({"zone": ""}, "business_hours.zone", "time zone"),
        ({"days": ("mon", "funday")}, "business_hours.days", "funday"),
        ({"days": ("Monday",)}, "business_hours.days", "Monday"),
        ({"start": "18:30", "end": "08:00"}, "business_hours.end", "after start"),
        ({"start": "09:00", "end": "09:00"}, "business_hours.end", "after start"),
        ({"start": "8am"}, "business_hours.start", "HH:MM"),
        ({"start": "25:00"}, "business_hours.start", "HH:MM"),
        ({"end": "18:75"}, "business_hours.end", "HH:MM"),
    ],
    ids=[
        "unknown-zone",
        "garbage-zone",
        "empty-zone",
        "bad-day",
        "long-day-name",
        "end-before-start",
        "empty-window",
        "start-not-hhmm",
        "start-out-of-range",
        "end-out-of-range",
    ],
)
def test_an_invalid_window_names_its_field(
    fields: dict[str, object], field: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        BusinessWindow(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert needle in str(caught.value)


def test_a_naive_datetime_is_refused() -> None:
    naive = datetime(2026, 11, 24, 10, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        is_business_hours(naive)
    with pytest.raises(ValueError, match="aware"):
        sev_channel_for(Severity.HIGH, naive)
    with pytest.raises(ValueError, match="aware"):
        is_business_hours(naive, LONDON_HOURS)
