"""What the drill scenarios share: synthetic checks started for a scenario, an endpoint
broken into an alert and healed into a resolve, and deliveries watched until they arrive
at the drill's peers (each delivered row checked against what the peer really received).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import trio

from harness.rig import Rig
from harness.steps import Observed, StepFailed, Steps, poll
from harness.synthetic import DRILL_REGISTRY, Health, Posted, SyntheticCheck

SLA_S = 90.0  # an alert reaches every drill sink within this
ACCEPT_WITHIN_S = 30.0  # a broken endpoint is reported within this
SETTLE_S = 3.0  # after the expected count is reached, nothing more may arrive meanwhile


@asynccontextmanager
async def synthetic_checks(rig: Rig) -> AsyncIterator[Callable[..., SyntheticCheck]]:
    """Start synthetic checks for the scenario; they stop when it ends."""
    async with trio.open_nursery() as nursery:

        def start(name: str, tenant: str, registry: str = DRILL_REGISTRY) -> SyntheticCheck:
            rig.endpoint.set(name, Health.OK)
            check = SyntheticCheck(
                name=name,
                url=rig.endpoint.url(name),
                tenant=tenant,
                credentials=rig.hook_credentials(tenant),
                front=rig.front,
                clock=rig.clock,
                registry=registry,
            )
            nursery.start_soon(check.run)
            return check

        try:
            yield start
        finally:
            nursery.cancel_scope.cancel()


def deadline(rig: Rig, seconds: float, since: datetime | None = None) -> datetime:
    return (since or rig.clock.now()) + timedelta(seconds=seconds)


async def newest_verdicts(rig: Rig, checks: list[SyntheticCheck], word: str) -> list[Posted]:
    """Every check's newest ``word`` verdict (``down``/``timeout``/``ok``), once all
    have posted one, within ``ACCEPT_WITHIN_S``."""

    async def look() -> list[Posted] | None:
        found = [next((p for p in reversed(c.posted) if p.verdict == word), None) for c in checks]
        return [p for p in found if p is not None] if all(found) else None

    posted = await poll(look, until=deadline(rig, ACCEPT_WITHIN_S), clock=rig.clock)
    if posted is None:
        errors = sorted({e for c in checks for e in c.errors})[:3]
        done = sum(any(p.verdict == word for p in c.posted) for c in checks)
        raise StepFailed(
            f"{done} of {len(checks)} synthetic checks reported {word!r} within "
            f"{ACCEPT_WITHIN_S:g} s" + (f"; the daemon answered: {errors}" if errors else "")
        )
    return posted


async def break_into_alert(
    steps: Steps, rig: Rig, check: SyntheticCheck, how: Health
) -> tuple[datetime, str] | None:
    """Break the check's endpoint; the step passes when the daemon opened a high incident
    by rule ``synthetic-check-failure``. Returns (when it broke, the incident id)."""
    broke_at = rig.clock.now()
    rig.endpoint.set(check.name, how)
    word = "timeout" if how is Health.TIMEOUT else "down"
    result: list[str] = []

    async def observe() -> Observed:
        [posted] = await newest_verdicts(rig, [check], word)
        [signal] = posted.signals
        result.append(str(signal["incident_id"]))
        ok = (signal["action"], signal["rule"], signal["severity"]) == (
            "open",
            "synthetic-check-failure",
            "high",
        )
        return Observed(
            ok=ok,
            observation=f"the check saw {posted.error_kind} and posted {word!r}: 202, "
            f"{signal['action']} incident {signal['incident_id']}, rule {signal['rule']}, "
            f"{signal['severity']}, {signal['sev_channel']}",
            since=broke_at,
        )

    seen = await steps.check(
        "endpoint-breaks-into-alert",
        f"the synthetic endpoint {check.name} answers {how.value}; the synthetic check's "
        "verdict opens a high incident (rule synthetic-check-failure)",
        observe,
    )
    return (broke_at, result[0]) if seen.ok and result else None


async def recover_into_resolve(
    steps: Steps,
    rig: Rig,
    check: SyntheticCheck,
    since: datetime,
    incident_id: str,
    kinds: tuple[str, ...],
) -> None:
    healed_at = rig.clock.now()
    rig.endpoint.set(check.name, Health.OK)

    async def observe() -> Observed:
        [posted] = await newest_verdicts(rig, [check], "ok")
        [signal] = posted.signals
        if (signal["action"], signal["incident_id"]) != ("resolve", incident_id):
            raise StepFailed(f"the ok verdict was answered {signal}, not a resolve")
        found = await delivered_rows(
            rig, since, incident_id, "resolve", kinds, deadline(rig, SLA_S, healed_at)
        )
        missing = [k for k in kinds if k not in found]
        return Observed(
            ok=not missing,
            observation=f"resolved {incident_id}; resolve delivered: "
            f"{latencies(found, healed_at) or 'none'}"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
            delivery_ids=tuple(r["delivery_id"] for r in found.values()),
            since=healed_at,
        )

    await steps.check(
        "incident-resolves",
        f"the endpoint recovers; incident {incident_id} resolves and the resolve reaches "
        f"{', '.join(kinds)} within {SLA_S:g} s",
        observe,
    )


async def restore(steps: Steps, rig: Rig, checks: list[SyntheticCheck]) -> None:
    """The last step of a scenario: every endpoint it broke recovers, every incident
    it opened resolves (so the next scenario starts clean)."""
    healed_at = rig.clock.now()
    for check in checks:
        rig.endpoint.set(check.name, Health.OK)

    async def observe() -> Observed:
        posted = await newest_verdicts(rig, checks, "ok")
        resolved = sum(1 for p in posted if p.signals and p.signals[0].get("action") == "resolve")
        return Observed(
            ok=resolved == len(checks),
            observation=f"{resolved} of {len(checks)} incidents resolved",
            since=healed_at,
        )

    await steps.check(
        "endpoints-recover",
        f"the {len(checks)} broken endpoints recover; every incident resolves",
        observe,
    )


def incident_of(posted: Posted) -> str:
    [signal] = posted.signals
    return str(signal["incident_id"])


def peer_saw(rig: Rig, row: dict[str, Any]) -> bool:
    """With the drill's own peers: the delivery really arrived there, as itself."""
    peers = rig.peers
    if peers is None:
        return True
    kind, ref, delivery_id = row["sink_type"], row.get("external_ref") or "", row["delivery_id"]
    if kind == "slack":
        return any(p.ts == ref for p in peers.slack.posts)
    if kind == "webhook":
        return any(200 <= d.status < 300 and d.verified for d in peers.hook.by_id(delivery_id))
    if kind == "email":
        return any(m["Message-ID"] == f"<{delivery_id}@eyetok>" for m in peers.mail.messages)
    if kind == "pagerduty":
        return any(e.dedup_key == ref for e in peers.pd.events)
    return False


async def delivered_rows(
    rig: Rig,
    since: datetime,
    incident_id: str,
    action: str,
    kinds: tuple[str, ...],
    until: datetime,
) -> dict[str, dict[str, Any]]:
    """sink type -> its delivered row for the incident (as many as arrive by ``until``)."""
    found: dict[str, dict[str, Any]] = {}

    async def look() -> bool | None:
        given_up: set[str] = set()  # ended without delivery (dead, refused ...): stop waiting
        for row in await rig.front.notifications(rig.tenant, since):
            kind = row["sink_type"]
            if row["incident_id"] != incident_id or row["action"] != action or kind not in kinds:
                continue
            if row["status"] not in ("delivered", "pending"):
                given_up.add(kind)
            elif kind not in found and row["status"] == "delivered" and peer_saw(rig, row):
                found[kind] = row | {"seen_at": rig.clock.now()}
        return True if set(kinds) <= set(found) | given_up else None

    await poll(look, until=until, clock=rig.clock)
    return found


def latencies(found: dict[str, dict[str, Any]], since: datetime) -> str:
    return ", ".join(
        f"{kind} {(row['seen_at'] - since).total_seconds():.1f} s" for kind, row in found.items()
    )


async def sinks_reached(
    steps: Steps,
    rig: Rig,
    *,
    name: str,
    since: datetime,
    broke_at: datetime,
    incident_id: str,
    action: str,
    kinds: tuple[str, ...],
    within_s: float = SLA_S,
) -> None:
    """One step: ``incident_id``'s ``action`` delivered to every kind within ``within_s``."""

    async def observe() -> Observed:
        found = await delivered_rows(
            rig, since, incident_id, action, kinds, deadline(rig, within_s, broke_at)
        )
        missing = [k for k in kinds if k not in found]
        ids = tuple(row["delivery_id"] for row in found.values())
        text = f"delivered: {latencies(found, broke_at) or 'none'}"
        if missing:
            rows = [
                f"{r['sink_type']}={r['status']}"
                for r in await rig.front.notifications(rig.tenant, since)
                if r["incident_id"] == incident_id and r["action"] == action
            ]
            text += f"; not within {within_s:g} s: {', '.join(missing)} (rows: {rows})"
        return Observed(ok=not missing, observation=text, delivery_ids=ids, since=broke_at)

    await steps.check(
        name,
        f"the {action} of incident {incident_id} is delivered to "
        f"{', '.join(kinds)} within {within_s:g} s",
        observe,
    )


def tenants_of(cluster: dict[str, Any]) -> list[str]:
    raw = cluster.get("tenants") or []
    if isinstance(raw, str):
        import json

        raw = json.loads(raw)
    return [str(t) for t in raw]


# outcomes of a page that got past the suppression window and the budget
_SENT = ("delivered", "dead", "refused", "refused_unverified")


async def all_sent(rig: Rig, since: datetime, incidents: set[str]) -> bool:
    """Every one of these incidents has had a page sent (or tried): none is held any more (the
    suppression window and the budgets hold an alert's deliveries together), so no
    cluster or cap can come of them now."""
    rows = await rig.front.notifications(None, since)
    gone = {
        r["incident_id"]
        for r in rows
        if r["incident_id"] in incidents and r["action"] == "open" and r["status"] in _SENT
    }
    return gone == incidents
