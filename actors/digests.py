"""The digest reader: the one owner of the operator digests' read receipts and timers.

Every operator digest (the suppression window's cluster notice, the budget cap summary,
the daily review) is posted with ``Acknowledge``. This actor learns of each from its
outbox row (it looks every ``rescan_s`` and whenever it is asked), records who read it
(a Slack button, ``eyetok suppressions --ack``, the operator API) and, if nobody did
within the operator's ``escalation.digest_escalate_s``, escalates it once to the
operator's ``escalation.secondary``: the digest again, saying nobody acknowledged it,
with its own ``Acknowledge``.

Timers are state, not tasks. A digest's receipt is rebuilt on every start from stored
rows (the outbox row, the ``digest_acknowledged`` and ``digest_escalated`` audit rows,
the suppression log) and, with ``DATABASE_URL``, from the Postgres ``digest_receipts``
mirror, which every receipt and escalation is written to (a fresh dyno keeps the
timers). A Postgres that is down delays the mirror, never the escalation: the rows
waiting for it are written when it answers again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

import msgspec
import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.digests import (
    ESCALATED_RULE,
    DigestRead,
    DigestReceipt,
    escalation_due,
    escalation_text,
    merged,
)
from eyetok.errors import StateError
from eyetok.messages import (
    AuditRecorded,
    Destination,
    FlushHistory,
    HistoryMessage,
    IncidentAction,
    PlanDeliveries,
    Reply,
    Rewrite,
    Severity,
)
from eyetok.notices import notice, notice_id
from eyetok.wording import when
from state.history import digest_queries as queries
from state.history.store import HistoryStore
from state.mirror.digest_receipts import DigestReceipts

KEPT = timedelta(days=2)  # how far back a digest is still looked after


@dataclass(frozen=True)
class DigestsDeps:
    settings: Settings
    store: HistoryStore
    mirror: DigestReceipts | None = None  # with DATABASE_URL
    rescan_s: float = 30.0  # how often the outbox is looked at for new digests


async def run_digests(
    deps: DigestsDeps,
    inbox: trio.MemoryReceiveChannel[DigestRead],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("digests")
    operator = deps.settings.operator_tenant
    escalation = deps.settings.tenants[operator].escalation
    after = timedelta(seconds=escalation.digest_escalate_s)
    limiter = trio.CapacityLimiter(1)
    receipts: dict[str, DigestReceipt] = {}
    unmirrored: set[str] = set()

    def fold(receipt: DigestReceipt) -> None:
        """Take in what a stored row says of a digest (news is mirrored)."""
        known = receipts.get(receipt.what)
        folded = merged(known, receipt) if known is not None else receipt
        if folded != known:
            receipts[receipt.what] = folded
            unmirrored.add(receipt.what)

    async def flushed() -> None:
        reply: Reply[bool] = Reply()
        await to_history.send(FlushHistory(reply=reply))
        await reply.wait()

    async def scan(since: datetime) -> None:
        """The digests posted since ``since`` (and what became of them) taken in."""
        await flushed()
        posted = await deps.store.read(lambda con: queries.posted(con, since))
        outcomes = await deps.store.read(lambda con: queries.outcomes(con, since))
        for receipt in posted:
            by, acked, escalated = outcomes.get(receipt.what, (None, None, None))
            fold(
                msgspec.structs.replace(
                    receipt,
                    acknowledged_by=by,
                    acknowledged_at=acked,
                    escalated_at=receipt.escalated_at or escalated,
                )
            )

    async def mirror() -> None:
        if deps.mirror is None or not unmirrored:
            return
        rows = [receipts[w] for w in sorted(unmirrored) if w in receipts]
        try:
            await trio.to_thread.run_sync(deps.mirror.save, rows, limiter=limiter)
        except StateError as exc:
            logger.warning("digest_receipts_unmirrored", waiting=len(rows), reason=str(exc))
            return
        unmirrored.clear()

    def secondary() -> Destination | None:
        route = escalation.secondary
        types = deps.settings.sink_types()
        if route is None or route.sink not in types:
            return None
        return Destination(sink_id=route.sink, sink_type=types[route.sink], target=route.target)

    async def escalate(receipt: DigestReceipt, now: datetime) -> None:
        receipts[receipt.what] = msgspec.structs.replace(receipt, escalated_at=now)
        unmirrored.add(receipt.what)
        to = secondary()
        if to is not None:
            deliver = notice(
                delivery_id=notice_id(receipt.what, "escalated"),
                tenant=operator,
                destination=to,
                about=receipt.what,
                title=f"{receipt.title} (escalated)",
                text=escalation_text(receipt, now),
                at=now,
                rule=ESCALATED_RULE,
                severity=Severity.HIGH,
                acknowledge=receipt.what,
            )
            await to_history.send(
                PlanDeliveries(origin=f"{receipt.what}:escalated", deliveries=(deliver,))
            )
        told = f"{to.sink_id} {to.target}" if to is not None else None
        detail = {
            "what": receipt.what,
            "title": receipt.title,
            "to": told
            or "nobody: no secondary is configured (tenants.<operator>.escalation.secondary); "
            "nothing was sent",
        }
        await to_history.send(
            AuditRecorded(
                at=now, tenant=operator, event="digest_escalated", detail=json.dumps(detail)
            )
        )
        logger.warning(
            "digest_not_acknowledged",
            what=receipt.what,
            title=receipt.title,
            posted_at=receipt.posted_at.isoformat(),
            escalated_to=told,
        )

    async def read(message: DigestRead) -> None:
        receipt = receipts.get(message.what)
        if receipt is None:  # posted a moment ago, perhaps: look once more
            await scan(clock.now() - KEPT)
            receipt = receipts.get(message.what)
        if receipt is None or receipt.acknowledged_at is not None:
            if message.reply is not None:
                message.reply.send((receipt, False))
            return
        receipt = msgspec.structs.replace(
            receipt, acknowledged_by=message.by, acknowledged_at=message.at
        )
        receipts[message.what] = receipt
        unmirrored.add(message.what)
        detail = {"what": message.what, "title": receipt.title, "by": message.by}
        await to_history.send(
            AuditRecorded(
                at=message.at,
                tenant=operator,
                event="digest_acknowledged",
                detail=json.dumps(detail),
            )
        )
        await flushed()
        logger.info("digest_acknowledged", what=message.what, title=receipt.title, by=message.by)
        await rewrite_posts(message)
        if message.reply is not None:
            message.reply.send((receipt, True))

    async def rewrite_posts(message: DigestRead) -> None:
        """Each Slack post of the digest rewritten to say who read it and when (its
        Acknowledge gone), and the same said in its thread."""
        posts = await deps.store.read(lambda con: queries.slack_posts(con, message.what))
        read = f":white_check_mark: Acknowledged by {message.by} at {when(message.at)}."
        rewrites = tuple(
            msgspec.structs.replace(
                post,
                delivery_id=notice_id(post.delivery_id, "acknowledged"),
                action=IncidentAction.UPDATE,
                planned_at=message.at,
                received_at=message.at,
                notice=read,
                acknowledge=None,
                rewrite=Rewrite(delivery_id=post.delivery_id, text=f"{post.notice}\n{read}"),
            )
            for post in posts
        )
        if rewrites:
            origin = f"{message.what}:acknowledged"
            await to_history.send(PlanDeliveries(origin=origin, deliveries=rewrites))

    async def look_after(next_scan: datetime) -> None:
        while True:
            now = clock.now()
            if now >= next_scan:
                await scan(now - timedelta(seconds=deps.rescan_s) - timedelta(minutes=10))
                next_scan = now + timedelta(seconds=deps.rescan_s)
            for receipt in list(receipts.values()):
                due = escalation_due(receipt, after)
                if due is not None and due <= now:
                    await escalate(receipt, now)
            for what in [w for w, r in receipts.items() if r.posted_at < now - KEPT]:
                del receipts[what]
            await mirror()
            dues = [d for r in receipts.values() if (d := escalation_due(r, after)) is not None]
            wake = min([next_scan, *dues])
            message: DigestRead | None = None
            with trio.move_on_after(max((wake - clock.now()).total_seconds(), 0.0)):
                try:
                    message = await inbox.receive()
                except trio.EndOfChannel:
                    return
            match message:
                case None:  # a timer fell due, or it is time to look for new digests
                    pass
                case DigestRead():
                    await read(message)
                case _:
                    assert_never(message)

    start = clock.now()
    if deps.mirror is not None:
        try:
            for receipt in await trio.to_thread.run_sync(
                deps.mirror.load, start - KEPT, limiter=limiter
            ):
                fold(receipt)
            unmirrored.clear()
        except StateError as exc:
            logger.warning("digest_receipts_not_restored", reason=str(exc))
    await scan(start - KEPT)
    logger.info(
        "digests_rebuilt",
        digests=len(receipts),
        waiting=sum(1 for r in receipts.values() if escalation_due(r, after) is not None),
    )
    task_status.started()
    next_scan = start + timedelta(seconds=deps.rescan_s)
    try:
        await look_after(next_scan)
    finally:
        if deps.mirror is not None:
            deps.mirror.close()
