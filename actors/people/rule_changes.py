"""Rule changes waiting for a second person: proposed (through the tenant API, or the
file read again on SIGHUP), approved or rejected by a different person holding
``alert_rule_reviewer``, then marked applied or failed by EyeTok itself. Each step is
journalled and audited (``change_<status>``)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from actors.people.ledger import Ledger, RequestBody, encode, error, view
from eyetok.access import Action, Caller, check_why
from eyetok.changes import Change, decide, new_change_id
from eyetok.messages import ApiAnswer, PeopleRequest


async def record_change(ledger: Ledger, change: Change, by: str, detail: str) -> ApiAnswer:
    """Journal a change's new standing, keep it, audit it (``change_<status>``)."""
    await ledger.journal("rule_change", change.change_id, change, by)
    ledger.changes[change.change_id] = change
    await ledger.audit(change.tenant, f"change_{change.status}", detail)
    return ApiAnswer(status=200, body={"change": view(change)})


async def proposed(
    ledger: Ledger, body: RequestBody, tenant: str, by: str, now: datetime
) -> ApiAnswer:
    """A change proposed by ``by``, kept pending until a second person approves it."""
    why = check_why(body.why)
    change = Change(
        change_id=new_change_id(),
        kind=body.kind,
        tenant=tenant,
        proposed_by=by,
        proposed_at=now,
        why=why,
        diff=body.diff,
        proposed_json=encode(body.proposed).decode(),
    )
    await ledger.journal("rule_change", change.change_id, change, change.proposed_by)
    ledger.changes[change.change_id] = change
    await ledger.audit(
        change.tenant,
        "change_proposed",
        f"{change.change_id} ({change.kind}) by {change.proposed_by}: {why}\n{change.diff}",
    )
    return ApiAnswer(
        status=202,
        body={
            "change": view(change),
            "next": "a different person holding alert_rule_reviewer approves it: "
            f'eyetok changes approve {change.change_id} --why "..."',
        },
    )


async def listed(ledger: Ledger, caller: Caller, request: PeopleRequest) -> ApiAnswer:
    """The changes (``request.key``: only those of that status), oldest first."""
    await ledger.allowed(caller, Action.VIEW, None)
    wanted = request.key or None
    rows = [
        view(c)
        for c in sorted(ledger.changes.values(), key=lambda c: c.proposed_at)
        if wanted is None or c.status == wanted
    ]
    return ApiAnswer(status=200, body={"changes": rows})


async def reviewed(
    ledger: Ledger, caller: Caller, request: PeopleRequest, body: RequestBody, now: datetime
) -> ApiAnswer:
    """``approve`` or ``reject`` (``request.op``) the change ``request.key``."""
    grant = await ledger.allowed(caller, Action.REVIEW_RULES, None)
    found = ledger.changes.get(request.key)
    if found is None:
        return error(404, f"no change {request.key!r}")
    why = check_why(body.why)
    reviewer = grant.by().split(" as ")[0]
    decided = decide(found, approve=request.op == "approve", reviewer=reviewer, why=why, at=now)
    return await record_change(
        ledger,
        decided,
        reviewer,
        f"{decided.change_id} proposed by {decided.proposed_by}, "
        f"{decided.status} by {reviewer}: {why}",
    )


async def applied(
    ledger: Ledger, caller: Caller, request: PeopleRequest, body: RequestBody
) -> ApiAnswer:
    """EyeTok (the root token) says how applying an approved change went."""
    found = ledger.changes.get(request.key)
    if found is None or found.status != "approved" or caller.kind != "root_token":
        return error(409, f"change {request.key!r} is not approved")
    done = msgspec.structs.replace(
        found, status="applied" if body.ok else "failed", outcome=body.outcome
    )
    return await record_change(
        ledger,
        done,
        "eyetok",
        f"{done.change_id} (proposed by {done.proposed_by}, approved by "
        f"{done.decided_by}): {done.outcome}",
    )
