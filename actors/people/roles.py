"""Who holds which role: the roster as a caller sees it, roles bound and unbound through
the API and by the file's ``people:`` section, and the persons' API tokens (only their
SHA-256 is kept)."""

from __future__ import annotations

import secrets
from datetime import datetime

from actors.people.ledger import Ledger, RequestBody, error, view
from eyetok.access import SLACK_USER_ID, Action, Binding, Caller, RoleGrant
from eyetok.messages import ApiAnswer, PeopleRequest
from eyetok.people_log import CONFIG, BindingKey, PersonToken, RoleBound
from eyetok.tenant_api import token_hash

PERSON_TOKEN_PREFIX = "etp_"


def whoami(ledger: Ledger, caller: Caller, now: datetime) -> ApiAnswer:
    me = ledger.roster()
    hat = me.hat(caller.id, now) if caller.kind == "person" else None
    return ApiAnswer(
        status=200,
        body={
            "caller": view(caller),
            "open_mode": me.open_mode,
            "holds": [view(b) for b in me.held(caller.id)],
            "hat": view(hat) if hat else None,
        },
    )


async def people(ledger: Ledger, caller: Caller, now: datetime) -> ApiAnswer:
    await ledger.allowed(caller, Action.VIEW, None)
    me = ledger.roster()
    return ApiAnswer(
        status=200,
        body={
            "open_mode": me.open_mode,
            "bindings": [view(b) for b in me.bindings],
            "hats": [view(h) for h in me.hats if h.worn(now)],
        },
    )


async def bind(
    ledger: Ledger, caller: Caller, request: PeopleRequest, body: RequestBody
) -> ApiAnswer:
    """``bind`` or ``unbind`` (``request.op``) a role for the person ``request.key``."""
    grant = await ledger.allowed(caller, Action.OPERATE, None)
    if body.role is None:
        return error(400, 'say which role: {"role": ...}', field="role")
    if not SLACK_USER_ID.match(request.key):
        return error(400, f"{request.key!r} is not a Slack user id (U… or W…)")
    if body.tenant is not None and body.tenant not in ledger.deps.tenants:
        return error(404, f"no tenant named {body.tenant!r}", field="tenant")
    RoleGrant(role=body.role, tenant=body.tenant)  # the file's checks
    key = (request.key, body.role, body.tenant)
    bound = request.op == "bind"
    if bound == (key in ledger.api_bindings):
        state = "bound already" if bound else "not bound through the API"
        return error(409, f"{body.role} is {state} for {request.key}")
    record = RoleBound(
        person=request.key,
        role=body.role,
        tenant=body.tenant,
        bound=bound,
        by=grant.by(),
    )
    await ledger.journal("role_binding", request.key, record, grant.by())
    if bound:
        ledger.api_bindings[key] = Binding(
            person=request.key, role=body.role, tenant=body.tenant, source="api"
        )
    else:
        del ledger.api_bindings[key]
    scope = f" for {body.tenant}" if body.tenant else ""
    await ledger.audit(
        body.tenant,
        "role_bound" if bound else "role_unbound",
        f"{body.role}{scope} {'to' if bound else 'from'} {request.key} by {grant.by()}",
    )
    return ApiAnswer(status=200, body={"binding": view(record)})


async def issue_token(
    ledger: Ledger, caller: Caller, request: PeopleRequest, now: datetime
) -> ApiAnswer:
    grant = await ledger.allowed(caller, Action.OPERATE, None)
    if request.key not in ledger.roster().people:
        return error(404, f"{request.key} holds no role: bind one first")
    secret = PERSON_TOKEN_PREFIX + secrets.token_urlsafe(32)
    issued = PersonToken(
        token_id="ptk_" + secrets.token_hex(6),
        person=request.key,
        token_hash=token_hash(secret),
        issued_at=now,
        by=grant.by(),
    )
    await ledger.journal("person_token", issued.token_id, issued, grant.by())
    ledger.tokens[issued.token_id] = issued
    await ledger.audit(
        None,
        "person_token_issued",
        f"{issued.token_id} for {request.key} by {grant.by()}",
    )
    return ApiAnswer(
        status=201,
        body={
            "token_id": issued.token_id,
            "person": request.key,
            "token": secret,
            "note": "shown once: EyeTok keeps only its SHA-256 (EYETOK_TOKEN)",
        },
    )


async def audit_config_changes(ledger: Ledger, before: frozenset[BindingKey]) -> None:
    """Journal and audit what the file's ``people:`` binds or no longer binds since the
    last start (the file's bindings are audited as the API's are)."""
    now_bound = {(b.person, b.role, b.tenant) for b in ledger.configured}
    for person, role, tenant in sorted(now_bound ^ before, key=str):
        bound = (person, role, tenant) in now_bound
        record = RoleBound(person=person, role=role, tenant=tenant, bound=bound, by=CONFIG)
        await ledger.journal("role_binding", person, record, CONFIG)
        scope = f" for {tenant}" if tenant else ""
        await ledger.audit(
            tenant,
            "role_bound" if bound else "role_unbound",
            f"{role}{scope} {'to' if bound else 'from'} {person} by the configuration",
        )
