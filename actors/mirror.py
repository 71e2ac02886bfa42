"""The mirror actor: incident state, the pending outbox, the sink verification log and
the handshakes under way, written behind to Postgres.

The receive loop only folds messages into :class:`MirrorBuffer` (it never waits on
Postgres and never drops a change): the newest snapshot of an incident replaces older
ones, a delivery planned and closed before it was written cancels out, the first Slack
thread of an incident is kept; a verification-log row is appended, never coalesced (the
log is append-only; a restart restores each sink's latest row). A flusher task in the
actor's own nursery writes what has gathered as one batch (one transaction)
``flush_interval_s`` after the first change arrives, or at once when ``flush_at``
changes wait.

While Postgres is down the buffer keeps growing (coalesced; a failed batch is merged
back, newer changes winning), the flusher retries with exponential backoff up to
``backoff_max_s`` and the health board says ``degraded`` with how much is buffered; the
first write that succeeds catches up in one batch. Routing never waits on any of this.

On start the migrations run (bounded by ``start_timeout_s``); if Postgres is down the
actor starts anyway, degraded, and migrates when it comes back. On cancellation (drain)
it writes what it holds in one last attempt, shielded and bounded by ``drain_flush_s``.

Postgres durability (``EYETOK_DURABILITY=postgres``): after each group commit whose
signals wait for their 202, the history sends its changes and then
:class:`ConfirmDurable`. The flusher writes at once (no ``flush_interval_s`` wait)
everything buffered up to there, in one transaction, and answers every confirmation
that transaction covered: True once it committed, False if it failed. While that write
is in flight, further confirmations gather and share the next transaction (group
commit, pipelined: one round trip per batch of waiting requests). While Postgres is
down a confirmation is answered False at once (its changes stay buffered, written when
Postgres is back) and the health board's ``degraded`` closes the hooks (503).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.errors import StateError
from eyetok.health import HealthBoard
from eyetok.messages import (
    ConfirmDurable,
    Deliver,
    DeliveryClosed,
    DeliveryPlanned,
    HandshakeRecorded,
    IncidentSnapshotted,
    MirrorChange,
    MirrorMessage,
    Reply,
    TenantConfigEntry,
    TenantRecorded,
    TenantToken,
    VerificationRecorded,
)
from eyetok.metrics import METRICS
from eyetok.verification import Verification
from state.mirror.writer import MirrorBatch, MirrorWriter, SlackThread, slack_thread_of

COMPONENT = "mirror"


def _one_thread() -> trio.CapacityLimiter:
    return trio.CapacityLimiter(1)


@dataclass(frozen=True)
class MirrorDeps:
    writer: MirrorWriter
    status: HealthBoard
    flush_interval_s: float = 0.2
    flush_at: int = 500  # changes waiting that trigger a write before the interval ends
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    start_timeout_s: float = 5.0
    drain_flush_s: float = 3.0
    durable: bool = False  # postgres durability: ingest waits on ConfirmDurable answers
    # The writer's connection is used by one thread at a time, across restarts too.
    limiter: trio.CapacityLimiter = field(default_factory=_one_thread)


class MirrorBuffer:
    """Changes not yet (surely) written, coalesced. Owned by one mirror incarnation."""

    def __init__(self) -> None:
        self._snapshots: dict[str, IncidentSnapshotted] = {}
        # delivery id -> (the row, whether a write of it was already attempted)
        self._planned: dict[str, tuple[Deliver, bool]] = {}
        self._closed: dict[str, str] = {}  # delivery id -> its tenant
        self._threads: dict[str, SlackThread] = {}
        self._verifications: list[Verification] = []  # in the order recorded
        self._tenant_entries: list[TenantConfigEntry] = []  # appended, never coalesced
        self._tenant_tokens: list[TenantToken] = []
        self._handshakes: list[HandshakeRecorded] = []  # opened / closed, in order

    def __len__(self) -> int:
        return (
            len(self._handshakes)
            + len(self._snapshots)
            + len(self._planned)
            + len(self._closed)
            + len(self._threads)
            + len(self._verifications)
            + len(self._tenant_entries)
            + len(self._tenant_tokens)
        )

    def add(self, message: MirrorChange) -> None:
        match message:
            case IncidentSnapshotted(incident=incident, recorded_at=at):
                older = self._snapshots.get(incident.incident_id)
                if older is None or at >= older.recorded_at:  # same stamp: the later one
                    self._snapshots[incident.incident_id] = message
            case DeliveryPlanned(deliver=deliver):
                self._planned[deliver.delivery_id] = (deliver, False)
            case DeliveryClosed(finished=finished):
                planned = self._planned.pop(finished.delivery_id, None)
                if planned is None or planned[1]:
                    # written, or maybe written by a batch that failed: delete it
                    self._closed[finished.delivery_id] = finished.tenant
                thread = slack_thread_of(finished)
                if thread is not None:
                    self._threads.setdefault(thread.incident_id, thread)
            case VerificationRecorded(verification=verification):
                self._verifications.append(verification)
            case TenantRecorded(tokens=tokens, entries=entries):
                self._tenant_tokens.extend(tokens)
                self._tenant_entries.extend(entries)
            case HandshakeRecorded():
                self._handshakes.append(message)
            case _:
                assert_never(message)

    def take(self) -> MirrorBatch:
        """Everything buffered, as one batch; the buffer is left empty."""
        batch = MirrorBatch(
            snapshots=tuple(self._snapshots.values()),
            planned=tuple(d for d, _ in self._planned.values()),
            closed=tuple(self._closed),
            threads=tuple(self._threads.values()),
            verifications=tuple(self._verifications),
            closed_tenants=dict(self._closed),
            tenant_entries=tuple(self._tenant_entries),
            tenant_tokens=tuple(self._tenant_tokens),
            handshakes=tuple(self._handshakes),
        )
        self._handshakes = []
        self._snapshots, self._planned, self._closed, self._threads = {}, {}, {}, {}
        self._verifications, self._tenant_entries, self._tenant_tokens = [], [], []
        return batch

    def restore(self, batch: MirrorBatch) -> None:
        """Merge back a batch that was not (surely) written; what arrived since wins."""
        for snapshot in batch.snapshots:
            newer = self._snapshots.get(snapshot.incident.incident_id)
            if newer is None or snapshot.recorded_at > newer.recorded_at:
                self._snapshots[snapshot.incident.incident_id] = snapshot
        for deliver in batch.planned:
            if deliver.delivery_id not in self._closed:  # closed since: the delete stays
                self._planned[deliver.delivery_id] = (deliver, True)
        for delivery_id in batch.closed:
            self._closed[delivery_id] = batch.closed_tenants.get(delivery_id, "")
        for thread in batch.threads:
            self._threads[thread.incident_id] = thread  # it came first: it wins
        # every row again (re-inserting one that landed is harmless), before the newer ones
        self._verifications[:0] = batch.verifications
        self._tenant_entries[:0] = batch.tenant_entries
        self._tenant_tokens[:0] = batch.tenant_tokens
        self._handshakes[:0] = batch.handshakes  # insert/delete again: idempotent, in order


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _waiting_after(
    first: MirrorMessage | None, inbox: trio.MemoryReceiveChannel[MirrorMessage]
) -> Iterator[MirrorMessage]:
    """``first``, then every message already in ``inbox`` (taken as it is consumed)."""
    if first is not None:
        yield first
    while True:
        try:
            yield inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return


class _Kick:
    """Wakes the flusher; it re-checks its condition after every wake-up."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._event = trio.Event()
            await self._event.wait()


async def run_mirror(
    deps: MirrorDeps,
    inbox: trio.MemoryReceiveChannel[MirrorMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("mirror")
    board = deps.status
    buffer = MirrorBuffer()
    kick = _Kick()
    down_since: datetime | None = None
    waiting: list[Reply[bool]] = []  # confirmations whose changes are in ``buffer``

    def degraded(error: str) -> None:
        nonlocal down_since
        now = clock.now()
        first = down_since is None
        if down_since is None:
            down_since = now
        detail = (
            f"postgres unreachable since {down_since.isoformat(timespec='seconds')}; "
            f"{len(buffer)} changes buffered; last error: {error}"
        )
        if deps.durable:
            detail += "; postgres durability: hooks answer 503 until Postgres is back"
        board.set(COMPONENT, "degraded", detail, at=now)
        if first:
            logger.warning("mirror_degraded", error=error, buffered=len(buffer))

    def healthy(written: int) -> None:
        nonlocal down_since
        now = clock.now()
        if down_since is not None:
            logger.info(
                "mirror_caught_up",
                written=written,
                down_s=round((now - down_since).total_seconds(), 3),
            )
            down_since = None
        current = board.get(COMPONENT)
        if current is None or current.state != "ok":
            board.set(COMPONENT, "ok", "writing to postgres", at=now)

    async def write(batch: MirrorBatch) -> None:
        # On the event loop while the connection is up (no thread hop: see
        # MirrorWriter.apply_on_loop); in a worker thread to connect, retry or fall back.
        # The limiter taken without a schedule point when it is free (``async with``
        # yields a turn of the event loop even then, and a 202 waits for this write).
        try:
            deps.limiter.acquire_nowait()
        except trio.WouldBlock:
            await deps.limiter.acquire()
        try:
            if await deps.writer.apply_on_loop(batch):
                return
        finally:
            deps.limiter.release()
        await trio.to_thread.run_sync(
            deps.writer.apply, batch, limiter=deps.limiter, abandon_on_cancel=True
        )

    def answer(confirmations: list[Reply[bool]], landed: bool) -> None:
        for confirmation in confirmations:
            confirmation.send(landed)

    async def flusher() -> None:
        backoff = deps.backoff_initial_s
        while True:
            if down_since is None:
                await kick.until(lambda: len(buffer) > 0 or bool(waiting))
                if not waiting:
                    with trio.move_on_after(deps.flush_interval_s):
                        await kick.until(lambda: len(buffer) >= deps.flush_at or bool(waiting))
            # Degraded: every retry writes all that waits; an empty batch is a probe
            # (connect and migrate), so recovery is noticed even when nothing changes.
            batch, covered = buffer.take(), waiting.copy()
            waiting.clear()
            try:
                await write(batch)
            except StateError as exc:
                buffer.restore(batch)
                degraded(_one_line(exc))
                answer(covered, False)
                answer(waiting, False)  # arrived during the failed write: no wait for backoff
                waiting.clear()
                await trio.sleep(backoff)
                backoff = min(backoff * 2, deps.backoff_max_s)
                continue
            except BaseException:
                buffer.restore(batch)  # cancelled mid-write: the last flush tries again
                waiting[:0] = covered  # the last flush answers them
                raise
            backoff = deps.backoff_initial_s
            METRICS.mirror_buffered.set(len(buffer))
            healthy(len(batch))
            answer(covered, True)

    board.set(COMPONENT, "starting", "applying migrations", at=clock.now())
    with trio.move_on_after(deps.start_timeout_s) as start:
        try:
            await trio.to_thread.run_sync(
                deps.writer.migrate, limiter=deps.limiter, abandon_on_cancel=True
            )
            healthy(0)
        except StateError as exc:
            degraded(_one_line(exc))
    if start.cancelled_caught:
        degraded(f"no answer within {deps.start_timeout_s:g}s")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flusher)
            task_status.started()
            async for first in inbox:
                # Everything already waiting, without a schedule point per message: a
                # commit's changes and its ConfirmDurable arrive together, and the write
                # they wait for starts after the last of them.
                for message in _waiting_after(first, inbox):
                    if isinstance(message, ConfirmDurable):
                        if down_since is not None:
                            message.reply.send(False)  # buffered; written when Postgres is back
                        else:
                            waiting.append(message.reply)
                            kick.set()
                        continue
                    before = len(buffer)
                    buffer.add(message)
                    size = len(buffer)
                    METRICS.mirror_buffered.set(size)
                    if size >= deps.flush_at or (before == 0 and size > 0):
                        kick.set()
            nursery.cancel_scope.cancel()  # inbox closed: the last flush below writes it
    finally:
        # Drain (or a crash): write what is held, once, shielded and bounded.
        with trio.CancelScope(shield=True) as last:
            last.deadline = trio.current_time() + deps.drain_flush_s
            for message in _waiting_after(None, inbox):
                if isinstance(message, ConfirmDurable):
                    waiting.append(message.reply)
                else:
                    buffer.add(message)
            held, covered = len(buffer), waiting.copy()
            waiting.clear()
            landed = False
            try:
                if held or covered:
                    await write(buffer.take())
                    landed = True
                if held:
                    logger.info("mirror_flushed", written=held)
            except StateError as exc:
                logger.warning("mirror_unflushed", changes=held, error=_one_line(exc))
            finally:
                answer(covered, landed)
        if last.cancelled_caught:
            logger.warning(
                "mirror_unflushed",
                changes=held,
                error=f"no answer within {deps.drain_flush_s:g}s",
            )
