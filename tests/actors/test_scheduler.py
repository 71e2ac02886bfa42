"""The scheduler under trio's MockClock and the wall clock anchored to it: a whole year of
every shipped routine (both 2027 DST transitions), and a missed run after downtime running
once at start, against the real history actor and its DuckDB file."""

from __future__ import annotations

import calendar
import json
import math
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trio
import trio.testing

from actors.history import HistoryDeps, run_history
from actors.scheduler import SchedulerDeps, run_scheduler
from actors.topology import schedule_commands
from eyetok.clock import TrioWallClock
from eyetok.config import parse_file_config, settings_from
from eyetok.messages import (
    AuditRecorded,
    DrillDue,
    FlushHistory,
    RetentionDue,
    ReverifyDue,
    ReviewDue,
    RotationReminderDue,
)
from state.history.store import HistoryStore
from state.history.wal import Journal

ET = ZoneInfo("America/New_York")


def _et(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ET).astimezone(UTC)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _nth(weekday: int, year: int, month: int, n: int) -> date:
    weeks = calendar.monthcalendar(year, month)
    return date(year, month, [w[weekday] for w in weeks if w[weekday]][n - 1])


def _slot(message: Any) -> datetime:
    return message.at if isinstance(message, ReverifyDue) else message.slot


async def test_every_routine_fires_on_its_new_york_slots_for_a_year(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
    clock = TrioWallClock(start)
    settings = settings_from(parse_file_config(""), {})
    verification_tx, verification_rx = trio.open_memory_channel[Any](0)
    routines_tx, routines_rx = trio.open_memory_channel[Any](0)
    history_tx, history_rx = trio.open_memory_channel[Any](0)
    fired: list[tuple[datetime, Any]] = []
    audits: list[AuditRecorded] = []
    last_review = ReviewDue(slot=_et(end.date(), 8))  # the first one past the end
    done = trio.Event()

    async def collect(inbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for message in inbox:
            fired.append((clock.now(), message))
            if message == last_review:
                done.set()

    async def history() -> None:  # answers flushes, keeps the audit lines
        async for message in history_rx:
            if isinstance(message, FlushHistory):
                message.reply.send(True)
            else:
                audits.append(message)

    # (no trio deadline: the autojump clock would jump to it while DuckDB reads in a thread)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect, verification_rx)
        nursery.start_soon(collect, routines_rx)
        nursery.start_soon(history)
        commands = schedule_commands(settings.schedules, verification_tx, routines_tx)
        await nursery.start(
            partial(run_scheduler, clock=clock),
            SchedulerDeps(commands=commands, store=HistoryStore(":memory:"), operator_tenant="o"),
            history_tx,
        )
        await done.wait()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()

    # each message went out at its slot, and says so
    assert all(now == _slot(message) for now, message in fired)
    ran = [json.loads(a.detail) for a in audits if a.event == "schedule_ran"]
    assert len(ran) == len(fired)
    fired = [(now, m) for now, m in fired if now < end]  # the clock may have run on a little
    by_kind: dict[type, list[datetime]] = {}
    for _, message in fired:
        by_kind.setdefault(type(message), []).append(_slot(message))
    days = _days(start.date(), end.date())
    assert by_kind[ReviewDue] == [_et(d, 8) for d in days]
    assert by_kind[ReverifyDue] == [_et(d, 9) for d in days if d.weekday() == calendar.FRIDAY]
    # every first Wednesday once, at 10:00 New York time; the rotation reminder on the
    # second Tuesday of January, April, July and October, and on no other day
    months = range(1, 13)
    assert by_kind[DrillDue] == [_et(_nth(calendar.WEDNESDAY, 2027, m, 1), 10) for m in months]
    assert by_kind[RotationReminderDue] == [
        _et(_nth(calendar.TUESDAY, 2027, m, 2), 10) for m in (1, 4, 7, 10)
    ]
    assert [d.date() for d in by_kind[RotationReminderDue]] == [
        date(2027, 1, 12),
        date(2027, 4, 13),
        date(2027, 7, 13),
        date(2027, 10, 12),
    ]
    # DST moves the UTC hour, never the day: 10:00 EST is 15:00 UTC, 10:00 EDT 14:00 UTC
    drills = by_kind[DrillDue]
    assert [d.astimezone(ET).hour for d in drills] == [10] * 12
    assert [d.hour for d in drills] == [15] * 3 + [14] * 8 + [15]  # DST 14 Mar to 7 Nov
    # across both DST transitions: 08:00 New York is 13:00 UTC in winter, 12:00 in summer
    review_hours = {d.date(): d.hour for d in by_kind[ReviewDue]}
    assert review_hours[date(2027, 3, 13)] == 13
    assert review_hours[date(2027, 3, 14)] == 12
    assert review_hours[date(2027, 11, 6)] == 12
    assert review_hours[date(2027, 11, 7)] == 13
    # every schedule was new here (registered, nothing run late); every firing recorded
    registered = [a for a in audits if a.event == "schedule_registered"]
    assert sorted(json.loads(a.detail)["schedule"] for a in registered) == sorted(
        e.name for e in settings.schedules
    )
    assert not any(r["late"] for r in ran)


def test_a_disabled_routine_never_fires() -> None:
    settings = settings_from(
        parse_file_config("schedules:\n  - {name: monthly-drill, enabled: false}\n"), {}
    )

    async def main() -> list[Any]:
        clock = TrioWallClock(datetime(2026, 3, 2, tzinfo=UTC))
        tx, rx = trio.open_memory_channel[Any](1000)
        history_tx, history_rx = trio.open_memory_channel[Any](1000)

        async def history() -> None:
            async for message in history_rx:
                if isinstance(message, FlushHistory):
                    message.reply.send(True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(history)
            await nursery.start(
                partial(run_scheduler, clock=clock),
                SchedulerDeps(
                    commands=schedule_commands(settings.schedules, tx, tx),
                    store=HistoryStore(":memory:"),
                    operator_tenant="o",
                ),
                history_tx,
            )
            # the store reads in a thread first: only then may the clock run a week
            await trio.sleep(7 * 86_400)
            nursery.cancel_scope.cancel()
        tx.close()
        return [m async for m in rx]

    fired = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [type(m) for m in fired].count(DrillDue) == 0  # 2026-03-04 was the first Wednesday
    assert [type(m) for m in fired].count(ReviewDue) == 7


class _Phase:
    """The history actor (on the DuckDB file of ``data``) and the scheduler, from ``anchor``
    until the routines inbox has seen ``until`` (a predicate over what it received)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.routines: list[Any] = []
        self.verification: list[Any] = []
        self.retention: list[Any] = []

    async def run(self, anchor: datetime, until: Any) -> None:
        store = HistoryStore(self.data / "history.duckdb")
        journal = Journal(self.data / "journal")
        clock = TrioWallClock(anchor)
        settings = settings_from(parse_file_config(""), {})
        history_tx, history_rx = trio.open_memory_channel[Any](1024)
        delivery_tx, _delivery_rx = trio.open_memory_channel[Any](1024)
        mirror_tx, _mirror_rx = trio.open_memory_channel[Any](1024)
        verification_tx, verification_rx = trio.open_memory_channel[Any](64)
        routines_tx, routines_rx = trio.open_memory_channel[Any](64)
        done = trio.Event()

        async def collect(inbox: trio.MemoryReceiveChannel[Any], into: list[Any]) -> None:
            async for message in inbox:
                if isinstance(message, RetentionDue):  # the daily prune: tested apart
                    self.retention.append(message)
                    continue
                into.append(message)
                if until(self):
                    done.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, routines_rx, self.routines)
                nursery.start_soon(collect, verification_rx, self.verification)
                await nursery.start(
                    partial(run_history, clock=clock),
                    # no periodic materialising: under the autojump clock its deadline would
                    # be jumped to whenever DuckDB works in a thread (flushes still write)
                    HistoryDeps(store=store, journal=journal, materialise_every_s=math.inf),
                    history_rx,
                    delivery_tx,
                    mirror_tx,
                )
                await nursery.start(
                    partial(run_scheduler, clock=clock),
                    SchedulerDeps(
                        commands=schedule_commands(
                            settings.schedules, verification_tx, routines_tx
                        ),
                        store=store,
                        operator_tenant=settings.operator_tenant,
                    ),
                    history_tx,
                )
                await done.wait()
                await trio.testing.wait_all_tasks_blocked()  # the firing's record is sent
                nursery.cancel_scope.cancel()
        finally:
            journal.close()
            store.close()


def _runs(data: Path) -> list[dict[str, Any]]:
    store = HistoryStore(data / "history.duckdb")
    try:
        rows = store._con.execute(
            "SELECT event, detail FROM audit_log WHERE event LIKE 'schedule_%' ORDER BY logged_at"
        ).fetchall()
    finally:
        store.close()
    return [{"event": event, **json.loads(detail)} for event, detail in rows]


async def test_a_missed_run_after_downtime_runs_once_at_start(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data = tmp_path / "data"
    # Monday 2026-03-02 05:00 New York, until the first Wednesday's drill has fired
    before = _Phase(data)
    await before.run(
        datetime(2026, 3, 2, 10, tzinfo=UTC),
        lambda p: any(isinstance(m, DrillDue) for m in p.routines),
    )
    assert [m.slot for m in before.routines][:4] == [
        datetime(2026, 3, 2, 13, tzinfo=UTC),
        datetime(2026, 3, 3, 13, tzinfo=UTC),
        datetime(2026, 3, 4, 13, tzinfo=UTC),
        datetime(2026, 3, 4, 15, tzinfo=UTC),  # the drill, 10:00 EST
    ]
    # EyeTok is down for sixteen days: fifteen reviews and two Friday re-verifications
    # pass. It comes back on Friday 2026-03-20 at noon New York time (EDT by then).
    after = _Phase(data)
    await after.run(
        datetime(2026, 3, 20, 16, tzinfo=UTC),
        lambda p: sum(isinstance(m, ReviewDue) for m in p.routines) >= 2,
    )
    late_review, next_review = after.routines[:2]
    assert late_review == ReviewDue(slot=datetime(2026, 3, 20, 12, tzinfo=UTC))  # once, now
    assert next_review == ReviewDue(slot=datetime(2026, 3, 21, 12, tzinfo=UTC))  # then on
    assert after.verification[0] == ReverifyDue(at=datetime(2026, 3, 20, 13, tzinfo=UTC))
    assert not any(isinstance(m, DrillDue | RotationReminderDue) for m in after.routines)

    runs = _runs(data)
    late = [r for r in runs if r["event"] == "schedule_ran" and r["late"]]
    assert sorted((r["schedule"], r["slot"]) for r in late) == [
        ("daily-review", "2026-03-20T12:00:00+00:00"),
        ("retention", "2026-03-20T07:30:00+00:00"),
        ("reverify", "2026-03-20T13:00:00+00:00"),
    ]
    registered = [r["schedule"] for r in runs if r["event"] == "schedule_registered"]
    assert sorted(registered) == [
        "credential-rotation",
        "daily-review",
        "monthly-drill",
        "retention",
        "reverify",
    ]
