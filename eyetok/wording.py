"""How a post says a time, a count and a duration to an on-call engineer on a phone.

Times are in the on-call's zone, America/New_York (EST or EDT, resolved with zoneinfo),
with UTC in brackets for correlating with logs: ``Mon 23 Nov 22:17 EST (03:17 UTC Tue 24
Nov)``. Counts agree with their noun (``1 event``, ``7 events``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

ONCALL_ZONE = ZoneInfo("America/New_York")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 event``, ``0 events``, ``7 events`` (``nouns``: an irregular plural)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def when(moment: datetime, zone: ZoneInfo = ONCALL_ZONE) -> str:
    """``Mon 23 Nov 22:17 EST (03:17 UTC)``; the UTC part names its day when it differs."""
    local = moment.astimezone(zone)
    utc = moment.astimezone(UTC)
    bracket = f"{utc:%H:%M} UTC"
    if utc.date() != local.date():
        bracket += f" {utc:%a} {utc.day} {utc:%b}"
    return f"{local:%a} {local.day} {local:%b %H:%M %Z} ({bracket})"


def duration(span: timedelta) -> str:
    """``45 s``, ``17 min``, ``1 h 2 min``, ``3 d 4 h``: the two largest units."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
