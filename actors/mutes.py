"""Mutes: a tenant silenced for a while by a human (``mute 1h`` in an incident's thread).

A stage of the delivery chain, between the suppression window and the budgets. While a
tenant is muted, its deliveries are not sent: each outbox row ends ``muted`` (with who
muted it and until when), so the notification stream shows every one of them and none is
silently lost; they are not sent later either (a mute is for noise a human has seen). Never
muted: SEV1 (a page nobody may silence from a thread), the steps of SEV1's loop and of a
human's acknowledgement or resolve, and notices EyeTok writes itself (thread answers,
operator digests). A mute is audited when it starts (``tenant_muted``, by whom, until
when) and when it ends (``tenant_unmuted``, with how many deliveries it held back), by
running out or by a human's ``unmute``. The mutes are rebuilt on every start from the
audit log and, with ``DATABASE_URL``, from the Postgres ``mutes`` mirror (every start and
end is written there; the latest change of a tenant wins), so a restart and a fresh dyno
keep an active mute. A Postgres that is down delays the mirror, never a mute.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never

import msgspec
import trio

from actors.courier import Courier
from actors.forward import Inbox, forward
from eyetok import log
from eyetok.clock import Clock
from eyetok.errors import StateError
from eyetok.messages import AuditRecorded, Deliver, HistoryMessage, SevChannel, finished
from eyetok.thread_verbs import MAX_MUTE, ActiveMute, MuteTenant, ShowMute, UnmuteTenant
from eyetok.wording import when
from state.history.store import HistoryStore
from state.mirror.mutes import MuteRecord, MutesMirror

MuteMessage = Deliver | MuteTenant | UnmuteTenant | ShowMute
MIRROR_RETRY_S = 30.0


@dataclass
class _Mute:
    until: datetime
    by: str
    since: datetime
    incident_id: str = ""
    muted: int = 0  # deliveries held back by it in this process

    def record(self, tenant: str, at: datetime, ended_by: str | None = None) -> MuteRecord:
        """The mirror's row of it, as of ``at`` (ended then, by ``ended_by``, if given)."""
        return MuteRecord(
            tenant=tenant,
            by=self.by,
            muted_at=self.since,
            until=min(self.until, at) if ended_by else self.until,
            changed_at=at,
            incident_id=self.incident_id,
            ended_by=ended_by,
        )


@dataclass(frozen=True)
class MutesDeps:
    store: HistoryStore
    rebuilt_from: timedelta = field(default=MAX_MUTE)  # how far back a mute can still hold
    mirror: MutesMirror | None = None  # with DATABASE_URL
    tenants: tuple[str, ...] = ()  # whose mutes the mirror is read for


def mutable(deliver: Deliver) -> bool:
    """Whether a mute may hold ``deliver`` back (see the module docstring)."""
    return (
        deliver.notice is None
        and deliver.step is None
        and deliver.incident.sev_channel is not SevChannel.SEV1
    )


def _recorded_mutes(con: Any, since: datetime) -> list[MuteRecord]:
    """Each tenant's latest mute change in the audit log since ``since``."""
    rows = con.execute(
        "SELECT tenant, event, detail, epoch_ms(logged_at) FROM audit_log"
        " WHERE event IN ('tenant_muted', 'tenant_unmuted') AND logged_at >= ?"
        " ORDER BY logged_at",
        [since],
    ).fetchall()
    latest: dict[str, MuteRecord] = {}
    for tenant, event, detail, logged_ms in rows:
        logged_at = datetime.fromtimestamp(logged_ms / 1000, UTC)
        if event == "tenant_muted":
            recorded = json.loads(detail)
            latest[tenant] = MuteRecord(
                tenant=tenant,
                by=str(recorded["by"]),
                muted_at=logged_at,
                until=datetime.fromisoformat(recorded["until"]),
                changed_at=logged_at,
            )
        elif tenant in latest:  # ended: by running out or an unmute
            ended = latest[tenant]
            until = min(ended.until, logged_at)
            latest[tenant] = msgspec.structs.replace(ended, until=until, changed_at=logged_at)
    return list(latest.values())


def _latest(*found: list[MuteRecord]) -> dict[str, MuteRecord]:
    """Each tenant's latest change among ``found`` (the audit log, the mirror)."""
    latest: dict[str, MuteRecord] = {}
    for record in (r for records in found for r in records):
        known = latest.get(record.tenant)
        if known is None or record.changed_at > known.changed_at:
            latest[record.tenant] = record
    return latest


async def run_mutes(
    deps: MutesDeps,
    inbox: trio.MemoryReceiveChannel[MuteMessage],
    to_budgets: trio.MemorySendChannel[Any],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("mutes")
    courier: Courier[HistoryMessage] = Courier(to_history)
    mutes: dict[str, _Mute] = {}
    now = clock.now()
    limiter = trio.CapacityLimiter(1)
    unmirrored: dict[str, MuteRecord] = {}  # the latest change of each tenant, not written
    audited = await deps.store.read(lambda con: _recorded_mutes(con, now - deps.rebuilt_from))
    mirrored: list[MuteRecord] = []
    if deps.mirror is not None:
        try:
            mirrored = await trio.to_thread.run_sync(
                deps.mirror.load, deps.tenants, limiter=limiter
            )
        except StateError as exc:
            logger.warning("mutes_not_restored", reason=str(exc))
    for tenant, record in _latest(audited, mirrored).items():
        if record.until > now and record.ended_by is None:
            mutes[tenant] = _Mute(
                until=record.until,
                by=record.by,
                since=record.muted_at,
                incident_id=record.incident_id,
            )
    logger.info("mutes_rebuilt", muted=sorted(mutes), from_mirror=len(mirrored))

    changed = trio.Event()  # a change waits for the mirror

    async def keep_mirrored(mirror: MutesMirror) -> None:
        """Write the changes to Postgres, off the delivery path (a Postgres that is down
        never holds a delivery back); retried every :data:`MIRROR_RETRY_S`."""
        nonlocal changed
        while True:
            with trio.move_on_after(MIRROR_RETRY_S):
                await changed.wait()
            changed = trio.Event()
            await write_pending(mirror)

    async def write_pending(mirror: MutesMirror) -> None:
        rows = list(unmirrored.values())
        if not rows:
            return
        try:
            await trio.to_thread.run_sync(mirror.save, rows, limiter=limiter)
        except StateError as exc:
            logger.warning("mutes_unmirrored", waiting=len(rows), reason=str(exc))
            return
        for row in rows:
            if unmirrored.get(row.tenant) is row:
                del unmirrored[row.tenant]

    def to_mirror(record: MuteRecord) -> None:
        if deps.mirror is not None:
            unmirrored[record.tenant] = record
            changed.set()

    def ended(tenant: str, now: datetime, by: str | None) -> _Mute:
        """The tenant's mute ended now: audited, mirrored (``by``: who ended it early)."""
        mute = mutes.pop(tenant)
        early = f", ended early by {by}" if by is not None else ""
        text = (
            f"mute by {mute.by} ended {when(min(mute.until, now))}{early}; "
            f"{mute.muted} deliveries held back"
        )
        courier.post(AuditRecorded(at=now, tenant=tenant, event="tenant_unmuted", detail=text))
        to_mirror(mute.record(tenant, now, ended_by=by or "expired"))
        logger.info("tenant_unmuted", tenant=tenant, by=mute.by, muted=mute.muted, ended_by=by)
        return mute

    def expire(now: datetime) -> None:
        for tenant in [t for t, m in mutes.items() if m.until <= now]:
            ended(tenant, now, None)

    def unmute(message: UnmuteTenant) -> None:
        held = mutes.get(message.tenant)
        if held is not None and held.until > message.at:
            ended(message.tenant, message.at, message.by)
            if message.reply is not None:
                message.reply.send(
                    (ActiveMute(tenant=message.tenant, by=held.by, until=held.until),)
                )
        elif message.reply is not None:
            message.reply.send(())

    def show(message: ShowMute) -> None:
        held = mutes.get(message.tenant)
        active = held is not None and held.until > clock.now()
        message.reply.send(
            (ActiveMute(tenant=message.tenant, by=held.by, until=held.until),)
            if held is not None and active
            else ()
        )

    def mute(message: MuteTenant) -> None:
        until = min(message.until, message.at + MAX_MUTE)
        mutes[message.tenant] = _Mute(
            until=until, by=message.by, since=message.at, incident_id=message.incident_id
        )
        to_mirror(mutes[message.tenant].record(message.tenant, message.at))
        detail = {"until": until.isoformat(), "by": message.by, "incident_id": message.incident_id}
        courier.post(
            AuditRecorded(
                at=message.at,
                tenant=message.tenant,
                event="tenant_muted",
                detail=json.dumps(detail, sort_keys=True),
                incident_id=message.incident_id or None,
            )
        )
        logger.info("tenant_muted", tenant=message.tenant, by=message.by, until=until.isoformat())
        if message.reply is not None:
            message.reply.send(until)

    async def admit(deliver: Deliver) -> None:
        held = mutes.get(deliver.tenant)
        if held is None or held.until <= clock.now() or not mutable(deliver):
            await forward(to_budgets, deliver)
            return
        held.muted += 1
        detail = f"tenant muted by {held.by} until {when(held.until)}; not sent"
        courier.post(finished(deliver, "muted", at=clock.now(), detail=detail))
        logger.info(
            "delivery_muted",
            tenant=deliver.tenant,
            delivery_id=deliver.delivery_id,
            incident_id=deliver.incident.incident_id,
            by=held.by,
        )

    mirror_closed = contextlib.closing(deps.mirror) if deps.mirror else contextlib.nullcontext()
    with mirror_closed:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(courier.run)
            if deps.mirror is not None:
                nursery.start_soon(keep_mirrored, deps.mirror)
            task_status.started()
            messages = Inbox(inbox)
            while True:
                if mutes:
                    expire(clock.now())
                message: MuteMessage | None = None
                try:
                    message = await messages.waiting()
                    if message is None:
                        due = min((m.until for m in mutes.values()), default=None)
                        # no mute to end: no timer to arm for every delivery that passes
                        timer = (
                            trio.move_on_after(max((due - clock.now()).total_seconds(), 0.0))
                            if due is not None
                            else contextlib.nullcontext()
                        )
                        with timer:
                            message = await messages.receive()
                except trio.EndOfChannel:  # stopping: what waits is written first
                    if deps.mirror is not None:
                        with trio.move_on_after(MIRROR_RETRY_S):
                            await write_pending(deps.mirror)
                    nursery.cancel_scope.cancel()
                    return
                match message:
                    case None:  # a mute ended
                        pass
                    case Deliver():
                        await admit(message)
                    case MuteTenant():
                        mute(message)
                    case UnmuteTenant():
                        unmute(message)
                    case ShowMute():
                        show(message)
                    case _:
                        assert_never(message)
