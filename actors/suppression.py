"""The suppression window: a registry-wide outage becomes one notice, not a page per tenant.

A delivery whose signal carries a cluster key (``error_kind|asn|registry``, as failing
probe verdicts do) waits in its key's hold window (``hold_s``, 60 s by default). The
window opens with the key's first alert and closes ``hold_s`` later:

* if, when it closes, at least ``min_tenants`` distinct tenants AND at least
  ``min_share`` of the active tenants were paged for the key in it, the cluster fires: one
  notice to the operator (to be acknowledged), every held delivery is withheld (its
  outbox row ends ``suppressed``), and a suppression-log row records the key, the
  silenced tenants and the time. Later alerts with the key join the active cluster
  until it has been quiet for ``quiet_s``; then it clears (another row, another notice);
* otherwise, when the window closes, every held delivery is released unchanged, in the
  order it arrived, so no alert waits longer than the hold window and a single tenant's
  outage (one tenant is never ``min_tenants``) is never suppressed.

Deliveries without a cluster key pass straight through, except later messages about an
incident whose opening was withheld (its repeats and its resolve stay withheld too).
Held deliveries are pending outbox rows: after a restart history re-queues them and they
wait again. Active clusters are rebuilt from the suppression log.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

import trio

from actors.courier import Courier
from actors.forward import forward
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import SuppressionOptions
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    Destination,
    HistoryMessage,
    PlanDeliveries,
    Severity,
    SuppressionRecorded,
    finished,
)
from eyetok.notices import notice, notice_id
from eyetok.suppression import cluster_id_of, describe, threshold
from state.history import queries
from state.history.store import HistoryStore

# Incidents whose opening was withheld, remembered for their updates and resolve: ~160 B
# each (the incident id and its slot), 8 MB when full rather than the 32 MB of 200,000
# beside a 512 MB dyno's other memory. Ten 5,000-incident storms fit; past that the oldest
# withheld incident's resolve is delivered (told, never lost).
_SILENCED_MAX = 50_000


@dataclass(frozen=True)
class SuppressionDeps:
    store: HistoryStore
    options: SuppressionOptions
    active_tenants: int  # the tenants EyeTok serves (the share is of these)
    operator_tenant: str
    notices: Destination | None  # where the operator hears of a cluster; None: nowhere


@dataclass
class Hold:
    """One key's open hold window: what waits in it and whose it is."""

    key: str
    closes_at: float  # trio time
    waiting: list[Deliver] = field(default_factory=list)
    tenants: set[str] = field(default_factory=set)


@dataclass
class Cluster:
    """A fired cluster: its key's alerts are withheld until it has been quiet."""

    cluster_id: str
    key: str
    fired_at: datetime
    quiet_from: float  # trio time of its last alert
    tenants: set[str] = field(default_factory=set)
    withheld: int = 0


async def run_suppression(
    deps: SuppressionDeps,
    inbox: trio.MemoryReceiveChannel[Deliver],
    to_budgets: trio.MemorySendChannel[Deliver],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("suppression")
    options = deps.options
    needed = threshold(deps.active_tenants, options)
    holds: dict[str, Hold] = {}
    clusters: dict[str, Cluster] = {}
    silenced: OrderedDict[str, str] = OrderedDict()  # incident id -> cluster id
    courier: Courier[HistoryMessage] = Courier(to_history)

    for row in await deps.store.read(queries.active_suppressions):
        clusters[row.cluster_key] = Cluster(
            cluster_id=row.cluster_id,
            key=row.cluster_key,
            fired_at=row.fired_at,
            quiet_from=trio.current_time(),
            tenants=set(row.tenants),
            withheld=row.withheld,
        )

    # A lower bound on the earliest quiet deadline of an active cluster: alerts only move
    # a cluster's deadline later, so the bound stays true until it is passed.
    quiet_check_at = min(
        (c.quiet_from + options.quiet_s for c in clusters.values()), default=math.inf
    )

    def record(cluster: Cluster, event: str) -> None:
        courier.post(
            SuppressionRecorded(
                cluster_id=cluster.cluster_id,
                event=event,
                at=clock.now(),
                cluster_key=cluster.key,
                tenants=tuple(sorted(cluster.tenants)),
                active_tenants=deps.active_tenants,
                withheld=cluster.withheld,
            )
        )

    def tell_operator(cluster: Cluster, event: str, text: str) -> None:
        now = clock.now()
        courier.post(
            AuditRecorded(
                at=now, tenant=deps.operator_tenant, event=f"cluster_{event}", detail=text
            )
        )
        if deps.notices is None:
            return
        deliver = notice(
            delivery_id=notice_id(cluster.cluster_id, event),
            tenant=deps.operator_tenant,
            destination=deps.notices,
            about=cluster.cluster_id,
            title=f"cluster {cluster.cluster_id} {event}",
            text=text,
            at=now,
            rule=f"suppression-{event}",
            severity=Severity.CRITICAL if event == "fired" else Severity.INFO,
            acknowledge=f"cluster:{cluster.cluster_id}" if event == "fired" else None,
        )
        courier.post(PlanDeliveries(origin=cluster.cluster_id, deliveries=(deliver,)))

    def withhold(deliver: Deliver, cluster: Cluster | str) -> None:
        """Withhold one delivery: in an active cluster, or (a cluster id) because its
        incident's opening was withheld by a cluster that has since cleared."""
        now = clock.now()
        if isinstance(cluster, Cluster):
            cluster.withheld += 1
            cluster.tenants.add(deliver.tenant)
            cluster_id = cluster.cluster_id
            silenced[deliver.incident.incident_id] = cluster_id
            if len(silenced) > _SILENCED_MAX:
                silenced.popitem(last=False)
        else:
            cluster_id = cluster
        courier.post(
            finished(deliver, "suppressed", at=now, detail=f"withheld by cluster {cluster_id}")
        )

    def fire(hold: Hold) -> None:
        nonlocal quiet_check_at
        now = clock.now()
        cluster = Cluster(
            cluster_id=cluster_id_of(hold.key, now),
            key=hold.key,
            fired_at=now,
            quiet_from=trio.current_time(),
        )
        clusters[hold.key] = cluster
        quiet_check_at = min(quiet_check_at, cluster.quiet_from + options.quiet_s)
        for deliver in hold.waiting:
            withhold(deliver, cluster)
        record(cluster, "fired")
        error_kind, asn, registry = describe(hold.key)
        share = len(cluster.tenants) / max(deps.active_tenants, 1)
        logger.warning(
            "cluster_fired",
            cluster_id=cluster.cluster_id,
            error_kind=error_kind,
            asn=asn,
            registry=registry,
            tenants=len(cluster.tenants),
            active_tenants=deps.active_tenants,
            withheld=cluster.withheld,
        )
        tell_operator(
            cluster,
            "fired",
            f":rotating_light: Registry-wide outage: `{error_kind}` on ASN {asn} at "
            f"registry `{registry}`. {len(cluster.tenants)} tenants ({share:.0%} of "
            f"{deps.active_tenants} active) were paged for it within {options.hold_s:.0f}s; "
            f"their individual pages are withheld (cluster `{cluster.cluster_id}`, "
            f"{cluster.withheld} deliveries so far). Later alerts with this key join the "
            f"cluster until {options.quiet_s:.0f}s pass without one. Acknowledge this notice: "
            f"`eyetok suppressions --ack {cluster.cluster_id}`.",
        )

    async def release(hold: Hold) -> None:
        logger.info(
            "hold_released",
            cluster_key=hold.key,
            tenants=len(hold.tenants),
            needed=needed,
            deliveries=len(hold.waiting),
        )
        for deliver in hold.waiting:
            await to_budgets.send(deliver)

    def clear(cluster: Cluster) -> None:
        del clusters[cluster.key]
        record(cluster, "cleared")
        logger.info(
            "cluster_cleared",
            cluster_id=cluster.cluster_id,
            tenants=len(cluster.tenants),
            withheld=cluster.withheld,
        )
        tell_operator(
            cluster,
            "cleared",
            f":white_check_mark: Cluster `{cluster.cluster_id}` cleared after "
            f"{options.quiet_s:.0f}s without an alert: {cluster.withheld} deliveries to "
            f"{len(cluster.tenants)} tenants were withheld while it lasted.",
        )

    async def admit(deliver: Deliver) -> None:
        key = deliver.cluster_key
        if deliver.notice is not None or not options.enabled:
            await forward(to_budgets, deliver)
            return
        if key is None:
            owner = silenced.get(deliver.incident.incident_id)
            if owner is None:
                await forward(to_budgets, deliver)
                return
            active = next((c for c in clusters.values() if c.cluster_id == owner), None)
            withhold(deliver, active or owner)
            return
        cluster = clusters.get(key)
        if cluster is not None:
            cluster.quiet_from = trio.current_time()
            withhold(deliver, cluster)
            return
        hold = holds.get(key)
        if hold is None:
            hold = holds[key] = Hold(key=key, closes_at=trio.current_time() + options.hold_s)
        hold.waiting.append(deliver)
        hold.tenants.add(deliver.tenant)

    def next_close() -> float:
        """Hold windows open in order and last equally long: the first closes first."""
        return next(iter(holds.values())).closes_at if holds else math.inf

    async def expire() -> None:
        nonlocal quiet_check_at
        now = trio.current_time()
        while holds and next_close() <= now:
            hold = holds.pop(next(iter(holds)))
            if len(hold.tenants) >= needed:
                fire(hold)
            else:
                await release(hold)
        if now >= quiet_check_at:
            for cluster in [c for c in clusters.values() if c.quiet_from + options.quiet_s <= now]:
                clear(cluster)
            quiet_check_at = min(
                (c.quiet_from + options.quiet_s for c in clusters.values()), default=math.inf
            )

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(courier.run)
            task_status.started()
            taken = 0
            while True:
                message: Deliver | None = None
                try:
                    message = inbox.receive_nowait()
                    taken += 1
                    if taken % 256 == 0:
                        await trio.lowlevel.checkpoint()  # a long burst lets the courier run
                except trio.WouldBlock:
                    with trio.move_on_at(min(next_close(), quiet_check_at)):
                        message = await inbox.receive()
                except trio.EndOfChannel:
                    return
                match message:
                    case Deliver():
                        await admit(message)
                    case None:
                        pass
                    case _:
                        assert_never(message)
                if min(next_close(), quiet_check_at) <= trio.current_time():
                    await expire()
    finally:
        held = {"holds": len(holds), "clusters": len(clusters), "silenced_incidents": len(silenced)}
        logger.info("suppression_held_at_stop", silenced_max=_SILENCED_MAX, **held)
