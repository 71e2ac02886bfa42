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
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.errors import PermanentDeliveryError, RetryableDeliveryError
from eyetok.freescout import (
    FreeScoutClient,
    FreeScoutLink,
    FreeScoutOptions,
    FreeScoutRefusedError,
    close_body,
    conversation_body,
    note_body,
    opening_text,
)
from eyetok.health import HealthBoard
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    HistoryMessage,
    Incident,
    IncidentAction,
    IngestMessage,
    PlanDeliveries,
    TicketOpened,
)
from eyetok.ticket_trail import TrailOp, op_id, opens, repeat_note, steps_between
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


class SlackPermalinks:
    """``chat.getPermalink`` of an incident's first Slack post, through slack-sdk's
    ``WebClient`` in a worker thread (the channel name resolved to its id first)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ids: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._log = log.get("ticket_trail")

    async def of(self, store: HistoryStore, incident_id: str) -> tuple[str | None, bool]:
        """The permalink (None: none yet) and whether a Slack post is still pending."""
        rows: list[tuple[str, str, str, str | None]] = await store.read(
            lambda con: con.execute(
                """SELECT sink_id, target, status, external_ref FROM notifications
                   WHERE incident_id = ? AND sink_type = 'slack' AND action = 'open'
                   ORDER BY planned_at""",
                [incident_id],
            ).fetchall()
        )
        pending = any(status == "pending" for _, _, status, _ in rows)
        for sink_id, target, status, ts in rows:
            token = self._settings.sink_secrets.get(sink_id)
            if status == "delivered" and ts and token:
                link = await trio.to_thread.run_sync(self._permalink, sink_id, token, target, ts)
                if link is not None:
                    return link, pending
        return None, pending

    def _permalink(self, sink_id: str, token: str, target: str, ts: str) -> str | None:
        client = WebClient(token=token, base_url=self._settings.slack_api_url, timeout=10)
        try:
            channel = self._channel_id(client, sink_id, target)
            answer = client.chat_getPermalink(channel=channel, message_ts=ts)
        except (SlackClientError, OSError, ValueError) as exc:
            self._log.warning(
                "slack_permalink_unavailable", sink=sink_id, channel=target, reason=str(exc)
            )
            return None
        link = answer.get("permalink")
        return link if isinstance(link, str) else None

    def _channel_id(self, client: WebClient, sink_id: str, target: str) -> str:
        name = target.lstrip("#")
        if name[:1] in "CGD" and name.isupper() and name.isalnum():
            return name
        with self._lock:
            known = self._ids.get((sink_id, name))
        if known is not None:
            return known
        for page in client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=1000
        ):
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    with self._lock:
                        self._ids[(sink_id, name)] = str(channel["id"])
                    return str(channel["id"])
        return name  # Slack answers channel_not_found, logged by the caller


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
    queue: deque[TrailOp] = deque(await store.read(tables.pending))
    started_at = clock.now()
    every = timedelta(seconds=options.repeat_note_every_s)
    slack_wait = timedelta(seconds=SLACK_WAIT_S)
    # per ticketed incident: the event count its notes have told of, and when the last
    # repeat note was planned (rebuilt as "told of everything so far" on a start)
    noted: dict[str, tuple[int, datetime | None]] = {
        i: (seen[i].event_count, None) for i in ticketed if i in seen
    }
    untold: dict[str, Incident] = {}  # repeats waiting for their minute
    wake = _Wake()
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
    )

    def health(state: str, detail: str) -> None:
        if deps.health is not None:
            deps.health.set(
                "ticket_trail", "ok" if state == "ok" else "degraded", detail, at=clock.now()
            )

    def ops_for(seq: int, incident: Incident, now: datetime) -> list[TrailOp]:
        iid = incident.incident_id
        before = seen.get(iid)
        if incident.status == "resolved":
            seen.pop(iid, None)
        else:
            seen[iid] = incident
        if iid not in ticketed:
            if not opens(before, incident, options.channels):
                return []
            ticketed.add(iid)
            noted[iid] = (incident.event_count, None)
            return [
                TrailOp(
                    op_id=op_id(iid, "open", seq, 0),
                    incident=incident,
                    kind="open",
                    text="",
                    planned_at=now,
                )
            ]
        if before is None:
            return []
        notes = steps_between(before, incident)
        resolved = incident.status == "resolved"
        told, last = noted.get(iid, (before.event_count, None))
        if incident.event_count > told:
            if resolved or last is None or now - last >= every:
                notes.insert(0, repeat_note(incident, told))
                noted[iid] = (incident.event_count, now)
                untold.pop(iid, None)
            else:
                untold[iid] = incident
        ops = [
            TrailOp(
                op_id=op_id(iid, "note", seq, n),
                incident=incident,
                kind="note",
                text=text,
                planned_at=now,
            )
            for n, text in enumerate(notes)
        ]
        if resolved:
            ops.append(
                TrailOp(
                    op_id=op_id(iid, "close", seq, len(notes)),
                    incident=incident,
                    kind="close",
                    text="",
                    planned_at=now,
                )
            )
            noted.pop(iid, None)
            untold.pop(iid, None)
        return ops

    def repeats_due(now: datetime, seq: int) -> list[TrailOp]:
        ops = []
        for iid, incident in list(untold.items()):
            told, last = noted.get(iid, (incident.event_count, None))
            if last is not None and now - last < every:
                continue
            ops.append(
                TrailOp(
                    op_id=op_id(iid, "repeat", seq, 500),
                    incident=incident,
                    kind="note",
                    text=repeat_note(incident, told),
                    planned_at=now,
                )
            )
            noted[iid] = (incident.event_count, now)
            del untold[iid]
        return ops

    def next_repeat() -> float:
        """Seconds until the next coalesced repeat falls due (inf: none waits)."""
        dues = [
            (last + every - clock.now()).total_seconds()
            for iid in untold
            if (last := noted.get(iid, (0, None))[1]) is not None
        ]
        return max(0.0, min(dues, default=float("inf")))

    async def tail() -> None:
        nonlocal cursor
        while True:
            batch = await store.read(partial(tables.snapshots_after, seq=cursor))
            now = clock.now()
            ops = [op for seq, incident in batch for op in ops_for(seq, incident, now)]
            upto = batch[-1][0] if batch else cursor
            ops += repeats_due(now, upto)
            if batch or ops:
                await store.write(partial(tables.plan, ops=ops, upto=upto))
                cursor = upto
            if ops:
                queue.extend(ops)
                wake.set()
            if len(batch) < 500:
                await trio.sleep(min(deps.poll_every_s, next_repeat()))

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
            if conversation_id is not None:
                return None
            if attempt > 1 or op.planned_at < started_at:
                found = await client.find(iid)
                if found is not None:
                    logger.info(
                        "freescout_conversation_found",
                        incident_id=iid,
                        conversation_id=found.conversation_id,
                        why="an earlier attempt had opened it; not opened again",
                    )
                    return found.conversation_id, found.number
            slack, slack_pending = await permalinks.of(store, iid)
            while slack is None and slack_pending and clock.now() < op.planned_at + slack_wait:
                await trio.sleep(SLACK_POLL_S)  # its link belongs in the opening
                slack, slack_pending = await permalinks.of(store, iid)
            console = f"{settings.public_url}/console/incidents/{iid}"
            text = opening_text(op.incident, slack_link=slack, console_link=console)
            opened = await client.create(conversation_body(op.incident, deps.link, options, text))
            return opened.conversation_id, opened.number
        if conversation_id is None:
            raise PermanentDeliveryError("no conversation: its opening was refused or died")
        if op.kind == "note":
            await client.add_note(conversation_id, note_body(op.text, options))
        else:
            await client.close(conversation_id, close_body(options))
        return None

    async def send(op: TrailOp) -> None:
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
            logger.info(
                "freescout_"
                + {"open": "conversation_opened", "note": "note_added"}.get(
                    op.kind, "conversation_closed"
                ),
                op_id=op.op_id,
                incident_id=iid,
                conversation_id=opened[0] if opened else conversations.get(iid),
                attempts=attempts,
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
