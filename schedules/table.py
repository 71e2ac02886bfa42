"""The schedule table: named croniter entries, each in its own time zone.

A schedule is data: a name, a cron expression, the zone it is read in, and the command it
fires. :func:`next_fire` is pure: the first instant strictly after ``after`` at which the
expression matches in its zone (so "Fridays 09:00 New York" follows EDT and EST).
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

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.cron):
            raise ConfigError(f"schedules.{self.name}.cron", f"{self.cron!r} is not cron syntax")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"schedules.{self.name}.zone", f"unknown zone {self.zone!r}") from exc


def next_fire(entry: ScheduleEntry, after: datetime) -> datetime:
    """The next instant (aware, UTC) after ``after`` at which ``entry`` fires."""
    local = after.astimezone(ZoneInfo(entry.zone))
    fire: datetime = croniter(entry.cron, local).get_next(datetime)
    return fire.astimezone(UTC)
