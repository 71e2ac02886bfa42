"""``mute 1h`` under MockClock: the tenant's deliveries end ``muted`` (recorded, not sent)
until the mute expires, SEV1 and EyeTok's own notices are never muted, the expiry is
audited with what was held back, and a restart keeps a mute that has not ended."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import trio
import trio.testing

from actors.mutes import MutesDeps, run_mutes
from eyetok.clock import TrioWallClock
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    DeliveryFinished,
    Destination,
    HistoryMessage,
    Incident,
    IncidentAction,
    Reply,
    SevChannel,
    Severity,
)
from eyetok.notices import notice
from eyetok.thread_verbs import ActiveMute, MuteTenant, ShowMute, UnmuteTenant
from state.history.store import HistoryStore
from state.mirror.mutes import MutesMirror
from state.mirror.writer import MirrorWriter
from tests.pg import query

ANCHOR = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
SLACK = Destination(sink_id="slack", sink_type="slack", target="#alerts")


def _deliver(n: int, tenant: str = "t1", channel: SevChannel = SevChannel.SEV2) -> Deliver:
    incident = Incident(
        incident_id=f"inc_{n}",
        tenant=tenant,
        dedup_key=f"k{n}",
        title="db down",
        severity=Severity.HIGH,
        sev_channel=channel,
        rule="r",
        status="open",
        opened_at=ANCHOR,
        last_seen_at=ANCHOR,
        event_count=1,
    )
    return Deliver(
        delivery_id=f"dlv_{n}",
        tenant=tenant,
        destination=SLACK,
        incident=incident,
        action=IncidentAction.OPEN,
        rule="r",
        planned_at=ANCHOR,
        received_at=ANCHOR,
    )


class _Rig:
    def __init__(self, store: HistoryStore, mirror: MutesMirror | None = None) -> None:
        self.store = store
        self.mirror = mirror
        self.history: list[HistoryMessage] = []
        self.sent: list[Deliver] = []

    async def run(self, nursery: trio.Nursery, clock: TrioWallClock) -> trio.MemorySendChannel[Any]:
        inbox_tx, inbox_rx = trio.open_memory_channel[Any](16)
        budgets_tx, budgets_rx = trio.open_memory_channel[Any](16)
        history_tx, history_rx = trio.open_memory_channel[HistoryMessage](16)

        async def drain(rx: trio.MemoryReceiveChannel[Any], into: list[Any]) -> None:
            async for item in rx:
                into.append(item)

        nursery.start_soon(drain, budgets_rx, self.sent)
        nursery.start_soon(drain, history_rx, self.history)
        await nursery.start(
            lambda task_status: run_mutes(
                MutesDeps(store=self.store, mirror=self.mirror, tenants=("t1", "t2")),
                inbox_rx,
                budgets_tx,
                history_tx,
                clock=clock,
                task_status=task_status,
            )
        )
        return inbox_tx

    def outcomes(self) -> dict[str, str]:
        return {m.delivery_id: m.outcome for m in self.history if isinstance(m, DeliveryFinished)}

    def audit(self, event: str) -> list[AuditRecorded]:
        return [m for m in self.history if isinstance(m, AuditRecorded) and m.event == event]


async def test_a_mute_holds_back_and_expires(mock_clock: trio.testing.MockClock) -> None:
    clock = TrioWallClock(ANCHOR)
    rig = _Rig(HistoryStore(":memory:"))
    async with trio.open_nursery() as nursery:
        inbox = await rig.run(nursery, clock)
        reply: Reply[datetime] = Reply()
        now = clock.now()
        await inbox.send(
            MuteTenant(
                tenant="t1", until=now + timedelta(hours=1), by="slack:U0DANA", at=now, reply=reply
            )
        )
        assert await reply.wait() == now + timedelta(hours=1)
        line = notice(
            delivery_id="dlv_notice",
            tenant="t1",
            destination=SLACK,
            about="x",
            title="answer",
            text="an answer in a thread",
            at=now,
            rule="thread",
        )
        for deliver in (_deliver(1), _deliver(2, channel=SevChannel.SEV1), _deliver(3, "t2"), line):
            await inbox.send(deliver)
        await trio.sleep(1)
        assert [d.delivery_id for d in rig.sent] == ["dlv_2", "dlv_3", "dlv_notice"]
        assert rig.outcomes() == {"dlv_1": "muted"}
        [finished] = [m for m in rig.history if isinstance(m, DeliveryFinished)]
        assert "muted by slack:U0DANA" in finished.detail
        [muted] = rig.audit("tenant_muted")
        assert json.loads(muted.detail)["until"] == (now + timedelta(hours=1)).isoformat()
        assert rig.audit("tenant_unmuted") == []

        await trio.sleep(3600)
        [ended] = rig.audit("tenant_unmuted")
        assert ended.tenant == "t1"
        assert "1 deliveries held back" in ended.detail
        assert ended.at == now + timedelta(hours=1)  # woken at the expiry, not later
        await inbox.send(_deliver(4))
        await trio.sleep(1)
        assert rig.sent[-1].delivery_id == "dlv_4"
        assert rig.outcomes() == {"dlv_1": "muted"}
        nursery.cancel_scope.cancel()


async def test_a_restart_keeps_the_mute(mock_clock: trio.testing.MockClock) -> None:
    clock = TrioWallClock(ANCHOR)
    store = HistoryStore(":memory:")
    until = ANCHOR + timedelta(minutes=30)
    detail = json.dumps({"until": until.isoformat(), "by": "slack:U0DANA", "incident_id": "inc_1"})
    await store.write(
        lambda con: con.execute(
            "INSERT INTO audit_log VALUES (?, 't1', 'tenant_muted', ?, 'inc_1', NULL)",
            [ANCHOR - timedelta(minutes=30), detail],
        )
    )
    rig = _Rig(store)
    async with trio.open_nursery() as nursery:
        inbox = await rig.run(nursery, clock)
        await inbox.send(_deliver(1))
        await trio.sleep(1)
        assert rig.outcomes() == {"dlv_1": "muted"}
        await trio.sleep(30 * 60)
        await inbox.send(_deliver(2))
        await trio.sleep(1)
        assert [d.delivery_id for d in rig.sent] == ["dlv_2"]
        assert len(rig.audit("tenant_unmuted")) == 1
        nursery.cancel_scope.cancel()


async def _mirrored(dsn: str, statement: str, expected: list[tuple[Any, ...]]) -> None:
    """Wait (bounded) until the mirror answers ``statement`` with ``expected``."""
    for _ in range(200):
        if await trio.to_thread.run_sync(query, dsn, statement) == expected:
            return
        await trio.sleep(0.05)
    raise AssertionError(await trio.to_thread.run_sync(query, dsn, statement))


async def _shown(inbox: trio.MemorySendChannel[Any], tenant: str) -> tuple[ActiveMute, ...]:
    reply: Reply[tuple[ActiveMute, ...]] = Reply()
    await inbox.send(ShowMute(tenant=tenant, reply=reply))
    return await reply.wait()


async def test_a_fresh_dyno_keeps_the_mute_from_postgres_and_unmute_ends_it(
    mock_clock: trio.testing.MockClock, pg_dsn: str
) -> None:
    writer = MirrorWriter(pg_dsn)
    writer.migrate()  # the mirror actor's migrations (0012_mutes among them)
    writer.close()
    clock = TrioWallClock(ANCHOR)
    row = "SELECT tenant_id, muted_by, until, ended_by FROM mutes ORDER BY tenant_id"
    until = ANCHOR + timedelta(hours=1)
    async with trio.open_nursery() as nursery:
        first = _Rig(HistoryStore(":memory:"), MutesMirror(pg_dsn))
        inbox = await first.run(nursery, clock)
        reply: Reply[datetime] = Reply()
        await inbox.send(
            MuteTenant(tenant="t1", until=until, by="slack:dana (U0DANA)", at=ANCHOR, reply=reply)
        )
        assert await reply.wait() == until
        await _mirrored(pg_dsn, row, [("t1", "slack:dana (U0DANA)", until, None)])
        nursery.cancel_scope.cancel()

    # a fresh data directory (an empty history), the same Postgres: still muted
    async with trio.open_nursery() as nursery:
        fresh = _Rig(HistoryStore(":memory:"), MutesMirror(pg_dsn))
        inbox = await fresh.run(nursery, clock)
        [shown] = await _shown(inbox, "t1")
        assert (shown.by, shown.until) == ("slack:dana (U0DANA)", until)
        assert await _shown(inbox, "t2") == ()
        await inbox.send(_deliver(1))
        await trio.sleep(1)
        assert fresh.outcomes() == {"dlv_1": "muted"}
        assert fresh.sent == []

        ended: Reply[tuple[ActiveMute, ...]] = Reply()
        at = clock.now()
        await inbox.send(UnmuteTenant(tenant="t1", by="slack:erin (U0ERIN)", at=at, reply=ended))
        [was] = await ended.wait()
        assert was.by == "slack:dana (U0DANA)"
        await trio.sleep(1)  # the audit line goes out through the courier
        [audited] = fresh.audit("tenant_unmuted")
        assert "ended early by slack:erin (U0ERIN)" in audited.detail
        assert "1 deliveries held back" in audited.detail
        await _mirrored(pg_dsn, row, [("t1", "slack:dana (U0DANA)", at, "slack:erin (U0ERIN)")])
        await inbox.send(_deliver(2))
        await trio.sleep(1)
        assert [d.delivery_id for d in fresh.sent] == ["dlv_2"]
        nothing: Reply[tuple[ActiveMute, ...]] = Reply()
        await inbox.send(UnmuteTenant(tenant="t1", by="slack:erin (U0ERIN)", at=at, reply=nothing))
        assert await nothing.wait() == ()
        nursery.cancel_scope.cancel()

    # and another fresh start does not mute again
    async with trio.open_nursery() as nursery:
        again = _Rig(HistoryStore(":memory:"), MutesMirror(pg_dsn))
        inbox = await again.run(nursery, clock)
        assert await _shown(inbox, "t1") == ()
        await inbox.send(_deliver(3))
        await trio.sleep(1)
        assert [d.delivery_id for d in again.sent] == ["dlv_3"]
        nursery.cancel_scope.cancel()
