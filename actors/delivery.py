"""The delivery actor: the one shared sink actor. It owns the per-destination lanes.

Every ``Deliver`` is already an outbox row. The dispatcher puts it on the lane of its
destination (sink id + target; for sinks without threads or a rate, one of
``PARALLEL_SHARDS`` lanes chosen by incident) and never blocks, so one slow or dead
destination delays nobody else. A lane sends in order (an incident's messages, and its
thread replies after its first post),
keeps to the destination's rate, retries what may be retried with exponential backoff
and jitter, and gives up at the maximum age or attempt count: the row ends ``dead``.
Repeats of one incident waiting on a lane are coalesced into one thread reply.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import assert_never

import msgspec
import trio

from actors.breaker import Breaker
from actors.sinks.base import Delivered, Outcome, Permanent, Retry, Sink
from actors.tenants import api_sinks, effective_settings
from eyetok import guard, log
from eyetok.clock import Clock
from eyetok.config import DeliveryOptions, Settings
from eyetok.errors import PayloadRejectedError
from eyetok.hints import OncePer, verify_fix
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    DeliveryMessage,
    Destination,
    HistoryMessage,
    IncidentAction,
    PlanDeliveries,
    TenantConfigChanged,
    VerificationChanged,
    finished,
)
from eyetok.verification import Verification, refusal
from state.history import queries
from state.history.store import HistoryStore

LaneKey = tuple[str, str, int]  # (sink_id, target, shard)
# A destination that keeps no threads and has no rate of its own (webhook, email,
# PagerDuty) is served by this many lanes, an incident always on the same one: its
# messages stay in order, different incidents go out side by side.
PARALLEL_SHARDS = 8
_SEEN_MAX = 200_000
ATTEMPT_DEADLINE_S = 10.0


@dataclass(frozen=True)
class DeliveryDeps:
    store: HistoryStore
    sinks: dict[str, Sink]
    options: DeliveryOptions
    operator_tenant: str
    notices: Destination | None  # where dead deliveries are reported; None: nowhere
    tenants: frozenset[str] = frozenset()  # every tenant id, for the payload guard
    # per tenant, one destination on each sink it owns: where "re-verify sink X" goes
    tenant_destinations: dict[str, tuple[Destination, ...]] = field(default_factory=dict)
    # the file's settings: with them, sinks the tenants wrote through the API are
    # delivered to as well (rebuilt on start, then followed by TenantConfigChanged)
    settings: Settings | None = None


@dataclass
class _Lane:
    """A destination's queue. Owned by the delivery actor; only its lane task pops."""

    key: LaneKey
    queue: deque[list[Deliver]] = field(default_factory=deque)
    update_slots: dict[str, list[Deliver]] = field(default_factory=dict)
    wake: trio.Event = field(default_factory=trio.Event)

    def push(self, deliver: Deliver) -> None:
        incident_id = deliver.incident.incident_id
        if deliver.action is IncidentAction.UPDATE:
            slot = self.update_slots.get(incident_id)
            if slot is not None:
                slot.append(deliver)
                return
            slot = [deliver]
            self.update_slots[incident_id] = slot
            self.queue.append(slot)
        else:
            self.queue.append([deliver])
        self.wake.set()

    async def pop(self) -> list[Deliver]:
        while not self.queue:
            self.wake = trio.Event()
            await self.wake.wait()
        slot = self.queue.popleft()
        head = slot[0]
        if head.action is IncidentAction.UPDATE:
            self.update_slots.pop(head.incident.incident_id, None)
        return slot


def dead_notice(deliver: Deliver, detail: str, deps: DeliveryDeps, now: datetime) -> Deliver:
    """The operator's notice that ``deliver`` ended dead (itself an outbox row)."""
    assert deps.notices is not None
    dest = deliver.destination
    text = (
        f":skull: Delivery dead: {dest.sink_type} `{dest.target}` for tenant "
        f"`{deliver.tenant}`, incident `{deliver.incident.incident_id}` "
        f"({deliver.incident.title[:120]}), {deliver.action.value}: {detail}"
    )
    digest = hashlib.sha256(f"{deliver.delivery_id}|dead-notice".encode()).hexdigest()
    return msgspec.structs.replace(
        deliver,
        delivery_id="dlv_" + digest[:24],
        tenant=deps.operator_tenant,
        destination=deps.notices,
        action=IncidentAction.OPEN,
        planned_at=now,
        notice=text,
    )


def lane_key(deliver: Deliver, sink: Sink | None) -> LaneKey:
    """The lane of a delivery: one per destination, or one per incident shard where the
    destination neither threads nor rate-limits."""
    dest = deliver.destination
    if sink is None or sink.threads() or sink.rate_per_target is not None:
        return (dest.sink_id, dest.target, 0)
    shard = zlib.crc32(deliver.incident.incident_id.encode()) % PARALLEL_SHARDS
    return (dest.sink_id, dest.target, shard)


def backoff_s(attempt: int, options: DeliveryOptions, rng: random.Random) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(options.max_backoff_s, options.base_backoff_s * (2 ** (attempt - 1)))
    return rng.uniform(ceiling / 2, ceiling)


async def run_delivery(
    deps: DeliveryDeps,
    inbox: trio.MemoryReceiveChannel[DeliveryMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("delivery")
    since = queries.thread_lookback(clock.now())  # now, not in the worker thread
    threads = await deps.store.read(lambda con: queries.thread_refs(con, since=since))
    verifications: dict[str, Verification] = await deps.store.read(queries.latest_verifications)
    noticed: set[tuple[str, str, str]] = set()  # (unverified sink, notice sink, day)
    fix_hints = OncePer(timedelta(hours=1))  # "eyetok verify SINK", once per sink per hour
    lanes: dict[LaneKey, _Lane] = {}
    seen: OrderedDict[str, None] = OrderedDict()
    rng = random.Random()
    sinks: dict[str, Sink] = dict(deps.sinks)
    built: list[Sink] = []  # clients this actor made for API sinks (it closes them)
    tenants = deps.tenants
    tenant_destinations = deps.tenant_destinations

    def follow(settings: Settings, changed: tuple[str, ...] | None) -> None:
        """Deliver by ``settings`` from now on: clients for the API sinks ``changed``
        (None: every one), the tenants and their destinations for notices and the guard."""
        nonlocal tenants, tenant_destinations
        wanted = [
            s for s in settings.sinks if s not in deps.sinks and (changed is None or s in changed)
        ]
        for sink_id in changed or ():
            if sink_id not in deps.sinks:
                sinks.pop(sink_id, None)  # a lane takes the new client on its next slot
        fresh = api_sinks(settings, wanted, clock)
        sinks.update(fresh)
        built.extend(fresh.values())
        tenants = frozenset(settings.tenants)
        tenant_destinations = settings.tenant_destinations()

    if deps.settings is not None:
        follow(await effective_settings(deps.settings, deps.store), None)

    async def refuse_unverified(slot: list[Deliver], reason: str) -> None:
        """The gate: nothing goes to an unverified sink; the tenant hears of it through
        its other verified sinks, once per sink per day."""
        head = slot[-1]
        for d in slot:
            await finish(d, "refused_unverified", 0, f"sink not verified: {reason}")
        now = clock.now()
        if fix_hints.due(head.destination.sink_id, now):  # once per sink per hour
            logger.warning(
                "sink_unverified_fix",
                sink=head.destination.sink_id,
                why=reason,
                fix=verify_fix(head.destination.sink_id),
            )
        if head.notice is not None:
            return
        day = now.date().isoformat()
        sink_id = head.destination.sink_id
        notices = []
        for dest in tenant_destinations.get(head.tenant, ()):
            key = (sink_id, dest.sink_id, day)
            if dest.sink_id == sink_id or key in noticed:
                continue
            if refusal(verifications.get(dest.sink_id), now) is not None:
                continue
            noticed.add(key)
            text = (
                f":warning: EyeTok did not deliver to your {head.destination.sink_type} sink "
                f"`{sink_id}`: {reason}. Re-verify its ownership (`eyetok verify {sink_id}`); "
                "until then its alerts are recorded, not sent."
            )
            digest = hashlib.sha256(f"{sink_id}|{dest.sink_id}|{day}|reverify".encode())
            notices.append(
                msgspec.structs.replace(
                    head,
                    delivery_id="dlv_" + digest.hexdigest()[:24],
                    destination=dest,
                    action=IncidentAction.OPEN,
                    planned_at=now,
                    notice=text,
                )
            )
        if notices:
            await to_history.send(
                PlanDeliveries(origin=head.delivery_id, deliveries=tuple(notices))
            )

    async def finish(
        deliver: Deliver, outcome: str, attempts: int, detail: str, ref: str = "", thread: str = ""
    ) -> None:
        now = clock.now()
        closed = finished(
            deliver,
            outcome,
            at=now,
            attempts=attempts,
            detail=detail,
            external_ref=ref,
            thread_ref=thread,
        )
        latency_ms = closed.latency_ms
        await to_history.send(closed)
        event = {
            "delivered": "delivery_sent",
            "refused": "delivery_refused",
            "refused_unverified": "delivery_refused_unverified",
        }.get(outcome, "delivery_dead")
        if detail.startswith("payload_rejected"):
            event = "payload_rejected"
        log_fn = logger.info if outcome == "delivered" else logger.warning
        log_fn(
            event,
            delivery_id=deliver.delivery_id,
            tenant=deliver.tenant,
            incident_id=deliver.incident.incident_id,
            severity=deliver.incident.severity.value,
            sev_channel=deliver.incident.sev_channel.value
            if deliver.incident.sev_channel
            else None,
            sink=deliver.destination.sink_id,
            target=deliver.destination.target,
            action=deliver.action.value,
            attempts=attempts,
            latency_ms=round(latency_ms, 1),
            detail=detail or None,
        )
        if outcome != "delivered":
            await to_history.send(
                AuditRecorded(
                    at=now,
                    tenant=deliver.tenant,
                    event=event,
                    detail=f"{deliver.destination.sink_id}:{deliver.destination.target}: {detail}",
                    incident_id=deliver.incident.incident_id,
                )
            )
        if outcome == "dead" and deliver.notice is None and deps.notices is not None:
            await to_history.send(
                PlanDeliveries(
                    origin=deliver.delivery_id,
                    deliveries=(dead_notice(deliver, detail, deps, now),),
                )
            )

    async def run_lane(lane: _Lane) -> None:
        sink_id, target, _ = lane.key
        next_slot = trio.current_time()
        breaker = Breaker(
            threshold=deps.options.breaker_threshold,
            cooldown_s=deps.options.breaker_cooldown_s,
            max_cooldown_s=deps.options.max_backoff_s,
        )
        while True:
            slot = await lane.pop()
            head = slot[-1]  # coalesced repeats: the newest snapshot speaks for all
            sink = sinks.get(sink_id)
            if sink is None:
                for d in slot:
                    await finish(d, "refused", 0, f"sink {sink_id!r} is not configured")
                continue
            unverified = refusal(verifications.get(sink_id), clock.now())
            if unverified is not None:
                await refuse_unverified(slot, unverified)
                continue
            incident_id = head.incident.incident_id
            thread = threads.get((sink_id, target, incident_id)) if sink.threads() else None
            attempts = 0
            while True:
                await breaker.wait_closed()
                if sink.rate_per_target:
                    await trio.sleep_until(max(next_slot, trio.current_time()))
                    next_slot = trio.current_time() + 1.0 / sink.rate_per_target
                attempts += 1
                # An attempt and the record of its outcome are never cut in half by a
                # drain: a send that happened must not be sent again after a restart.
                payload = sink.render(head, thread_ref=thread)
                try:
                    guard.check(
                        msgspec.to_builtins(payload),
                        tenant=head.tenant,
                        tenants=tenants,
                        operator_tenant=deps.operator_tenant,
                    )
                except PayloadRejectedError as exc:
                    for d in slot:
                        await finish(d, "refused", attempts, f"payload_rejected {exc}")
                    break
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(ATTEMPT_DEADLINE_S) as attempt:
                        result = await sink.send(payload, idempotency_key=head.delivery_id)
                    if attempt.cancelled_caught:
                        result = Retry(reason=f"no answer within {ATTEMPT_DEADLINE_S:.0f}s")
                    wait = await settle(slot, result, attempts, thread)
                record_breaker(breaker, result, lane.key)
                if wait is None:
                    break
                await trio.sleep(wait)
                if isinstance(result, Retry) and result.after is not None:
                    next_slot = trio.current_time()

    def record_breaker(breaker: Breaker, result: Outcome, key: LaneKey) -> None:
        if isinstance(result, Retry):
            cooldown = breaker.failed()
            if cooldown is not None:
                logger.warning(
                    "breaker_opened",
                    sink=key[0],
                    target=key[1],
                    failures=breaker.failures,
                    cooldown_s=cooldown,
                    reason=result.reason,
                )
        elif breaker.succeeded():
            logger.info("breaker_closed", sink=key[0], target=key[1])

    async def settle(
        slot: list[Deliver], result: Outcome, attempts: int, thread: str | None
    ) -> float | None:
        """Record a final outcome (None), or say how long to wait before the next attempt."""
        head = slot[-1]
        sink_id, target = head.destination.sink_id, head.destination.target
        incident_id = head.incident.incident_id
        match result:
            case Delivered(external_ref=ref):
                if thread is None and head.action is IncidentAction.OPEN:
                    threads[(sink_id, target, incident_id)] = ref
                for d in slot:
                    await finish(d, "delivered", attempts, "", ref, thread or ref)
                return None
            case Permanent(reason=reason):
                for d in slot:
                    await finish(d, "refused", attempts, reason)
                return None
            case Retry(reason=reason, after=after):
                age = (clock.now() - head.planned_at).total_seconds()
                wait = after if after is not None else backoff_s(attempts, deps.options, rng)
                if attempts >= deps.options.max_attempts or age + wait > deps.options.max_age_s:
                    for d in slot:
                        await finish(
                            d, "dead", attempts, f"gave up after {attempts} attempts: {reason}"
                        )
                    return None
                logger.info(
                    "delivery_retrying",
                    delivery_id=head.delivery_id,
                    sink=sink_id,
                    target=target,
                    attempt=attempts,
                    wait_s=round(wait, 3),
                    reason=reason,
                )
                return wait
            case _:
                assert_never(result)

    async def dispatch(nursery: trio.Nursery) -> None:
        async for message in inbox:
            match message:
                case VerificationChanged():
                    verifications[message.verification.sink_id] = message.verification
                    continue
                case TenantConfigChanged():
                    follow(message.settings, message.sinks)
                    continue
                case Deliver():
                    deliver = message
                case _:
                    assert_never(message)
            if deliver.delivery_id in seen:
                continue  # a re-queued row already on its lane
            seen[deliver.delivery_id] = None
            if len(seen) > _SEEN_MAX:
                seen.popitem(last=False)
            key = lane_key(deliver, sinks.get(deliver.destination.sink_id))
            lane = lanes.get(key)
            if lane is None:
                lane = lanes[key] = _Lane(key)
                nursery.start_soon(run_lane, lane)
            lane.push(deliver)

    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            await dispatch(nursery)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            for client in built:
                await client.aclose()
