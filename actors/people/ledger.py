"""What the people actor holds while it runs, and the moves every call makes.

The :class:`Ledger` keeps the roster's parts folded from the log (the API's bindings, the
persons' tokens, every hat, every rule change), tells who is calling, asks
:func:`eyetok.access.authorise` (a refusal is audited and names the role needed),
journals a row (waiting for the commit, then for the DuckDB tables) and audits.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from eyetok.access import (
    Action,
    Binding,
    Caller,
    Grant,
    Hat,
    Refused,
    Role,
    Roster,
    authorise,
)
from eyetok.changes import Change, ChangeKind
from eyetok.clock import Clock
from eyetok.messages import (
    ApiAnswer,
    AuditRecorded,
    FlushHistory,
    HistoryMessage,
    PeopleRequest,
    Reply,
    TenantConfigEntry,
    TenantRecorded,
)
from eyetok.people_log import BindingKey, PersonToken
from eyetok.tenant_api import token_hash

if TYPE_CHECKING:
    from actors.people.actor import PeopleDeps

COMMIT_TIMEOUT_S = 10.0


class RequestBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
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


encode = msgspec.json.Encoder().encode


def error(status: int, message: str, **extra: object) -> ApiAnswer:
    return ApiAnswer(status=status, body={"error": message, **extra})


def view(value: msgspec.Struct) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(value)
    return out


@dataclass
class Ledger:
    deps: PeopleDeps
    clock: Clock
    to_history: trio.MemorySendChannel[HistoryMessage]
    logger: Any
    configured: tuple[Binding, ...]  # what the file's people: binds
    known: frozenset[str]  # the people the file names
    api_bindings: dict[BindingKey, Binding]
    tokens: dict[str, PersonToken]
    hats: dict[str, Hat]
    changes: dict[str, Change]
    hats_changed: trio.Event = field(default_factory=trio.Event)  # wakes the hats' timer

    def roster(self) -> Roster:
        bindings = self.configured + tuple(self.api_bindings.values())
        return Roster(
            bindings=bindings,
            hats=tuple(h for h in self.hats.values() if h.ended_at is None),
            people=self.known | {b.person for b in bindings},
        )

    async def audit(self, tenant: str | None, event: str, detail: str) -> None:
        where = tenant or self.deps.operator_tenant
        await self.to_history.send(
            AuditRecorded(at=self.clock.now(), tenant=where, event=event, detail=detail)
        )
        self.logger.info(event, tenant=where, detail=detail)

    async def journal(self, kind: str, key: str, value: msgspec.Struct, by: str) -> None:
        """Journal one row and wait for the commit, then for the DuckDB tables."""
        entry = TenantConfigEntry(
            tenant=self.deps.operator_tenant,
            kind=kind,
            key=f"{key}#{secrets.token_hex(4)}",
            value_json=encode(value).decode(),
            recorded_at=self.clock.now(),
            recorded_by=by,
        )
        committed: Reply[bool] = Reply()
        await self.to_history.send(TenantRecorded(entries=(entry,), reply=committed))
        flushed: Reply[bool] = Reply()
        with trio.fail_after(COMMIT_TIMEOUT_S):
            await committed.wait()
            await self.to_history.send(FlushHistory(reply=flushed))
            await flushed.wait()

    def identify(self, request: PeopleRequest) -> Caller | None:
        if request.caller is not None:
            return request.caller
        if request.slack_user:
            return Caller(kind="person", id=request.slack_user)
        presented = request.credential.encode()
        if not presented:
            return None
        root = self.deps.credentials.root_token
        if root and hmac.compare_digest(presented, root.encode()):
            return Caller(kind="root_token", id="root")
        digest = token_hash(request.credential).encode()
        found = None
        for t in self.tokens.values():
            if hmac.compare_digest(digest, t.token_hash.encode()):
                found = t
        return Caller(kind="person", id=found.person) if found else None

    async def allowed(self, caller: Caller, action: Action, tenant: str | None) -> Grant:
        try:
            return authorise(caller, action, tenant, self.roster(), self.clock.now())
        except Refused as exc:
            await self.audit(
                tenant,
                "access_refused",
                f"{caller.label()}: {action}"
                + (f" on {tenant}" if tenant else "")
                + f": needs {exc.needed_role}",
            )
            raise
