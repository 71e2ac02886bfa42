"""Hourly budgets under MockClock: cap, hold, one cap line, one digest, reset, restart."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import trio
import trio.testing

from actors.budgets import BudgetsDeps, run_budgets
from eyetok.budgets import Window, digest_text
from eyetok.clock import TrioWallClock
from eyetok.messages import (
    AuditRecorded,
    BudgetMessage,
    BudgetStanding,
    Deliver,
    DeliveryFinished,
    Destination,
    HistoryMessage,
    PlanDeliveries,
    Reply,
    Severity,
    ShowBudgets,
)
from state.history.journal import AuditRow, append_rows
from state.history.store import HistoryStore
from tests.actors.deliveries import deliver, drain

ANCHOR = datetime(2026, 11, 24, 15, 20, tzinfo=UTC)  # 40 minutes before the top of the hour
CAP_LINE = Destination(sink_id="slack", sink_type="slack", target="#alerts-cap")
PRIMARY = Destination(sink_id="acme-slack", sink_type="slack", target="#acme-alerts")


@dataclass
class Budgets:
    inbox: trio.MemorySendChannel[BudgetMessage]
    delivered: trio.MemoryReceiveChannel[Deliver]
    history: trio.MemoryReceiveChannel[HistoryMessage]
    clock: TrioWallClock
    seen_delivered: list[Deliver] = field(default_factory=list)
    seen_history: list[HistoryMessage] = field(default_factory=list)

    async def send(self, *deliveries: Deliver) -> None:
        for d in deliveries:
            await self.inbox.send(d)

    async def settle(self, seconds: float = 0.0) -> None:
        await trio.sleep(seconds)
        await trio.testing.wait_all_tasks_blocked()
        self.seen_delivered += drain(self.delivered)
        self.seen_history += drain(self.history)

    async def standings(self) -> tuple[BudgetStanding, ...]:
        reply: Reply[tuple[BudgetStanding, ...]] = Reply()
        await self.inbox.send(ShowBudgets(reply=reply))
        return await reply.wait()

    def audits(self, event: str) -> list[AuditRecorded]:
        return [m for m in self.seen_history if isinstance(m, AuditRecorded) and m.event == event]

    def planned(self, target: Destination) -> list[Deliver]:
        return [
            d
            for m in self.seen_history
            if isinstance(m, PlanDeliveries)
            for d in m.deliveries
            if d.destination == target
        ]

    def digested(self) -> list[DeliveryFinished]:
        return [
            m
            for m in self.seen_history
            if isinstance(m, DeliveryFinished) and m.outcome == "digested"
        ]


async def open_budgets(
    nursery: trio.Nursery, store: HistoryStore, *, enabled: bool = True
) -> Budgets:
    inbox_tx, inbox_rx = trio.open_memory_channel[BudgetMessage](10_000)
    out_tx, out_rx = trio.open_memory_channel[Deliver](math.inf)
    hist_tx, hist_rx = trio.open_memory_channel[HistoryMessage](math.inf)
    clock = TrioWallClock(ANCHOR)
    deps = BudgetsDeps(
        store=store,
        enabled=enabled,
        caps={"acme": 50, "operator": None},
        tiers={"acme": "public", "operator": "operator"},
        primary={"acme": PRIMARY},
        cap_notices=CAP_LINE,
        operator_tenant="operator",
    )
    await nursery.start(
        functools.partial(run_budgets, clock=clock), deps, inbox_rx, out_tx, hist_tx
    )
    await trio.testing.wait_all_tasks_blocked()
    return Budgets(inbox=inbox_tx, delivered=out_rx, history=hist_rx, clock=clock)


async def test_the_51st_alert_of_a_public_tenant_waits_for_the_digest(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    budgets = await open_budgets(nursery, store)
    alerts = [deliver("acme", n, at=ANCHOR) for n in range(60)]
    await budgets.send(*alerts[:50])
    await budgets.settle(1)
    assert budgets.seen_delivered == alerts[:50]
    assert budgets.audits("budget_capped") == []
    await budgets.send(*alerts[50:])
    await budgets.settle(1)
    assert budgets.seen_delivered == alerts[:50]  # 51..60 held
    [line] = budgets.planned(CAP_LINE)
    assert line.tenant == "operator"
    assert line.notice is not None
    assert "`acme` (public tier) reached its hourly budget of 50 alerts" in line.notice
    assert len(budgets.audits("budget_capped")) == 1
    [standing] = await budgets.standings()
    assert (standing.tenant, standing.admitted, standing.held, standing.capped) == (
        "acme",
        50,
        10,
        True,
    )
    # The top of the hour (15:00 + 1 h): one digest with the right counts, once.
    await budgets.settle((datetime(2026, 11, 24, 16, 0, tzinfo=UTC) - ANCHOR).total_seconds() - 3)
    assert budgets.planned(PRIMARY) == []
    await budgets.settle(4)
    [digest] = budgets.planned(PRIMARY)
    assert digest.tenant == "acme"
    assert digest.notice is not None
    assert "15:00-16:00 UTC" in digest.notice
    assert "10 more alerts were held" in digest.notice
    assert "By severity: high 10." in digest.notice
    assert {d.delivery_id for d in budgets.digested()} == {a.delivery_id for a in alerts[50:]}
    assert len(budgets.audits("budget_digest")) == 1
    assert len(budgets.audits("budget_reset")) == 1
    # Another hour with nothing held: no second digest.
    await budgets.settle(3600)
    assert len(budgets.planned(PRIMARY)) == 1
    # The budget reset: the next alert goes out at once, and a new cap line needs a new cap.
    fresh = deliver("acme", 100, at=budgets.clock.now())
    await budgets.send(fresh)
    await budgets.settle(0)
    assert budgets.seen_delivered[-1] == fresh
    assert len(budgets.planned(CAP_LINE)) == 1


async def test_the_cap_line_is_posted_once_an_hour(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    budgets = await open_budgets(nursery, store)
    await budgets.send(*[deliver("acme", n, at=ANCHOR) for n in range(120)])
    await budgets.settle(60)
    assert len(budgets.planned(CAP_LINE)) == 1
    await budgets.settle(3600)  # the next hour caps again: a second line
    await budgets.send(*[deliver("acme", n, at=budgets.clock.now()) for n in range(200, 260)])
    await budgets.settle(1)
    assert len(budgets.planned(CAP_LINE)) == 2


async def test_the_operator_is_never_capped(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    budgets = await open_budgets(nursery, store)
    alerts = [deliver("operator", n, at=ANCHOR) for n in range(500)]
    await budgets.send(*alerts)
    await budgets.settle(3700)
    assert budgets.seen_delivered == alerts
    assert budgets.planned(CAP_LINE) == []
    assert budgets.digested() == []


async def test_one_alert_to_several_sinks_spends_one_unit(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    budgets = await open_budgets(nursery, store)
    fanned = [deliver("acme", n, at=ANCHOR, sink=s) for n in range(50) for s in ("hook", "mail")]
    await budgets.send(*fanned)
    await budgets.settle(0)
    assert budgets.seen_delivered == fanned
    assert budgets.planned(CAP_LINE) == []


async def test_budgets_off_caps_nobody(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    budgets = await open_budgets(nursery, store, enabled=False)
    await budgets.send(*[deliver("acme", n, at=ANCHOR) for n in range(80)])
    await budgets.settle(0)
    assert len(budgets.seen_delivered) == 80


async def test_a_step_of_the_sev1_loop_is_never_held_by_the_budget(
    nursery: trio.Nursery, store: HistoryStore, autojump_clock: trio.testing.MockClock
) -> None:
    budgets = await open_budgets(nursery, store)
    await budgets.send(*[deliver("acme", n, at=ANCHOR) for n in range(50)])
    escalation = msgspec.structs.replace(deliver("acme", 99, at=ANCHOR), step="escalated")
    await budgets.send(escalation)
    await budgets.settle(0)
    assert budgets.seen_delivered[-1] == escalation
    assert budgets.planned(CAP_LINE) == []


def test_the_digest_lists_critical_incidents_first() -> None:
    window = Window(start=datetime(2026, 11, 24, 15, tzinfo=UTC))
    at = window.start + timedelta(minutes=5)
    window.held = [
        *[deliver("acme", n, at=at, severity=Severity.LOW, incident="inc_low") for n in range(5)],
        deliver("acme", 10, at=at, severity=Severity.CRITICAL, incident="inc_crit"),
        *[deliver("acme", n, at=at, severity=Severity.HIGH) for n in range(20, 23)],
    ]
    text = digest_text("acme", 50, window)
    lines = text.splitlines()
    assert "By severity: critical 1, high 3, low 5." in text
    top = lines[lines.index("Top incidents:") + 1 :]
    assert top[0].startswith("• [critical] acme alert 10")
    assert top[-1].startswith("• [low] acme alert")
    assert "(5 alerts" in top[-1]


async def test_the_hours_spending_survives_a_restart(
    nursery: trio.Nursery,
    store: HistoryStore,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A previous incarnation delivered 50 alerts this hour and announced the cap.
    from tests.actors.history_rows import delivered_signal_rows

    rows = [row for n in range(50) for row in delivered_signal_rows("acme", n, at=ANCHOR)]
    rows.append(
        AuditRow(
            logged_at=ANCHOR,
            tenant="acme",
            event="budget_capped",
            detail="",
            incident_id=None,
            signal_id=None,
        )
    )
    await store.write(lambda con: append_rows(con, rows))
    budgets = await open_budgets(nursery, store)
    again = deliver("acme", 7, at=ANCHOR)  # a re-queued delivery of an admitted signal
    late = deliver("acme", 51, at=ANCHOR)
    await budgets.send(again, late)
    await budgets.settle(0)
    assert budgets.seen_delivered == [again]
    assert budgets.planned(CAP_LINE) == []  # already announced before the restart
    [standing] = await budgets.standings()
    assert (standing.admitted, standing.held, standing.capped) == (50, 1, True)
