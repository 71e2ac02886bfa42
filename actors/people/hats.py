"""Hats: a person wears one of the roles they may wear, for a stated time and reason,
and takes it off, switches it, or has it ended when its time runs out (by a timer on the
injected clock; a hat that ran out while EyeTok was down is ended on start)."""

from __future__ import annotations

import secrets
from datetime import datetime

import msgspec
import trio

from actors.people.ledger import Ledger, RequestBody, error, view
from eyetok.access import Caller, Hat, can_wear, check_why, parse_for
from eyetok.messages import ApiAnswer


async def end_hat(ledger: Ledger, hat: Hat, reason: str, at: datetime) -> None:
    ended = msgspec.structs.replace(hat, ended_at=at, end_reason=reason)
    await ledger.journal("hat", hat.hat_id, ended, "eyetok" if reason == "expired" else hat.person)
    ledger.hats[hat.hat_id] = ended
    event = "hat_expired" if reason == "expired" else "hat_ended"
    await ledger.audit(
        hat.tenant,
        event,
        f"{hat.person} took off {hat.role}"
        + (f" for {hat.tenant}" if hat.tenant else "")
        + f" ({hat.hat_id}, worn since {hat.since.isoformat()}, until "
        f"{hat.until.isoformat()}): {reason}",
    )
    ledger.hats_changed.set()


async def switch(ledger: Ledger, caller: Caller, body: RequestBody, now: datetime) -> ApiAnswer:
    if caller.kind != "person":
        return error(403, "only a person switches hats", needed_role="root_operator")
    if body.role is None or not body.for_:
        return error(400, 'a hat switch is {"role", "tenant"?, "for": "8h", "why"}')
    try:
        length = parse_for(body.for_)
    except ValueError as exc:
        return error(400, str(exc), field="for")
    why = check_why(body.why)
    can_wear(ledger.roster(), caller.id, body.role, body.tenant)
    hat = Hat(
        hat_id="hat_" + secrets.token_hex(6),
        person=caller.id,
        role=body.role,
        tenant=body.tenant,
        since=now,
        until=now + length,
        why=why,
    )
    previous = ledger.roster().hat(caller.id, now)
    if previous is not None:
        await end_hat(ledger, previous, f"replaced by {hat.hat_id}", now)
    await ledger.journal("hat", hat.hat_id, hat, caller.id)
    ledger.hats[hat.hat_id] = hat
    ledger.hats_changed.set()
    await ledger.audit(
        hat.tenant,
        "hat_switched",
        f"{caller.id} wears {hat.role}"
        + (f" for {hat.tenant}" if hat.tenant else "")
        + f" until {hat.until.isoformat()} ({hat.hat_id}): {why}",
    )
    return ApiAnswer(status=200, body={"hat": view(hat)})


async def end(ledger: Ledger, caller: Caller, now: datetime) -> ApiAnswer:
    hat = ledger.roster().hat(caller.id, now) if caller.kind == "person" else None
    if hat is None:
        return error(409, "no hat is being worn")
    await end_hat(ledger, hat, "ended", now)
    return ApiAnswer(status=200, body={"ended": hat.hat_id})


async def expire_due(ledger: Ledger) -> None:
    now = ledger.clock.now()
    for hat in [h for h in ledger.hats.values() if h.ended_at is None and h.until <= now]:
        await end_hat(ledger, hat, "expired", hat.until)


async def expire_hats(ledger: Ledger) -> None:
    """End each worn hat when its time runs out (on the injected clock)."""
    while True:
        await expire_due(ledger)
        worn = [h.until for h in ledger.hats.values() if h.ended_at is None]
        ledger.hats_changed = trio.Event()
        waiting = ledger.hats_changed
        async with trio.open_nursery() as timer:
            timer.start_soon(_cancel_when, waiting, timer.cancel_scope)
            if worn:
                await ledger.clock.sleep_until(min(worn))
            else:
                await trio.sleep_forever()
            timer.cancel_scope.cancel()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` (the timer's sleep) when ``event`` is set: a new hat may run out
    sooner than the one being waited for."""
    await event.wait()
    scope.cancel()
