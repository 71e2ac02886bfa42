"""Business hours as a pure predicate over an instant and a zone.

ET business hours (ADR-0091): Monday to Friday, 08:00 inclusive to 18:30 exclusive,
``America/New_York``, resolved with zoneinfo at run time so EDT and EST need no change.
"""

from __future__ import annotations

import functools
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from eyetok.errors import ConfigError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessWindow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A weekly window in one time zone: on ``days``, from ``start`` (inclusive) to ``end``."""

    zone: str = "America/New_York"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: str = "08:00"
    end: str = "18:30"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError("business_hours.zone", f"unknown time zone {self.zone!r}") from exc
        for day in self.days:
            if day not in _DAYS:
                raise ConfigError("business_hours.days", f"{day!r} is not one of {_DAYS}")
        if _parse_hhmm(self.start, "business_hours.start") >= _parse_hhmm(
            self.end, "business_hours.end"
        ):
            raise ConfigError("business_hours.end", "must be after start")


def _parse_hhmm(value: str, field: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ConfigError(field, f"{value!r} is not HH:MM") from exc


ET_BUSINESS_HOURS = BusinessWindow()


# The last answer: a batch hook's signals share one receipt instant, and each asks.
# One tuple, replaced whole, so a reader in another thread never pairs mismatched parts.
_last: tuple[datetime, BusinessWindow, bool] | None = None


def is_business_hours(at: datetime, window: BusinessWindow = ET_BUSINESS_HOURS) -> bool:
    """Whether the aware instant ``at`` falls inside ``window`` in the window's own zone."""
    global _last
    last = _last
    if last is not None and last[1] is window and last[0] == at and at.tzinfo is not None:
        return last[2]
    if at.tzinfo is None:
        raise ValueError("is_business_hours needs an aware datetime")
    zone, start, end = _bounds(window)
    local = at.astimezone(zone)
    inside = _DAYS[local.weekday()] in window.days and start <= local.time() < end
    _last = (at, window, inside)
    return inside


@functools.lru_cache(maxsize=64)
def _bounds(window: BusinessWindow) -> tuple[ZoneInfo, time, time]:
    """The window's zone and its start and end times, parsed once per window."""
    return (
        ZoneInfo(window.zone),
        _parse_hhmm(window.start, "business_hours.start"),
        _parse_hhmm(window.end, "business_hours.end"),
    )
