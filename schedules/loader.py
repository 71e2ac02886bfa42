"""The schedule loader: the shipped routines, overridden by the ``schedules:`` section.

Each routine EyeTok knows has one entry. The configuration may change an entry's cron,
zone or ``enabled`` by naming it; a name EyeTok has no routine for stops start-up (a
schedule nobody consumes would fire into the void)::

    schedules:
      - {name: daily-review, cron: "0 8 * * *", zone: America/New_York}
      - {name: monthly-drill, enabled: false}
"""

from __future__ import annotations

import enum

import msgspec

from eyetok.errors import ConfigError
from schedules.table import ScheduleEntry

ET = "America/New_York"


class Routine(enum.StrEnum):
    """What a schedule does when it fires."""

    DAILY_REVIEW = "daily-review"  # yesterday's notification stream, anomalies flagged
    REVERIFY = "reverify"  # Friday: renew sink verifications older than their cadence
    MONTHLY_DRILL = "monthly-drill"  # first Wednesday: the month's drill flavour
    CREDENTIAL_ROTATION = "credential-rotation"  # quarterly: every credential and its age
    RETENTION = "retention"  # daily: prune the history to the retention policy


SHIPPED: tuple[ScheduleEntry, ...] = (
    ScheduleEntry(name=Routine.DAILY_REVIEW, cron="0 8 * * *", zone=ET),
    ScheduleEntry(name=Routine.REVERIFY, cron="0 9 * * FRI", zone=ET),
    # the first Wednesday of every month; its flavour rotates (schedules/drills.py)
    ScheduleEntry(name=Routine.MONTHLY_DRILL, cron="0 10 * * WED#1", zone=ET),
    # the second Tuesday of the quarter's first month
    ScheduleEntry(name=Routine.CREDENTIAL_ROTATION, cron="0 10 * 1,4,7,10 TUE#2", zone=ET),
    # the quiet hour, after the daily review has read yesterday
    ScheduleEntry(name=Routine.RETENTION, cron="30 3 * * *", zone=ET),
)


class ScheduleOverride(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One item of the ``schedules:`` list: a routine's name and what to change."""

    name: str
    cron: str | None = None
    zone: str | None = None
    enabled: bool | None = None


def resolve(
    overrides: tuple[ScheduleOverride, ...],
    *,
    reverify_cron: str | None = None,
    reverify_zone: str | None = None,
) -> tuple[ScheduleEntry, ...]:
    """Every routine's entry: shipped, then ``verification.reverify_*`` (the older
    keys), then the ``schedules:`` overrides, in that order."""
    entries = {entry.name: entry for entry in SHIPPED}
    reverify = entries[Routine.REVERIFY]
    entries[Routine.REVERIFY] = ScheduleEntry(
        name=reverify.name,
        cron=reverify_cron or reverify.cron,
        zone=reverify_zone or reverify.zone,
    )
    seen: set[str] = set()
    for i, override in enumerate(overrides):
        if override.name not in entries:
            raise ConfigError(
                f"schedules[{i}].name",
                f"no routine named {override.name!r} (the routines are: "
                f"{', '.join(r.value for r in Routine)})",
            )
        if override.name in seen:
            raise ConfigError(f"schedules[{i}].name", f"{override.name!r} is listed twice")
        seen.add(override.name)
        base = entries[override.name]
        entries[override.name] = ScheduleEntry(
            name=base.name,
            cron=override.cron if override.cron is not None else base.cron,
            zone=override.zone if override.zone is not None else base.zone,
            enabled=override.enabled if override.enabled is not None else base.enabled,
        )
    return tuple(entries[r.value] for r in Routine)
