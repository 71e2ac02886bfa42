"""Budgets: each tenant may be paged so many times per clock hour (its tier says how many).

Within its budget an alert goes on to delivery. Above it, the alert is held, not dropped:
at the top of the next hour every held alert of the hour is summarised in one
compressed-mode digest to the tenant's primary sink (counts by severity, the top
incidents with critical ones first, the window), and the held outbox rows end
``digested``. The first cap event of a tenant in an hour posts one line to the operator's
``#alerts-cap`` channel. The budget resets on the hour; the reset of a capped hour is
audited. A tenant whose tier has no cap (the operator's own) is never held.

An alert is one signal: its deliveries to several sinks spend one unit of budget
together. Notices EyeTok writes itself (operator notices, digests) spend none.

State survives a restart: the hour's admitted signals and cap events are read back from
the history, and held deliveries, still pending outbox rows, are re-queued by history and
held again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

import trio

from actors.courier import Courier
from actors.forward import Inbox, forward
from actors.tenants import effective_settings
from eyetok import log
from eyetok.budgets import Spent, Window, digest_text, hour_of, spend
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.digests import digest_value
from eyetok.messages import (
    AuditRecorded,
    BudgetMessage,
    BudgetStanding,
    Deliver,
    Destination,
    HistoryMessage,
    PlanDeliveries,
    ShowBudgets,
    TenantConfigChanged,
    finished,
)
from eyetok.notices import notice, notice_id
from eyetok.wording import when
from state.history import queries
from state.history.store import HistoryStore


@dataclass(frozen=True)
class BudgetsDeps:
    store: HistoryStore
    enabled: bool
    caps: dict[str, int | None]  # tenant -> alerts per hour (None: uncapped)
    tiers: dict[str, str]  # tenant -> tier
    primary: dict[str, Destination]  # tenant -> where its digest goes
    cap_notices: Destination | None  # the operator's #alerts-cap channel
    operator_tenant: str
    # with it: the tenants' API routes decide the primary sink (followed as they change)
    settings: Settings | None = None


async def run_budgets(
    deps: BudgetsDeps,
    inbox: trio.MemoryReceiveChannel[BudgetMessage],
    to_delivery: trio.MemorySendChannel[Deliver],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("budgets")
    courier: Courier[HistoryMessage] = Courier(to_history)
    windows: dict[str, Window] = {}
    primary = dict(deps.primary)
    if deps.settings is not None:
        primary = (await effective_settings(deps.settings, deps.store)).primary_destinations()

    start = hour_of(clock.now())
    spent = await deps.store.read(lambda con: queries.budget_spent(con, since=start))
    for tenant, signal_ids in spent.admitted.items():
        windows[tenant] = Window(start=start, admitted=set(signal_ids))
    for tenant in spent.capped:
        windows.setdefault(tenant, Window(start=start)).capped = True

    def window_of(tenant: str, now: datetime) -> Window:
        current = hour_of(now)
        window = windows.get(tenant)
        if window is not None and window.start < current:
            close(tenant, window, now)
            window = None
        if window is None:
            window = windows[tenant] = Window(start=current)
        return window

    def close(tenant: str, window: Window, now: datetime) -> None:
        """The hour is over: send its digest, end its held rows, reset the budget."""
        windows.pop(tenant, None)
        if not window.held and not window.capped:
            return
        cap = deps.caps.get(tenant) or 0
        held_signals = len({d.signal_id or d.delivery_id for d in window.held})
        digest_id = notice_id("digest", tenant, window.start.isoformat())
        destination = primary.get(tenant)
        if window.held:
            if destination is not None:
                digest = notice(
                    delivery_id=digest_id,
                    tenant=tenant,
                    destination=destination,
                    about=f"budget:{tenant}:{window.start:%Y%m%dT%H}",
                    title=f"compressed-mode digest {window.start:%Y-%m-%d %H:00} UTC",
                    text=digest_text(tenant, cap, window),
                    at=now,
                    rule="budget-digest",
                )
                courier.post(
                    PlanDeliveries(
                        origin=f"budget:{tenant}:{window.start.isoformat()}",
                        deliveries=(digest,),
                    )
                )
                detail = f"summarised in digest {digest_id}"
            else:
                detail = "held over budget; the tenant routes to no sink, so no digest was sent"
            for deliver in window.held:
                courier.post(finished(deliver, "digested", at=now, detail=detail))
            courier.post(
                AuditRecorded(
                    at=now,
                    tenant=tenant,
                    event="budget_digest",
                    detail=(
                        f"window {window.start.isoformat()}: {len(window.admitted)} delivered, "
                        f"{held_signals} held ({len(window.held)} deliveries) -> "
                        + (destination.sink_id if destination else "no sink")
                    ),
                )
            )
        courier.post(
            AuditRecorded(
                at=now,
                tenant=tenant,
                event="budget_reset",
                detail=f"window {window.start.isoformat()} closed; budget {cap}/h starts again",
            )
        )
        logger.info(
            "budget_reset",
            tenant=tenant,
            window=window.start.isoformat(),
            admitted=len(window.admitted),
            held=held_signals,
            digest=digest_id if window.held and destination else None,
        )

    def cap_reached(tenant: str, window: Window, cap: int, now: datetime) -> None:
        text = (
            f":warning: Tenant `{tenant}` ({deps.tiers.get(tenant, '?')} tier) reached its "
            f"hourly budget of {cap} alerts at {when(now)}. The rest of this hour is held "
            f"for its compressed-mode digest at {when(window.start + timedelta(hours=1))}."
        )
        courier.post(AuditRecorded(at=now, tenant=tenant, event="budget_capped", detail=text))
        logger.warning("budget_capped", tenant=tenant, cap=cap, window=window.start.isoformat())
        if deps.cap_notices is not None:
            line_id = notice_id("cap", tenant, window.start.isoformat())
            line = notice(
                delivery_id=line_id,
                tenant=deps.operator_tenant,
                destination=deps.cap_notices,
                about=f"budget:{tenant}:{window.start:%Y%m%dT%H}",
                title=f"{tenant} capped",
                text=text,
                at=now,
                rule="budget-cap",
                acknowledge=digest_value(line_id),  # an operator digest (eyetok/digests.py)
            )
            courier.post(PlanDeliveries(origin=f"cap:{tenant}", deliveries=(line,)))

    async def admit(deliver: Deliver) -> None:
        cap = deps.caps.get(deliver.tenant)
        if (
            deliver.notice is not None
            or deliver.step is not None
            or not deps.enabled
            or cap is None
        ):
            # a step of SEV1's human loop (ack, re-notification, escalation) is never held
            await forward(to_delivery, deliver)
            return
        now = clock.now()
        window = window_of(deliver.tenant, now)
        spent = spend(window, deliver.signal_id or deliver.delivery_id, cap)
        if spent is Spent.WITHIN:
            await forward(to_delivery, deliver)
            return
        window.held.append(deliver)
        if spent is Spent.CAPPED:
            cap_reached(deliver.tenant, window, cap, now)

    def standings() -> tuple[BudgetStanding, ...]:
        current = hour_of(clock.now())
        return tuple(
            BudgetStanding(
                tenant=tenant,
                tier=deps.tiers.get(tenant, "?"),
                cap=deps.caps.get(tenant),
                window_start=window.start,
                admitted=len(window.admitted),
                held=len({d.signal_id or d.delivery_id for d in window.held}),
                capped=window.capped,
            )
            for tenant, window in sorted(windows.items())
            if window.start >= current or window.held
        )

    async def top_of_the_hour() -> None:
        while True:
            await clock.sleep_until(hour_of(clock.now()) + timedelta(hours=1))
            now = clock.now()
            current = hour_of(now)
            for tenant, window in list(windows.items()):
                if window.start < current:
                    close(tenant, window, now)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(courier.run)
        nursery.start_soon(top_of_the_hour)
        task_status.started()
        async for message in Inbox(inbox):
            match message:
                case Deliver():
                    await admit(message)
                case ShowBudgets(reply=reply):
                    reply.send(standings())
                case TenantConfigChanged(settings=settings):
                    primary = settings.primary_destinations()
                case _:
                    assert_never(message)
