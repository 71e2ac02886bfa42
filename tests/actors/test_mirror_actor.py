"""The mirror actor: coalescing, batching, Postgres going away and coming back, drain."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import structlog
import trio
import trio.testing
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actors.history import _mirror
from actors.mirror import COMPONENT, MirrorBuffer, MirrorDeps, run_mirror
from eyetok.clock import SystemClock
from eyetok.health import HealthBoard
from eyetok.messages import (
    ConfirmDurable,
    DeliveryClosed,
    DeliveryPlanned,
    HistoryMessage,
    IncidentAction,
    MirrorMessage,
    PlanDeliveries,
    Reply,
)
from eyetok.verification import Verification, VerificationStatus
from state.mirror.migrate import load_migrations
from state.mirror.writer import MirrorBatch, MirrorWriter
from tests.conftest import eventually
from tests.peers.tcp_proxy import TcpProxy
from tests.pg import (
    T0,
    closed,
    deliver,
    finished,
    incident,
    query,
    recorded,
    snapshotted,
    verification,
    verification_rows,
)


class CountingWriter(MirrorWriter):
    """Counts the transactions (non-empty batches written) and the changes in them."""

    def __init__(self, dsn: str, **kw: object) -> None:
        super().__init__(dsn, **kw)  # type: ignore[arg-type]
        self.transactions = 0
        self.changes = 0

    def apply(self, batch: MirrorBatch) -> None:
        super().apply(batch)
        self._count(batch)

    async def apply_on_loop(self, batch: MirrorBatch) -> bool:
        landed = await super().apply_on_loop(batch)
        if landed:
            self._count(batch)
        return landed

    def _count(self, batch: MirrorBatch) -> None:
        if len(batch):
            self.transactions += 1
            self.changes += len(batch)


def fast_deps(writer: MirrorWriter, board: HealthBoard, **kw: float) -> MirrorDeps:
    options: dict[str, float] = {
        "flush_interval_s": 0.02,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.1,
        "start_timeout_s": 5.0,
    }
    options.update(kw)
    return MirrorDeps(writer=writer, status=board, **options)  # type: ignore[arg-type]


class Running:
    """A started mirror: its inbox, the scope that stops it (a drain), its end."""

    def __init__(self, inbox: trio.MemorySendChannel[MirrorMessage]) -> None:
        self.inbox = inbox
        self.scope = trio.CancelScope()
        self.ended = trio.Event()

    def cancel(self) -> None:
        self.scope.cancel()


async def start_mirror(
    nursery: trio.Nursery, deps: MirrorDeps
) -> tuple[trio.MemorySendChannel[MirrorMessage], Running]:
    """Start the actor; return its inbox and a handle that stops it."""
    tx, rx = trio.open_memory_channel[MirrorMessage](math.inf)
    running = Running(tx)

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with running.scope:
                await run_mirror(deps, rx, clock=SystemClock(), task_status=task_status)
        finally:
            running.ended.set()

    await nursery.start(run)
    return tx, running


def rows_of(dsn: str) -> Callable[[], Awaitable[dict[str, int]]]:
    async def read() -> dict[str, int]:
        rows = await trio.to_thread.run_sync(
            query, dsn, "SELECT incident_id, event_count FROM incident_state"
        )
        return dict(rows)

    return read


def server_of(dsn: str) -> tuple[str, int]:
    params = conninfo_to_dict(dsn)
    return str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)


def state_of(board: HealthBoard) -> str | None:
    health = board.get(COMPONENT)
    return health.state if health else None


# --- the buffer (no Postgres) ------------------------------------------------------------


def test_the_buffer_keeps_the_newest_snapshot_per_incident() -> None:
    buffer = MirrorBuffer()
    v1, v2, v3 = (incident("inc_1", count=n) for n in (1, 2, 3))
    buffer.add(snapshotted(v2))
    buffer.add(snapshotted(v1))  # older: ignored
    buffer.add(snapshotted(incident("inc_2")))
    assert len(buffer) == 2
    same_stamp = snapshotted(v3, at=snapshotted(v2).recorded_at)
    buffer.add(same_stamp)  # same recorded_at: the later message wins
    batch = buffer.take()
    assert {s.incident.incident_id: s.incident.event_count for s in batch.snapshots} == {
        "inc_1": 3,
        "inc_2": 1,
    }
    assert len(buffer) == 0


def test_planned_then_closed_before_writing_cancels_but_keeps_the_thread() -> None:
    buffer = MirrorBuffer()
    inc = incident()
    opening = deliver("dlv_open", inc)
    hook = deliver("dlv_hook", inc, sink_id="hook", sink_type="webhook")
    buffer.add(DeliveryPlanned(deliver=opening))
    buffer.add(DeliveryPlanned(deliver=hook))
    buffer.add(closed(opening, ts="9.9"))
    batch = buffer.take()
    assert batch.planned == (hook,)
    assert batch.closed == ()
    assert [(t.incident_id, t.ts) for t in batch.threads] == [("inc_1", "9.9")]
    # closed after its row was written: a delete
    buffer.add(closed(hook, outcome="dead"))
    assert buffer.take() == MirrorBatch(closed=("dlv_hook",), closed_tenants={"dlv_hook": "acme"})


def test_a_failed_batch_merges_back_with_newer_changes_winning() -> None:
    buffer = MirrorBuffer()
    inc = incident("inc_1", count=1)
    d = deliver("dlv_1", inc)
    buffer.add(snapshotted(inc))
    buffer.add(snapshotted(incident("inc_2", count=7)))
    buffer.add(DeliveryPlanned(deliver=d))
    failed = buffer.take()
    # meanwhile: a newer snapshot of inc_1, and dlv_1 finished
    buffer.add(snapshotted(incident("inc_1", count=4)))
    buffer.add(closed(d, outcome="refused"))
    buffer.restore(failed)
    batch = buffer.take()
    assert {s.incident.incident_id: s.incident.event_count for s in batch.snapshots} == {
        "inc_1": 4,
        "inc_2": 7,
    }
    # the failed write may have landed: the row is deleted, not silently forgotten
    assert batch.planned == ()
    assert batch.closed == ("dlv_1",)

    # a restored (maybe written) planned row that closes later is deleted too
    buffer.add(DeliveryPlanned(deliver=d))
    buffer.restore(buffer.take())
    buffer.add(closed(d))
    assert buffer.take().closed == ("dlv_1",)


def test_verification_rows_are_appended_never_coalesced() -> None:
    buffer = MirrorBuffer()
    pending = verification("slack-ops", VerificationStatus.PENDING, at=T0)
    live = verification("slack-ops", VerificationStatus.LIVE, at=T0 + timedelta(minutes=1))
    hook = verification("hook", VerificationStatus.FAILED, sink_type="webhook")
    for v in (pending, live, hook, live):  # the same row twice stays twice (the writer's
        buffer.add(recorded(v))  # ON CONFLICT makes it one row)
    buffer.add(snapshotted(incident("inc_1")))
    assert len(buffer) == 5
    batch = buffer.take()
    assert batch.verifications == (pending, live, hook, live)
    assert len(batch) == 5
    assert len(buffer) == 0
    assert buffer.take() == MirrorBatch()


def test_a_failed_batch_merges_its_verification_rows_back_first() -> None:
    buffer = MirrorBuffer()
    first = verification("slack-ops", VerificationStatus.PENDING, at=T0)
    second = verification("slack-ops", VerificationStatus.LIVE, at=T0 + timedelta(minutes=1))
    third = verification("slack-ops", VerificationStatus.ROTATED, at=T0 + timedelta(days=2))
    buffer.add(recorded(first))
    buffer.add(recorded(second))
    failed = buffer.take()
    buffer.add(recorded(third))  # meanwhile
    buffer.restore(failed)
    assert len(buffer) == 3
    assert buffer.take().verifications == (first, second, third)


async def test_the_history_forwards_verification_rows_to_the_mirror() -> None:
    inc = incident("inc_1")
    d = deliver("dlv_1", inc)
    v = verification("slack-ops", VerificationStatus.LIVE)
    batch: list[HistoryMessage] = [
        PlanDeliveries(origin="test", deliveries=(d,)),
        recorded(v),
        finished(d),
    ]
    tx, rx = trio.open_memory_channel[MirrorMessage](math.inf)
    await _mirror(batch, tx, T0)
    tx.close()
    got = [m async for m in rx]
    assert got == [DeliveryPlanned(deliver=d), recorded(v), DeliveryClosed(finished=finished(d))]


def test_the_health_board_keeps_since_while_only_the_detail_changes() -> None:
    board = HealthBoard()
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    board.set("mirror", "starting", "migrating", at=t0)
    board.set("mirror", "degraded", "1 buffered", at=t0 + timedelta(seconds=1))
    board.set("mirror", "degraded", "5 buffered", at=t0 + timedelta(seconds=9))
    board.set("history", "ok", at=t0)
    health = board.get("mirror")
    assert health is not None
    assert (health.state, health.detail, health.since) == (
        "degraded",
        "5 buffered",
        t0 + timedelta(seconds=1),
    )
    assert board.worst() == "degraded"
    assert board.snapshot() == {
        "history": {"state": "ok", "detail": "", "since": t0.isoformat()},
        "mirror": {
            "state": "degraded",
            "detail": "5 buffered",
            "since": (t0 + timedelta(seconds=1)).isoformat(),
        },
    }


# --- the actor against Postgres ------------------------------------------------------------


@pytest.mark.postgres
async def test_many_messages_become_few_transactions(pg_dsn: str, nursery: trio.Nursery) -> None:
    writer = CountingWriter(pg_dsn)
    board = HealthBoard()
    try:
        # an interval long enough that, however slow this machine, only the
        # "500 changes waiting" trigger (and the end of the stream) can cut batches
        inbox, stop = await start_mirror(nursery, fast_deps(writer, board, flush_interval_s=1.0))
        assert state_of(board) == "ok"  # migrated before it said it had started
        messages: list[MirrorMessage] = []
        incidents = [f"inc_{i:03d}" for i in range(200)]
        for n in range(1, 11):  # 10 updates of each of 200 incidents
            messages += [snapshotted(incident(i, count=n)) for i in incidents]
        planned = [deliver(f"dlv_{i:03d}", incident(f"inc_{i:03d}")) for i in range(300)]
        messages += [DeliveryPlanned(deliver=d) for d in planned]
        messages += [closed(d, outcome="refused") for d in planned[:100]]
        for message in messages:
            inbox.send_nowait(message)

        await eventually(lambda: _all_counts_are(pg_dsn, 10, len(incidents)))
        await eventually(lambda: _pending_count_is(pg_dsn, 200))
        assert len(messages) == 2400
        assert 1 <= writer.transactions <= 5, writer.transactions
        assert writer.changes <= 200 + 200 + 100 * 2  # coalesced: never one per message
        stop.cancel()
    finally:
        writer.close()


async def _all_counts_are(dsn: str, count: int, n: int) -> bool:
    counts = await rows_of(dsn)()
    return len(counts) == n and set(counts.values()) == {count}


async def _pending_count_is(dsn: str, n: int) -> bool:
    rows = await trio.to_thread.run_sync(query, dsn, "SELECT count(*) FROM outbox_pending")
    return bool(rows[0][0] == n)


@pytest.mark.postgres
async def test_postgres_down_mid_run_then_back_loses_nothing(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    with TcpProxy(*server_of(pg_dsn)) as proxy, structlog.testing.capture_logs() as logs:
        writer = CountingWriter(make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port))
        board = HealthBoard()
        try:
            inbox, stop = await start_mirror(nursery, fast_deps(writer, board))
            assert state_of(board) == "ok"
            ids = [f"inc_{i:02d}" for i in range(20)]
            for i in ids:
                await inbox.send(snapshotted(incident(i, count=1)))
            await eventually(lambda: _all_counts_are(pg_dsn, 1, len(ids)))

            proxy.cut()
            accepted = proxy.accepted
            for n in range(2, 12):  # 10 waves of updates, some flush attempts between them
                for i in ids:
                    await inbox.send(snapshotted(incident(i, count=n)))
                await trio.sleep(0.01)

            async def degraded_with_everything_buffered() -> bool:
                health = board.get(COMPONENT)
                return (
                    health is not None
                    and health.state == "degraded"
                    and f"; {len(ids)} changes buffered" in health.detail
                )

            await eventually(degraded_with_everything_buffered)
            health = board.get(COMPONENT)
            assert health is not None
            assert health.detail.startswith("postgres unreachable since ")
            assert await _all_counts_are(pg_dsn, 1, len(ids)), "nothing reaches postgres"
            assert proxy.accepted == accepted  # every reconnect was refused
            down_since = health.since

            proxy.restore()
            await eventually(lambda: _state_is(board, "ok"))
            # no gap: every incident's newest snapshot arrived
            assert await _all_counts_are(pg_dsn, 11, len(ids))
            health = board.get(COMPONENT)
            assert health is not None
            assert health.since > down_since
            stop.cancel()
        finally:
            writer.close()
    events = [e for e in logs if e["event"] in ("mirror_degraded", "mirror_caught_up")]
    assert [e["event"] for e in events] == ["mirror_degraded", "mirror_caught_up"]
    assert events[1]["written"] == len(ids)


async def _holds(condition: bool) -> bool:
    return condition


async def _state_is(board: HealthBoard, state: str) -> bool:
    return state_of(board) == state


@pytest.mark.postgres
async def test_it_starts_with_postgres_down_and_migrates_when_it_comes_back(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    with TcpProxy(*server_of(pg_dsn)) as proxy:
        proxy.cut()
        writer = MirrorWriter(make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port))
        board = HealthBoard()
        try:
            inbox, stop = await start_mirror(nursery, fast_deps(writer, board))
            assert state_of(board) == "degraded"  # started anyway
            inc = incident("inc_1", count=3)
            await inbox.send(snapshotted(inc))
            await inbox.send(DeliveryPlanned(deliver=deliver("dlv_1", inc)))
            await trio.sleep(0.1)  # a few refused retries
            assert state_of(board) == "degraded"
            tables = await trio.to_thread.run_sync(
                query, pg_dsn, "SELECT to_regclass('incident_state') IS NULL"
            )
            assert tables == [(True,)]  # not migrated yet

            proxy.restore()
            await eventually(lambda: _state_is(board, "ok"))
            await eventually(lambda: _all_counts_are(pg_dsn, 3, 1))
            assert await _pending_count_is(pg_dsn, 1)
            stop.cancel()
        finally:
            writer.close()


@pytest.mark.postgres
async def test_it_comes_back_by_itself_with_nothing_to_write(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    """Degraded and idle: the flusher probes, so the board turns ok (and the migrations
    run) without any traffic; a second outage later is noticed and healed as well."""
    with TcpProxy(*server_of(pg_dsn)) as proxy:
        proxy.cut()
        writer = MirrorWriter(make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port))
        board = HealthBoard()
        try:
            inbox, stop = await start_mirror(nursery, fast_deps(writer, board))
            assert state_of(board) == "degraded"
            health = board.get(COMPONENT)
            assert health is not None
            assert "; 0 changes buffered; last error: cannot connect" in health.detail
            assert "\n" not in health.detail
            proxy.restore()
            await eventually(lambda: _state_is(board, "ok"))
            applied = await trio.to_thread.run_sync(
                query, pg_dsn, "SELECT version FROM eyetok_schema_migrations"
            )
            assert sorted(applied) == [(m.version,) for m in load_migrations()]

            proxy.cut()  # the writer's connection is reset under it
            await inbox.send(snapshotted(incident("inc_1", count=2)))
            await eventually(lambda: _state_is(board, "degraded"))
            proxy.restore()
            await eventually(lambda: _state_is(board, "ok"))
            await eventually(lambda: _all_counts_are(pg_dsn, 2, 1))
            stop.cancel()
        finally:
            writer.close()


@pytest.mark.postgres
async def test_a_drain_writes_what_is_buffered(pg_dsn: str, nursery: trio.Nursery) -> None:
    writer = CountingWriter(pg_dsn)
    board = HealthBoard()
    try:
        # an interval so long that only the drain can write
        inbox, stop = await start_mirror(nursery, fast_deps(writer, board, flush_interval_s=600))
        inc = incident("inc_1", count=4)
        await inbox.send(snapshotted(inc))
        await inbox.send(DeliveryPlanned(deliver=deliver("dlv_1", inc)))
        await inbox.send(
            DeliveryPlanned(deliver=deliver("dlv_2", inc, action=IncidentAction.UPDATE))
        )
        await trio.testing.wait_all_tasks_blocked()
        assert writer.transactions == 0

        stop.cancel()
        with trio.fail_after(5):
            await stop.ended.wait()
        assert writer.transactions == 1
        assert await _all_counts_are(pg_dsn, 4, 1)
        assert await _pending_count_is(pg_dsn, 2)
    finally:
        writer.close()


@pytest.mark.postgres
async def test_the_snapshot_written_is_the_newest_even_across_batches(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    """An older snapshot arriving late (another batch) does not overwrite a newer one."""
    writer = MirrorWriter(pg_dsn)
    board = HealthBoard()
    try:
        inbox, stop = await start_mirror(nursery, fast_deps(writer, board))
        await inbox.send(snapshotted(incident("inc_1", count=5)))
        await eventually(lambda: _all_counts_are(pg_dsn, 5, 1))
        await inbox.send(snapshotted(incident("inc_1", count=2)))
        await inbox.send(snapshotted(incident("inc_2", count=1, opened_at=T0)))
        await eventually(lambda: _count_rows(pg_dsn, 2))
        assert (await rows_of(pg_dsn)())["inc_1"] == 5
        stop.cancel()
    finally:
        writer.close()


async def _count_rows(dsn: str, n: int) -> bool:
    return len(await rows_of(dsn)()) == n


async def _verifications_are(dsn: str, expected: list[Verification]) -> bool:
    return await trio.to_thread.run_sync(verification_rows, dsn) == expected


@pytest.mark.postgres
async def test_the_actor_mirrors_verification_rows(pg_dsn: str, nursery: trio.Nursery) -> None:
    writer = MirrorWriter(pg_dsn)
    board = HealthBoard()
    try:
        inbox, stop = await start_mirror(nursery, fast_deps(writer, board))
        pending = verification("slack-ops", VerificationStatus.PENDING, at=T0)
        live = verification("slack-ops", VerificationStatus.LIVE, at=T0 + timedelta(minutes=1))
        await inbox.send(recorded(pending))
        await inbox.send(snapshotted(incident("inc_1")))
        await inbox.send(recorded(live))
        await eventually(lambda: _verifications_are(pg_dsn, [pending, live]))
        await eventually(lambda: _all_counts_are(pg_dsn, 1, 1))
        stop.cancel()
    finally:
        writer.close()


@pytest.mark.postgres
async def test_verification_rows_written_while_postgres_is_down_arrive_with_no_gap(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    with TcpProxy(*server_of(pg_dsn)) as proxy:
        writer = CountingWriter(make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port))
        board = HealthBoard()
        try:
            inbox, stop = await start_mirror(nursery, fast_deps(writer, board))
            assert state_of(board) == "ok"
            sinks = [f"sink-{i:02d}" for i in range(5)]
            before = [verification(s, VerificationStatus.PENDING, at=T0) for s in sinks]
            for v in before:
                await inbox.send(recorded(v))
            await eventually(lambda: _verifications_are(pg_dsn, sorted_rows(before)))
            await eventually(lambda: _holds(writer.transactions == 1))  # and acknowledged

            proxy.cut()
            during: list[Verification] = []
            for n in range(1, 6):  # 5 waves, some flush attempts between them
                for s in sinks:
                    status = VerificationStatus.LIVE if n % 2 else VerificationStatus.RENEWED
                    v = verification(s, status, at=T0 + timedelta(hours=n))
                    during.append(v)
                    await inbox.send(recorded(v))
                await trio.sleep(0.01)

            async def degraded_with_every_row_buffered() -> bool:
                health = board.get(COMPONENT)
                return (
                    health is not None
                    and health.state == "degraded"
                    and f"; {len(during)} changes buffered" in health.detail
                )

            await eventually(degraded_with_every_row_buffered)
            assert await _verifications_are(pg_dsn, sorted_rows(before)), "nothing arrives"

            proxy.restore()
            await eventually(lambda: _state_is(board, "ok"))
            # no gap: every row recorded while Postgres was away arrived, none coalesced
            assert await _verifications_are(pg_dsn, sorted_rows(before + during))
            stop.cancel()
        finally:
            writer.close()


def sorted_rows(rows: list[Verification]) -> list[Verification]:
    """In the order :func:`tests.pg.verification_rows` reads them back."""
    return sorted(rows, key=lambda v: (v.sink_id, v.handshake_at, v.status.value))


# --- postgres durability: confirmations ------------------------------------------------


@pytest.mark.postgres
async def test_a_confirmation_is_answered_once_its_changes_are_committed_and_shared(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    writer = CountingWriter(pg_dsn)
    board = HealthBoard()
    try:
        # a long interval: only the confirmations make it write
        deps = fast_deps(writer, board, flush_interval_s=30.0)
        inbox, stop = await start_mirror(nursery, dataclasses.replace(deps, durable=True))
        confirmations: list[Reply[bool]] = []
        for n in range(40):  # 40 group commits of the history, sent as fast as it can
            planned = deliver(f"dlv_{n:03d}", incident(f"inc_{n:03d}"))
            inbox.send_nowait(snapshotted(incident(f"inc_{n:03d}")))
            inbox.send_nowait(DeliveryPlanned(deliver=planned))
            confirmations.append(Reply())
            inbox.send_nowait(ConfirmDurable(reply=confirmations[-1]))
        with trio.fail_after(10):
            answers = [await c.wait() for c in confirmations]
        assert answers == [True] * 40
        # committed before the last answer, not on the 30 s interval
        assert await _pending_count_is(pg_dsn, 40)
        assert len(await rows_of(pg_dsn)()) == 40
        assert 1 <= writer.transactions < 20, writer.transactions  # shared transactions
        stop.cancel()
    finally:
        writer.close()


@pytest.mark.postgres
async def test_a_confirmation_while_postgres_is_down_is_false_at_once_and_kept(
    pg_dsn: str, nursery: trio.Nursery
) -> None:
    with TcpProxy(*server_of(pg_dsn)) as proxy:
        writer = CountingWriter(make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port))
        board = HealthBoard()
        try:
            deps = dataclasses.replace(fast_deps(writer, board), durable=True)
            inbox, stop = await start_mirror(nursery, deps)
            proxy.cut()
            first: Reply[bool] = Reply()
            await inbox.send(snapshotted(incident("inc_down", count=1)))
            await inbox.send(ConfirmDurable(reply=first))
            with trio.fail_after(10):
                assert await first.wait() is False  # the write failed: no 202
            await eventually(lambda: _state_is(board, "degraded"))
            health = board.get(COMPONENT)
            assert health is not None
            assert "hooks answer 503" in health.detail
            second: Reply[bool] = Reply()
            await inbox.send(ConfirmDurable(reply=second))
            with trio.fail_after(0.5):
                assert await second.wait() is False  # degraded: answered without a write

            proxy.restore()
            await eventually(lambda: _state_is(board, "ok"))
            assert await rows_of(pg_dsn)() == {"inc_down": 1}  # buffered, then written
            third: Reply[bool] = Reply()
            await inbox.send(ConfirmDurable(reply=third))
            with trio.fail_after(10):
                assert await third.wait() is True
            stop.cancel()
        finally:
            writer.close()
