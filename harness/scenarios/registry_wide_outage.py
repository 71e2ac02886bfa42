"""``registry-wide-outage``: thirty synthetic tenants fail on one cluster key: one operator
notice, their pages withheld, a suppression-log row; the drill tenant, failing alone on
another key, is delivered.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import trio

from harness.rig import Rig
from harness.scenarios.watch import (
    SETTLE_S,
    SLA_S,
    all_sent,
    deadline,
    incident_of,
    newest_verdicts,
    restore,
    sinks_reached,
    synthetic_checks,
    tenants_of,
)
from harness.steps import Observed, StepFailed, Steps, poll
from harness.synthetic import Health, Posted

MIN_TENANTS = 30  # the suppression floor (both numbers are configurable in the daemon)
MIN_SHARE = 0.10


async def registry_wide_outage(rig: Rig, steps: Steps) -> None:
    since = rig.clock.now()
    synthetic = rig.synthetic_tenants()
    active = len(rig.about["tenants"])
    floor = max(MIN_TENANTS, math.ceil(MIN_SHARE * active))
    registry = "registry-wide"  # no other tenant's id in a tenant's alert (the payload guard)

    async def enough() -> Observed:
        return Observed(
            ok=len(synthetic) >= floor,
            observation=f"{len(synthetic)} synthetic tenants of {active} active; the floor is "
            f"max({MIN_TENANTS}, {MIN_SHARE:.0%} of {active}) = {floor}",
        )

    await steps.check(
        "enough-synthetic-tenants",
        f"at least {MIN_TENANTS} synthetic tenants and {MIN_SHARE:.0%} of the active ones",
        enough,
    )
    async with synthetic_checks(rig) as start:
        cluster = [start(f"{t}-health", t, registry) for t in synthetic]
        alone = start(f"{rig.tenant}-registry", rig.tenant, registry)
        key = cluster[0].cluster_key("http_503") if cluster else ""
        broke_at = rig.clock.now()
        for check in cluster:
            rig.endpoint.set(check.name, Health.UNAVAILABLE)
        rig.endpoint.set(alone.name, Health.TIMEOUT)
        posted: dict[str, Posted] = {}

        async def reported() -> Observed:
            for check, p in zip(cluster, await newest_verdicts(rig, cluster, "down"), strict=True):
                posted[check.tenant] = p
            posted[rig.tenant] = (await newest_verdicts(rig, [alone], "timeout"))[0]
            return Observed(
                ok=True,
                observation=f"{len(cluster)} tenants reported {key}; {rig.tenant} reported "
                f"{alone.cluster_key('timeout')}",
                since=broke_at,
            )

        await steps.check(
            "outage-reported",
            f"every synthetic tenant's check reports http_503 on one cluster key; {rig.tenant} "
            "alone reports a timeout",
            reported,
        )
        synthetic_incidents = {t: incident_of(p) for t, p in posted.items() if t != rig.tenant}
        await steps.check(
            "one-operator-notice",
            f"exactly one notice to the operator about cluster {key}",
            lambda: _one_notice(rig, since, key, broke_at, set(synthetic_incidents.values())),
        )
        await steps.check(
            "pages-withheld",
            "every synthetic tenant's page is withheld (suppressed), none delivered",
            lambda: _withheld(rig, since, synthetic_incidents, broke_at),
        )
        await steps.check(
            "suppression-logged",
            f"a suppression-log row for {key} lists the synthetic tenants and not {rig.tenant}",
            lambda: _logged(rig, key, synthetic),
        )
        if rig.tenant in posted:
            await sinks_reached(
                steps,
                rig,
                name="drill-tenant-alone-delivered",
                since=since,
                broke_at=broke_at,
                incident_id=incident_of(posted[rig.tenant]),
                action="open",
                kinds=tuple(sorted(set(rig.sinks_of(rig.tenant).values()))),
            )
        else:
            steps.skip("drill-tenant-alone-delivered", "the drill tenant is delivered", "no alert")
        await restore(steps, rig, [*cluster, alone])


async def _one_notice(
    rig: Rig, since: datetime, key: str, broke_at: datetime, incidents: set[str]
) -> Observed:
    """Exactly one "fired" notice about the cluster of ``key`` at the operator's notices
    (the notice's incident is the cluster id; a later "cleared" one is not counted)."""
    operator = rig.about["operator_tenant"]
    sink, _, target = str(rig.about["operator_notices"]).partition(":")

    async def cluster() -> str | None:
        rows = [c for c in await rig.front.suppressions() if c.get("cluster_key") == key]
        if rows:
            return str(rows[-1]["cluster_id"])
        return "" if await all_sent(rig, since, incidents) else None  # "": never will

    cluster_id = await poll(cluster, until=deadline(rig, SLA_S, broke_at), clock=rig.clock) or None

    async def notices() -> list[dict[str, Any]]:
        return [
            r
            for r in await rig.front.notifications(operator, since)
            if (r["sink_id"], r["target"], r["incident_id"]) == (sink, target, cluster_id)
            and "cleared" not in (r.get("notice") or "")
        ]

    async def look() -> list[dict[str, Any]] | None:
        return (await notices()) or None

    first = None
    if cluster_id is not None:
        first = await poll(look, until=deadline(rig, SLA_S, broke_at), clock=rig.clock)
    seen_at = rig.clock.now()
    await trio.sleep(SETTLE_S)
    found = await notices() if cluster_id is not None else []
    return Observed(
        ok=first is not None and len(found) == 1,
        observation=(
            f"cluster {cluster_id}: {len(found)} notices at {sink}:{target}"
            if cluster_id
            else f"no cluster fired for {key}: no notice"
        )
        + (f" (the first after {(seen_at - broke_at).total_seconds():.1f} s)" if first else "")
        + (f": {(found[0].get('notice') or '')[:140]}" if found else ""),
        delivery_ids=tuple(r["delivery_id"] for r in found),
        since=broke_at,
    )


async def _withheld(
    rig: Rig, since: datetime, incidents: dict[str, str], broke_at: datetime
) -> Observed:
    wanted = set(incidents.values())

    async def look() -> list[dict[str, Any]] | None:
        rows = [
            r
            for r in await rig.front.notifications(None, since)
            if r["incident_id"] in wanted and r["action"] == "open"
        ]
        settled = {r["incident_id"] for r in rows if r["status"] != "pending"}
        return rows if settled >= wanted else None

    rows = await poll(look, until=deadline(rig, SLA_S, broke_at), clock=rig.clock) or []
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    withheld = {r["incident_id"] for r in rows if r["status"] == "suppressed"}
    delivered = {r["incident_id"] for r in rows if r["status"] == "delivered"}
    return Observed(
        ok=withheld == wanted and not delivered,
        observation=f"{len(withheld)} of {len(wanted)} tenants' pages withheld, "
        f"{len(delivered)} delivered (rows by status: {by_status or 'none'})",
        delivery_ids=tuple(r["delivery_id"] for r in rows),
        since=broke_at,
    )


async def _logged(rig: Rig, key: str, synthetic: list[str]) -> Observed:
    rows = [c for c in await rig.front.suppressions() if c.get("cluster_key") == key]
    if not rows:
        raise StepFailed(f"no suppression-log row for {key}")
    row = rows[-1]
    tenants = set(tenants_of(row))
    ok = set(synthetic) <= tenants and rig.tenant not in tenants
    return Observed(
        ok=ok,
        observation=f"cluster {row.get('cluster_id')}: {key}, {row.get('tenant_count')} tenants "
        f"of {row.get('active_tenants')} active, {row.get('withheld')} withheld; "
        f"{rig.tenant} {'listed' if rig.tenant in tenants else 'not listed'}",
    )
