"""The people actor: owner of who holds which role, who wears which hat until when, the
persons' API tokens and the rule changes waiting for a second person.

Every call reaches it as a :class:`PeopleRequest` and is answered with an
:class:`ApiAnswer`. ``authorise`` is the one authorisation every action path asks
(:func:`eyetok.access.authorise` decides; a refusal is audited and names the role needed).

Its state is a log of rows journalled by the history actor as configuration entries of
the operator tenant (kinds ``role_binding``, ``person_token``, ``hat``, ``rule_change``):
so it is mirrored to Postgres (``tenant_config_log``) and restored on a fresh dyno with
the rest. On every (re)start the roster, the tokens, the hats and the pending changes are
folded from it; a hat whose time ran out while EyeTok was down is ended (``hat_expired``)
at once, and a worn hat is ended by a timer on the injected clock when it runs out.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, assert_never

import msgspec
import trio

from eyetok import log
from eyetok.access import (
    SLACK_USER_ID,
    Action,
    Binding,
    Caller,
    Grant,
    Hat,
    JustificationRefused,
    PersonConfig,
    Refused,
    Role,
    RoleGrant,
    Roster,
    authorise,
    bindings_of,
    can_wear,
    check_why,
    parse_for,
)
from eyetok.changes import Change, ChangeKind, ChangeRefused, decide, new_change_id
from eyetok.clock import Clock
from eyetok.live_credentials import LiveCredentials
from eyetok.messages import (
    ApiAnswer,
    AuditRecorded,
    FlushHistory,
    HistoryMessage,
    PeopleMessage,
    PeopleRequest,
    Reply,
    TenantConfigEntry,
    TenantRecorded,
)
from eyetok.people_log import CONFIG, BindingKey, PersonToken, RoleBound, fold_people
from eyetok.tenant_api import token_hash
from state.history.store import HistoryStore
from state.history.tenant_queries import root_config_entries

PERSON_TOKEN_PREFIX = "etp_"
COMMIT_TIMEOUT_S = 10.0


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role | None = None
    tenant: str | None = None
    why: str = ""
    # a hat's length (switch)
    for_: str = msgspec.field(default="", name="for")
    # a proposal (from the HTTP layer, after the tenants actor checked it)
    kind: ChangeKind = "tenant_routes"
    diff: str = ""
    proposed: object = None
    # an applied change's outcome
    ok: bool = True
    outcome: str = ""


@dataclass(frozen=True)
class PeopleDeps:
    people: tuple[PersonConfig, ...]
    credentials: LiveCredentials  # the root token in use now (SIGHUP swaps it)
    operator_tenant: str
    store: HistoryStore
    tenants: frozenset[str] = frozenset()


_encode = msgspec.json.Encoder().encode


def _error(status: int, message: str, **extra: object) -> ApiAnswer:
    return ApiAnswer(status=status, body={"error": message, **extra})


def _view(value: msgspec.Struct) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(value)
    return out


async def run_people(
    deps: PeopleDeps,
    inbox: trio.MemoryReceiveChannel[PeopleMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("people")
    configured = bindings_of(deps.people)
    known = frozenset(p.slack_user_id for p in deps.people)
    folded = fold_people(await deps.store.read(root_config_entries), deps.operator_tenant)
    api_bindings, tokens, hats, changes = (
        folded.api_bindings,
        folded.tokens,
        folded.hats,
        folded.changes,
    )
    hats_changed = trio.Event()

    def roster() -> Roster:
        bindings = configured + tuple(api_bindings.values())
        return Roster(
            bindings=bindings,
            hats=tuple(h for h in hats.values() if h.ended_at is None),
            people=known | {b.person for b in bindings},
        )

    async def audit(tenant: str | None, event: str, detail: str) -> None:
        where = tenant or deps.operator_tenant
        await to_history.send(
            AuditRecorded(at=clock.now(), tenant=where, event=event, detail=detail)
        )
        logger.info(event, tenant=where, detail=detail)

    async def journal(kind: str, key: str, value: msgspec.Struct, by: str) -> None:
        """Journal one row and wait for the commit, then for the DuckDB tables."""
        entry = TenantConfigEntry(
            tenant=deps.operator_tenant,
            kind=kind,
            key=f"{key}#{secrets.token_hex(4)}",
            value_json=_encode(value).decode(),
            recorded_at=clock.now(),
            recorded_by=by,
        )
        committed: Reply[bool] = Reply()
        await to_history.send(TenantRecorded(entries=(entry,), reply=committed))
        flushed: Reply[bool] = Reply()
        with trio.fail_after(COMMIT_TIMEOUT_S):
            await committed.wait()
            await to_history.send(FlushHistory(reply=flushed))
            await flushed.wait()

    async def end_hat(hat: Hat, reason: str, at: datetime) -> None:
        ended = msgspec.structs.replace(hat, ended_at=at, end_reason=reason)
        await journal("hat", hat.hat_id, ended, "eyetok" if reason == "expired" else hat.person)
        hats[hat.hat_id] = ended
        event = "hat_expired" if reason == "expired" else "hat_ended"
        await audit(
            hat.tenant,
            event,
            f"{hat.person} took off {hat.role}"
            + (f" for {hat.tenant}" if hat.tenant else "")
            + f" ({hat.hat_id}, worn since {hat.since.isoformat()}, until "
            f"{hat.until.isoformat()}): {reason}",
        )
        hats_changed.set()

    async def record_change(change: Change, by: str, detail: str) -> ApiAnswer:
        """Journal a change's new standing, keep it, audit it (``change_<status>``)."""
        await journal("rule_change", change.change_id, change, by)
        changes[change.change_id] = change
        await audit(change.tenant, f"change_{change.status}", detail)
        return ApiAnswer(status=200, body={"change": _view(change)})

    async def proposed(body: _Body, tenant: str, by: str, now: datetime) -> ApiAnswer:
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
            proposed_json=_encode(body.proposed).decode(),
        )
        await journal("rule_change", change.change_id, change, change.proposed_by)
        changes[change.change_id] = change
        await audit(
            change.tenant,
            "change_proposed",
            f"{change.change_id} ({change.kind}) by {change.proposed_by}: {why}\n{change.diff}",
        )
        return ApiAnswer(
            status=202,
            body={
                "change": _view(change),
                "next": "a different person holding alert_rule_reviewer approves it: "
                f'eyetok changes approve {change.change_id} --why "..."',
            },
        )

    def identify(request: PeopleRequest) -> Caller | None:
        if request.caller is not None:
            return request.caller
        if request.slack_user:
            return Caller(kind="person", id=request.slack_user)
        presented = request.credential.encode()
        if not presented:
            return None
        root = deps.credentials.root_token
        if root and hmac.compare_digest(presented, root.encode()):
            return Caller(kind="root_token", id="root")
        digest = token_hash(request.credential).encode()
        found = None
        for t in tokens.values():
            if hmac.compare_digest(digest, t.token_hash.encode()):
                found = t
        return Caller(kind="person", id=found.person) if found else None

    async def allowed(caller: Caller, action: Action, tenant: str | None) -> Grant:
        try:
            return authorise(caller, action, tenant, roster(), clock.now())
        except Refused as exc:
            await audit(
                tenant,
                "access_refused",
                f"{caller.label()}: {action}"
                + (f" on {tenant}" if tenant else "")
                + f": needs {exc.needed_role}",
            )
            raise

    async def handle(request: PeopleRequest) -> ApiAnswer:
        caller = identify(request)
        if caller is None:
            return _error(
                401,
                "a person's token (or the root token) is required",
                needed_role="viewer",
                open_mode=roster().open_mode,
            )
        body = msgspec.convert(request.body, _Body) if request.body is not None else _Body()
        now = clock.now()
        match request.op:
            case "authorise":
                grant = await allowed(caller, Action(request.action), request.tenant)
                return ApiAnswer(
                    status=200,
                    body={"grant": _view(grant), "by": grant.by(), "open_mode": roster().open_mode},
                )
            case "whoami":
                me = roster()
                hat = me.hat(caller.id, now) if caller.kind == "person" else None
                return ApiAnswer(
                    status=200,
                    body={
                        "caller": _view(caller),
                        "open_mode": me.open_mode,
                        "holds": [_view(b) for b in me.held(caller.id)],
                        "hat": _view(hat) if hat else None,
                    },
                )
            case "people":
                await allowed(caller, Action.VIEW, None)
                me = roster()
                return ApiAnswer(
                    status=200,
                    body={
                        "open_mode": me.open_mode,
                        "bindings": [_view(b) for b in me.bindings],
                        "hats": [_view(h) for h in me.hats if h.worn(now)],
                    },
                )
            case "bind" | "unbind":
                grant = await allowed(caller, Action.OPERATE, None)
                if body.role is None:
                    return _error(400, 'say which role: {"role": ...}', field="role")
                if not SLACK_USER_ID.match(request.key):
                    return _error(400, f"{request.key!r} is not a Slack user id (U… or W…)")
                if body.tenant is not None and body.tenant not in deps.tenants:
                    return _error(404, f"no tenant named {body.tenant!r}", field="tenant")
                RoleGrant(role=body.role, tenant=body.tenant)  # the file's checks
                key = (request.key, body.role, body.tenant)
                bound = request.op == "bind"
                if bound == (key in api_bindings):
                    state = "bound already" if bound else "not bound through the API"
                    return _error(409, f"{body.role} is {state} for {request.key}")
                record = RoleBound(
                    person=request.key,
                    role=body.role,
                    tenant=body.tenant,
                    bound=bound,
                    by=grant.by(),
                )
                await journal("role_binding", request.key, record, grant.by())
                if bound:
                    api_bindings[key] = Binding(
                        person=request.key, role=body.role, tenant=body.tenant, source="api"
                    )
                else:
                    del api_bindings[key]
                scope = f" for {body.tenant}" if body.tenant else ""
                await audit(
                    body.tenant,
                    "role_bound" if bound else "role_unbound",
                    f"{body.role}{scope} {'to' if bound else 'from'} {request.key} by {grant.by()}",
                )
                return ApiAnswer(status=200, body={"binding": _view(record)})
            case "issue_token":
                grant = await allowed(caller, Action.OPERATE, None)
                if request.key not in roster().people:
                    return _error(404, f"{request.key} holds no role: bind one first")
                secret = PERSON_TOKEN_PREFIX + secrets.token_urlsafe(32)
                issued = PersonToken(
                    token_id="ptk_" + secrets.token_hex(6),
                    person=request.key,
                    token_hash=token_hash(secret),
                    issued_at=now,
                    by=grant.by(),
                )
                await journal("person_token", issued.token_id, issued, grant.by())
                tokens[issued.token_id] = issued
                await audit(
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
            case "switch":
                if caller.kind != "person":
                    return _error(403, "only a person switches hats", needed_role="root_operator")
                if body.role is None or not body.for_:
                    return _error(400, 'a hat switch is {"role", "tenant"?, "for": "8h", "why"}')
                try:
                    length = parse_for(body.for_)
                except ValueError as exc:
                    return _error(400, str(exc), field="for")
                why = check_why(body.why)
                can_wear(roster(), caller.id, body.role, body.tenant)
                hat = Hat(
                    hat_id="hat_" + secrets.token_hex(6),
                    person=caller.id,
                    role=body.role,
                    tenant=body.tenant,
                    since=now,
                    until=now + length,
                    why=why,
                )
                previous = roster().hat(caller.id, now)
                if previous is not None:
                    await end_hat(previous, f"replaced by {hat.hat_id}", now)
                await journal("hat", hat.hat_id, hat, caller.id)
                hats[hat.hat_id] = hat
                hats_changed.set()
                await audit(
                    hat.tenant,
                    "hat_switched",
                    f"{caller.id} wears {hat.role}"
                    + (f" for {hat.tenant}" if hat.tenant else "")
                    + f" until {hat.until.isoformat()} ({hat.hat_id}): {why}",
                )
                return ApiAnswer(status=200, body={"hat": _view(hat)})
            case "end":
                hat = roster().hat(caller.id, now) if caller.kind == "person" else None
                if hat is None:
                    return _error(409, "no hat is being worn")
                await end_hat(hat, "ended", now)
                return ApiAnswer(status=200, body={"ended": hat.hat_id})
            case "propose":
                grant = await allowed(caller, Action.CONFIGURE_TENANT, request.tenant)
                assert request.tenant is not None
                return await proposed(body, request.tenant, grant.by().split(" as ")[0], now)
            case "propose_config":  # the file, read again on SIGHUP: anyone may propose
                by = f"person:{caller.id}" if caller.kind == "person" else caller.id
                return await proposed(body, deps.operator_tenant, by, now)
            case "changes":
                await allowed(caller, Action.VIEW, None)
                wanted = request.key or None
                rows = [
                    _view(c)
                    for c in sorted(changes.values(), key=lambda c: c.proposed_at)
                    if wanted is None or c.status == wanted
                ]
                return ApiAnswer(status=200, body={"changes": rows})
            case "approve" | "reject":
                grant = await allowed(caller, Action.REVIEW_RULES, None)
                found = changes.get(request.key)
                if found is None:
                    return _error(404, f"no change {request.key!r}")
                why = check_why(body.why)
                reviewer = grant.by().split(" as ")[0]
                decided = decide(
                    found, approve=request.op == "approve", reviewer=reviewer, why=why, at=now
                )
                return await record_change(
                    decided,
                    reviewer,
                    f"{decided.change_id} proposed by {decided.proposed_by}, "
                    f"{decided.status} by {reviewer}: {why}",
                )
            case "applied":
                found = changes.get(request.key)
                if found is None or found.status != "approved" or caller.kind != "root_token":
                    return _error(409, f"change {request.key!r} is not approved")
                done = msgspec.structs.replace(
                    found, status="applied" if body.ok else "failed", outcome=body.outcome
                )
                return await record_change(
                    done,
                    "eyetok",
                    f"{done.change_id} (proposed by {done.proposed_by}, approved by "
                    f"{done.decided_by}): {done.outcome}",
                )
            case other:
                assert_never(other)

    async def answer(request: PeopleRequest) -> ApiAnswer:
        try:
            return await handle(request)
        except Refused as exc:
            return _error(403, exc.message, needed_role=str(exc.needed_role))
        except JustificationRefused as exc:
            return _error(400, str(exc), field="why")
        except ChangeRefused as exc:
            return _error(exc.status, exc.message)
        except (msgspec.ValidationError, ValueError) as exc:
            return _error(400, str(exc))

    async def audit_config_changes(before: frozenset[BindingKey]) -> None:
        """Journal and audit what the file's ``people:`` binds or no longer binds since the
        last start (the file's bindings are audited as the API's are)."""
        now_bound = {(b.person, b.role, b.tenant) for b in configured}
        for person, role, tenant in sorted(now_bound ^ before, key=str):
            bound = (person, role, tenant) in now_bound
            record = RoleBound(person=person, role=role, tenant=tenant, bound=bound, by=CONFIG)
            await journal("role_binding", person, record, CONFIG)
            scope = f" for {tenant}" if tenant else ""
            await audit(
                tenant,
                "role_bound" if bound else "role_unbound",
                f"{role}{scope} {'to' if bound else 'from'} {person} by the configuration",
            )

    async def expire_due() -> None:
        now = clock.now()
        for hat in [h for h in hats.values() if h.ended_at is None and h.until <= now]:
            await end_hat(hat, "expired", hat.until)

    async def expire_hats() -> None:
        """End each worn hat when its time runs out (on the injected clock)."""
        nonlocal hats_changed
        while True:
            await expire_due()
            worn = [h.until for h in hats.values() if h.ended_at is None]
            hats_changed = trio.Event()
            waiting = hats_changed
            async with trio.open_nursery() as timer:
                timer.start_soon(_cancel_when, waiting, timer.cancel_scope)
                if worn:
                    await clock.sleep_until(min(worn))
                else:
                    await trio.sleep_forever()
                timer.cancel_scope.cancel()

    await expire_due()  # hats that ran out while EyeTok was down
    await audit_config_changes(folded.last_config)
    open_mode = roster().open_mode
    (logger.warning if open_mode else logger.info)(
        "access_mode",
        open_mode=open_mode,
        people=len(roster().people),
        bindings=len(roster().bindings),
        pending_changes=sum(1 for c in changes.values() if c.status == "pending"),
        why=(
            "no people are configured or bound: every caller may do everything, as before "
            "roles; bind a role (people: in the config, or PUT /api/v1/people/<id>/roles) "
            "to enforce them"
            if open_mode
            else "roles are enforced"
        ),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(expire_hats)
        task_status.started()
        async for message in inbox:
            match message:
                case PeopleRequest():
                    message.reply.send(await answer(message))
                case _:
                    assert_never(message)


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` (the timer's sleep) when ``event`` is set: a new hat may run out
    sooner than the one being waited for."""
    await event.wait()
    scope.cancel()
