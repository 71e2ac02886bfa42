"""The schedule table and loader: calendar days in their zone, DST on both edges, the
once-after-downtime slot, and the ``schedules:`` section of the configuration."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError
from schedules.loader import SHIPPED, Routine, ScheduleOverride, resolve
from schedules.table import ScheduleEntry, last_fire, missed_slot, next_fire

ET = ZoneInfo("America/New_York")


def _shipped(routine: Routine) -> ScheduleEntry:
    return next(e for e in SHIPPED if e.name == routine)


def _fires(entry: ScheduleEntry, start: datetime, end: datetime) -> list[datetime]:
    out, at = [], start
    while (at := next_fire(entry, at)) < end:
        out.append(at)
    return out


def _nth(weekday: int, year: int, month: int, n: int) -> date:
    days = [week[weekday] for week in calendar.monthcalendar(year, month) if week[weekday] != 0]
    return date(year, month, days[n - 1])


def _et(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ET).astimezone(UTC)


def test_the_monthly_drill_is_the_first_wednesday_at_ten_new_york_time() -> None:
    fires = _fires(
        _shipped(Routine.MONTHLY_DRILL),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2028, 1, 1, tzinfo=UTC),
    )
    expected = [
        _et(_nth(calendar.WEDNESDAY, year, month, 1), 10)
        for year in (2026, 2027)
        for month in range(1, 13)
    ]
    assert fires == expected
    # 10:00 EST is 15:00 UTC, 10:00 EDT is 14:00 UTC
    assert fires[2] == datetime(2026, 3, 4, 15, tzinfo=UTC)
    assert fires[3] == datetime(2026, 4, 1, 14, tzinfo=UTC)
    assert all(f.astimezone(ET).weekday() == calendar.WEDNESDAY for f in fires)
    assert all(f.astimezone(ET).day <= 7 for f in fires)
    # "1-7 * WED" would have meant days 1-7 OR Wednesdays in cron: never more than one a month
    assert len({(f.year, f.month) for f in fires}) == len(fires)


def test_the_rotation_reminder_is_the_second_tuesday_of_each_quarter() -> None:
    fires = _fires(
        _shipped(Routine.CREDENTIAL_ROTATION),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2029, 1, 1, tzinfo=UTC),
    )
    expected = [
        _et(_nth(calendar.TUESDAY, year, month, 2), 10)
        for year in (2026, 2027, 2028)
        for month in (1, 4, 7, 10)
    ]
    assert fires == expected
    assert [f.date() for f in fires[:4]] == [
        date(2026, 1, 13),
        date(2026, 4, 14),
        date(2026, 7, 14),
        date(2026, 10, 13),
    ]


@pytest.mark.parametrize(
    ("start", "before", "after"),
    [(date(2026, 3, 5), 13, 12), (date(2026, 10, 29), 12, 13)],
    ids=["dst-starts-2026-03-08", "dst-ends-2026-11-01"],
)
def test_the_daily_review_follows_new_york_across_dst(start: date, before: int, after: int) -> None:
    fires = _fires(
        _shipped(Routine.DAILY_REVIEW),
        datetime.combine(start, time(), tzinfo=UTC),
        datetime.combine(start + timedelta(days=7), time(), tzinfo=UTC),
    )
    assert [f.astimezone(ET).hour for f in fires] == [8] * 7
    assert [f.hour for f in fires] == [before] * 3 + [after] * 4  # UTC hour moves on the 8th/1st
    assert [f.date() for f in fires] == [start + timedelta(days=i) for i in range(7)]


def test_a_repeated_hour_fires_once_and_a_skipped_hour_once_after_the_gap() -> None:
    repeated = ScheduleEntry(name="daily-review", cron="30 1 * * *")
    fires = _fires(
        repeated, datetime(2026, 10, 31, 12, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC)
    )
    assert fires == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT, the first of two 01:30s
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),  # 01:30 EST
    ]
    assert last_fire(repeated, datetime(2026, 11, 1, 6, 45, tzinfo=UTC)) == fires[0]
    skipped = ScheduleEntry(name="daily-review", cron="30 2 * * *")
    fires = _fires(
        skipped, datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 9, 12, tzinfo=UTC)
    )
    assert fires == [
        datetime(2026, 3, 8, 7, tzinfo=UTC),  # 02:30 does not exist that day: 03:00 EDT
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),  # 02:30 EDT
    ]
    hourly = ScheduleEntry(name="x", cron="0 * * * *")
    night = _fires(
        hourly, datetime(2026, 11, 1, 4, 30, tzinfo=UTC), datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    )
    assert len(night) == 3  # every real hour, the repeated one included


def test_a_missed_run_is_the_latest_slot_only() -> None:
    review = _shipped(Routine.DAILY_REVIEW)
    last = datetime(2026, 3, 2, 13, tzinfo=UTC)  # Mon 08:00 EST
    ten_days_later = datetime(2026, 3, 12, 18, tzinfo=UTC)
    assert missed_slot(review, last, ten_days_later) == datetime(2026, 3, 12, 12, tzinfo=UTC)
    assert missed_slot(review, last, datetime(2026, 3, 2, 20, tzinfo=UTC)) is None
    assert missed_slot(review, None, ten_days_later) is None  # new here: nothing missed
    # exactly at the slot it is due (it is the slot itself)
    at_slot = datetime(2026, 3, 3, 13, tzinfo=UTC)
    assert missed_slot(review, last, at_slot) == at_slot


def test_configuration_overrides_and_disables_routines() -> None:
    settings = settings_from(
        parse_file_config(
            "schedules:\n"
            "  - {name: daily-review, cron: '30 7 * * MON-FRI', zone: Europe/London}\n"
            "  - {name: monthly-drill, enabled: false}\n"
        ),
        {},
    )
    entries = {e.name: e for e in settings.schedules}
    assert set(entries) == {r.value for r in Routine}
    assert entries["daily-review"] == ScheduleEntry(
        name="daily-review", cron="30 7 * * MON-FRI", zone="Europe/London"
    )
    assert entries["monthly-drill"].enabled is False
    assert entries["monthly-drill"].cron == "0 10 * * WED#1"
    assert entries["credential-rotation"] == _shipped(Routine.CREDENTIAL_ROTATION)
    # the older verification keys still move the Friday re-verification
    older = settings_from(parse_file_config("verification: {reverify_cron: '0 7 * * MON'}\n"), {})
    assert next(e for e in older.schedules if e.name == "reverify").cron == "0 7 * * MON"


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("schedules:\n  - {name: weekly-party}\n", "schedules[0].name", "no routine named"),
        (
            "schedules:\n  - {name: reverify}\n  - {name: reverify, enabled: false}\n",
            "schedules[1].name",
            "listed twice",
        ),
        ("schedules:\n  - {name: reverify, cron: 'fridays'}\n", "schedules.reverify.cron", "cron"),
        ("schedules:\n  - {name: reverify, zone: Mars/Base}\n", "schedules.reverify.zone", "zone"),
        ("schedules:\n  - {name: reverify, when: now}\n", "schedules[0].when", "unknown field"),
    ],
    ids=["unknown-routine", "twice", "bad-cron", "bad-zone", "unknown-key"],
)
def test_a_bad_schedule_names_its_field(text: str, field: str, needle: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from(parse_file_config(text), {})
    assert error.value.field == field
    assert needle in error.value.problem


def test_resolve_keeps_every_routine_in_order() -> None:
    entries = resolve((ScheduleOverride(name="reverify", enabled=False),))
    assert [e.name for e in entries] == [r.value for r in Routine]
    assert [e.enabled for e in entries] == [True, False, True, True, True]
