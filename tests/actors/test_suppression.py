"""The suppression window under MockClock: hold, count, collapse or release."""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.suppression import SuppressionDeps, run_suppression
from eyetok.clock import TrioWallClock
from eyetok.config import SuppressionOptions
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    DeliveryFinished,
    Destination,
    HistoryMessage,
    IncidentAction,
    PlanDeliveries,
    SuppressionRecorded,
)
from eyetok.suppression import threshold
from state.history.journal import append_rows, suppression_row
from state.history.store import HistoryStore
from tests.actors.deliveries import deliver

ANCHOR = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
KEY = "tls_handshake|13335|npm"
NOTICES = Destination(sink_id="slack", sink_type="slack", target="#eyetok-operator")


@dataclass
class Window:
    """A running suppression actor, its inbox, and what it sent on and back."""

    inbox: trio.MemorySendChannel[Deliver]
    released: trio.MemoryReceiveChannel[Deliver]
    history: trio.MemoryReceiveChannel[HistoryMessage]
    clock: TrioWallClock
    seen_released: list[tuple[float, Deliver]] = field(default_factory=list)
    seen_history: list[HistoryMessage] = field(default_factory=list)

    async def send(self, *deliveries: Deliver) -> None:
        for d in deliveries:
            await self.inbox.send(d)

    async def settle(self, seconds: float = 0.0) -> None:
        """Let ``seconds`` of (mock) time pass, then collect what came out."""
        await trio.sleep(seconds)
        await trio.testing.wait_all_tasks_blocked()
        self.collect()

    def collect(self) -> None:
        while True:
            try:
                self.seen_released.append((trio.current_time(), self.released.receive_nowait()))
            except trio.WouldBlock:
                break
        while True:
            try:
                self.seen_history.append(self.history.receive_nowait())
            except trio.WouldBlock:
                break

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [m for m in self.seen_history if isinstance(m, kind)]

    def suppressed(self) -> list[DeliveryFinished]:
        return [m for m in self.of(DeliveryFinished) if m.outcome == "suppressed"]

    def notices(self) -> list[Deliver]:
        return [d for plan in self.of(PlanDeliveries) for d in plan.deliveries]


async def open_window(
    nursery: trio.Nursery,
    store: HistoryStore,
    *,
    active: int,
    options: SuppressionOptions | None = None,
) -> Window:
    inbox_tx, inbox_rx = trio.open_memory_channel[Deliver](10_000)
    out_tx, out_rx = trio.open_memory_channel[Deliver](math.inf)
    hist_tx, hist_rx = trio.open_memory_channel[HistoryMessage](math.inf)
    clock = TrioWallClock(ANCHOR)
    deps = SuppressionDeps(
        store=store,
        options=options or SuppressionOptions(),
        active_tenants=active,
        operator_tenant="operator",
        notices=NOTICES,
    )
    await nursery.start(
        functools.partial(run_suppression, clock=clock), deps, inbox_rx, out_tx, hist_tx
    )
    await trio.testing.wait_all_tasks_blocked()
    return Window(inbox=inbox_tx, released=out_rx, history=hist_rx, clock=clock)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryStore]:
    s = HistoryStore(tmp_path / "history.duckdb")
    yield s
    s.close()


def paged(count: int, *, key: str = KEY) -> list[Deliver]:
    return [deliver(f"t{i:04d}", 1, at=ANCHOR, key=key) for i in range(count)]


def test_the_threshold_is_the_floor_or_the_share_whichever_is_more() -> None:
    options = SuppressionOptions()
    assert threshold(100, options) == 30
    assert threshold(1000, options) == 100
    assert threshold(50_000, options) == 5000


async def test_40_of_100_tenants_become_one_notice_and_40_withheld(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=100)
    await window.send(*paged(40))
    await window.settle(61)
    assert window.seen_released == []
    suppressed = window.suppressed()
    assert len(suppressed) == 40
    assert {s.tenant for s in suppressed} == {f"t{i:04d}" for i in range(40)}
    assert all(s.detail.startswith("withheld by cluster clu_") for s in suppressed)
    [fired] = [r for r in window.of(SuppressionRecorded) if r.event == "fired"]
    assert fired.cluster_key == KEY
    assert len(fired.tenants) == 40
    assert fired.active_tenants == 100
    [notice] = window.notices()
    assert notice.tenant == "operator"
    assert notice.destination == NOTICES
    assert notice.acknowledge == f"cluster:{fired.cluster_id}"
    assert notice.notice is not None
    assert "`tls_handshake` on ASN 13335 at registry `npm`" in notice.notice
    assert "40 tenants (40% of 100 active)" in notice.notice
    assert [a.event for a in window.of(AuditRecorded)] == ["cluster_fired"]


async def test_the_threshold_is_judged_when_the_hold_window_closes(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=100)
    await window.send(*paged(29))
    await window.settle(59)
    await window.send(deliver("t9999", 1, at=window.clock.now(), key=KEY))  # the 30th, in time
    await window.settle(0.5)
    assert window.of(SuppressionRecorded) == []
    await window.settle(1)
    assert [r.event for r in window.of(SuppressionRecorded)] == ["fired"]
    assert len(window.suppressed()) == 30
    assert window.seen_released == []


async def test_10_of_80_is_below_the_floor_and_released_unchanged(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=80)
    sent = paged(10)
    await window.send(*sent)
    await window.settle(59)
    assert window.seen_released == []  # still held inside the window
    await window.settle(2)
    assert [d for _, d in window.seen_released] == sent  # unchanged, in order
    assert window.suppressed() == []
    assert window.of(SuppressionRecorded) == []


async def test_35_of_1000_is_below_the_share_and_released(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=1000)
    sent = paged(35)
    await window.send(*sent)
    await window.settle(61)
    assert [d for _, d in window.seen_released] == sent
    assert window.suppressed() == []
    assert window.notices() == []


async def test_a_single_tenant_outage_is_never_held_longer_than_the_window(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(
        nursery, store, active=2, options=SuppressionOptions(min_tenants=2, min_share=0.5)
    )
    arrivals: dict[str, float] = {}
    for n in range(200):  # one tenant, an alert every 1.5 s for five minutes
        d = deliver("solo", n, at=window.clock.now(), key=KEY)
        arrivals[d.delivery_id] = trio.current_time()
        await window.send(d)
        await window.settle(1.5)
    await window.settle(61)
    assert len(window.seen_released) == 200
    waits = [at - arrivals[d.delivery_id] for at, d in window.seen_released]
    assert max(waits) <= 60.0 + 1e-6
    assert window.suppressed() == []
    assert window.of(SuppressionRecorded) == []


async def test_alerts_without_a_key_and_notices_pass_straight_through(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=100)
    plain = deliver("t0001", 1, at=ANCHOR)
    await window.send(plain)
    await window.settle(0)
    assert [d for _, d in window.seen_released] == [plain]


async def test_later_alerts_join_the_cluster_until_it_has_been_quiet(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=100)
    await window.send(*paged(30))
    await window.settle(1)
    await window.settle(200)
    await window.send(deliver("late", 1, at=window.clock.now(), key=KEY))
    await window.settle(299)  # quiet for 299 s: still active
    assert [r.event for r in window.of(SuppressionRecorded)] == ["fired"]
    assert len(window.suppressed()) == 31
    await window.settle(2)
    fired, cleared = window.of(SuppressionRecorded)
    assert cleared.event == "cleared"
    assert cleared.cluster_id == fired.cluster_id
    assert cleared.withheld == 31
    assert "late" in cleared.tenants
    assert [a.event for a in window.of(AuditRecorded)] == ["cluster_fired", "cluster_cleared"]
    assert len(window.notices()) == 2
    # After it cleared, the key starts a fresh hold window: released below the threshold.
    again = deliver("after", 1, at=window.clock.now(), key=KEY)
    await window.send(again)
    await window.settle(61)
    assert [d for _, d in window.seen_released] == [again]


async def test_the_resolve_of_a_withheld_incident_is_withheld_too(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(nursery, store, active=100)
    await window.send(*paged(30))
    await window.settle(400)  # fired, then cleared
    resolve = deliver(
        "t0003", 2, at=window.clock.now(), action=IncidentAction.RESOLVE, incident="inc_t0003_1"
    )
    await window.send(resolve)
    await window.settle(0)
    assert window.seen_released == []
    assert window.suppressed()[-1].delivery_id == resolve.delivery_id


async def test_an_active_cluster_survives_a_restart(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    fired = SuppressionRecorded(
        cluster_id="clu_0123456789abcdef",
        event="fired",
        at=ANCHOR,
        cluster_key=KEY,
        tenants=tuple(f"t{i:04d}" for i in range(30)),
        active_tenants=100,
        withheld=30,
    )
    await store.write(lambda con: append_rows(con, [suppression_row(fired)]))
    window = await open_window(nursery, store, active=100)
    await window.send(deliver("t0077", 1, at=ANCHOR, key=KEY))
    await window.settle(0)
    assert window.seen_released == []
    assert window.suppressed()[0].detail == "withheld by cluster clu_0123456789abcdef"


async def test_disabled_it_holds_nothing(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    window = await open_window(
        nursery, store, active=100, options=SuppressionOptions(enabled=False)
    )
    await window.send(*paged(40))
    await window.settle(0)
    assert len(window.seen_released) == 40
    assert window.suppressed() == []
