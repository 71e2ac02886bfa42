"""The ticket trail actor: one FreeScout conversation per incident of a ticketed SEV
channel, a note per later event, closed on resolve (eyetok/freescout.py has the shapes).

It is an operator-side integration, not a sink: it reads the incidents' snapshots from
the history (journal order, past its own cursor, every ``poll_every_s``), never sits on
the pipeline, and so FreeScout being slow or down delays no signal and no sink. Two tasks:

* the tail turns each batch of new snapshots into outbox rows (its own DuckDB table,
  ``state/history/ticket_trail.py``) and moves its cursor past them in the same
  transaction, before any call is made;
* the lane sends the rows in order, one at a time: retried with exponential backoff and
  jitter (a 429's Retry-After honoured) until the row is ``max_age_s`` old, then ``dead``;
  a 401/403 (a wrong API key) or another 4xx ends it ``refused`` at once. Either end is
  audited, logged at error level and reported to the operator's notices sink.

Idempotency: an opening that may have landed (a retry, or a row planned before this
process started: a kill -9 between FreeScout's answer and the commit) first looks the
conversation up by the marker in its subject and only opens one if none is found. The
conversation id goes to the incidents actor (``TicketOpened``), which keeps it on the
incident, so Slack's later posts, the incident API and ``incident_state`` carry it.
A note retried after an answer that never came may appear twice (notes are not looked up).
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import trio

from actors.sinks.slack.permalink import SlackPermalinks
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.errors import PermanentDeliveryError, RetryableDeliveryError
from eyetok.freescout import (
    FreeScoutLink,
    FreeScoutOptions,
    close_body,
    conversation_body,
    note_body,
    opening_text,
)
from eyetok.freescout_api import FreeScoutClient, FreeScoutRefusedError
from eyetok.health import HealthBoard
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    HistoryMessage,
    IncidentAction,
    IngestMessage,
    PlanDeliveries,
    TicketOpened,
)
from eyetok.ticket_trail import TrailOp, TrailPlanner
from state.history import ticket_trail as tables
from state.history.store import HistoryStore

SLACK_WAIT_S = 30.0  # an opening waits this long for the incident's Slack post (its link)
SLACK_POLL_S = 1.0


@dataclass(frozen=True)
class TicketTrailDeps:
    store: HistoryStore
    settings: Settings
    link: FreeScoutLink
    options: FreeScoutOptions
    health: HealthBoard | None = None
    poll_every_s: float = 1.0


class _Wake:
    """The tail tells the lane that rows are waiting."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


async def run_ticket_trail(
    deps: TicketTrailDeps,
    to_incidents: trio.MemorySendChannel[IngestMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("ticket_trail")
    store, options, settings = deps.store, deps.options, deps.settings
    await store.write(tables.create)
    known = await store.read(tables.cursor)
    cursor: int = known if known is not None else await store.write(tables.start_at_now)
    seen = await store.read(partial(tables.last_seen, upto=cursor))
    ticketed = await store.read(tables.ticketed)
    conversations = await store.read(tables.conversations)
    adopted = [
        i
        for i in seen.values()
        if i.freescout_conversation_id is not None and i.incident_id not in conversations
    ]
    if adopted:  # a fresh dyno: the snapshots rehydrated from Postgres name them
        at = clock.now()
        await store.write(partial(tables.adopt, incidents=adopted, at=at))
        for incident in adopted:
            assert incident.freescout_conversation_id is not None
            conversations[incident.incident_id] = incident.freescout_conversation_id
            ticketed.add(incident.incident_id)
    audit_since = await store.write(partial(tables.audit_since, now=clock.now()))
    queue: deque[TrailOp] = deque(await store.read(tables.pending))
    started_at = clock.now()
    slack_wait = timedelta(seconds=SLACK_WAIT_S)
    planner = TrailPlanner(
        channels=options.channels,
        every=timedelta(seconds=options.repeat_note_every_s),
        seen=seen,
        ticketed=ticketed,
        drill_tenants=frozenset(
            t for t, tenant in settings.tenants.items() if tenant.tier == "drill"
        ),
    )
    wake = _Wake()
    found_again: set[str] = set()  # openings an earlier attempt had made (looked up)
    client = FreeScoutClient(deps.link, timeout_s=options.request_timeout_s)
    permalinks = SlackPermalinks(settings)
    rng = random.Random()
    logger.info(
        "ticket_trail_started",
        freescout=deps.link.url,
        mailbox_id=deps.link.mailbox_id,
        channels=[c.value for c in options.channels],
        cursor=cursor,
        pending=len(queue),
        adopted=len(adopted),
    )

    def health(state: str, detail: str) -> None:
        if deps.health is not None:
            deps.health.set(
                "ticket_trail", "ok" if state == "ok" else "degraded", detail, at=clock.now()
            )

    async def tail() -> None:
        nonlocal cursor
        while True:
            # the playbooks' lines first: the snapshots read after them hold every
            # opening they follow (the history materialises in the order it is told)
            lines = await store.read(partial(tables.playbook_lines, since=audit_since))
            batch = await store.read(partial(tables.snapshots_after, seq=cursor))
            now = clock.now()
            ops = [op for seq, incident in batch for op in planner.snapshot(seq, incident, now)]
            upto = batch[-1][0] if batch else cursor
            ops += planner.repeats_due(now, upto)
            noted = []
            if len(batch) < 500:  # else: the openings they follow may be further on
                for line in lines:
                    op = planner.playbook_line(
                        line.line_key, line.incident_id, line.event, line.detail, upto, now
                    )
                    ops += [op] if op is not None else []
                    noted.append(line.line_key)
            if batch or ops or noted:
                await store.write(partial(tables.plan, ops=ops, upto=upto, noted=noted))
                cursor = upto
            if ops:
                queue.extend(ops)
                wake.set()
            if len(batch) < 500:
                await trio.sleep(min(deps.poll_every_s, planner.next_repeat_in(clock.now())))

    async def report(op: TrailOp, status: str, detail: str, attempts: int) -> None:
        incident, now = op.incident, clock.now()
        event = "ticket_refused" if status == "refused" else "ticket_dead"
        logger.error(
            event,
            op_id=op.op_id,
            kind=op.kind,
            incident_id=incident.incident_id,
            tenant=incident.tenant,
            attempts=attempts,
            detail=detail,
        )
        await to_history.send(
            AuditRecorded(
                at=now,
                tenant=settings.operator_tenant,
                event=event,
                detail=f"FreeScout {op.kind} for incident {incident.incident_id}: {detail}",
                incident_id=incident.incident_id,
            )
        )
        if settings.delivery.operator_notices.sink not in settings.sinks:
            return
        text = (
            f":ticket: FreeScout {op.kind} {status} for incident `{incident.incident_id}` "
            f"({incident.title[:120]}), tenant `{incident.tenant}`: {detail}"
        )
        digest = hashlib.sha256(f"{op.op_id}|ticket-notice".encode()).hexdigest()
        notice = Deliver(
            delivery_id="dlv_" + digest[:24],
            tenant=settings.operator_tenant,
            destination=settings.notices_destination(),
            incident=incident,
            action=IncidentAction.OPEN,
            rule=incident.rule,
            planned_at=now,
            received_at=now,
            notice=text,
        )
        await to_history.send(PlanDeliveries(origin=op.op_id, deliveries=(notice,)))

    async def perform(op: TrailOp, attempt: int) -> tuple[int, int | None] | None:
        """One attempt at ``op``; the conversation an opening opened or found."""
        iid = op.incident.incident_id
        conversation_id = conversations.get(iid)
        if op.kind == "open":
            if attempt > 1 or op.planned_at < started_at:
                found = await client.find(iid)
                if found is not None:
                    found_again.add(op.op_id)
                    return found.conversation_id, found.number
            slack, slack_pending = await permalinks.of(store, iid)
            while slack is None and slack_pending and clock.now() < op.planned_at + slack_wait:
                await trio.sleep(SLACK_POLL_S)  # its link belongs in the opening
                slack, slack_pending = await permalinks.of(store, iid)
            console = f"{settings.public_url}/console/incidents/{iid}"
            text = opening_text(op.incident, slack_link=slack, console_link=console)
            opened = await client.create(conversation_body(op.incident, deps.link, options, text))
            return opened.conversation_id, opened.number
        assert conversation_id is not None  # send() skips the notes of an unopened one
        if op.kind == "note":
            await client.add_note(conversation_id, note_body(op.text, options))
        else:
            await client.close(conversation_id, close_body(options))
        return None

    async def send(op: TrailOp) -> None:
        if (op.kind == "open") == (op.incident.incident_id in conversations):
            # a note whose opening ended refused or dead (reported then): nothing to add
            # to; an opening of an incident whose conversation is stored: nothing to do
            detail = (
                "conversation opened already"
                if op.kind == "open"
                else "no conversation: its opening was refused or died (reported then)"
            )
            logger.warning("freescout_op_skipped", op_id=op.op_id, kind=op.kind, detail=detail)
            await finish(op, "skipped", 0, detail)
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                opened = await perform(op, attempt)
            except RetryableDeliveryError as exc:
                age = (clock.now() - op.planned_at).total_seconds()
                if age >= options.max_age_s:
                    detail = f"gave up after {attempt} attempt(s) in {age:.0f}s: {exc}"
                    await finish(op, "dead", attempt, detail)
                    await report(op, "dead", detail, attempt)
                    return
                ceiling = min(options.max_backoff_s, options.base_backoff_s * 2 ** min(attempt, 30))
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else rng.uniform(ceiling / 2, ceiling)
                )
                logger.warning(
                    "freescout_retry",
                    op_id=op.op_id,
                    kind=op.kind,
                    incident_id=op.incident.incident_id,
                    attempt=attempt,
                    retry_in_s=round(delay, 2),
                    reason=str(exc),
                )
                health("degraded", f"retrying FreeScout {op.kind}: {exc}")
                await trio.sleep(delay)
                continue
            except FreeScoutRefusedError as exc:
                await finish(op, "refused", attempt, str(exc))
                await report(op, "refused", str(exc), attempt)
                health("degraded", str(exc))
                return
            except PermanentDeliveryError as exc:
                await finish(op, "refused", attempt, str(exc))
                await report(op, "refused", str(exc), attempt)
                return
            await finish(op, "delivered", attempt, "", opened)
            health("ok", "FreeScout answering")
            return

    async def finish(
        op: TrailOp,
        status: str,
        attempts: int,
        detail: str,
        opened: tuple[int, int | None] | None = None,
    ) -> None:
        now = clock.now()
        await store.write(
            lambda con: tables.finish(
                con,
                op,
                status=status,
                attempts=attempts,
                at=now,
                detail=detail,
                conversation=opened,
            )
        )
        iid = op.incident.incident_id
        if status == "delivered":
            event = {"open": "conversation_opened", "note": "note_added"}.get(
                op.kind, "conversation_closed"
            )
            why = None
            if op.op_id in found_again:
                event, why = "conversation_found", "an earlier attempt had opened it; not again"
                found_again.discard(op.op_id)
            logger.info(
                "freescout_" + event,
                op_id=op.op_id,
                incident_id=iid,
                conversation_id=opened[0] if opened else conversations.get(iid),
                attempts=attempts,
                why=why,
            )
        if opened is not None:
            conversations[iid] = opened[0]
            await to_incidents.send(
                TicketOpened(incident_id=iid, conversation_id=opened[0], at=now)
            )

    async def lane() -> None:
        while True:
            while not queue:
                await wake.wait()
            await send(queue[0])
            queue.popleft()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tail)
            nursery.start_soon(lane)
            task_status.started()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await client.aclose()
