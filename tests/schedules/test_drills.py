"""The monthly drill's flavour: the month decides, the last drill on record breaks a tie."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from harness.scenarios import SCENARIOS
from schedules.drills import FLAVOURS, PastDrill, flavour_for, month_flavour
from schedules.loader import SHIPPED, Routine
from schedules.table import next_fire

ET = "America/New_York"
SINGLE, CLUSTER, BUDGET = (f.scenario for f in FLAVOURS)
DRILL = next(e for e in SHIPPED if e.name == Routine.MONTHLY_DRILL)


def _year_of_slots(year: int) -> list[datetime]:
    slots, at = [], datetime(year, 1, 1, tzinfo=UTC)
    for _ in range(12):
        at = next_fire(DRILL, at)
        slots.append(at)
    return slots


def test_the_three_flavours_are_the_seeds_and_each_is_a_harness_scenario() -> None:
    assert [f.name for f in FLAVOURS] == [
        "single-tenant outage",
        "cross-tenant cluster",
        "budget exhaustion",
    ]
    assert all(f.scenario in SCENARIOS for f in FLAVOURS)


def test_every_year_rotates_through_the_flavours_month_by_month() -> None:
    for year in (2026, 2027, 2031):
        flavours = [month_flavour(slot, ET).scenario for slot in _year_of_slots(year)]
        assert flavours == [SINGLE, CLUSTER, BUDGET] * 4
    # across a year's end too: December is budget exhaustion, January single-tenant
    dec, jan = datetime(2027, 12, 1, 15, tzinfo=UTC), datetime(2028, 1, 5, 15, tzinfo=UTC)
    assert (month_flavour(dec, ET).scenario, month_flavour(jan, ET).scenario) == (BUDGET, SINGLE)


def test_the_month_is_read_in_the_schedules_zone() -> None:
    # 23:30 New York on 31 March is already 1 April in UTC: still March's flavour in New York
    late = datetime(2027, 4, 1, 3, 30, tzinfo=UTC)
    assert month_flavour(late, ET).scenario == BUDGET
    assert month_flavour(late, "UTC").scenario == SINGLE


def test_the_history_never_lets_two_drills_in_a_row_share_a_flavour() -> None:
    feb = datetime(2027, 2, 3, 15, tzinfo=UTC)
    # nothing on record (a new install, a fresh dyno): the month's flavour
    assert flavour_for(feb, ET, None).scenario == CLUSTER
    # January's drill on record: February's flavour, as the month says
    jan = PastDrill(slot=datetime(2027, 1, 6, 15, tzinfo=UTC), scenario=SINGLE)
    assert flavour_for(feb, ET, jan).scenario == CLUSTER
    # the same slot again (a restart between its start and its record): the same drill
    same = PastDrill(slot=feb, scenario=CLUSTER)
    assert flavour_for(feb, ET, same).scenario == CLUSTER
    # a cron overridden to every Wednesday: the month's second drill takes the next flavour
    week_two = feb + timedelta(days=7)
    assert flavour_for(week_two, ET, same).scenario == BUDGET
    # and a month whose flavour the last drill already ran moves on one
    march = datetime(2027, 3, 3, 15, tzinfo=UTC)
    assert flavour_for(march, ET, PastDrill(slot=week_two, scenario=BUDGET)).scenario == SINGLE
    # a drill on record under a scenario that is no flavour (a custom command) breaks no tie
    odd = PastDrill(slot=jan.slot, scenario="dst-edge")
    assert flavour_for(feb, ET, odd).scenario == CLUSTER


def test_a_weekly_override_still_rotates_without_a_repeat() -> None:
    weekly_slot, last, ran = datetime(2027, 1, 6, 15, tzinfo=UTC), None, []
    for _ in range(20):
        flavour = flavour_for(weekly_slot, ET, last)
        ran.append(flavour.scenario)
        last = PastDrill(slot=weekly_slot, scenario=flavour.scenario)
        weekly_slot += timedelta(days=7)
    assert all(a != b for a, b in itertools.pairwise(ran))
    assert set(ran) == {SINGLE, CLUSTER, BUDGET}
