"""The history actor: the only writer of the journal and of the DuckDB history.

Group commit: it takes every message waiting in its inbox (up to ``MAX_BATCH``), turns
them into rows, appends them as one frame to the write-ahead journal (one fsync), and
only then answers ingest (the 202) and hands the planned deliveries to the delivery
actor. While one fsync is in its worker thread the next batch gathers in the inbox, so
under load many requests share one commit. A second task of this actor materialises
journalled rows into the DuckDB tables once ``materialise_bytes`` of frames wait for it
or ``materialise_wait_s`` after the last time, looking every ``materialise_every_s``
(DuckDB commits cost milliseconds of CPU each, so they are batched far larger than the
fsyncs). The frames waiting for it are held in memory, as journalled (msgpack), up to
``backlog_bytes``; past that, while DuckDB is behind, they wait in the journal files and
are read back from there (state/history/backlog.py).

Postgres durability (``durable``, for a data directory that does not survive a crash):
a commit also hands its Postgres changes (incident snapshots, outbox rows, closings,
verifications, tenant changes) to the mirror actor *before* the fsync starts and, if
signals wait for their 202, a :class:`ConfirmDurable` after them; the mirror commits
everything it holds up to there in one transaction while the fsync runs (its own
connection, its own ``CapacityLimiter(1)``). Only when both the fsync and that
transaction are done do the signals get their 202, sent by whichever finishes last in
the turn it finishes (this task after its fsync, or the mirror's task through the
:class:`_Confirmation` it answers); if Postgres did not confirm (down,
or no answer within ``durable_wait_s``) they get ``Accepted.not_durable`` and the hook
answers 503 with Retry-After: the signal is journalled here and routed anyway, so a
sender's retry may be a duplicate, never a loss. While one batch waits on Postgres
the next is journalled (its changes sent to the mirror, which gathers them for its next
transaction) and the one after gathers in the inbox, so one Postgres transaction serves
many requests; answers and deliveries follow in commit order.

Why this is correct across a crash at any point, on a fresh data directory: a 202 is
sent only after Postgres committed the signal's incident snapshot and outbox rows, and
every change sent before them (the mirror writes in order), so rehydration restores the
incident and re-queues every delivery not yet closed in Postgres; a delivery closed
locally but not yet in Postgres is delivered again (at-least-once, never lost). A crash
before both commits loses only signals that never got a 202. Rows Postgres committed
but the journal did not (a crash between the two) are deliveries of signals that got no
202; a fresh dyno delivers them too, which is the same at-least-once.

On start it re-queues every outbox row still pending (a crash or a drain left it).
Edges out of history go only to the delivery actor, whose dispatcher never blocks, so
the back edge (delivery results into this inbox) cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar, assert_never

import duckdb
import msgspec
import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.messages import (
    Accepted,
    AnomaliesFlagged,
    AnomalyNoted,
    AuditRecorded,
    ConfirmDurable,
    Deliver,
    DeliveryClosed,
    DeliveryFinished,
    DeliveryPlanned,
    DrillReceiptRecorded,
    FlushHistory,
    HandshakeRecorded,
    HistoryMessage,
    IncidentAction,
    IncidentRecorded,
    IncidentSnapshotted,
    JournalSignal,
    JournalSignals,
    MirrorMessage,
    PlanDeliveries,
    Reply,
    SuppressionRecorded,
    TenantRecorded,
    VerificationRecorded,
)
from eyetok.metrics import METRICS, observe_history
from state.history import queries
from state.history.backlog import LIMIT_BYTES, Backlog
from state.history.journal import (
    AnomalyNoteRow,
    AnomalyRow,
    Appends,
    AuditRow,
    DeliveryRow,
    DrillReceiptRow,
    HandshakeRow,
    OutcomeRow,
    SignalRow,
    SnapshotRow,
    SuppressionRow,
    TenantConfigRow,
    TenantTokenRow,
    VerificationRow,
    delivery_row,
    handshake_row,
    snapshot_row,
    suppression_row,
    tenant_config_row,
    tenant_token_row,
    verification_row,
)
from state.history.store import HistoryStore
from state.history.wal import Journal, Position

MAX_BATCH = 4096
# Journalled batches handed over while an older one still waits for Postgres: none. The
# journal writes one batch ahead of the one Postgres confirms, no further: running
# further ahead only made its batches small (more commits, more CPU per request).
SETTLE_QUEUE = 0

_T = TypeVar("_T")

# A materialisation is a DuckDB transaction: BEGIN, one appender flush per table, the
# wal_applied row, COMMIT, the buffer give-back; about 19 ms of CPU on a loaded 2-core
# machine whatever its size, against about 70 us per signal (the rows of a webhook). Every
# 0.25 s, at 65 webhooks/s, that fixed cost was most of the CPU of the history's thread.
# So the actor looks every ``materialise_every_s`` and materialises once this much journal
# payload is held (at most a look's worth past it: bounded by bytes, whatever the rate),
# else once ``MATERIALISE_WAIT_S`` has passed since the last one (DuckDB at most that stale
# for readers that do not flush). A larger transaction holds more at once (its payloads,
# DuckDB's copies of its rows): 512 KiB or 1 s cut the history's threads' CPU per webhook
# by ~40 % at ~100 webhooks/s but raised the 5,000-webhook burst's peak RSS by ~2 MB
# (bench/ingest.py, 3 pairs each). 256 KiB is the payload of 50 webhooks (5.2 KB each), a
# quarter of a second's at 200 a second: above that rate the schedule is as before; below
# it a transaction gathers up to 0.5 s or 256 KiB (peak RSS within noise, 2 pairs).
MATERIALISE_BYTES = 256 * 1024
MATERIALISE_WAIT_S = 0.5

_encode = msgspec.json.Encoder().encode


class _Confirmation(Reply[bool]):
    """The mirror's answer to a :class:`ConfirmDurable`. When Postgres committed, it also
    calls ``on_landed`` (in the mirror's task, synchronously): the history then answers,
    at once, every batch now both fsynced and committed, rather than a turn of the
    event loop later when its settling task wakes (under load a turn is milliseconds)."""

    __slots__ = ("_on_landed", "landed")

    def __init__(self, on_landed: Callable[[], None]) -> None:
        super().__init__()
        self._on_landed = on_landed
        self.landed = False

    def send(self, value: bool) -> None:
        if self.landed:
            return
        super().send(value)
        if value:
            self.landed = True
            self._on_landed()


@dataclass(eq=False)
class _Journalled:
    """A journalled batch; in postgres durability, with the mirror's confirmation its
    signals wait for (None: nothing waits), the trio time to stop waiting, and whether
    its waiters got their answers already."""

    batch: list[HistoryMessage]
    confirmed: _Confirmation | None
    deadline: float
    answered: bool = False

    @property
    def ready(self) -> bool:
        """Journalled (it is, being here) and committed in Postgres, or nothing waits."""
        return self.confirmed is None or self.confirmed.landed

    async def durable(self, wait_s: float) -> str | None:
        """None once Postgres confirmed (or nothing waits), else why not."""
        if self.confirmed is None:
            return None
        with trio.move_on_at(self.deadline):
            if await self.confirmed.wait():
                return None
            return "postgres is unreachable"
        return f"postgres did not confirm within {wait_s:g}s"


@dataclass(frozen=True)
class HistoryDeps:
    store: HistoryStore
    journal: Journal
    materialise_every_s: float = 0.25  # how often it looks whether to materialise
    materialise_bytes: int = MATERIALISE_BYTES  # held: materialise at the next look
    materialise_wait_s: float = MATERIALISE_WAIT_S  # else at the first look this long after
    mirrored: bool = False  # with DATABASE_URL: every commit is also sent to the mirror
    durable: bool = False  # postgres durability: a 202 waits for the mirror's commit too
    durable_wait_s: float = 5.0  # the longest a commit waits for Postgres to confirm
    backlog_bytes: int = LIMIT_BYTES  # frames held in memory for DuckDB, at most


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """One group commit in the journal: its rows, table by table."""

    signals: list[SignalRow] = msgspec.field(default_factory=list)
    snapshots: list[SnapshotRow] = msgspec.field(default_factory=list)
    deliveries: list[DeliveryRow] = msgspec.field(default_factory=list)
    outcomes: list[OutcomeRow] = msgspec.field(default_factory=list)
    audits: list[AuditRow] = msgspec.field(default_factory=list)
    verifications: list[VerificationRow] = msgspec.field(default_factory=list)
    drill_receipts: list[DrillReceiptRow] = msgspec.field(default_factory=list)
    suppressions: list[SuppressionRow] = msgspec.field(default_factory=list)
    anomalies: list[AnomalyRow] = msgspec.field(default_factory=list)
    anomaly_notes: list[AnomalyNoteRow] = msgspec.field(default_factory=list)
    tenant_tokens: list[TenantTokenRow] = msgspec.field(default_factory=list)
    tenant_config: list[TenantConfigRow] = msgspec.field(default_factory=list)
    handshakes: list[HandshakeRow] = msgspec.field(default_factory=list)

    def rows(self) -> list[msgspec.Struct]:
        return [
            *self.signals,
            *self.snapshots,
            *self.deliveries,
            *self.outcomes,
            *self.audits,
            *self.verifications,
            *self.drill_receipts,
            *self.suppressions,
            *self.anomalies,
            *self.anomaly_notes,
            *self.tenant_tokens,
            *self.tenant_config,
            *self.handshakes,
        ]


def _frame_of(rows: list[msgspec.Struct]) -> Frame:
    frame = Frame()
    _file_rows(frame, rows)
    return frame


def _file_rows(frame: Frame, rows: list[msgspec.Struct]) -> None:
    """Append ``rows`` to ``frame``'s list of their table, in order."""
    for row in rows:
        match row:
            case SignalRow():
                frame.signals.append(row)
            case SnapshotRow():
                frame.snapshots.append(row)
            case DeliveryRow():
                frame.deliveries.append(row)
            case OutcomeRow():
                frame.outcomes.append(row)
            case AuditRow():
                frame.audits.append(row)
            case VerificationRow():
                frame.verifications.append(row)
            case DrillReceiptRow():
                frame.drill_receipts.append(row)
            case SuppressionRow():
                frame.suppressions.append(row)
            case AnomalyRow():
                frame.anomalies.append(row)
            case AnomalyNoteRow():
                frame.anomaly_notes.append(row)
            case TenantTokenRow():
                frame.tenant_tokens.append(row)
            case TenantConfigRow():
                frame.tenant_config.append(row)
            case HandshakeRow():
                frame.handshakes.append(row)


def _tables_of(frames: list[Frame]) -> list[list[msgspec.Struct]]:
    """The rows of ``frames`` table by table (in each, frame order then row order): what
    :func:`append_tables` inserts, one statement per table."""
    tables: list[list[msgspec.Struct]] = []
    for name in Frame.__struct_fields__:
        rows: list[msgspec.Struct] = []
        for frame in frames:
            rows.extend(getattr(frame, name))
        if rows:
            tables.append(rows)
    return tables


_TABLE_FIELDS = Frame.__struct_fields__
_frame_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(Frame)


def _file_signal(frame: Frame, message: JournalSignal, now: datetime, seq: int) -> None:
    """The rows of one decided signal, straight into ``frame``'s lists: its signal row, its
    incident's snapshot (not a second copy in the signal row), the audit row of an
    audit-only signal, its outbox rows."""
    s, r, action, inc = message.signal, message.routing, message.action, message.incident
    # positional, in SignalRow's field order: a 19-field struct built by keyword cost about
    # 2.9 us of CPU, by position 0.5 (msgspec, a batch hook's hundred signals each); str()
    # of a StrEnum is its value, without the enum's ``value`` property
    frame.signals.append(
        SignalRow(
            s.signal_id,
            s.tenant,
            s.source,
            s.resource,
            s.action,
            str(s.kind),
            s.dedup_key,
            s.title,
            s.level,
            s.received_at,
            now,  # journalled_at
            str(r.severity),
            r.rule,
            str(r.sev_channel) if r.sev_channel else None,
            r.business_hours,
            str(action),  # incident_action
            inc.incident_id if inc else None,
            s.cluster_key,
            _encode(s).decode(),  # signal_json
        )
    )
    if inc is not None:
        frame.snapshots.append(snapshot_row(inc, recorded_at=now, seq=seq))
    if action is IncidentAction.AUDIT:
        frame.audits.append(
            AuditRow(  # logged_at, tenant, event, detail, incident_id, signal_id
                now,
                s.tenant,
                "signal_audit_only",
                f"{s.resource}/{s.action} level={s.level} rule={r.rule}: {s.title}",
                None,
                s.signal_id,
            )
        )
    if message.deliveries:
        frame.deliveries.extend(delivery_row(d, origin=s.signal_id) for d in message.deliveries)


def _rows_for(message: HistoryMessage, now: datetime, seq: int) -> list[msgspec.Struct]:
    """The rows of one message (a chunk of signals is taken apart by :func:`_flat` first,
    so that each signal's snapshot gets its own sequence number)."""
    match message:
        case JournalSignals(items=items):
            return [row for i, item in enumerate(items) for row in _rows_for(item, now, seq + i)]
        case JournalSignal():
            frame = Frame()
            _file_signal(frame, message, now, seq)
            return frame.rows()
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
            return [delivery_row(d, origin=origin) for d in plan]
        case IncidentRecorded(incident=inc):
            return [snapshot_row(inc, recorded_at=now, seq=seq)]
        case FlushHistory():
            return []
        case VerificationRecorded(verification=v):
            return [verification_row(v, recorded_at=now)]
        case HandshakeRecorded(event=event, handshake=h, at=at, reason=reason):
            return [handshake_row(event, h, recorded_at=at, reason=reason)]
        case SuppressionRecorded():
            return [suppression_row(message)]
        case TenantRecorded(tokens=tokens, entries=entries):
            return [*map(tenant_token_row, tokens), *map(tenant_config_row, entries)]
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
        case DrillReceiptRecorded():
            return [
                DrillReceiptRow(
                    receipt_id=message.receipt_id,
                    scenario=message.scenario,
                    tenant=message.tenant,
                    started_at=message.started_at,
                    finished_at=message.finished_at,
                    verdict=message.verdict,
                    failed_steps=", ".join(message.failed_steps),
                    daemon_version=message.daemon_version,
                    recorded_at=now,
                    receipt_json=message.receipt_json,
                )
            ]
        case AnomaliesFlagged(anomalies=found, at=at):
            return [
                AnomalyRow(
                    anomaly_id=a.anomaly_id,
                    kind=a.kind,
                    tenant=a.tenant,
                    subject=a.subject,
                    detail=a.detail,
                    occurred_at=a.occurred_at,
                    flagged_at=at,
                )
                for a in found
            ]
        case AnomalyNoted():
            return [
                AnomalyNoteRow(
                    anomaly_id=message.anomaly_id,
                    verdict=message.verdict,
                    note=message.note,
                    noted_by=message.by,
                    noted_at=message.at,
                )
            ]
        case _:
            assert_never(message)


async def run_history(
    deps: HistoryDeps,
    inbox: trio.MemoryReceiveChannel[HistoryMessage],
    to_delivery: trio.MemorySendChannel[Deliver],
    to_mirror: trio.MemorySendChannel[MirrorMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("history")
    store, journal = deps.store, deps.journal
    applied = await store.read(queries.wal_applied)
    # Journalled, not yet in DuckDB: at start, whatever the journal holds past the applied
    # position (read back from its files below); then held in memory up to a bound.
    # The frames as journalled (their payloads: a quarter smaller than decoded, and one
    # object each), decoded one at a time by the materialisation in its worker thread.
    backlog = Backlog[bytes](
        journal.directory, applied, limit_bytes=deps.backlog_bytes, decode=bytes
    )
    journalled_to = journal.position
    seq = 0  # the last snapshot's, read once the replay is in DuckDB
    materialising = trio.Lock()  # one materialisation at a time: each takes the oldest
    fsync_limiter = trio.CapacityLimiter(1)

    def take(first: HistoryMessage | None) -> list[HistoryMessage]:
        batch: list[HistoryMessage] = [] if first is None else [first]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(inbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def commit(batch: list[HistoryMessage]) -> _Confirmation | None:
        """Journal ``batch``; in postgres durability also hand its changes to the mirror
        first (its Postgres transaction runs while the fsync does). The mirror's
        confirmation to wait for before the 202s, if any signal waits."""
        nonlocal seq, journalled_to
        now = clock.now()
        frame = Frame()
        filed = False  # a row in the frame: FlushHistory alone writes none
        for message in _flat(batch):
            seq += 1
            if type(message) is JournalSignal:  # most of them: straight into the frame
                _file_signal(frame, message, now, seq)
                filed = True
            elif rows := _rows_for(message, now, seq):
                _file_rows(frame, rows)
                filed = True
        if not filed:
            return None
        payload = _frame_encoder.encode(frame)
        confirmed: _Confirmation | None = None
        if deps.durable:
            changes: list[MirrorMessage] = list(_mirrored(batch, now))
            if _waits_for_202(batch):
                confirmed = _Confirmation(answer_ready)
                changes.append(ConfirmDurable(reply=confirmed))
            # No schedule point between these and the fsync: the mirror runs as soon as
            # this task waits on the fsync's thread, and the fsync starts a turn sooner.
            await _send_all(to_mirror, changes)
        # The fsync runs to completion even if we are cancelled meanwhile (a worker
        # thread is never abandoned), so a drain never loses a batch it already took.
        started = trio.current_time()
        journalled_to = await trio.to_thread.run_sync(
            journal.append, payload, limiter=fsync_limiter
        )
        METRICS.journal_commit.observe(trio.current_time() - started)
        for message in batch:
            observe_history(message)
        held_bytes = backlog.held_bytes
        if backlog.add(payload, len(payload), journalled_to):
            logger.info(
                "history_backlog_spilled",
                held_bytes=held_bytes,
                limit_bytes=backlog.limit_bytes,
                frame_bytes=len(payload),
                why="DuckDB is behind the journal: this frame and the ones held wait in the "
                "journal files, not in memory, and are read back from there",
            )
        return confirmed

    async def settle(
        batch: list[HistoryMessage], not_durable: str | None, *, answered: bool = False
    ) -> None:
        """What follows a batch's commit: the answers (unless ``answered`` already), the
        deliveries, the flushes. No schedule point of its own while the channels have
        room: what follows it is a read of an inbox, one already."""
        if not_durable is not None:
            logger.warning("signals_not_durable", reason=not_durable, batch=len(batch))
        await _after_commit(batch, to_delivery, not_durable, answered=answered)
        if deps.mirrored and not deps.durable:
            await _mirror(batch, to_mirror, clock.now())
        flushes = [m for m in batch if isinstance(m, FlushHistory)]
        if flushes:
            await materialise()
            for flush in flushes:
                flush.reply.send(True)

    # Postgres durability: a journalled batch waits here, in commit order, for the
    # mirror's confirmation, while the next batch is journalled (and its Postgres
    # changes sent) already: a 202 still waits for both commits, but the journal no
    # longer idles through the Postgres round trip. Every batch passes through, with or
    # without a confirmation to wait for, so answers and deliveries keep commit order.
    to_settle, awaiting = trio.open_memory_channel[_Journalled](SETTLE_QUEUE)
    unsettled: list[_Journalled] = []  # handed over and not settled yet, oldest first

    def answer_ready() -> None:
        """Answer, in commit order, every batch at the head of ``unsettled`` that is both
        journalled and committed in Postgres. Called by whichever of the two finishes
        last for a batch (this task after its fsync; the mirror's task, through
        :class:`_Confirmation`, after its transaction), so the 202s go out in that
        same turn; :func:`settle_in_order` then sends the deliveries. A batch Postgres
        did not confirm (down, too slow) stops the walk: the settling task answers it
        (503), in order, and the ones after it."""
        for journalled in unsettled:
            if journalled.answered:
                continue
            if not journalled.ready:
                return
            journalled.answered = True
            _answer(journalled.batch)

    async def settle_in_order() -> None:
        async for journalled in awaiting:
            not_durable = await journalled.durable(deps.durable_wait_s)
            answered, journalled.answered = journalled.answered, True
            await settle(journalled.batch, not_durable, answered=answered)
            unsettled.remove(journalled)

    async def materialise() -> int:
        """Everything journalled so far into DuckDB (and what is journalled meanwhile, if
        it is held in memory), one transaction per bound's worth of frames; the rows."""
        rows = 0
        async with materialising:
            target = journalled_to
            while backlog.behind(target):
                now = clock.now()  # here: a trio-anchored clock cannot be read in a thread
                held = backlog.held()
                if held is not None:
                    payloads, upto = held
                    write = partial(_materialise, payloads=payloads, upto=upto, now=now)
                else:
                    write = partial(_read_back, backlog=backlog, upto=journalled_to, now=now)
                upto, written = await store.write(write)
                rows += written
                journal.forget_before(upto)
                spill = backlog.applied_to(upto, journalled_to)
                if spill is not None:
                    logger.info(
                        "history_backlog_caught_up",
                        frames=spill.frames,
                        payload_bytes=spill.payload_bytes,
                        why="DuckDB has every frame the spill left in the journal files",
                    )
        return rows

    async def materialise_periodically() -> None:
        last = trio.current_time()
        while True:
            await trio.sleep(deps.materialise_every_s)
            now = trio.current_time()
            if backlog.due(deps.materialise_bytes) or now - last >= deps.materialise_wait_s:
                last = now
                await materialise()

    # Whatever the journal holds past the applied position reaches DuckDB before any
    # actor rebuilds its state from it.
    if replayed := await materialise():
        logger.info("journal_replayed", rows=replayed, segment=backlog.applied.segment)
    # The replay is over even if no write ran (nothing to replay): frames journalled from
    # now on are held in memory
    backlog.replayed()
    seq = await store.read(queries.last_snapshot_seq)
    pending = await store.read(queries.pending_deliveries)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(materialise_periodically)
            task_status.started()
            if pending:
                logger.info("outbox_requeued", pending=len(pending))
            for deliver in pending:
                await to_delivery.send(deliver)
            if deps.durable:
                nursery.start_soon(settle_in_order)
            while True:
                batch = take(await inbox.receive())
                confirmed = await commit(batch)
                if not deps.durable:
                    await settle(batch, None)
                    continue
                journalled = _Journalled(
                    batch, confirmed, trio.current_time() + deps.durable_wait_s
                )
                unsettled.append(journalled)
                answer_ready()  # Postgres may have confirmed during the fsync
                await to_settle.send(journalled)
    finally:
        # Stopping (drain or restart): every batch journalled gets its answer (Postgres's
        # confirmation awaited, bounded); whatever already waits in the inbox is
        # journalled too, and everything journalled reaches DuckDB.
        with trio.CancelScope(shield=True):
            for journalled in unsettled:
                not_durable = await journalled.durable(deps.durable_wait_s)
                if not journalled.answered:
                    journalled.answered = True
                    _answer(journalled.batch, not_durable)
            leftover = take(None)
            if leftover:
                confirmed = await commit(leftover)
                last = _Journalled(leftover, confirmed, trio.current_time() + deps.durable_wait_s)
                _answer(leftover, await last.durable(deps.durable_wait_s))
                if deps.mirrored and not deps.durable:
                    with trio.move_on_after(1.0):
                        await _mirror(leftover, to_mirror, clock.now())
            await materialise()
            logger.info("history_flushed", journalled=len(leftover), position=journalled_to.offset)
            logger.info("history_held_at_stop", **await store.read(_duckdb_held))


def _duckdb_held(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """What DuckDB's buffer manager holds, in KiB by kind (``duckdb_memory()``: the table
    blocks it cached, the appends not yet checkpointed...)."""
    rows = con.execute(
        """SELECT lower(tag), memory_usage_bytes // 1024 FROM duckdb_memory()
           WHERE memory_usage_bytes > 0 ORDER BY tag"""
    ).fetchall()
    return {f"duckdb_{tag}_kib": int(kib) for tag, kib in rows}


def _materialise(
    con: duckdb.DuckDBPyConnection, *, payloads: list[bytes], upto: Position, now: datetime
) -> tuple[Position, int]:
    """Insert the rows of the frames journalled as ``payloads`` and record that the journal
    is applied up to ``upto`` (one transaction: the caller's); ``upto`` and the rows. The
    frames are decoded one at a time and each dropped once its rows are handed to the
    appenders: at most one is in memory decoded beside the payloads held for DuckDB."""
    appends = Appends(con)
    rows = 0
    for payload in payloads:
        frame = _frame_decoder.decode(payload)
        for name in _TABLE_FIELDS:
            table = getattr(frame, name)
            if table:
                appends.add(table)
                rows += len(table)
    appends.flush()
    con.execute("INSERT INTO wal_applied VALUES (?, ?, ?)", [upto.segment, upto.offset, now])
    return upto, rows


def _read_back(
    con: duckdb.DuckDBPyConnection, *, backlog: Backlog[bytes], upto: Position, now: datetime
) -> tuple[Position, int]:
    """The next frames the journal files hold past what DuckDB has (up to ``upto``, at most
    the backlog's bound) into DuckDB; where they end and their rows."""
    payloads, reached = backlog.read_back(upto)
    if not payloads:  # nothing left there (a start with nothing to replay)
        return reached, 0
    return _materialise(con, payloads=payloads, upto=reached, now=now)


def _accepted(message: JournalSignal, not_durable: str | None = None) -> Accepted:
    return Accepted(
        not_durable=not_durable,
        signal_id=message.signal.signal_id,
        incident_id=message.incident.incident_id if message.incident else None,
        severity=message.incident.severity if message.incident else message.routing.severity,
        sev_channel=(
            message.incident.sev_channel if message.incident else message.routing.sev_channel
        ),
        action=message.action,
        rule=message.routing.rule,
    )


def _flat(batch: list[HistoryMessage]) -> Iterator[HistoryMessage]:
    """The messages of a commit with every chunk of signals taken apart."""
    for message in batch:
        if isinstance(message, JournalSignals):
            yield from message.items
        else:
            yield message


def _waits_for_202(batch: list[HistoryMessage]) -> bool:
    """Whether a signal of ``batch`` waits for its answer (the hook's 202)."""
    return any(
        isinstance(message, JournalSignal | JournalSignals) and message.reply is not None
        for message in batch
    )


def _answer(batch: list[HistoryMessage], not_durable: str | None = None) -> None:
    """Answer everyone waiting on a message of this (committed) batch."""
    for message in batch:
        match message:
            case JournalSignal(reply=reply) if reply is not None:
                reply.send(_accepted(message, not_durable))
            case JournalSignals(items=items, reply=batch_reply) if batch_reply is not None:
                batch_reply.send(tuple(_accepted(item, not_durable) for item in items))
            case TenantRecorded(reply=done) if done is not None:
                done.send(True)
            case HandshakeRecorded(reply=done) if done is not None:
                done.send(True)
            case _:
                pass


async def _mirror(
    batch: list[HistoryMessage], to_mirror: trio.MemorySendChannel[MirrorMessage], now: datetime
) -> None:
    """What Postgres mirrors of a commit. The mirror never blocks its inbox on Postgres.
    No schedule point while the mirror's inbox has room (the caller's next is one)."""
    await _send_all(to_mirror, list(_mirrored(batch, now)))


def _mirrored(batch: list[HistoryMessage], now: datetime) -> Iterator[MirrorMessage]:
    for message in _flat(batch):
        match message:
            case JournalSignal(incident=incident, deliveries=plan):
                if incident is not None:
                    yield IncidentSnapshotted(incident=incident, recorded_at=now)
                for deliver in plan:
                    yield DeliveryPlanned(deliver=deliver)
            case PlanDeliveries(deliveries=plan):
                for deliver in plan:
                    yield DeliveryPlanned(deliver=deliver)
            case IncidentRecorded(incident=incident):
                yield IncidentSnapshotted(incident=incident, recorded_at=now)
            case DeliveryFinished():
                yield DeliveryClosed(finished=message)
            case VerificationRecorded():
                yield message
            case TenantRecorded() | HandshakeRecorded():
                yield msgspec.structs.replace(message, reply=None)
            case _:
                pass


async def _send_all(channel: trio.MemorySendChannel[_T], messages: list[_T]) -> None:
    """Send ``messages`` in order, waiting only when the channel is full: ``send`` is a
    schedule point per message, and a commit's dozens of them each waited a full turn of
    the run queue under load (the commit, its 202s and the next batch with them). No
    schedule point otherwise: every caller reads an inbox or waits on a thread next."""
    for message in messages:
        try:
            channel.send_nowait(message)
        except trio.WouldBlock:
            await channel.send(message)


async def _after_commit(
    batch: list[HistoryMessage],
    to_delivery: trio.MemorySendChannel[Deliver],
    not_durable: str | None = None,
    *,
    answered: bool = False,
) -> None:
    """The answers, then the deliveries: no schedule point while the delivery actor's
    inbox has room (the caller's next is one)."""
    if not answered:
        _answer(batch, not_durable)
    await _send_all(
        to_delivery,
        [
            deliver
            for message in _flat(batch)
            if isinstance(message, JournalSignal | PlanDeliveries)
            for deliver in message.deliveries
        ],
    )
