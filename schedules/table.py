"""The schedule table: named croniter entries, each in its own time zone.

A schedule is data: a name, a cron expression, the zone it is read in, and whether it is
enabled. :func:`next_fire` is pure: the first instant strictly after ``after`` at which
the expression matches in its zone (so "Fridays 09:00 New York" follows EDT and EST).

Calendar days like "the first Wednesday" use croniter's ``#`` (``WED#1``); a plain
``1-7 * WED`` would mean "days 1-7 OR any Wednesday" in cron, which is why it is not used.
A time of day that happens twice (the repeated hour when DST ends) fires once, at its
first occurrence; one that never happens (the skipped hour when DST starts) fires at the
first instant after the gap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import croniter

from eyetok.errors import ConfigError


class ScheduleEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    cron: str
    zone: str = "America/New_York"
    enabled: bool = True

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.cron):
            raise ConfigError(f"schedules.{self.name}.cron", f"{self.cron!r} is not cron syntax")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"schedules.{self.name}.zone", f"unknown zone {self.zone!r}") from exc


def _wall_clock(entry: ScheduleEntry) -> bool:
    """Whether the entry names a time of day (an hour), rather than every hour."""
    fields = entry.cron.split()
    return len(fields) >= 2 and fields[1] != "*" and not fields[1].startswith("*/")


def _repeated(fire: datetime) -> bool:
    """``fire`` is the second occurrence of a wall time in its zone (DST ended)."""
    return fire.utcoffset() != fire.replace(fold=0).utcoffset()


# A year of fires per call at most: a guard, never reached by a valid expression.
_MAX_STEPS = 400


def next_fire(entry: ScheduleEntry, after: datetime) -> datetime:
    """The next instant (aware, UTC) after ``after`` at which ``entry`` fires."""
    local = after.astimezone(ZoneInfo(entry.zone))
    it = croniter(entry.cron, local)
    for _ in range(_MAX_STEPS):
        fire: datetime = it.get_next(datetime)
        if not (_wall_clock(entry) and _repeated(fire)):
            return fire.astimezone(UTC)
    raise ConfigError(f"schedules.{entry.name}.cron", f"{entry.cron!r} never fires")


def last_fire(entry: ScheduleEntry, at: datetime) -> datetime:
    """The latest instant (aware, UTC) at or before ``at`` at which ``entry`` fired."""
    local = at.astimezone(ZoneInfo(entry.zone))
    if croniter.match(entry.cron, local) and not (_wall_clock(entry) and _repeated(local)):
        return at.astimezone(UTC)
    it = croniter(entry.cron, local)
    for _ in range(_MAX_STEPS):
        fire: datetime = it.get_prev(datetime)
        if not (_wall_clock(entry) and _repeated(fire)):
            return fire.astimezone(UTC)
    raise ConfigError(f"schedules.{entry.name}.cron", f"{entry.cron!r} never fires")


def missed_slot(entry: ScheduleEntry, last_run: datetime | None, now: datetime) -> datetime | None:
    """The slot to run once at start: the latest one since ``last_run``, if any passed
    while EyeTok was down (however many passed, only the latest runs). With no record
    of a run at all the schedule is new here: nothing was missed."""
    if last_run is None:
        return None
    slot = last_fire(entry, now)
    return slot if slot > last_run else None
