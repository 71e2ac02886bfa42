"""Mutes: a tenant silenced for a while by a human (``mute 1h`` in an incident's thread).

A stage of the delivery chain, between the suppression window and the budgets. While a
tenant is muted, its deliveries are not sent: each outbox row ends ``muted`` (with who
muted it and until when), so the notification stream shows every one of them and none is
silently lost; they are not sent later either (a mute is for noise a human has seen). Never
muted: SEV1 (a page nobody may silence from a thread), the steps of SEV1's loop and of a
human's acknowledgement or resolve, and notices EyeTok writes itself (thread answers,
operator digests). A mute is audited when it starts (``tenant_muted``, by whom, until
when) and when it ends (``tenant_unmuted``, with how many deliveries it held back). The
mutes are rebuilt from the audit log on every start, so a restart keeps them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, assert_never

import trio

from actors.courier import Courier
from eyetok import log
from eyetok.clock import Clock
from eyetok.messages import AuditRecorded, Deliver, HistoryMessage, SevChannel, finished
from eyetok.thread_verbs import MAX_MUTE, MuteTenant
from eyetok.wording import when
from state.history.store import HistoryStore

MuteMessage = Deliver | MuteTenant


@dataclass
class _Mute:
    until: datetime
    by: str
    muted: int = 0  # deliveries held back by it in this process


@dataclass(frozen=True)
class MutesDeps:
    store: HistoryStore
    rebuilt_from: timedelta = field(default=MAX_MUTE)  # how far back a mute can still hold


def mutable(deliver: Deliver) -> bool:
    """Whether a mute may hold ``deliver`` back (see the module docstring)."""
    return (
        deliver.notice is None
        and deliver.step is None
        and deliver.incident.sev_channel is not SevChannel.SEV1
    )


def _recorded_mutes(con: Any, since: datetime) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = con.execute(
        "SELECT tenant, detail FROM audit_log WHERE event = 'tenant_muted' AND logged_at >= ?"
        " ORDER BY logged_at",
        [since],
    ).fetchall()
    return rows


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
    for tenant, detail in await deps.store.read(
        lambda con: _recorded_mutes(con, now - deps.rebuilt_from)
    ):
        recorded = json.loads(detail)
        until = datetime.fromisoformat(recorded["until"])
        if until > now:
            mutes[tenant] = _Mute(until=until, by=str(recorded["by"]))
    logger.info("mutes_rebuilt", muted=sorted(mutes))

    def expire(now: datetime) -> None:
        for tenant in [t for t, m in mutes.items() if m.until <= now]:
            mute = mutes.pop(tenant)
            text = f"mute by {mute.by} ended {when(mute.until)}; {mute.muted} deliveries held back"
            courier.post(AuditRecorded(at=now, tenant=tenant, event="tenant_unmuted", detail=text))
            logger.info("tenant_unmuted", tenant=tenant, by=mute.by, muted=mute.muted)

    def mute(message: MuteTenant) -> None:
        until = min(message.until, message.at + MAX_MUTE)
        mutes[message.tenant] = _Mute(until=until, by=message.by)
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
            await to_budgets.send(deliver)
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

    async with trio.open_nursery() as nursery:
        nursery.start_soon(courier.run)
        task_status.started()
        while True:
            expire(clock.now())
            due = min((m.until for m in mutes.values()), default=None)
            wait = (due - clock.now()).total_seconds() if due is not None else math.inf
            message: MuteMessage | None = None
            with trio.move_on_after(max(wait, 0.0)):
                try:
                    message = await inbox.receive()
                except trio.EndOfChannel:
                    nursery.cancel_scope.cancel()
                    return
            match message:
                case None:  # a mute ended
                    pass
                case Deliver():
                    await admit(message)
                case MuteTenant():
                    mute(message)
                case _:
                    assert_never(message)
