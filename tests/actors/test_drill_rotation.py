"""A year of monthly drills under trio's MockClock: the scheduler, the real history actor on
its DuckDB file and the routines actor running a tiny drill command as a real subprocess.
Every first Wednesday runs one drill, the flavours rotate in order, and a restart in the
middle (on the same disk, or on a fresh dyno's empty one) never repeats a flavour."""

from __future__ import annotations

import calendar
import itertools
import json
import math
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from actors.history import HistoryDeps, run_history
from actors.routines import RoutinesDeps, run_routines
from actors.scheduler import SchedulerDeps, run_scheduler
from actors.topology import schedule_commands
from eyetok.clock import TrioWallClock
from eyetok.messages import Deliver, Destination
from schedules.drills import FLAVOURS
from schedules.loader import SHIPPED, Routine
from state.history.store import HistoryStore
from state.history.wal import Journal

ET = ZoneInfo("America/New_York")
SINGLE, CLUSTER, BUDGET = (f.scenario for f in FLAVOURS)
NOTICES = Destination(sink_id="slack", sink_type="slack", target="#eyetok-operator")
# The drill: prints a passing receipt naming the scenario and slot it was given.
_RECEIPT = (
    'printf \'{"scenario": "%s", "receipt_id": "rcpt_%s", '
    '"steps": [{"name": "alert-reaches-slack", "verdict": "pass"}]}\\n\' "$1" "$2"'
)
DRILL = ("/bin/sh", "-c", _RECEIPT, "drill", "{scenario}", "{slot}")


def _first_wednesday(year: int, month: int) -> datetime:
    day = next(
        w[calendar.WEDNESDAY] for w in calendar.monthcalendar(year, month) if w[calendar.WEDNESDAY]
    )
    return datetime.combine(date(year, month, day), time(10), tzinfo=ET).astimezone(UTC)


async def _run_daemon(data: Path, anchor: datetime, drills: int, told: dict[str, str]) -> None:
    """The scheduler (monthly drill only), history and routines from ``anchor`` until the
    operator has been told about ``drills`` more drills (``told``: notice texts by delivery
    id; the outbox hands a restarted daemon its undelivered notices again)."""
    store = HistoryStore(data / "history.duckdb")
    journal = Journal(data / "journal")
    clock = TrioWallClock(anchor)
    history_tx, history_rx = trio.open_memory_channel[Any](1024)
    delivery_tx, delivery_rx = trio.open_memory_channel[Deliver](1024)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](1024)
    routines_tx, routines_rx = trio.open_memory_channel[Any](16)
    verification_tx, _verification_rx = trio.open_memory_channel[Any](16)
    entries = tuple(e for e in SHIPPED if e.name == Routine.MONTHLY_DRILL)
    deps = RoutinesDeps(
        store=store,
        operator_tenant="operator",
        notices=NOTICES,
        review_window=timedelta(hours=24),
        drill_command=DRILL,
        drill_timeout_s=3 * 86_400.0,
        local_url=lambda: "http://127.0.0.1:4321",
        credentials=dict,
        reread_credentials=dict,
        drill_zone=entries[0].zone,
        watch_sighup=False,
    )
    wanted = len(told) + drills
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(run_history, clock=clock),
                HistoryDeps(store=store, journal=journal, materialise_every_s=math.inf),
                history_rx,
                delivery_tx,
                mirror_tx,
            )
            await nursery.start(partial(run_routines, clock=clock), deps, routines_rx, history_tx)
            await nursery.start(
                partial(run_scheduler, clock=clock),
                SchedulerDeps(
                    commands=schedule_commands(entries, verification_tx, routines_tx),
                    store=store,
                    operator_tenant="operator",
                ),
                history_tx,
            )
            async for deliver in delivery_rx:
                if deliver.notice and "Monthly drill" in deliver.notice:
                    told.setdefault(deliver.delivery_id, deliver.notice)
                if len(told) == wanted:
                    break
            await trio.testing.wait_all_tasks_blocked()  # the drill's audit is sent
            nursery.cancel_scope.cancel()
    finally:
        journal.close()
        store.close()


def _started(data: Path) -> list[dict[str, Any]]:
    store = HistoryStore(data / "history.duckdb")
    try:
        rows = store._con.execute(
            "SELECT event, detail FROM audit_log WHERE event IN ('drill_started', 'drill_ran') "
            "ORDER BY logged_at"
        ).fetchall()
    finally:
        store.close()
    return [{"event": event, **json.loads(detail)} for event, detail in rows]


@pytest.mark.parametrize("disk", ["same-disk", "fresh-dyno"])
async def test_a_year_of_drills_rotates_the_flavours_across_a_restart(
    tmp_path: Path, mock_clock: trio.testing.MockClock, disk: str
) -> None:
    # The clock jumps only after this much real idleness: long enough that the drill's
    # subprocess (a few ms) finishes before the next month's slot is jumped to.
    mock_clock.autojump_threshold = 0.3
    before, after = tmp_path / "before", tmp_path / ("before" if disk == "same-disk" else "after")
    told: dict[str, str] = {}
    await _run_daemon(before, datetime(2027, 1, 1, tzinfo=UTC), 6, told)
    # Down from June's drill until Saturday 10 July: July's first Wednesday (the 7th) passed.
    # On the same disk it runs once, late, at start; a fresh dyno knows of no run to miss.
    rest = 6 if disk == "same-disk" else 5
    await _run_daemon(after, datetime(2027, 7, 10, 16, tzinfo=UTC), rest, told)

    months = list(range(1, 13)) if disk == "same-disk" else [*range(1, 7), *range(8, 13)]
    runs = _started(before) + (_started(after) if after != before else [])
    started = [r for r in runs if r["event"] == "drill_started"]
    slots = [datetime.fromisoformat(r["slot"]) for r in started]
    assert slots == [_first_wednesday(2027, m) for m in months]  # each once, in order
    expected = [[SINGLE, CLUSTER, BUDGET][(m - 1) % 3] for m in months]
    assert [r["scenario"] for r in started] == expected
    scenarios = [r["scenario"] for r in started]
    assert all(a != b for a, b in itertools.pairwise(scenarios))
    # the flavour reached the drill command, and the operator heard each one pass
    assert [r["scenario"] for r in runs if r["event"] == "drill_ran" and r["passed"]] == expected
    assert [n.split("`")[1] for n in told.values()] == expected
    assert [r["flavour"] for r in started][:3] == [f.name for f in FLAVOURS]
