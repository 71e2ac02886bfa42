"""The people actor: owner of who holds which role, who wears which hat until when, the
persons' API tokens and the rule changes waiting for a second person.

Every call reaches it as a :class:`PeopleRequest` and is answered with an
:class:`ApiAnswer`. ``authorise`` is the one authorisation every action path asks
(:func:`eyetok.access.authorise` decides; a refusal is audited and names the role needed).
Roles and tokens are ``roles.py``, hats ``hats.py``, rule changes ``rule_changes.py``;
what they share (the folded state, journal and audit) is ``ledger.py``.

Its state is a log of rows journalled by the history actor as configuration entries of
the operator tenant (kinds ``role_binding``, ``person_token``, ``hat``, ``rule_change``):
so it is mirrored to Postgres (``tenant_config_log``) and restored on a fresh dyno with
the rest. On every (re)start the roster, the tokens, the hats and the pending changes are
folded from it; a hat whose time ran out while EyeTok was down is ended (``hat_expired``)
at once, and a worn hat is ended by a timer on the injected clock when it runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import msgspec
import trio

from actors.people import hats, roles, rule_changes
from actors.people.ledger import Ledger, RequestBody, error, view
from eyetok import log
from eyetok.access import (
    Action,
    JustificationRefused,
    PersonConfig,
    Refused,
    bindings_of,
)
from eyetok.changes import ChangeRefused
from eyetok.clock import Clock
from eyetok.live_credentials import LiveCredentials
from eyetok.messages import (
    ApiAnswer,
    HistoryMessage,
    PeopleMessage,
    PeopleRequest,
)
from eyetok.people_log import fold_people
from state.history.store import HistoryStore
from state.history.tenant_queries import root_config_entries


@dataclass(frozen=True)
class PeopleDeps:
    people: tuple[PersonConfig, ...]
    credentials: LiveCredentials  # the root token in use now (SIGHUP swaps it)
    operator_tenant: str
    store: HistoryStore
    tenants: frozenset[str] = frozenset()


async def run_people(
    deps: PeopleDeps,
    inbox: trio.MemoryReceiveChannel[PeopleMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("people")
    folded = fold_people(await deps.store.read(root_config_entries), deps.operator_tenant)
    ledger = Ledger(
        deps=deps,
        clock=clock,
        to_history=to_history,
        logger=logger,
        configured=bindings_of(deps.people),
        known=frozenset(p.slack_user_id for p in deps.people),
        api_bindings=folded.api_bindings,
        tokens=folded.tokens,
        hats=folded.hats,
        changes=folded.changes,
    )

    async def handle(request: PeopleRequest) -> ApiAnswer:
        caller = ledger.identify(request)
        if caller is None:
            return error(
                401,
                "a person's token (or the root token) is required",
                needed_role="viewer",
                open_mode=ledger.roster().open_mode,
            )
        body = (
            msgspec.convert(request.body, RequestBody)
            if request.body is not None
            else RequestBody()
        )
        now = clock.now()
        match request.op:
            case "authorise":
                grant = await ledger.allowed(caller, Action(request.action), request.tenant)
                return ApiAnswer(
                    status=200,
                    body={
                        "grant": view(grant),
                        "by": grant.by(),
                        "open_mode": ledger.roster().open_mode,
                    },
                )
            case "whoami":
                return roles.whoami(ledger, caller, now)
            case "people":
                return await roles.people(ledger, caller, now)
            case "bind" | "unbind":
                return await roles.bind(ledger, caller, request, body)
            case "issue_token":
                return await roles.issue_token(ledger, caller, request, now)
            case "switch":
                return await hats.switch(ledger, caller, body, now)
            case "end":
                return await hats.end(ledger, caller, now)
            case "propose":
                grant = await ledger.allowed(caller, Action.CONFIGURE_TENANT, request.tenant)
                assert request.tenant is not None
                by = grant.by().split(" as ")[0]
                return await rule_changes.proposed(ledger, body, request.tenant, by, now)
            case "propose_config":  # the file, read again on SIGHUP: anyone may propose
                by = f"person:{caller.id}" if caller.kind == "person" else caller.id
                return await rule_changes.proposed(ledger, body, deps.operator_tenant, by, now)
            case "changes":
                return await rule_changes.listed(ledger, caller, request)
            case "approve" | "reject":
                return await rule_changes.reviewed(ledger, caller, request, body, now)
            case "applied":
                return await rule_changes.applied(ledger, caller, request, body)
            case other:
                assert_never(other)

    async def answer(request: PeopleRequest) -> ApiAnswer:
        try:
            return await handle(request)
        except Refused as exc:
            return error(403, exc.message, needed_role=str(exc.needed_role))
        except JustificationRefused as exc:
            return error(400, str(exc), field="why")
        except ChangeRefused as exc:
            return error(exc.status, exc.message)
        except (msgspec.ValidationError, ValueError) as exc:
            return error(400, str(exc))

    await hats.expire_due(ledger)  # hats that ran out while EyeTok was down
    await roles.audit_config_changes(ledger, folded.last_config)
    roster = ledger.roster()
    open_mode = roster.open_mode
    (logger.warning if open_mode else logger.info)(
        "access_mode",
        open_mode=open_mode,
        people=len(roster.people),
        bindings=len(roster.bindings),
        pending_changes=sum(1 for c in ledger.changes.values() if c.status == "pending"),
        why=(
            "no people are configured or bound: every caller may do everything, as before "
            "roles; bind a role (people: in the config, or PUT /api/v1/people/<id>/roles) "
            "to enforce them"
            if open_mode
            else "roles are enforced"
        ),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hats.expire_hats, ledger)
        task_status.started()
        async for message in inbox:
            match message:
                case PeopleRequest():
                    message.reply.send(await answer(message))
                case _:
                    assert_never(message)
