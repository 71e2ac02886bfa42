"""The tenants actor: owner of the tenant API's tokens and of every tenant's API-written
sinks and routes.

Each call on ``/api/v1/tenants/{tenant}/…`` reaches it as a :class:`TenantRequest`. It
checks the caller first (layer 1 of three): the root token may do anything, audited; a
tenant token only on its own tenant's path (another tenant's path is a 403, audited);
tokens are kept as SHA-256 hashes and compared in constant time. A write goes through
the tenant's :class:`TenantScope` (layer 2), is journalled by the history actor (the
answer waits for the commit, then the DuckDB tables are flushed so a restarting actor
reads it), and the router, the delivery actor and the verification actor are told with a
:class:`TenantConfigChanged` carrying the new effective settings.

On every (re)start the tokens and the overlays are rebuilt from the history; the other
actors rebuild theirs with :func:`effective_settings`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

import msgspec
import trio

from actors.sinks import build_sinks
from actors.sinks.base import Sink
from actors.sinks.slack.verify import Workspaces
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings, sink_type_of
from eyetok.errors import CrossTenantError
from eyetok.messages import (
    ApiAnswer,
    AuditRecorded,
    BudgetMessage,
    CredentialsSwapped,
    CredentialVersionInUse,
    DeliveryMessage,
    FlushHistory,
    HistoryMessage,
    OnCallChanged,
    Reply,
    RouterMessage,
    TenantConfigChanged,
    TenantConfigEntry,
    TenantRecorded,
    TenantRequest,
    TenantsMessage,
    TenantToken,
    VerificationMessage,
)
from eyetok.rotation.material import in_use
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.tenant_api import (
    ROUTES_KEY,
    TenantApiError,
    TenantOverlay,
    fold_entries,
    live_tokens,
    match_token,
    new_token,
    new_token_id,
    parse_routes,
    parse_sink,
    parse_token_request,
    routes_json,
    sink_json,
    token_hash,
    with_overlays,
)
from state.history.store import HistoryStore
from state.history.tenant_queries import TenantScope, root_config_entries, root_tokens

ROOT_OPS = frozenset({"issue_token", "list_tokens", "revoke_token"})
# "admit" (key: the op about to be called) lets the HTTP layer refuse a caller before it
# reads a body; root is audited by the op itself, not by its admission.
TENANT_OPS = frozenset(
    {
        "admit",
        "authorise",
        "list_sinks",
        "own_sink",
        "put_sink",
        "delete_sink",
        "get_routes",
        "put_routes",
        "check_routes",
    }
)
COMMIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TenantsDeps:
    settings: Settings  # the file's configuration (the overlays go on top of it)
    store: HistoryStore


async def effective_settings(base: Settings, store: HistoryStore) -> Settings:
    """``base`` with every tenant's API-written sinks and routes, as the history holds
    them (what the router, delivery and verification actors start from)."""
    entries = await store.read(root_config_entries)
    return with_overlays(base, fold_entries(entries)) if entries else base


def api_sinks(settings: Settings, sink_ids: Iterable[str], clock: Clock) -> dict[str, Sink]:
    """Clients for the given sinks of ``settings`` (those with credentials)."""
    wanted = {s: settings.sinks[s] for s in sink_ids if s in settings.sinks}
    return build_sinks(msgspec.structs.replace(settings, sinks=wanted), clock)


def with_credentials_of(base: Settings, fresh: Settings) -> Settings:
    """``base`` holding ``fresh``'s credentials (re-read on SIGHUP) and nothing else of it:
    a changed configuration file still needs a restart."""
    return msgspec.structs.replace(
        base,
        sink_secrets={s: v for s, v in fresh.sink_secrets.items() if s in base.sinks},
        sink_env=fresh.sink_env,
        tenant_env=fresh.tenant_env,
        root_token=fresh.root_token,
    )


def _error(status: int, message: str, field: str | None = None) -> ApiAnswer:
    body: dict[str, object] = {"error": message}
    if field is not None:
        body["field"] = field
    return ApiAnswer(status=status, body=body)


def _token_view(token: TenantToken) -> dict[str, object]:
    return {
        "token_id": token.token_id,
        "tenant": token.tenant,
        "label": token.label,
        "issued_at": token.issued_at.isoformat(),
        "issued_by": token.issued_by,
    }


async def run_tenants(
    deps: TenantsDeps,
    inbox: trio.MemoryReceiveChannel[TenantsMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    to_router: trio.MemorySendChannel[RouterMessage],
    to_delivery: trio.MemorySendChannel[DeliveryMessage],
    to_verification: trio.MemorySendChannel[VerificationMessage],
    to_budgets: trio.MemorySendChannel[BudgetMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("tenants")
    base = deps.settings
    tokens = live_tokens(await deps.store.read(root_tokens))
    overlays = fold_entries(await deps.store.read(root_config_entries))
    effective = with_overlays(base, overlays)
    workspaces = Workspaces(base.slack_api_url)

    async def in_operator_workspace(
        sink_id: str, config: SlackSinkConfig, token: str | None, field: str
    ) -> None:
        """Refuse a tenant's Slack sink whose bot token is in the operator's workspace
        (:class:`TenantApiError` 403, audited): its routes could name any of the
        operator's channels."""
        refusal = await workspaces.refusal(effective, sink_id, config, token)
        if refusal is not None:
            raise TenantApiError(403, field, refusal, cross_tenant=True)

    async def audit(tenant: str, event: str, detail: str) -> None:
        await to_history.send(
            AuditRecorded(at=clock.now(), tenant=tenant, event=event, detail=detail)
        )
        logger.info(event, tenant=tenant, detail=detail)

    async def journal(
        message_tokens: tuple[TenantToken, ...] = (), entries: tuple[TenantConfigEntry, ...] = ()
    ) -> None:
        """Journal and wait for the commit, then for the DuckDB tables."""
        committed: Reply[bool] = Reply()
        await to_history.send(
            TenantRecorded(tokens=message_tokens, entries=entries, reply=committed)
        )
        flushed: Reply[bool] = Reply()
        with trio.fail_after(COMMIT_TIMEOUT_S):
            await committed.wait()
            await to_history.send(FlushHistory(reply=flushed))
            await flushed.wait()

    async def changed(tenant: str, sinks: tuple[str, ...]) -> None:
        nonlocal effective
        effective = with_overlays(base, overlays)
        message = TenantConfigChanged(settings=effective, tenant=tenant, sinks=sinks)
        await to_router.send(message)
        await to_delivery.send(message)
        await to_verification.send(message)
        await to_budgets.send(message)

    async def caller(request: TenantRequest) -> str | ApiAnswer:
        """Layer 1: "root", "token:<id>", or the refusal."""
        presented = request.credential.encode()
        op = request.key if request.op == "admit" else request.op
        if request.vouched and op not in ROOT_OPS:  # the people actor authorised it
            return request.vouched
        if base.root_token is not None and hmac.compare_digest(presented, base.root_token.encode()):
            if request.op != "admit":
                await audit(request.tenant, "root_api", f"{request.op} {request.key}".strip())
            return "root"
        token = match_token(request.credential, tokens.values()) if request.credential else None
        if token is None:
            return _error(401, "a tenant token (or the root token) is required")
        if op in ROOT_OPS:
            await audit(token.tenant, "root_op_refused", f"token {token.token_id}: {op}")
            return _error(403, f"{op} needs the root token")
        if token.tenant != request.tenant:
            await audit(
                token.tenant,
                "cross_tenant_refused",
                f"token {token.token_id} of tenant {token.tenant!r} on tenant "
                f"{request.tenant!r}: {request.op} {request.key}".strip(),
            )
            return _error(403, f"this token is tenant {token.tenant!r}'s, not {request.tenant!r}'s")
        return f"token:{token.token_id}"

    async def handle(request: TenantRequest) -> ApiAnswer:
        nonlocal overlays
        who = await caller(request)
        if isinstance(who, ApiAnswer):
            return who
        tenant = request.tenant
        if tenant not in base.tenants:
            return _error(404, f"no tenant named {tenant!r}")
        scope = TenantScope(tenant)
        overlay = overlays.get(tenant, TenantOverlay())
        now = clock.now()
        match request.op:
            case "authorise" | "admit":
                return ApiAnswer(status=200, body={"tenant": tenant, "as": who})
            case "list_sinks":
                return ApiAnswer(status=200, body={"sinks": sinks_of(tenant)})
            case "own_sink":
                return own_sink(tenant, request.key)
            case "get_routes":
                policy = effective.tenants[tenant].policy
                return ApiAnswer(
                    status=200,
                    body={
                        "tenant": tenant,
                        "source": "file" if overlay.routes is None else "api",
                        "routes": msgspec.to_builtins(policy.routes),
                        "business_hours": msgspec.to_builtins(policy.business_hours),
                    },
                )
            case "put_sink":
                config = parse_sink(tenant, request.key, request.body, base)
                if isinstance(config, SlackSinkConfig):
                    token = base.tenant_env.get(config.token_env)
                    await in_operator_workspace(request.key, config, token, "token_env")
                entry = scope.entry(
                    kind="sink", key=request.key, value_json=sink_json(config), at=now, by=who
                )
                entries, _ = scope.checked([entry])
                await journal(entries=entries)
                created = request.key not in overlay.sinks
                overlays = {
                    **overlays,
                    tenant: msgspec.structs.replace(
                        overlay, sinks={**overlay.sinks, request.key: config}
                    ),
                }
                await changed(tenant, (request.key,))
                await audit(
                    tenant,
                    "tenant_sink_written",
                    f"{request.key} ({sink_type_of(config)}) by {who}",
                )
                return ApiAnswer(
                    status=201 if created else 200,
                    body={
                        "sink_id": request.key,
                        "tenant": tenant,
                        "config": msgspec.to_builtins(config),
                        "verified": False,
                        "next": f"POST /api/v1/tenants/{tenant}/sinks/{request.key}/verification"
                        " (nothing is delivered to it until its ownership is verified)",
                    },
                )
            case "delete_sink":
                own_sink(tenant, request.key)
                if request.key not in overlay.sinks:
                    return _error(409, f"{request.key!r} is configured in the file", "sink_id")
                naming = [
                    channel.value
                    for channel, routes in effective.tenants[tenant].policy.routes.items()
                    if any(r.sink == request.key for r in routes)
                ]
                if naming:
                    return _error(
                        409, f"routes {', '.join(naming)} still name {request.key!r}", "sink_id"
                    )
                entries, _ = scope.checked(
                    [scope.entry(kind="sink", key=request.key, value_json="", at=now, by=who)]
                )
                await journal(entries=entries)
                remaining = {k: v for k, v in overlay.sinks.items() if k != request.key}
                overlays = {**overlays, tenant: msgspec.structs.replace(overlay, sinks=remaining)}
                await changed(tenant, (request.key,))
                await audit(tenant, "tenant_sink_removed", f"{request.key} by {who}")
                return ApiAnswer(status=200, body={"sink_id": request.key, "removed": True})
            case "check_routes":  # a proposal for review: checked, not applied
                routes = parse_routes(tenant, request.body, effective.sinks)
                return ApiAnswer(status=200, body={"routes": msgspec.to_builtins(routes)})
            case "put_routes":
                routes = parse_routes(tenant, request.body, effective.sinks)
                for sink_id in sorted({r.sink for rs in routes.values() for r in rs}):
                    named = effective.sinks[sink_id]
                    if isinstance(named, SlackSinkConfig):
                        token = effective.sink_secrets.get(sink_id)
                        await in_operator_workspace(sink_id, named, token, "routes")
                entries, _ = scope.checked(
                    [
                        scope.entry(
                            kind=ROUTES_KEY,
                            key=ROUTES_KEY,
                            value_json=routes_json(routes),
                            at=now,
                            by=who,
                        )
                    ]
                )
                await journal(entries=entries)
                overlays = {**overlays, tenant: msgspec.structs.replace(overlay, routes=routes)}
                await changed(tenant, ())
                await audit(
                    tenant,
                    "tenant_routes_written",
                    f"{', '.join(f'{c.value}->{len(r)}' for c, r in routes.items())} by {who}",
                )
                return ApiAnswer(
                    status=200,
                    body={"tenant": tenant, "source": "api", "routes": msgspec.to_builtins(routes)},
                )
            case "issue_token":
                asked = parse_token_request(request.body)
                token = new_token()
                record = TenantToken(
                    token_id=new_token_id(),
                    tenant=tenant,
                    token_hash=token_hash(token),
                    issued_at=now,
                    issued_by=asked.issued_by,
                    label=asked.label,
                )
                _, rows = scope.checked(tokens=[record])
                await journal(message_tokens=rows)
                tokens[record.token_id] = record
                await audit(tenant, "tenant_token_issued", f"{record.token_id} ({record.label})")
                return ApiAnswer(
                    status=201,
                    body={
                        **_token_view(record),
                        "token": token,
                        "note": "shown once: EyeTok keeps only its SHA-256",
                    },
                )
            case "list_tokens":
                mine = [_token_view(t) for t in tokens.values() if t.tenant == tenant]
                return ApiAnswer(status=200, body={"tokens": mine})
            case "revoke_token":
                found = tokens.get(request.key)
                if found is None or found.tenant != tenant:
                    return _error(404, f"tenant {tenant!r} has no live token {request.key!r}")
                revoked = msgspec.structs.replace(found, revoked_at=now, revoked_by=who)
                _, rows = scope.checked(tokens=[revoked])
                await journal(message_tokens=rows)
                del tokens[request.key]
                await audit(tenant, "tenant_token_revoked", request.key)
                return ApiAnswer(status=200, body={"token_id": request.key, "revoked": True})
            case other:
                return _error(404, f"no tenant API operation {other!r}")

    def sinks_of(tenant: str) -> list[dict[str, object]]:
        overlay = overlays.get(tenant, TenantOverlay())
        return [
            {
                "sink_id": sink_id,
                "type": sink_type_of(config),
                "source": "api" if sink_id in overlay.sinks else "file",
                "credentials": sink_id in effective.sink_secrets,
                "config": msgspec.to_builtins(config),
            }
            for sink_id, config in sorted(effective.sinks.items())
            if config.tenant == tenant
        ]

    def own_sink(tenant: str, sink_id: str) -> ApiAnswer:
        """The tenant's own sink, or a :class:`TenantApiError` (another tenant's: 403)."""
        config = effective.sinks.get(sink_id)
        if config is None:
            raise TenantApiError(404, "sink_id", f"tenant {tenant!r} has no sink named {sink_id!r}")
        if config.tenant != tenant:
            raise TenantApiError(
                403, "sink_id", f"sink {sink_id!r} is not tenant {tenant!r}'s", cross_tenant=True
            )
        return ApiAnswer(status=200, body={"sink_id": sink_id, "tenant": tenant})

    task_status.started()
    async for message in inbox:
        match message:
            case TenantRequest():
                try:
                    answer = await handle(message)
                except TenantApiError as exc:
                    if exc.cross_tenant:
                        await audit(
                            message.tenant,
                            "cross_tenant_refused",
                            f"{message.op} {message.key}: {exc.field}: {exc.problem}",
                        )
                    answer = _error(exc.status, exc.problem, exc.field)
                except CrossTenantError as exc:  # layer 2 refused what layer 1 let through
                    await audit(message.tenant, "cross_tenant_refused", str(exc))
                    answer = _error(403, str(exc))
                message.reply.send(answer)
            case CredentialVersionInUse():
                base = in_use(
                    base,
                    message.sink_id,
                    message.current,
                    since=message.since,
                    previous=message.previous,
                    now=clock.now(),
                )
                await changed(base.operator_tenant, ())
                message.reply.send(True)
            case OnCallChanged(slack_user=slack_user, who=who):
                slack = msgspec.structs.replace(base.slack, oncall_user=slack_user)
                base = msgspec.structs.replace(base, slack=slack)
                await changed(base.operator_tenant, ())
                logger.info("oncall_mention_follows", slack_user=slack_user, who=who)
            case CredentialsSwapped(settings=fresh, why=why):
                base = with_credentials_of(base, fresh)
                await changed(base.operator_tenant, ())
                logger.info("credentials_swapped", why=why, sinks=sorted(base.sink_secrets))
            case _:
                assert_never(message)
