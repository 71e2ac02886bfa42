"""``sink-failure``: the drill webhook down: retried, then ``dead``, the operator told, the
other three delivered on time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harness.rig import Rig
from harness.scenarios.watch import (
    SLA_S,
    break_into_alert,
    deadline,
    recover_into_resolve,
    sinks_reached,
    synthetic_checks,
)
from harness.steps import Observed, StepFailed, Steps, poll
from harness.synthetic import Health


async def sink_failure(rig: Rig, steps: Steps) -> None:
    down, others = "webhook", ("slack", "email", "pagerduty")
    peers = rig.peers
    if peers is None:
        why = "breaking a drill sink needs the drill's own peers (run without --url)"
        for name in (
            "sink-taken-down",
            "other-three-on-time",
            "retried-then-dead",
            "operator-told",
        ):
            steps.skip(name, "a drill sink down, the others on time", why)
        return
    since = rig.clock.now()
    peers.take_down(down)

    async def taken_down() -> Observed:
        return Observed(ok=True, observation=f"the drill {down} receiver answers 503 to everything")

    await steps.check("sink-taken-down", f"the drill {down} sink starts failing", taken_down)
    try:
        async with synthetic_checks(rig) as start:
            check = start(f"{rig.tenant}-sink-failure", rig.tenant)
            incident = await break_into_alert(steps, rig, check, Health.UNAVAILABLE)
            if incident is None:
                return
            broke_at, incident_id = incident
            await sinks_reached(
                steps,
                rig,
                name="other-three-on-time",
                since=since,
                broke_at=broke_at,
                incident_id=incident_id,
                action="open",
                kinds=others,
            )
            dead = await steps.check(
                "retried-then-dead",
                f"the {down} delivery is retried, then recorded dead",
                lambda: _dead(rig, since, incident_id, down, broke_at),
            )
            await steps.check(
                "operator-told",
                "the operator's notices channel gets the dead delivery, naming the incident",
                lambda: _operator_told(rig, since, incident_id, dead.delivery_ids),
            )
            peers.bring_up(down)
            kinds = (down, *others)
            await recover_into_resolve(steps, rig, check, since, incident_id, kinds)
    finally:
        peers.bring_up(down)


async def _dead(
    rig: Rig, since: datetime, incident_id: str, kind: str, broke_at: datetime
) -> Observed:
    async def look() -> dict[str, Any] | None:
        for row in await rig.front.notifications(rig.tenant, since):
            if (row["incident_id"], row["sink_type"], row["action"]) == (incident_id, kind, "open"):
                return row if row["status"] != "pending" else None
        return None

    row = await poll(look, until=deadline(rig, SLA_S * 10, broke_at), clock=rig.clock)
    if row is None:
        raise StepFailed(f"the {kind} delivery of {incident_id} was still pending")
    attempts = int(row["attempts"] or 0)
    tries = len(rig.peers.hook.by_id(row["delivery_id"])) if rig.peers and kind == "webhook" else 0
    return Observed(
        ok=row["status"] == "dead" and attempts >= 2,
        observation=f"{row['status']} after {attempts} attempts ({tries} reached the peer): "
        f"{row['detail']}",
        delivery_ids=(row["delivery_id"],),
        since=broke_at,
    )


async def _operator_told(
    rig: Rig, since: datetime, incident_id: str, dead_ids: tuple[str, ...]
) -> Observed:
    operator = rig.about["operator_tenant"]
    sink, _, target = str(rig.about["operator_notices"]).partition(":")

    async def look() -> dict[str, Any] | None:
        for row in await rig.front.notifications(operator, since):
            if (
                row["sink_id"] == sink
                and row["target"] == target
                and incident_id in (row.get("notice") or "")
                and row["status"] == "delivered"
            ):
                return row
        return None

    row = await poll(look, until=deadline(rig, SLA_S), clock=rig.clock)
    if row is None:
        raise StepFailed(f"no delivered notice at {sink}:{target} names {incident_id}")
    return Observed(
        ok=True,
        observation=f"{sink}:{target}: {(row.get('notice') or '')[:160]}",
        delivery_ids=(row["delivery_id"], *dead_ids),
    )
