"""The delivery actor: the one shared sink actor. It owns the per-destination lanes.

Every ``Deliver`` is already an outbox row. The dispatcher puts it on the lane of its
destination (sink id + target; for sinks without threads or a rate, one of
``PARALLEL_SHARDS`` lanes chosen by incident) and never blocks, so one slow or dead
destination delays nobody else. A lane sends in order (an incident's messages, and its
thread replies after its first post),
keeps to the destination's rate, retries what may be retried with exponential backoff
and jitter (the interval capped, the attempts not counted against it) and gives up only at
the maximum age: the row ends ``dead``, logged at error level, reported to the operator
and shown on ``/readyz`` until that report is delivered. Operator notices get a longer
maximum age (``delivery.notice_max_age_s``): they must outlive the failures they report.
Repeats of one incident waiting on a lane are coalesced into one thread reply.

A lane whose sink is not (yet) verified holds its deliveries (``held_unverified``; they
stay pending outbox rows, so a restart holds them again) until the sink's verification
goes live, then sends them in order, each marked late with how late; one held longer
than ``delivery.unverified_hold_s`` ends ``refused_unverified`` and is reported.
"""

from __future__ import annotations

import hashlib
import math
import random
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import assert_never

import msgspec
import trio

from actors.breaker import Breaker
from actors.forward import Inbox, forward
from actors.sinks.base import Delivered, Outcome, Permanent, Retry, Sink
from actors.tenants import api_sinks, effective_settings
from actors.thread_refs import ThreadRefs
from eyetok import guard, log
from eyetok.clock import Clock
from eyetok.config import DeliveryOptions, Settings
from eyetok.errors import PayloadRejectedError
from eyetok.health import HealthBoard, HeldCount, SinkBoard
from eyetok.hints import OncePer, verify_fix
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    DeliveryMessage,
    Destination,
    HistoryMessage,
    IncidentAction,
    PlanDeliveries,
    Rewrite,
    TenantConfigChanged,
    VerificationChanged,
    finished,
)
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.verification import Verification, refusal
from state.history import queries
from state.history.store import HistoryStore

LaneKey = tuple[str, str, int]  # (sink_id, target, shard)
# A destination that keeps no threads and has no rate of its own (webhook, email,
# PagerDuty) is served by this many lanes, an incident always on the same one: its
# messages stay in order, different incidents go out side by side.
PARALLEL_SHARDS = 8
# Delivery ids already put on a lane, against a history restart re-queueing the outbox's
# pending rows: only a row still pending can come back, so this covers the rows waiting on
# lanes (ten 5,000-webhook bursts). ~170 B each (the id and its slot): 8.5 MB when full,
# not the 34 MB of 200,000 beside a 512 MB dyno's other memory. Past it a re-queued row
# can go on its lane twice: a duplicate post, never a lost one.
_SEEN_MAX = 50_000
_DECIDABLE_MAX = 10_000
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
    health: HealthBoard | None = None  # "dead_deliveries" and "held_unverified" on /readyz
    sink_board: SinkBoard | None = None  # every sink and what it holds, for /api/v1/sinks


@dataclass
class _Lane:
    """A destination's queue. Owned by the delivery actor; only its lane task pops."""

    key: LaneKey
    queue: deque[list[Deliver]] = field(default_factory=deque)
    update_slots: dict[str, list[Deliver]] = field(default_factory=dict)
    wake: trio.Event = field(default_factory=trio.Event)
    held: list[Deliver] | None = None  # the slot waiting for the sink's verification
    held_count: int = 0  # deliveries waiting on this lane while it holds
    arrived: list[Deliver] = field(default_factory=list)  # while held, not yet announced

    def push(self, deliver: Deliver) -> None:
        if self.held is not None:
            self.arrived.append(deliver)
            self.held_count += 1
        incident_id = deliver.incident.incident_id
        if (
            deliver.action is IncidentAction.UPDATE
            and deliver.step is None
            and deliver.rewrite is None
        ):
            # repeats coalesce; a step of SEV1's loop (ack, re-notification), a decision
            # that rewrites its post, never does
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
        if head.action is IncidentAction.UPDATE and head.step is None:
            self.update_slots.pop(head.incident.incident_id, None)
        return slot


# the line a delivery's end logs, by its outcome (else delivery_dead)
_FINISHED_EVENTS = {
    "delivered": "delivery_sent",
    "refused": "delivery_refused",
    "refused_unverified": "delivery_refused_unverified",
}


def dead_notice(
    deliver: Deliver, detail: str, deps: DeliveryDeps, now: datetime, *, outcome: str = "dead"
) -> Deliver:
    """The operator's notice that ``deliver`` ended ``outcome`` (itself an outbox row)."""
    assert deps.notices is not None
    dest = deliver.destination
    what = (
        ":skull: Delivery dead"
        if outcome == "dead"
        else ":hourglass: Delivery refused (sink never verified in time)"
    )
    text = (
        f"{what}: {dest.sink_type} `{dest.target}` for tenant "
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
    """Exponential backoff with full jitter, the interval capped at ``max_backoff_s``."""
    ceiling = min(options.max_backoff_s, options.base_backoff_s * (2 ** min(attempt - 1, 30)))
    return rng.uniform(ceiling / 2, ceiling)


def max_age_s(deliver: Deliver, options: DeliveryOptions) -> float:
    """How long ``deliver`` is retried: notices (to the operator or about a tenant's
    sinks) outlive the failures they report."""
    return options.notices_max_age_s() if deliver.notice is not None else options.max_age_s


def how_late(delay_s: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``: a delay as an on-call reads it."""
    if delay_s < 90:
        return f"{delay_s:.0f} s"
    minutes = round(delay_s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


async def _first_of(*events: trio.Event) -> None:
    """Return as soon as any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


def credential_of(settings: Settings, sink_id: str) -> tuple[object, str | None, object]:
    """What a sink's client is built from that may change while running: its
    configuration (a rotation's previous secret, DKIM selector), its secret, and for
    Slack the options naming the on-call user (the IdP-bound rotation)."""
    config = settings.sinks.get(sink_id)
    slack = settings.slack if isinstance(config, SlackSinkConfig) else None
    return config, settings.sink_secrets.get(sink_id), slack


async def run_delivery(
    deps: DeliveryDeps,
    inbox: trio.MemoryReceiveChannel[DeliveryMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("delivery")
    started_at = clock.now()  # now, not in the worker thread
    since = queries.thread_lookback(started_at)
    threads = ThreadRefs(
        await deps.store.read(lambda con: queries.thread_refs(con, since=since)), now=started_at
    )
    verifications: dict[str, Verification] = await deps.store.read(queries.latest_verifications)
    noticed: set[tuple[str, str, str]] = set()  # (unverified sink, notice sink, day)
    fix_hints = OncePer(timedelta(hours=1))  # "eyetok verify SINK", once per sink per hour
    lanes: dict[LaneKey, _Lane] = {}
    seen: OrderedDict[str, None] = OrderedDict()
    decidable: OrderedDict[str, str] = OrderedDict()  # posts with buttons, delivered: -> ts
    rng = random.Random()
    sinks: dict[str, Sink] = dict(deps.sinks)
    built: list[Sink] = []  # clients this actor made for API sinks (it closes them)
    tenants = deps.tenants
    tenant_destinations = deps.tenant_destinations
    options = deps.options
    # a sink's verification changed: the lanes holding for it look again
    verification_changed: dict[str, trio.Event] = {}
    held_ids: set[str] = set()  # deliveries announced as held_unverified (sent late)
    # dead deliveries the operator has not been told of yet: the id of the notice that
    # tells them (or the dead delivery's own id when no notice can) -> what died
    unreported: dict[str, str] = {}

    file_sinks = tuple(deps.settings.sinks) if deps.settings is not None else ()
    in_use = {s: credential_of(deps.settings, s) for s in file_sinks} if deps.settings else {}

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
        # a credential of a file sink read again (SIGHUP): a new client from the next slot on;
        # a send under way finishes on the old one
        swapped = [s for s in file_sinks if credential_of(settings, s) != in_use.get(s)]
        for sink_id in swapped:
            sinks.pop(sink_id, None)
            in_use[sink_id] = credential_of(settings, sink_id)
        fresh = api_sinks(settings, [*wanted, *swapped], clock)
        sinks.update(fresh)
        built.extend(fresh.values())
        if swapped:
            logger.info("sink_credentials_swapped", sinks=swapped)
        tenants = frozenset(settings.tenants)
        tenant_destinations = settings.tenant_destinations()
        if deps.sink_board is not None:
            deps.sink_board.configure(settings.sink_types())

    if deps.settings is not None:
        follow(await effective_settings(deps.settings, deps.store), None)
    elif deps.sink_board is not None:
        deps.sink_board.configure({s: sink.sink_type for s, sink in sinks.items()})

    def publish_dead() -> None:
        if deps.health is None:
            return
        now = clock.now()
        if not unreported:
            deps.health.set("dead_deliveries", "ok", "every dead delivery reported", at=now)
            return
        shown = "; ".join(list(unreported.values())[-5:])
        deps.health.set(
            "dead_deliveries",
            "degraded",
            f"{len(unreported)} dead delivery(ies) not yet reported to the operator: {shown}",
            at=now,
        )

    def publish_held() -> None:
        held: dict[str, HeldCount] = {}
        for lane in lanes.values():
            if lane.held is None:
                continue
            oldest = lane.held[0].planned_at  # the lane sends (and holds) in order
            sink_id = lane.key[0]
            before = held.get(sink_id)
            if before is not None:
                oldest = min(oldest, before.oldest)
            held[sink_id] = HeldCount(
                count=lane.held_count + (before.count if before else 0), oldest=oldest
            )
        if deps.sink_board is not None:
            deps.sink_board.hold(held)
        if deps.health is not None:
            now = clock.now()
            if held:
                detail = "; ".join(
                    f"{sink_id}: {h.count} held awaiting verification, the oldest for "
                    + how_late((now - h.oldest).total_seconds())
                    for sink_id, h in sorted(held.items())
                )
                deps.health.set("held_unverified", "degraded", detail, at=now)
            else:
                deps.health.set("held_unverified", "ok", "nothing held", at=now)

    publish_dead()
    publish_held()

    async def tell_tenant(head: Deliver, reason: str, *, refused: bool) -> None:
        """The tenant hears that a sink of theirs is unverified through its other verified
        sinks, once per sink per day."""
        if head.notice is not None:
            return
        now = clock.now()
        day = now.date().isoformat()
        sink_id = head.destination.sink_id
        hold = how_late(options.unverified_hold_s)
        fate = (
            "its alerts older than that are recorded, not sent"
            if refused
            else f"until then its alerts are held (for up to {hold}), then sent late"
        )
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
                f"{fate}."
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

    async def announce_held(fresh: list[Deliver], reason: str) -> None:
        """Audit (once per delivery) each delivery a lane holds for verification."""
        fresh = [d for d in fresh if d.delivery_id not in held_ids]
        now = clock.now()
        for d in fresh:
            held_ids.add(d.delivery_id)
            logger.warning(
                "delivery_held_unverified",
                delivery_id=d.delivery_id,
                tenant=d.tenant,
                incident_id=d.incident.incident_id,
                sink=d.destination.sink_id,
                target=d.destination.target,
                action=d.action.value,
                reason=reason,
                held_until=(d.planned_at + timedelta(seconds=options.unverified_hold_s)).isoformat(
                    timespec="seconds"
                ),
            )
            await to_history.send(
                AuditRecorded(
                    at=now,
                    tenant=d.tenant,
                    event="delivery_held_unverified",
                    detail=f"{d.destination.sink_id}:{d.destination.target}: held, sink not "
                    f"verified: {reason}",
                    incident_id=d.incident.incident_id,
                )
            )
        if fresh:
            sink_id = fresh[-1].destination.sink_id
            if fix_hints.due(sink_id, now):  # once per sink per hour
                logger.warning(
                    "sink_unverified_fix", sink=sink_id, why=reason, fix=verify_fix(sink_id)
                )
            await tell_tenant(fresh[-1], reason, refused=False)

    async def hold_until_verified(lane: _Lane, slot: list[Deliver]) -> bool:
        """The gate. True: the sink is verified, send. False: the slot was held past
        ``unverified_hold_s`` and ended ``refused_unverified`` (reported)."""
        sink_id = lane.key[0]
        reason = refusal(verifications.get(sink_id), clock.now())
        if reason is None:
            return True
        lane.held = slot
        lane.arrived = [d for waiting in (slot, *lane.queue) for d in waiting]
        lane.held_count = len(lane.arrived)
        try:
            while reason is not None:
                fresh, lane.arrived = lane.arrived, []
                await announce_held(fresh, reason)
                publish_held()
                expires = slot[0].planned_at.timestamp() + options.unverified_hold_s
                remaining = expires - clock.now().timestamp()
                if remaining <= 0:
                    await refuse_unverified(slot, reason)
                    return False
                changed = verification_changed.setdefault(sink_id, trio.Event())
                lane.wake = trio.Event()  # a new arrival is announced as held too
                with trio.move_on_after(remaining):
                    await _first_of(changed, lane.wake)
                reason = refusal(verifications.get(sink_id), clock.now())
            logger.info("delivery_released", sink=sink_id, target=lane.key[1], held=len(slot))
            return True
        finally:
            lane.held, lane.arrived, lane.held_count = None, [], 0
            publish_held()

    async def refuse_unverified(slot: list[Deliver], reason: str) -> None:
        """Held past ``unverified_hold_s``: ends ``refused_unverified``, logged at error
        level; the operator (when the notices sink is itself deliverable: a report held
        behind the same handshake tells nobody) and the tenant are told."""
        hold = how_late(options.unverified_hold_s)
        detail = f"sink not verified: {reason} (held {hold}, the maximum)"
        for d in slot:
            await finish(d, "refused_unverified", 0, detail)
        head = slot[-1]
        now = clock.now()
        if (
            head.notice is None
            and deps.notices is not None
            and refusal(verifications.get(deps.notices.sink_id), now) is None
        ):
            notice = dead_notice(head, detail, deps, now, outcome="refused_unverified")
            await to_history.send(PlanDeliveries(origin=head.delivery_id, deliveries=(notice,)))
        await tell_tenant(head, reason, refused=True)

    async def finish(
        deliver: Deliver, outcome: str, attempts: int, detail: str, ref: str = "", thread: str = ""
    ) -> None:
        now = clock.now()
        held_ids.discard(deliver.delivery_id)
        if outcome == "delivered" and ref and (deliver.acknowledge or deliver.post):
            decidable[deliver.delivery_id] = ref  # a post with buttons: a decision rewrites it
            while len(decidable) > _DECIDABLE_MAX:
                decidable.popitem(last=False)
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
        # no schedule point of its own (actors/forward.py): the lane checkpointed in the
        # attempt's I/O, and any other outcome's audit record below is a plain send
        await forward(to_history, closed)
        event = _FINISHED_EVENTS.get(outcome, "delivery_dead")
        if detail.startswith("payload_rejected"):
            event = "payload_rejected"
        report = outcome == "dead" and deliver.notice is None and deps.notices is not None
        notice = dead_notice(deliver, detail, deps, now) if report else None
        log_fn = logger.info if outcome == "delivered" else logger.warning
        if outcome == "dead" or (outcome == "refused_unverified" and "the maximum" in detail):
            log_fn = logger.error  # the second path: a lost delivery never goes unseen
        log_fn(
            event,
            delivery_id=deliver.delivery_id,
            tenant=deliver.tenant,
            incident_id=deliver.incident.incident_id,
            # str() of a StrEnum is its value, without the enum's ``value`` property
            severity=str(deliver.incident.severity),
            sev_channel=str(deliver.incident.sev_channel) if deliver.incident.sev_channel else None,
            sink=deliver.destination.sink_id,
            target=deliver.destination.target,
            action=str(deliver.action),
            attempts=attempts,
            latency_ms=round(latency_ms, 1),
            detail=detail or None,
            notice=deliver.notice[:200] if outcome == "dead" and deliver.notice else None,
            reported_by=notice.delivery_id if notice else None,
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
        if outcome == "dead":
            what = (
                f"{deliver.delivery_id} ({deliver.destination.sink_id} "
                f"{deliver.destination.target}, tenant {deliver.tenant}, "
                f"incident {deliver.incident.incident_id}): {detail}"
            )
            # a notice that died keeps the entry of the death it was to report
            unreported.setdefault(notice.delivery_id if notice else deliver.delivery_id, what)
            publish_dead()
        elif outcome == "delivered" and unreported.pop(deliver.delivery_id, None) is not None:
            publish_dead()
        if notice is not None:
            await to_history.send(PlanDeliveries(origin=deliver.delivery_id, deliveries=(notice,)))

    async def rewrite_of(head: Deliver, rewrite: Rewrite) -> Deliver:
        """``head`` with the Slack ts of the post it rewrites (unchanged, and logged, when
        that post never landed: the thread reply still says who decided)."""
        wanted = rewrite.delivery_id
        ts = decidable.get(wanted) or await deps.store.read(
            lambda con: queries.posted_ref(con, wanted)
        )
        if ts is None:
            logger.info(
                "post_not_rewritten",
                delivery_id=head.delivery_id,
                post=wanted,
                why="the post it decided on was never delivered",
            )
            return head
        return msgspec.structs.replace(head, rewrite=msgspec.structs.replace(rewrite, ts=ts))

    async def run_lane(lane: _Lane) -> None:
        sink_id, target, _ = lane.key
        next_slot = trio.current_time()
        breaker = Breaker(
            threshold=options.breaker_threshold,
            cooldown_s=options.breaker_cooldown_s,
            max_cooldown_s=options.max_backoff_s,
        )
        while True:
            slot = await lane.pop()
            head = slot[-1]  # coalesced repeats: the newest snapshot speaks for all
            sink = sinks.get(sink_id)
            if sink is None:
                for d in slot:
                    await finish(d, "refused", 0, f"sink {sink_id!r} is not configured")
                continue
            if not await hold_until_verified(lane, slot):
                continue
            sink = sinks.get(sink_id)  # the tenant API may have changed it meanwhile
            if sink is None:
                for d in slot:
                    await finish(d, "refused", 0, f"sink {sink_id!r} is not configured")
                continue
            retrying_since = head.planned_at
            if any(d.delivery_id in held_ids for d in slot):
                # held for the handshake: it goes out marked late, and its maximum age
                # counts from now (the hold had its own)
                retrying_since = clock.now()
                delay = (retrying_since - slot[0].planned_at).total_seconds()
                late = f"delayed {how_late(delay)}: sink `{sink_id}` was awaiting verification"
                head = msgspec.structs.replace(head, late=late)
            incident_id = head.incident.incident_id
            threading = sink.threads()
            thread = threads.get((sink_id, target, incident_id)) if threading else None
            if head.rewrite is not None and threading:
                head = await rewrite_of(head, head.rewrite)
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
                # One scope per attempt: shielded, with the attempt's deadline until the
                # answer is in, then none while its outcome is recorded.
                sent: Outcome | None = None
                deadline = trio.current_time() + ATTEMPT_DEADLINE_S
                with trio.CancelScope(shield=True, deadline=deadline) as attempt:
                    sent = await sink.send(payload, idempotency_key=head.delivery_id)
                    if not attempt.cancel_called:
                        attempt.deadline = math.inf
                        wait = await settle(
                            slot, sent, attempts, thread, retrying_since, threading=threading
                        )
                result = (
                    sent
                    if sent is not None
                    else Retry(reason=f"no answer within {ATTEMPT_DEADLINE_S:.0f}s")
                )
                if attempt.cancel_called:  # the deadline passed (an answer may be in even so)
                    with trio.CancelScope(shield=True):
                        wait = await settle(
                            slot, result, attempts, thread, retrying_since, threading=threading
                        )
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
        slot: list[Deliver],
        result: Outcome,
        attempts: int,
        thread: str | None,
        retrying_since: datetime,
        *,
        threading: bool,
    ) -> float | None:
        """Record a final outcome (None), or say how long to wait before the next attempt:
        until the maximum age, never counting attempts against it."""
        head = slot[-1]
        sink_id, target = head.destination.sink_id, head.destination.target
        incident_id = head.incident.incident_id
        match result:
            case Delivered(external_ref=ref):
                # only a sink that threads looks a thread up (a webhook's ref opens none)
                if threading and thread is None and head.action is IncidentAction.OPEN:
                    threads.learn((sink_id, target, incident_id), ref, at=clock.now())
                for d in slot:
                    await finish(d, "delivered", attempts, "", ref, thread or ref)
                return None
            case Permanent(reason=reason):
                for d in slot:
                    await finish(d, "refused", attempts, reason)
                return None
            case Retry(reason=reason, after=after):
                age = (clock.now() - retrying_since).total_seconds()
                limit = max_age_s(head, options)
                remaining = limit - age
                # the last attempt goes out at the maximum age, unless the destination
                # asked for a longer pause than is left
                wait = after if after is not None else backoff_s(attempts, options, rng)
                if after is None:
                    wait = min(wait, max(0.0, remaining))
                if remaining <= 0 or wait > remaining:
                    for d in slot:
                        await finish(
                            d,
                            "dead",
                            attempts,
                            f"gave up at the maximum age ({limit:g} s) after {attempts} "
                            f"attempts in {age:.0f} s: {reason}",
                        )
                    return None
                logger.info(
                    "delivery_retrying",
                    delivery_id=head.delivery_id,
                    sink=sink_id,
                    target=target,
                    attempt=attempts,
                    wait_s=round(wait, 3),
                    age_s=round(age, 1),
                    reason=reason,
                )
                return wait
            case _:
                assert_never(result)

    async def dispatch(nursery: trio.Nursery) -> None:
        # the deliveries already waiting are put on their lanes without a schedule point
        # each (actors/forward.py): the lanes then take them a pass later, together
        async for message in Inbox(inbox):
            match message:
                case VerificationChanged():
                    sink_id = message.verification.sink_id
                    verifications[sink_id] = message.verification
                    changed = verification_changed.pop(sink_id, None)
                    if changed is not None:
                        changed.set()  # the lanes holding for this sink look again
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
        logger.info(
            "delivery_held_at_stop",
            lanes=len(lanes),
            remembered_delivery_ids=len(seen),
            remembered_max=_SEEN_MAX,
            thread_refs=len(threads),
            held_unverified=len(held_ids),
            dead_unreported=len(unreported),
        )
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            for client in built:
                await client.aclose()
