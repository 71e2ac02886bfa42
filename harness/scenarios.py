"""The drill scenarios (issue 7): each breaks something on purpose through the front door
and watches the daemon hold, one named step at a time.

- ``single-tenant-outage``: the drill tenant's alert reaches its four drill sinks within
  90 s, the suppression window stays silent, the incident resolves on recovery;
- ``registry-wide-outage``: thirty synthetic tenants fail on one cluster key: one operator
  notice, their pages withheld, a suppression-log row; the drill tenant, failing alone
  on another key, is delivered;
- ``budget-exhaustion``: thirty alerts against the drill tier's ten: ten delivered, the
  rest held, one ``#alerts-cap`` line; at the top of the hour one digest and the reset
  (these two wait for the real hour unless ``--no-wait`` marks them skipped);
- ``sink-failure``: the drill webhook down: retried, then ``dead``, the operator told,
  the other three delivered on time;
- ``dst-edge``: routing explained at 2026-03-08 01:59 and 03:00 ET and at both 01:30 ET
  of 2026-11-01: SEV2 (a Sunday) judged in America/New_York with the right offset.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import trio

from harness.rig import CAP_NOTICES, DRILL_CHANNEL, Rig
from harness.steps import Observed, StepFailed, Steps, poll
from harness.synthetic import DRILL_REGISTRY, Health, Posted, SyntheticCheck

SLA_S = 90.0  # an alert reaches every drill sink within this
ACCEPT_WITHIN_S = 30.0  # a broken endpoint is reported within this
SETTLE_S = 3.0  # after the expected count is reached, nothing more may arrive meanwhile
HOUR_GRACE_S = 120.0  # the digest and the reset are looked for this long after the hour
MIN_TENANTS = 30  # the suppression floor (both numbers are configurable in the daemon)
MIN_SHARE = 0.10
ROOM_BEFORE_HOUR_S = 40.0  # budget-exhaustion starts in a fresh hour if less (+ the hold) is left

Scenario = Callable[[Rig, Steps], Awaitable[None]]


# --- helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def _checks(rig: Rig) -> AsyncIterator[Callable[..., SyntheticCheck]]:
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


def _until(rig: Rig, seconds: float, since: datetime | None = None) -> datetime:
    return (since or rig.clock.now()) + timedelta(seconds=seconds)


async def _reported(rig: Rig, checks: list[SyntheticCheck], word: str) -> list[Posted]:
    """Every check's newest ``word`` verdict (``down``/``timeout``/``ok``), once all
    have posted one, within ``ACCEPT_WITHIN_S``."""

    async def look() -> list[Posted] | None:
        found = [next((p for p in reversed(c.posted) if p.verdict == word), None) for c in checks]
        return [p for p in found if p is not None] if all(found) else None

    posted = await poll(look, until=_until(rig, ACCEPT_WITHIN_S), clock=rig.clock)
    if posted is None:
        errors = sorted({e for c in checks for e in c.errors})[:3]
        done = sum(any(p.verdict == word for p in c.posted) for c in checks)
        raise StepFailed(
            f"{done} of {len(checks)} synthetic checks reported {word!r} within "
            f"{ACCEPT_WITHIN_S:g} s" + (f"; the daemon answered: {errors}" if errors else "")
        )
    return posted


async def _restore(steps: Steps, rig: Rig, checks: list[SyntheticCheck]) -> None:
    """The last step of a scenario: every endpoint it broke recovers, every incident
    it opened resolves (so the next scenario starts clean)."""
    healed_at = rig.clock.now()
    for check in checks:
        rig.endpoint.set(check.name, Health.OK)

    async def observe() -> Observed:
        posted = await _reported(rig, checks, "ok")
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


def _incident(posted: Posted) -> str:
    [signal] = posted.signals
    return str(signal["incident_id"])


def _peer_saw(rig: Rig, row: dict[str, Any]) -> bool:
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


async def _delivered_rows(
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
            elif kind not in found and row["status"] == "delivered" and _peer_saw(rig, row):
                found[kind] = row | {"seen_at": rig.clock.now()}
        return True if set(kinds) <= set(found) | given_up else None

    await poll(look, until=until, clock=rig.clock)
    return found


def _latencies(found: dict[str, dict[str, Any]], since: datetime) -> str:
    return ", ".join(
        f"{kind} {(row['seen_at'] - since).total_seconds():.1f} s" for kind, row in found.items()
    )


async def _sinks_reached(
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
        found = await _delivered_rows(
            rig, since, incident_id, action, kinds, _until(rig, within_s, broke_at)
        )
        missing = [k for k in kinds if k not in found]
        ids = tuple(row["delivery_id"] for row in found.values())
        text = f"delivered: {_latencies(found, broke_at) or 'none'}"
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


# --- single-tenant-outage -------------------------------------------------------------


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
    async with _checks(rig) as start:
        check = start(f"{rig.tenant}-health", rig.tenant)
        incident = await _break_into_alert(steps, rig, check, Health.UNAVAILABLE)
        if incident is None:
            return
        broke_at, incident_id = incident
        await _sinks_reached(
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
        await _recover_into_resolve(steps, rig, check, since, incident_id, kinds)


async def _break_into_alert(
    steps: Steps, rig: Rig, check: SyntheticCheck, how: Health
) -> tuple[datetime, str] | None:
    """Break the check's endpoint; the step passes when the daemon opened a high incident
    by rule ``synthetic-check-failure``. Returns (when it broke, the incident id)."""
    broke_at = rig.clock.now()
    rig.endpoint.set(check.name, how)
    word = "timeout" if how is Health.TIMEOUT else "down"
    result: list[str] = []

    async def observe() -> Observed:
        [posted] = await _reported(rig, [check], word)
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


async def _recover_into_resolve(
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
        [posted] = await _reported(rig, [check], "ok")
        [signal] = posted.signals
        if (signal["action"], signal["incident_id"]) != ("resolve", incident_id):
            raise StepFailed(f"the ok verdict was answered {signal}, not a resolve")
        found = await _delivered_rows(
            rig, since, incident_id, "resolve", kinds, _until(rig, SLA_S, healed_at)
        )
        missing = [k for k in kinds if k not in found]
        return Observed(
            ok=not missing,
            observation=f"resolved {incident_id}; resolve delivered: "
            f"{_latencies(found, healed_at) or 'none'}"
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


async def _suppression_silent(rig: Rig, since: datetime) -> Observed:
    clusters = [c for c in await rig.front.suppressions() if rig.tenant in _tenants_of(c)]
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


def _tenants_of(cluster: dict[str, Any]) -> list[str]:
    raw = cluster.get("tenants") or []
    if isinstance(raw, str):
        import json

        raw = json.loads(raw)
    return [str(t) for t in raw]


# --- sink-failure ---------------------------------------------------------------------


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
        async with _checks(rig) as start:
            check = start(f"{rig.tenant}-sink-failure", rig.tenant)
            incident = await _break_into_alert(steps, rig, check, Health.UNAVAILABLE)
            if incident is None:
                return
            broke_at, incident_id = incident
            await _sinks_reached(
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
            await _recover_into_resolve(steps, rig, check, since, incident_id, kinds)
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

    row = await poll(look, until=_until(rig, SLA_S * 10, broke_at), clock=rig.clock)
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

    row = await poll(look, until=_until(rig, SLA_S), clock=rig.clock)
    if row is None:
        raise StepFailed(f"no delivered notice at {sink}:{target} names {incident_id}")
    return Observed(
        ok=True,
        observation=f"{sink}:{target}: {(row.get('notice') or '')[:160]}",
        delivery_ids=(row["delivery_id"], *dead_ids),
    )


# --- registry-wide-outage -------------------------------------------------------------


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
    async with _checks(rig) as start:
        cluster = [start(f"{t}-health", t, registry) for t in synthetic]
        alone = start(f"{rig.tenant}-registry", rig.tenant, registry)
        key = cluster[0].cluster_key("http_503") if cluster else ""
        broke_at = rig.clock.now()
        for check in cluster:
            rig.endpoint.set(check.name, Health.UNAVAILABLE)
        rig.endpoint.set(alone.name, Health.TIMEOUT)
        posted: dict[str, Posted] = {}

        async def reported() -> Observed:
            for check, p in zip(cluster, await _reported(rig, cluster, "down"), strict=True):
                posted[check.tenant] = p
            posted[rig.tenant] = (await _reported(rig, [alone], "timeout"))[0]
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
        synthetic_incidents = {t: _incident(p) for t, p in posted.items() if t != rig.tenant}
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
            await _sinks_reached(
                steps,
                rig,
                name="drill-tenant-alone-delivered",
                since=since,
                broke_at=broke_at,
                incident_id=_incident(posted[rig.tenant]),
                action="open",
                kinds=tuple(sorted(set(rig.sinks_of(rig.tenant).values()))),
            )
        else:
            steps.skip("drill-tenant-alone-delivered", "the drill tenant is delivered", "no alert")
        await _restore(steps, rig, [*cluster, alone])


# outcomes of a page that got past the suppression window and the budget
_SENT = ("delivered", "dead", "refused", "refused_unverified")


async def _all_sent(rig: Rig, since: datetime, incidents: set[str]) -> bool:
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
        return "" if await _all_sent(rig, since, incidents) else None  # "": never will

    cluster_id = await poll(cluster, until=_until(rig, SLA_S, broke_at), clock=rig.clock) or None

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
        first = await poll(look, until=_until(rig, SLA_S, broke_at), clock=rig.clock)
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

    rows = await poll(look, until=_until(rig, SLA_S, broke_at), clock=rig.clock) or []
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
    tenants = set(_tenants_of(row))
    ok = set(synthetic) <= tenants and rig.tenant not in tenants
    return Observed(
        ok=ok,
        observation=f"cluster {row.get('cluster_id')}: {key}, {row.get('tenant_count')} tenants "
        f"of {row.get('active_tenants')} active, {row.get('withheld')} withheld; "
        f"{rig.tenant} {'listed' if rig.tenant in tenants else 'not listed'}",
    )


# --- budget-exhaustion ----------------------------------------------------------------


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
    async with _checks(rig) as start:
        checks = [
            start(f"{rig.tenant}-budget-{n:02d}", rig.tenant, "drill-budget")
            for n in range(1, alerts + 1)
        ]
        broke_at = rig.clock.now()
        for check in checks:
            rig.endpoint.set(check.name, Health.UNAVAILABLE)
        incidents: list[str] = []

        async def sent() -> Observed:
            incidents.extend(_incident(p) for p in await _reported(rig, checks, "down"))
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
        await _restore(steps, rig, checks)
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

    await poll(look, until=_until(rig, SLA_S, broke_at), clock=rig.clock)
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
        await poll(settled, until=_until(rig, SLA_S, broke_at), clock=rig.clock)
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
        if not found and await _all_sent(rig, since, set(incidents)):
            return []  # every alert went out: nobody was capped, no line will come
        return found or None

    await poll(look, until=_until(rig, SLA_S), clock=rig.clock)
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

    await poll(look, until=_until(rig, HOUR_GRACE_S, hour), clock=rig.clock)
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


# --- dst-edge --------------------------------------------------------------------------

DST_INSTANTS = (
    ("spring-forward-0159", "2026-03-08T01:59:00-05:00", "the last EST minute before 02:00"),
    ("spring-forward-0300", "2026-03-08T03:00:00-04:00", "the first EDT hour after the gap"),
    ("fall-back-0130-edt", "2026-11-01T01:30:00-04:00", "the first 01:30, still EDT"),
    ("fall-back-0130-est", "2026-11-01T01:30:00-05:00", "the second 01:30, EST"),
)
ET = "America/New_York"


async def dst_edge(rig: Rig, steps: Steps) -> None:
    probe = SyntheticCheck(
        name=f"{rig.tenant}-dst",
        url="",
        tenant=rig.tenant,
        credentials=rig.hook_credentials(rig.tenant),
        front=rig.front,
        clock=rig.clock,
    )
    for name, local, what in DST_INSTANTS:
        at = datetime.fromisoformat(local)

        async def observe(at: datetime = at, local: str = local) -> Observed:
            body = probe.verdict("down", "http_503") | {"observed_at": at.isoformat()}
            [seen] = await rig.front.explain(rig.tenant, "probe", body, at)
            ok = (
                seen["sev_channel"] == "SEV2"
                and seen["business_hours"] is False
                and seen["zone"] == ET
                and datetime.fromisoformat(seen["local_time"]).utcoffset() == at.utcoffset()
                and seen["local_time"] == local
                and seen["rule"] == "synthetic-check-failure"
            )
            return Observed(
                ok=ok,
                observation=f"{seen['severity']} by {seen['rule']} -> {seen['sev_channel']} "
                f"(business hours: {seen['business_hours']}), judged at {seen['local_time']} "
                f"{seen['zone']}; destinations {', '.join(seen['destinations']) or 'none'}",
            )

        await steps.check(
            name,
            f"a synthetic-check failure at {local} ({what}; a Sunday) routes high -> SEV2, "
            f"judged at {local} {ET}",
            observe,
        )


# ``all`` runs them in this order: budget-exhaustion last, as it leaves the drill tenant
# capped for the rest of its hour (a later scenario's pages would be held).
SCENARIOS: dict[str, Scenario] = {
    "single-tenant-outage": single_tenant_outage,
    "registry-wide-outage": registry_wide_outage,
    "sink-failure": sink_failure,
    "dst-edge": dst_edge,
    "budget-exhaustion": budget_exhaustion,
}
NAMES = (*SCENARIOS, "all")

__all__ = ["DRILL_CHANNEL", "NAMES", "SCENARIOS", "Scenario"]
