"""``budget-exhaustion``: thirty alerts against the drill tier's ten: ten delivered, the
rest held, one ``#alerts-cap`` line; at the top of the hour one digest and the reset
(these two wait for the real hour unless ``--no-wait`` marks them skipped).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import trio

from harness.rig import CAP_NOTICES, Rig
from harness.scenarios.watch import (
    SETTLE_S,
    SLA_S,
    all_sent,
    deadline,
    incident_of,
    newest_verdicts,
    restore,
    synthetic_checks,
)
from harness.steps import Observed, Steps, poll
from harness.synthetic import Health

HOUR_GRACE_S = 120.0  # the digest and the reset are looked for this long after the hour
ROOM_BEFORE_HOUR_S = 40.0  # budget-exhaustion starts in a fresh hour if less (+ the hold) is left


async def budget_exhaustion(rig: Rig, steps: Steps) -> None:
    alerts = 30
    now = rig.clock.now()
    hour_end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    # alerts with a cluster key wait out the suppression hold before the budget sees them
    room = ROOM_BEFORE_HOUR_S + float(rig.about.get("suppression_hold_s") or 60.0)
    if (hour_end - now).total_seconds() < room:
        await rig.wait_for_hour(
            steps.scenario, hour_end + timedelta(seconds=1), "to start in a fresh hour"
        )
    since = rig.clock.now()
    hour = since.replace(minute=0, second=0, microsecond=0)
    next_hour = hour + timedelta(hours=1)
    budget: dict[str, Any] = {}

    async def known() -> Observed:
        [tenant] = [t for t in rig.about["tenants"] if t["tenant"] == rig.tenant]
        rows = [b for b in await rig.front.budgets() if b["tenant"] == rig.tenant]
        # no row: nothing spent in this hour yet
        budget.update({"cap": tenant["hourly_budget"], "admitted": 0, "capped": False})
        budget.update(rows[0] if rows else {})
        return Observed(
            ok=tenant["tier"] == "drill" and budget["cap"] == 10 and not budget["capped"],
            observation=f"tier {tenant['tier']}, cap {budget['cap']}/h, "
            f"{budget['admitted']} admitted this hour, capped: {budget['capped']}",
        )

    await steps.check("budget-is-ten-an-hour", f"{rig.tenant} is tier drill: 10 alerts/hour", known)
    cap = int(budget.get("cap") or 10)
    expected = max(0, cap - int(budget.get("admitted") or 0))
    async with synthetic_checks(rig) as start:
        checks = [
            start(f"{rig.tenant}-budget-{n:02d}", rig.tenant, "drill-budget")
            for n in range(1, alerts + 1)
        ]
        broke_at = rig.clock.now()
        for check in checks:
            rig.endpoint.set(check.name, Health.UNAVAILABLE)
        incidents: list[str] = []

        async def sent() -> Observed:
            incidents.extend(incident_of(p) for p in await newest_verdicts(rig, checks, "down"))
            return Observed(
                ok=len(set(incidents)) == alerts,
                observation=f"{len(set(incidents))} incidents opened",
                since=broke_at,
            )

        await steps.check(
            "thirty-alerts-in-the-hour",
            f"{alerts} synthetic checks of {rig.tenant} fail; {alerts} alerts accepted",
            sent,
        )
        await steps.check(
            "ten-delivered",
            f"{expected} of the {alerts} alerts delivered (the cap of {cap} less the "
            f"{cap - expected} already admitted this hour), no more",
            lambda: _admitted(rig, since, incidents, expected, broke_at),
        )
        await steps.check(
            "rest-held",
            f"the other {alerts - expected} are held: pending, not delivered",
            lambda: _held(rig, since, incidents),
        )
        await steps.check(
            "one-cap-line",
            f"one line in {CAP_NOTICES} says {rig.tenant} is capped",
            lambda: _cap_line(rig, since, incidents),
        )
        await steps.check(
            "cap-audited",
            "the audit log records budget_capped for the tenant once",
            lambda: _audited(rig, "budget_capped", since, exactly=1),
        )
        # Recover now, within the capped hour: the resolves are held with the rest and
        # digested, so the next hour starts with nothing spent.
        await restore(steps, rig, checks)
        digest = f"one compressed-mode digest at the top of the hour ({next_hour:%H:%M} UTC)"
        reset = "the budget resets on the hour: nothing admitted or held, audited"
        if rig.options.no_wait:
            steps.skip("digest-at-top-of-hour", digest, "--no-wait: not waiting for the hour")
            steps.skip("budget-reset", reset, "--no-wait: not waiting for the hour")
        else:
            await rig.wait_for_hour(
                steps.scenario, next_hour, "to see the digest and the budget reset"
            )
            await steps.check(
                "digest-at-top-of-hour", digest, lambda: _digest(rig, incidents, next_hour)
            )
            await steps.check("budget-reset", reset, lambda: _reset(rig, next_hour))


async def _open_rows(rig: Rig, since: datetime, incidents: list[str]) -> list[dict[str, Any]]:
    wanted = set(incidents)
    return [
        r
        for r in await rig.front.notifications(rig.tenant, since)
        if r["incident_id"] in wanted and r["action"] == "open"
    ]


async def _admitted(
    rig: Rig, since: datetime, incidents: list[str], expected: int, broke_at: datetime
) -> Observed:
    async def delivered() -> set[str]:
        rows = await _open_rows(rig, since, incidents)
        return {r["incident_id"] for r in rows if r["status"] == "delivered"}

    async def look() -> set[str] | None:
        found = await delivered()
        return found if len(found) >= expected else None

    await poll(look, until=deadline(rig, SLA_S, broke_at), clock=rig.clock)
    reached = rig.clock.now()
    await trio.sleep(SETTLE_S)
    found = await delivered()

    async def settled() -> bool | None:  # every sink of the admitted alerts has answered
        rows = await _open_rows(rig, since, incidents)
        return (
            True
            if all(r["status"] != "pending" for r in rows if r["incident_id"] in found)
            else None
        )

    if len(found) == expected:  # (more is already a failure: no need to wait for them)
        await poll(settled, until=deadline(rig, SLA_S, broke_at), clock=rig.clock)
    ids = [
        r["delivery_id"]
        for r in await _open_rows(rig, since, incidents)
        if r["status"] == "delivered"
    ]
    return Observed(
        ok=len(found) == expected,
        observation=f"{len(found)} alerts delivered "
        f"(after {(reached - broke_at).total_seconds():.1f} s)",
        delivery_ids=tuple(ids),
        since=broke_at,
    )


async def _held(rig: Rig, since: datetime, incidents: list[str]) -> Observed:
    rows = await _open_rows(rig, since, incidents)
    delivered = {r["incident_id"] for r in rows if r["status"] == "delivered"}
    held = {r["incident_id"] for r in rows if r["status"] == "pending"} - delivered
    others = set(incidents) - delivered
    budget = next((b for b in await rig.front.budgets() if b["tenant"] == rig.tenant), {})
    return Observed(
        ok=held == others and bool(budget.get("capped")),
        observation=f"{len(held)} of {len(others)} undelivered alerts held; the budget says "
        f"held={budget.get('held')}, capped={budget.get('capped')}",
    )


async def _cap_line(rig: Rig, since: datetime, incidents: list[str]) -> Observed:
    operator = rig.about["operator_tenant"]
    cap_target = str(rig.about.get("cap_notices") or f"slack:{CAP_NOTICES}").partition(":")[2]

    async def lines() -> list[dict[str, Any]]:
        return [
            r
            for r in await rig.front.notifications(operator, since)
            if r["target"] == cap_target and rig.tenant in (r.get("notice") or "")
        ]

    async def look() -> list[dict[str, Any]] | None:
        found = [r for r in await lines() if r["status"] == "delivered"]
        if not found and await all_sent(rig, since, set(incidents)):
            return []  # every alert went out: nobody was capped, no line will come
        return found or None

    await poll(look, until=deadline(rig, SLA_S), clock=rig.clock)
    found = await lines()
    slack = (
        [p for p in rig.peers.slack.posts if p.channel == cap_target.lstrip("#")]
        if rig.peers
        else None
    )
    ok = (
        len(found) == 1 and found[0]["status"] == "delivered" and (slack is None or len(slack) == 1)
    )
    return Observed(
        ok=ok,
        observation=f"{len(found)} cap lines for {rig.tenant}"
        + (f"; {len(slack)} posts in {cap_target}" if slack is not None else "")
        + (f": {(found[0].get('notice') or '')[:120]}" if found else ""),
        delivery_ids=tuple(r["delivery_id"] for r in found),
    )


async def _audited(rig: Rig, event: str, since: datetime, *, exactly: int) -> Observed:
    rows = await rig.front.audit(rig.tenant, event, since)
    return Observed(
        ok=len(rows) == exactly,
        observation=f"{len(rows)} {event} lines"
        + (f": {rows[0].get('detail', '')[:120]}" if rows else ""),
    )


async def _digest(rig: Rig, incidents: list[str], hour: datetime) -> Observed:
    primary_sinks = set(rig.sinks_of(rig.tenant))

    async def digests() -> list[dict[str, Any]]:
        return [
            r
            for r in await rig.front.notifications(rig.tenant, hour)
            if r.get("notice") and r["sink_id"] in primary_sinks
        ]

    async def look() -> list[dict[str, Any]] | None:
        found = [r for r in await digests() if r["status"] == "delivered"]
        return found or None

    await poll(look, until=deadline(rig, HOUR_GRACE_S, hour), clock=rig.clock)
    found = await digests()
    held = [
        r
        for r in await rig.front.notifications(rig.tenant, hour - timedelta(hours=1))
        if r["incident_id"] in set(incidents) and r["action"] == "open"
    ]
    digested = sum(r["status"] == "digested" for r in held)
    still = sum(r["status"] == "pending" for r in held)
    return Observed(
        ok=len(found) == 1 and found[0]["status"] == "delivered" and still == 0 and digested > 0,
        observation=f"{len(found)} digests to {rig.tenant}'s primary sink; {digested} held rows "
        f"digested, {still} still pending"
        + (f": {(found[0].get('notice') or '')[:120]}" if found else ""),
        delivery_ids=tuple(r["delivery_id"] for r in found),
        since=hour,
    )


async def _reset(rig: Rig, hour: datetime) -> Observed:
    budget = next((b for b in await rig.front.budgets() if b["tenant"] == rig.tenant), None)
    if budget is None:  # nothing spent or held in the new hour
        budget = {"window_start": hour.isoformat(), "admitted": 0, "held": 0, "capped": False}
    audited = await rig.front.audit(rig.tenant, "budget_reset", hour - timedelta(seconds=1))
    ok = (
        not budget.get("capped")
        and int(budget.get("held") or 0) == 0
        and int(budget.get("admitted") or 0) == 0
        and bool(audited)
    )
    return Observed(
        ok=ok,
        observation=f"window {budget.get('window_start')}: admitted {budget.get('admitted')}, "
        f"held {budget.get('held')}, capped {budget.get('capped')}; "
        f"{len(audited)} budget_reset audit lines",
        since=hour,
    )
