"""Which flavour the monthly drill runs: the seed's three, rotating month by month.

The month decides: January, April, July and October run the single-tenant outage;
February, May, August and November the cross-tenant cluster (the harness scenario
``registry-wide-outage``); March, June, September and December the budget exhaustion.
Twelve is a multiple of three, so every year is the same table, and a month's flavour
needs no memory: a restart, a fresh dyno whose history is empty (drill records are not
mirrored to Postgres), or a slot run late after downtime all pick the month's flavour.

The history breaks a tie: when the last monthly drill on record already ran this
month's flavour (a ``monthly-drill`` cron overridden to fire more than once a month),
the next flavour after it runs instead, so two drills in a row never share a flavour.
A re-run of the very slot on record keeps its flavour (it is the same drill).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec


class Flavour(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # the seed's word for it
    scenario: str  # the harness scenario that runs it (``eyetok drill run SCENARIO``)


FLAVOURS: tuple[Flavour, ...] = (
    Flavour(name="single-tenant outage", scenario="single-tenant-outage"),
    Flavour(name="cross-tenant cluster", scenario="registry-wide-outage"),
    Flavour(name="budget exhaustion", scenario="budget-exhaustion"),
)


class PastDrill(msgspec.Struct, frozen=True, kw_only=True):
    """The last monthly drill on record: its slot and the scenario it ran."""

    slot: datetime
    scenario: str


def _index(scenario: str) -> int | None:
    return next((i for i, f in enumerate(FLAVOURS) if f.scenario == scenario), None)


def month_flavour(slot: datetime, zone: str) -> Flavour:
    """The flavour of the month ``slot`` falls in, read in ``zone``."""
    local = slot.astimezone(ZoneInfo(zone))
    return FLAVOURS[(local.year * 12 + local.month - 1) % len(FLAVOURS)]


def flavour_for(slot: datetime, zone: str, last: PastDrill | None) -> Flavour:
    """The flavour the monthly drill due at ``slot`` runs, given the last one on record."""
    due = month_flavour(slot, zone)
    if last is None or (previous := _index(last.scenario)) is None:
        return due
    if last.slot == slot:
        return FLAVOURS[previous]
    local, before = slot.astimezone(ZoneInfo(zone)), last.slot.astimezone(ZoneInfo(zone))
    if (local.year, local.month) == (before.year, before.month) or previous == _index(due.scenario):
        return FLAVOURS[(previous + 1) % len(FLAVOURS)]
    return due
