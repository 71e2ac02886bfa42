"""``single-tenant-outage``: the drill tenant's alert reaches its four drill sinks within
90 s, the suppression window stays silent, the incident resolves on recovery.
"""

from __future__ import annotations

from datetime import datetime

from harness.rig import Rig
from harness.scenarios.watch import (
    break_into_alert,
    recover_into_resolve,
    sinks_reached,
    synthetic_checks,
    tenants_of,
)
from harness.steps import Observed, Steps
from harness.synthetic import Health


async def single_tenant_outage(rig: Rig, steps: Steps) -> None:
    since = rig.clock.now()
    kinds = ("slack", "webhook", "email", "pagerduty")
    drill_sinks = rig.sinks_of(rig.tenant)

    async def verified() -> Observed:
        live = {s["sink_id"]: s["deliverable"] for s in await rig.front.sinks()}
        types = sorted(drill_sinks.values())
        bad = [s for s in drill_sinks if not live.get(s)]
        return Observed(
            ok=not bad and types == sorted(kinds),
            observation=f"drill sinks {sorted(drill_sinks)} ({', '.join(types)}); "
            + (f"not deliverable: {bad}" if bad else "all deliverable"),
        )

    await steps.check(
        "drill-sinks-verified",
        f"tenant {rig.tenant} has four verified drill sinks: {', '.join(kinds)}",
        verified,
    )
    async with synthetic_checks(rig) as start:
        check = start(f"{rig.tenant}-health", rig.tenant)
        incident = await break_into_alert(steps, rig, check, Health.UNAVAILABLE)
        if incident is None:
            return
        broke_at, incident_id = incident
        await sinks_reached(
            steps,
            rig,
            name="alert-reaches-four-sinks",
            since=since,
            broke_at=broke_at,
            incident_id=incident_id,
            action="open",
            kinds=kinds,
        )
        await steps.check(
            "suppression-silent",
            f"no suppression cluster holds or lists {rig.tenant}; none of its pages withheld",
            lambda: _suppression_silent(rig, since),
        )
        await recover_into_resolve(steps, rig, check, since, incident_id, kinds)


async def _suppression_silent(rig: Rig, since: datetime) -> Observed:
    clusters = [c for c in await rig.front.suppressions() if rig.tenant in tenants_of(c)]
    withheld = [
        r["delivery_id"]
        for r in await rig.front.notifications(rig.tenant, since)
        if r["status"] == "suppressed"
    ]
    return Observed(
        ok=not clusters and not withheld,
        observation=f"{len(clusters)} clusters list {rig.tenant}; "
        f"{len(withheld)} of its pages withheld",
        delivery_ids=tuple(withheld),
    )
