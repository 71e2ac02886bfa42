"""The digest reader under MockClock: an operator digest nobody acknowledged escalates
once to the operator's secondary at 15 minutes; an acknowledgement (who, when) stops it;
the timer is rebuilt from stored rows, so a restart neither repeats nor loses the
escalation, and with Postgres a fresh data directory keeps it too. The history here is a
stand-in that writes what the actor journals into a real DuckDB history with the
journal's own rows."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import trio
import trio.lowlevel
import trio.testing

from actors.digests import DigestsDeps, run_digests
from eyetok.clock import TrioWallClock
from eyetok.digests import ESCALATED_RULE, DigestRead, DigestReceipt, digest_value
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    Destination,
    FlushHistory,
    HistoryMessage,
    PlanDeliveries,
    Reply,
)
from eyetok.notices import notice
from state.history.journal import AuditRow, append_rows, delivery_row
from state.history.store import HistoryStore
from state.mirror.digest_receipts import DigestReceipts
from state.mirror.writer import MirrorWriter
from tests.conftest import daemon_settings

ANCHOR = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CONFIG = """
tenants:
  operator:
    tier: operator
    escalation: {secondary: {sink: slack, target: "#oncall-secondary"}}
"""
NOTICES = Destination(sink_id="slack", sink_type="slack", target="#eyetok-ops")


def _review(at: datetime, n: int = 1) -> Deliver:
    delivery_id = f"dlv_review{n}"
    return notice(
        delivery_id=delivery_id,
        tenant="operator",
        destination=NOTICES,
        about=f"rtn_{n}",
        title="daily review",
        text=f"Daily review #{n}: 12 notifications, 1 anomaly.",
        at=at,
        rule="routine",
        acknowledge=digest_value(delivery_id),
    )


class _History:
    """Journals into ``store`` what the actor sends, as the history actor would."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.messages: list[HistoryMessage] = []
        self.escalated = trio.Event()  # set once an escalation was planned

    async def post(self, deliver: Deliver) -> None:
        await self.store.write(lambda con: append_rows(con, [delivery_row(deliver, origin="t")]))

    async def run(self, inbox: trio.MemoryReceiveChannel[HistoryMessage]) -> None:
        async for message in inbox:
            self.messages.append(message)
            match message:
                case FlushHistory(reply=reply):
                    reply.send(True)
                case PlanDeliveries(deliveries=plan):
                    if self.escalations():
                        self.escalated.set()
                    for deliver in plan:
                        await self.post(deliver)
                case AuditRecorded():
                    row = AuditRow(
                        logged_at=message.at,
                        tenant=message.tenant,
                        event=message.event,
                        detail=message.detail,
                        incident_id=message.incident_id,
                        signal_id=message.signal_id,
                    )
                    await self.store.write(lambda con, row=row: append_rows(con, [row]))
                case _:
                    pass

    def escalations(self) -> list[Deliver]:
        return [
            d
            for m in self.messages
            if isinstance(m, PlanDeliveries)
            for d in m.deliveries
            if d.rule == "digest-escalated"
        ]

    def audit(self, event: str) -> list[dict[str, Any]]:
        return [
            json.loads(m.detail)
            for m in self.messages
            if isinstance(m, AuditRecorded) and m.event == event
        ]


@asynccontextmanager
async def _life(
    store: HistoryStore, clock: TrioWallClock, *, dsn: str | None = None, tmp: Path
) -> AsyncIterator[tuple[_History, Callable[[str, str], Any]]]:
    """One incarnation of the digests actor on ``store`` (and the Postgres ``dsn``)."""
    history = _History(store)
    inbox_tx, inbox_rx = trio.open_memory_channel[DigestRead](16)
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](64)
    settings = daemon_settings(tmp, None, config=CONFIG)
    mirror = DigestReceipts(dsn, "operator") if dsn else None
    deps = DigestsDeps(settings=settings, store=store, mirror=mirror, rescan_s=30.0)

    async def read(what: str, by: str) -> tuple[DigestReceipt | None, bool]:
        reply: Reply[tuple[DigestReceipt | None, bool]] = Reply()
        await inbox_tx.send(DigestRead(what=what, by=by, at=clock.now(), reply=reply))
        return await reply.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(history.run, history_rx)
        await nursery.start(
            lambda task_status: run_digests(
                deps, inbox_rx, history_tx, clock=clock, task_status=task_status
            )
        )
        yield history, read
        nursery.cancel_scope.cancel()


async def test_unacknowledged_it_escalates_once_at_fifteen_minutes(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    clock = TrioWallClock(ANCHOR)
    store = HistoryStore(":memory:")
    async with _life(store, clock, tmp=tmp_path) as (history, _):
        await history.post(_review(clock.now()))
        await trio.sleep(15 * 60 - 1)
        assert history.escalations() == []
        await trio.sleep(2)
        # At 15:00 the actor's 30 s scan falls due too and reads DuckDB in a worker thread:
        # on a loaded machine MockClock's autojump (50 ms of real time with every task
        # blocked) can wake this test before that thread is done, and a deadline on the
        # mock clock (trio.fail_after) is itself a place to jump to. So wait for the
        # escalation in real time, staying runnable so the clock stands still, and check
        # when the actor decided it instead.
        give_up = time.monotonic() + 60
        while not history.escalated.is_set():
            assert time.monotonic() < give_up, "no escalation within 60 s of real time"
            await trio.lowlevel.checkpoint()
        [escalated] = history.escalations()
        due = ANCHOR + timedelta(minutes=15)
        assert due <= escalated.planned_at < due + timedelta(seconds=30)
        assert escalated.destination.target == "#oncall-secondary"
        assert escalated.acknowledge == "digest:dlv_review1"  # the secondary can ack it too
        assert escalated.notice is not None
        assert "nobody acknowledged the daily review" in escalated.notice
        assert "Daily review #1" in escalated.notice
        [audit] = history.audit("digest_escalated")
        assert audit["to"] == "slack #oncall-secondary"
        await trio.sleep(30 * 60)
        assert len(history.escalations()) == 1


async def test_an_acknowledgement_stops_it_and_records_who(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    clock = TrioWallClock(ANCHOR)
    store = HistoryStore(":memory:")
    async with _life(store, clock, tmp=tmp_path) as (history, read):
        await history.post(_review(clock.now()))
        await trio.sleep(10 * 60)
        receipt, counted = await read("digest:dlv_review1", "slack:dana (U0DANA)")
        assert counted
        assert receipt is not None
        assert receipt.acknowledged_by == "slack:dana (U0DANA)"
        assert receipt.acknowledged_at == ANCHOR + timedelta(minutes=10)
        again, counted = await read("digest:dlv_review1", "slack:eve (U0EVE)")
        assert not counted
        assert again is not None
        assert again.acknowledged_by == "slack:dana (U0DANA)"
        unknown, counted = await read("digest:dlv_nope", "slack:dana (U0DANA)")
        assert (unknown, counted) == (None, False)
        await trio.sleep(10 * 60)
        assert history.escalations() == []
        [audit] = history.audit("digest_acknowledged")
        assert audit == {
            "what": "digest:dlv_review1",
            "title": "daily review",
            "by": "slack:dana (U0DANA)",
        }


async def test_a_restart_neither_repeats_nor_loses_the_escalation(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # the history's DuckDB calls run in a worker thread on real time: on a loaded machine
    # one can outlast the default 0.05 s, and the clock must not jump while one is under way
    mock_clock.autojump_threshold = 0.25
    clock = TrioWallClock(ANCHOR)
    store = HistoryStore(":memory:")
    async with _life(store, clock, tmp=tmp_path) as (history, _):
        await history.post(_review(clock.now(), 1))
        await trio.sleep(10 * 60)
        await history.post(_review(clock.now(), 2))  # found by the next look
        await trio.sleep(6 * 60)
        assert [d.acknowledge for d in history.escalations()] == ["digest:dlv_review1"]
    # the process dies; the next one reads the same history
    async with _life(store, clock, tmp=tmp_path) as (history, _):
        await trio.sleep(8 * 60)  # 24 minutes after #1, 14 after #2
        assert history.escalations() == []
        await trio.sleep(2 * 60)
        assert [d.acknowledge for d in history.escalations()] == ["digest:dlv_review2"]
        await trio.sleep(20 * 60)
        assert len(history.escalations()) == 1


async def test_a_crash_after_the_escalation_was_planned_does_not_escalate_again(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The escalated copy is journalled before its audit line: a process killed in
    between leaves the copy and no audit line, and the copy alone counts as the
    escalation."""
    clock = TrioWallClock(ANCHOR)
    store = HistoryStore(":memory:")
    review = _review(clock.now())
    copy = msgspec.structs.replace(
        review,
        delivery_id="dlv_copy",
        rule=ESCALATED_RULE,
        planned_at=ANCHOR + timedelta(minutes=15),
        destination=Destination(sink_id="slack", sink_type="slack", target="#oncall-secondary"),
    )
    async with _life(store, clock, tmp=tmp_path) as (history, _):
        await history.post(review)
        await history.post(copy)  # and no digest_escalated audit line: the crash
        await trio.sleep(30 * 60)
        assert history.escalations() == []


async def test_a_fresh_data_directory_keeps_the_timers_from_postgres(
    mock_clock: trio.testing.MockClock, tmp_path: Path, pg_dsn: str
) -> None:
    # Postgres calls run in worker threads on real time: under load one can outlast the
    # default 0.05 s, and the clock must not jump while the actor waits on one
    mock_clock.autojump_threshold = 0.25
    writer = MirrorWriter(pg_dsn)
    await trio.to_thread.run_sync(writer.migrate)
    writer.close()
    clock = TrioWallClock(ANCHOR)
    async with _life(HistoryStore(":memory:"), clock, dsn=pg_dsn, tmp=tmp_path) as (history, read):
        await history.post(_review(clock.now(), 1))
        await history.post(_review(clock.now(), 2))
        await history.post(_review(clock.now(), 3))
        await trio.sleep(31)  # one look for new digests: all three known and mirrored
        await read("digest:dlv_review3", "slack:dana (U0DANA)")
        await trio.sleep(15 * 60)
        assert [d.acknowledge for d in history.escalations()] == [
            "digest:dlv_review1",
            "digest:dlv_review2",
        ]
        await read("digest:dlv_review2", "slack:eve (U0EVE)")
        await trio.sleep(31)  # the mirror is written on the next turn
    reader = DigestReceipts(pg_dsn, "operator")
    mirrored = await trio.to_thread.run_sync(reader.load, ANCHOR - timedelta(days=1))
    reader.close()
    assert sorted((r.what, r.acknowledged_by, r.escalated_at is not None) for r in mirrored) == [
        ("digest:dlv_review1", None, True),
        ("digest:dlv_review2", "slack:eve (U0EVE)", True),
        ("digest:dlv_review3", "slack:dana (U0DANA)", False),
    ]
    # a fresh dyno: an empty history, the same Postgres
    async with _life(HistoryStore(":memory:"), clock, dsn=pg_dsn, tmp=tmp_path) as (history, read):
        await trio.sleep(20 * 60)
        assert history.escalations() == []
        receipt, counted = await read("digest:dlv_review1", "slack:dana (U0DANA)")
        assert counted
        assert receipt is not None
        assert receipt.escalated_at is not None
