"""The history actor: the only writer of the DuckDB history, and the journal.

Group commit: it takes every message waiting in its inbox (up to ``MAX_BATCH``), writes
them in one transaction, and only then answers ingest (the 202) and hands the planned
deliveries to the delivery actor. While one commit is in its worker thread, the next
batch gathers in the inbox, so commits are a few milliseconds apart under load and
immediate when idle.

On start it re-queues every outbox row still pending (a crash or a drain left it).
Edges out of history go only to the delivery actor, whose dispatcher never blocks, so
the back edge (delivery results into this inbox) cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

import msgspec
import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.messages import (
    Accepted,
    AuditRecorded,
    Deliver,
    DeliveryFinished,
    HistoryMessage,
    IncidentAction,
    JournalSignal,
    PlanDeliveries,
)
from state.history import queries
from state.history.journal import (
    AuditRow,
    DeliveryRow,
    OutcomeRow,
    SignalRow,
    SnapshotRow,
    append_rows,
)
from state.history.store import HistoryStore

MAX_BATCH = 4096

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class HistoryDeps:
    store: HistoryStore


def _delivery_row(d: Deliver, origin: str) -> DeliveryRow:
    return DeliveryRow(
        delivery_id=d.delivery_id,
        signal_id=origin,
        tenant=d.tenant,
        incident_id=d.incident.incident_id,
        sink_id=d.destination.sink_id,
        sink_type=d.destination.sink_type,
        target=d.destination.target,
        action=d.action.value,
        planned_at=d.planned_at,
        received_at=d.received_at,
        deliver_json=_encode(d).decode(),
    )


def _rows_for(message: HistoryMessage, now: datetime, seq: int) -> list[msgspec.Struct]:
    match message:
        case JournalSignal(signal=s, routing=r, action=action, incident=inc, deliveries=plan):
            rows: list[msgspec.Struct] = [
                SignalRow(
                    signal_id=s.signal_id,
                    tenant=s.tenant,
                    source=s.source,
                    resource=s.resource,
                    action=s.action,
                    kind=s.kind.value,
                    dedup_key=s.dedup_key,
                    title=s.title,
                    level=s.level,
                    received_at=s.received_at,
                    journalled_at=now,
                    severity=r.severity.value,
                    rule=r.rule,
                    sev_channel=r.sev_channel.value if r.sev_channel else None,
                    business_hours=r.business_hours,
                    incident_action=action.value,
                    incident_id=inc.incident_id if inc else None,
                    cluster_key=s.cluster_key,
                    signal_json=_encode(s).decode(),
                    incident_json=_encode(inc).decode() if inc else None,
                )
            ]
            if inc is not None:
                rows.append(
                    SnapshotRow(
                        incident_id=inc.incident_id,
                        tenant=inc.tenant,
                        dedup_key=inc.dedup_key,
                        status=inc.status,
                        severity=inc.severity.value,
                        sev_channel=inc.sev_channel.value if inc.sev_channel else None,
                        rule=inc.rule,
                        title=inc.title,
                        opened_at=inc.opened_at,
                        last_seen_at=inc.last_seen_at,
                        resolved_at=inc.resolved_at,
                        event_count=inc.event_count,
                        recorded_at=now,
                        seq=seq,
                        snapshot_json=_encode(inc).decode(),
                    )
                )
            if action is IncidentAction.AUDIT:
                rows.append(
                    AuditRow(
                        logged_at=now,
                        tenant=s.tenant,
                        event="signal_audit_only",
                        detail=f"{s.resource}/{s.action} level={s.level} rule={r.rule}: {s.title}",
                        incident_id=None,
                        signal_id=s.signal_id,
                    )
                )
            rows.extend(_delivery_row(d, s.signal_id) for d in plan)
            return rows
        case DeliveryFinished():
            return [
                OutcomeRow(
                    delivery_id=message.delivery_id,
                    outcome=message.outcome,
                    attempts=message.attempts,
                    latency_ms=message.latency_ms,
                    finished_at=message.finished_at,
                    detail=message.detail,
                    external_ref=message.external_ref,
                    thread_ref=message.thread_ref,
                )
            ]
        case PlanDeliveries(origin=origin, deliveries=plan):
            return [_delivery_row(d, origin) for d in plan]
        case AuditRecorded():
            return [
                AuditRow(
                    logged_at=message.at,
                    tenant=message.tenant,
                    event=message.event,
                    detail=message.detail,
                    incident_id=message.incident_id,
                    signal_id=message.signal_id,
                )
            ]
        case _:
            assert_never(message)


async def run_history(
    deps: HistoryDeps,
    inbox: trio.MemoryReceiveChannel[HistoryMessage],
    to_delivery: trio.MemorySendChannel[Deliver],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("history")
    store = deps.store
    seq = await store.read(queries.last_snapshot_seq)
    pending = await store.read(queries.pending_deliveries)
    task_status.started()
    if pending:
        logger.info("outbox_requeued", pending=len(pending))
    for deliver in pending:
        await to_delivery.send(deliver)

    def take(first: HistoryMessage | None) -> list[HistoryMessage]:
        batch: list[HistoryMessage] = [] if first is None else [first]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(inbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def commit(batch: list[HistoryMessage]) -> None:
        nonlocal seq
        now = clock.now()
        rows: list[msgspec.Struct] = []
        for message in batch:
            seq += 1
            rows.extend(_rows_for(message, now, seq))
        # The commit runs to completion even if we are cancelled meanwhile (a worker
        # thread is never abandoned), so a drain never loses a batch it already took.
        await store.write(lambda con: append_rows(con, rows))

    try:
        while True:
            batch = take(await inbox.receive())
            await commit(batch)
            await _after_commit(batch, to_delivery)
    finally:
        # Stopping (drain or restart): whatever already waits in the inbox is written.
        with trio.CancelScope(shield=True):
            leftover = take(None)
            if leftover:
                await commit(leftover)
                for message in leftover:
                    if isinstance(message, JournalSignal) and message.reply is not None:
                        message.reply.send(_accepted(message))
                logger.info("history_flushed", messages=len(leftover))


def _accepted(message: JournalSignal) -> Accepted:
    return Accepted(
        signal_id=message.signal.signal_id,
        incident_id=message.incident.incident_id if message.incident else None,
        severity=message.incident.severity if message.incident else message.routing.severity,
        sev_channel=(
            message.incident.sev_channel if message.incident else message.routing.sev_channel
        ),
        action=message.action,
        rule=message.routing.rule,
    )


async def _after_commit(
    batch: list[HistoryMessage], to_delivery: trio.MemorySendChannel[Deliver]
) -> None:
    for message in batch:
        if isinstance(message, JournalSignal) and message.reply is not None:
            message.reply.send(_accepted(message))
    for message in batch:
        if isinstance(message, JournalSignal | PlanDeliveries):
            for deliver in message.deliveries:
                await to_delivery.send(deliver)
