"""The verification actor: the one owner of pending ownership handshakes.

Four handshakes, one per sink type (the seed's reference recipes):

- Slack: a 32-byte nonce the customer sends to the EyeTok app in a direct message; it
  arrives through the Events API. Seen in a channel instead, it is burnt and refused.
- webhook: a 16-byte nonce in a DNS TXT record at ``_eyetok-verify.<host>``, polled.
- email: a magic link with a 32-byte token; opening it binds the address for 12 months.
- PagerDuty: OAuth 2.0 authorization code with PKCE (S256).

Every step is a verification-log row (history) and every change of a sink's standing
goes to the delivery gate. Pending handshakes live in memory: a restart forgets them
(their ``pending`` rows stay, and the gate keeps refusing until a new handshake).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import assert_never

import httpx
import msgspec
import trio

from actors.sinks.base import Delivered, Sink
from actors.sinks.email.verify import (
    MagicLinkError,
    PendingBinding,
    link_message,
    magic_link,
    new_token,
    redeem,
    token_hash,
)
from actors.sinks.pagerduty.verify import (
    OAuthError,
    OAuthTokens,
    PendingAuthorization,
    begin_authorization,
    exchange_code,
    match_callback,
    refresh,
)
from actors.sinks.webhook import verify as txt
from actors.tenants import api_sinks, effective_settings
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings, sink_type_of
from eyetok.messages import (
    EmailLinkOpened,
    HandshakeAnswer,
    HistoryMessage,
    ListVerifications,
    OAuthCallback,
    ReverifyDue,
    SlackMessageSeen,
    StartVerification,
    TenantConfigChanged,
    VerificationChanged,
    VerificationMessage,
    VerificationRecorded,
)
from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.verification import (
    CADENCE,
    Verification,
    VerificationStatus,
    expiry,
    nonce_hash,
    standing,
)
from state.history import queries
from state.history.store import HistoryStore

_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


class SinkRemovedError(Exception):
    """A handshake came back for a sink that has since been removed (through the tenant
    API): there is nothing left to verify, so it is dropped."""

    def __init__(self, sink_id: str) -> None:
        super().__init__(f"sink {sink_id!r} was removed while its handshake was under way")
        self.sink_id = sink_id


@dataclass(frozen=True)
class VerificationDeps:
    settings: Settings  # the file's; the tenants' API sinks are added on start and on change
    store: HistoryStore
    sinks: dict[str, Sink]
    public_url: str  # where magic links and OAuth callbacks point
    dns_server: tuple[str, int] = ("127.0.0.1", 53)
    txt_every_s: float = 300.0
    txt_for_s: float = 86_400.0
    http_transport: httpx.AsyncBaseTransport | None = None


@dataclass
class _Pending:
    """Handshakes under way, by what will come back to complete them."""

    slack: dict[str, tuple[str, str]] = field(default_factory=dict)  # nonce hash -> sink, who
    email: dict[str, PendingBinding] = field(default_factory=dict)  # token hash -> binding
    email_by: dict[str, str] = field(default_factory=dict)  # token hash -> who asked
    email_used: set[str] = field(default_factory=set)
    oauth: dict[str, PendingAuthorization] = field(default_factory=dict)  # state -> pending
    oauth_by: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, OAuthTokens] = field(default_factory=dict)  # sink -> PagerDuty tokens


async def run_verification(
    deps: VerificationDeps,
    inbox: trio.MemoryReceiveChannel[VerificationMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    to_delivery: trio.MemorySendChannel[VerificationChanged],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("verification")
    settings = await effective_settings(deps.settings, deps.store)
    sinks: dict[str, Sink] = dict(deps.sinks)
    built: list[Sink] = []  # clients made here for API sinks (closed when the actor stops)

    def follow_api_sinks(changed: tuple[str, ...] | None) -> None:
        wanted = [
            s for s in settings.sinks if s not in deps.sinks and (changed is None or s in changed)
        ]
        fresh = api_sinks(settings, wanted, clock)
        for sink_id in changed or ():
            if sink_id not in deps.sinks:
                sinks.pop(sink_id, None)
        sinks.update(fresh)
        built.extend(fresh.values())

    follow_api_sinks(None)
    latest: dict[str, Verification] = await deps.store.read(queries.latest_verifications)
    pending = _Pending()

    def dropped(exc: SinkRemovedError) -> None:
        logger.warning("handshake_dropped", sink=exc.sink_id, reason=str(exc))

    def gone(exc: SinkRemovedError) -> HandshakeAnswer:
        dropped(exc)
        return HandshakeAnswer(ok=False, sink_id=exc.sink_id, status="refused", message=str(exc))

    async def record(v: Verification) -> None:
        latest[v.sink_id] = standing(latest.get(v.sink_id), v)
        await to_history.send(VerificationRecorded(verification=v))
        await to_delivery.send(VerificationChanged(verification=latest[v.sink_id]))
        log_fn = logger.warning if v.status is VerificationStatus.FAILED else logger.info
        log_fn(
            "sink_verification",
            sink=v.sink_id,
            sink_type=v.sink_type,
            tenant=v.tenant,
            status=v.status.value,
            expires_at=v.expires_at.isoformat() if v.expires_at else None,
            detail=v.detail or None,
        )

    def row(
        sink_id: str, status: VerificationStatus, *, detail: str = "", **fields: object
    ) -> Verification:
        config = settings.sinks.get(sink_id)
        if config is None:
            raise SinkRemovedError(sink_id)
        now = clock.now()
        live = status in (VerificationStatus.LIVE, VerificationStatus.RENEWED)
        return msgspec.convert(
            {
                "sink_id": sink_id,
                "sink_type": sink_type_of(config),
                "tenant": config.tenant,
                "status": status,
                "handshake_at": now,
                "expires_at": expiry(sink_type_of(config), now) if live else None,
                "audit_log_link": f"{deps.public_url}/api/v1/sinks/{sink_id}/verification",
                "detail": detail,
                **fields,
            },
            Verification,
            from_attributes=True,
        )

    async def start(message: StartVerification, nursery: trio.Nursery) -> HandshakeAnswer:
        sink_id = message.sink_id
        config = settings.sinks.get(sink_id)
        if config is None:
            return HandshakeAnswer(
                ok=False, sink_id=sink_id, status="refused", message=f"no sink named {sink_id!r}"
            )
        who = message.requested_by
        match sink_type_of(config):
            case "slack":
                nonce = secrets.token_hex(32)
                pending.slack[nonce_hash(nonce)] = (sink_id, who)
                await record(
                    row(
                        sink_id,
                        VerificationStatus.PENDING,
                        approved_by=who,
                        nonce_hash=nonce_hash(nonce),
                        detail="waiting for the nonce in a DM",
                    )
                )
                return HandshakeAnswer(
                    ok=True,
                    sink_id=sink_id,
                    status="pending",
                    nonce=nonce,
                    message="Send this nonce to the EyeTok app in a direct message "
                    f"(not in a channel): {nonce}",
                )
            case "webhook":
                assert isinstance(config, WebhookSinkConfig)
                nonce = txt.new_nonce()
                try:
                    name = txt.record_name(config.url)
                except ValueError as exc:  # an IP address: no domain to prove ownership of
                    return HandshakeAnswer(
                        ok=False, sink_id=sink_id, status="refused", message=str(exc)
                    )
                await record(
                    row(
                        sink_id,
                        VerificationStatus.PENDING,
                        approved_by=who,
                        nonce_hash=nonce_hash(nonce),
                        detail=f"polling TXT {name}",
                    )
                )
                nursery.start_soon(poll, sink_id, name, nonce, who)
                return HandshakeAnswer(
                    ok=True,
                    sink_id=sink_id,
                    status="pending",
                    nonce=nonce,
                    message=f"Publish a DNS TXT record {name} with the value {nonce}; EyeTok "
                    f"checks every {deps.txt_every_s:.0f}s for {deps.txt_for_s / 3600:.0f}h.",
                )
            case "email":
                assert isinstance(config, EmailSinkConfig)
                return await send_magic_link(sink_id, config, who)
            case "pagerduty":
                assert isinstance(config, PagerDutySinkConfig)
                try:
                    authorization, url = begin_authorization(
                        config, sink_id=sink_id, now=clock.now()
                    )
                except (OAuthError, ValueError) as exc:
                    return HandshakeAnswer(
                        ok=False, sink_id=sink_id, status="refused", message=str(exc)
                    )
                pending.oauth[authorization.state] = authorization
                pending.oauth_by[authorization.state] = who
                await record(
                    row(
                        sink_id,
                        VerificationStatus.PENDING,
                        approved_by=who,
                        detail="waiting for the OAuth callback",
                    )
                )
                return HandshakeAnswer(
                    ok=True,
                    sink_id=sink_id,
                    status="pending",
                    url=url,
                    message=f"Open {url} as the PagerDuty account owner and approve EyeTok.",
                )
            case other:
                return HandshakeAnswer(
                    ok=False, sink_id=sink_id, status="refused", message=f"unknown type {other}"
                )

    async def send_magic_link(sink_id: str, config: EmailSinkConfig, who: str) -> HandshakeAnswer:
        sink = sinks.get(sink_id)
        if sink is None:
            return HandshakeAnswer(
                ok=False,
                sink_id=sink_id,
                status="refused",
                message=f"sink {sink_id!r} has no SMTP credentials ({config.smtp_url_env})",
            )
        token = new_token()
        now = clock.now()
        binding = PendingBinding.issue(sink_id=sink_id, address=config.to, token=token, now=now)
        link = magic_link(deps.public_url, token)
        spec = link_message(config, link, expires_at=binding.link_expires_at, issued_at=now)
        sent = await sink.send(spec, idempotency_key="verify_" + token_hash(token)[:24])
        if not isinstance(sent, Delivered):
            return HandshakeAnswer(
                ok=False,
                sink_id=sink_id,
                status="failed",
                message=f"the magic link could not be sent: {sent.reason}",
            )
        pending.email[token_hash(token)] = binding
        pending.email_by[token_hash(token)] = who
        await record(
            row(
                sink_id,
                VerificationStatus.PENDING,
                approved_by=who,
                nonce_hash=token_hash(token),
                detail=f"magic link sent to {config.to}",
            )
        )
        return HandshakeAnswer(
            ok=True,
            sink_id=sink_id,
            status="pending",
            message=f"A magic link went to {config.to}; it must be opened within 24 hours.",
        )

    async def poll(sink_id: str, name: str, nonce: str, who: str) -> None:
        host, port = deps.dns_server
        verdict = await txt.poll_txt(
            name,
            nonce,
            nameserver=host,
            port=port,
            every_s=deps.txt_every_s,
            for_s=deps.txt_for_s,
        )
        status = VerificationStatus.LIVE if verdict.verified else VerificationStatus.FAILED
        try:
            await record(
                row(
                    sink_id,
                    status,
                    verified_by=f"dns:{name}",
                    approved_by=who,
                    nonce_hash=nonce_hash(nonce),
                    detail=verdict.detail,
                )
            )
        except SinkRemovedError as exc:
            dropped(exc)

    async def slack_message(message: SlackMessageSeen) -> None:
        for candidate in _HEX64.findall(message.text.lower()):
            found = pending.slack.pop(nonce_hash(candidate), None)
            if found is None:
                continue
            sink_id, who = found
            if message.channel_type != "im":
                await record(
                    row(
                        sink_id,
                        VerificationStatus.FAILED,
                        approved_by=who,
                        nonce_hash=nonce_hash(candidate),
                        detail=f"nonce seen in a {message.channel_type} ({message.channel}), "
                        "not a DM: it is burnt; start again",
                    )
                )
                continue
            await record(
                row(
                    sink_id,
                    VerificationStatus.LIVE,
                    verified_by=f"slack:{message.user}",
                    approved_by=who,
                    nonce_hash=nonce_hash(candidate),
                    detail=f"nonce DM'd in workspace {message.team_id}",
                )
            )

    async def email_link(message: EmailLinkOpened) -> HandshakeAnswer:
        try:
            binding = redeem(message.token, pending.email, now=clock.now(), used=pending.email_used)
        except MagicLinkError as exc:
            return HandshakeAnswer(ok=False, sink_id="", status="refused", message=str(exc))
        hashed = token_hash(message.token)
        verification = msgspec.structs.replace(
            row(
                binding.sink_id,
                VerificationStatus.LIVE,
                verified_by=f"email:{binding.address}",
                approved_by=pending.email_by.get(hashed, ""),
                nonce_hash=hashed,
                detail="magic link opened",
            ),
            expires_at=binding.expires_at,
        )
        await record(verification)
        return HandshakeAnswer(
            ok=True,
            sink_id=binding.sink_id,
            status="live",
            message=f"{binding.address} now receives these alerts until "
            f"{binding.expires_at.date().isoformat()}.",
        )

    async def oauth_callback(message: OAuthCallback, client: httpx.AsyncClient) -> HandshakeAnswer:
        try:
            authorization = match_callback(pending.oauth, state=message.state)
        except OAuthError as exc:
            return HandshakeAnswer(ok=False, sink_id="", status="refused", message=str(exc))
        pending.oauth.pop(message.state, None)
        who = pending.oauth_by.pop(message.state, "")
        sink_id = authorization.sink_id
        config = settings.sinks.get(sink_id)
        if config is None:
            return gone(SinkRemovedError(sink_id))
        assert isinstance(config, PagerDutySinkConfig)
        if message.error or not message.code:
            detail = f"authorization refused: {message.error or 'no code'}"
            await record(row(sink_id, VerificationStatus.FAILED, approved_by=who, detail=detail))
            return HandshakeAnswer(ok=False, sink_id=sink_id, status="failed", message=detail)
        try:
            tokens = await exchange_code(
                config,
                code=message.code,
                verifier=authorization.verifier,
                client=client,
                now=clock.now(),
            )
        except OAuthError as exc:
            detail = f"token exchange refused: {exc}"
            await record(row(sink_id, VerificationStatus.FAILED, approved_by=who, detail=detail))
            return HandshakeAnswer(ok=False, sink_id=sink_id, status="failed", message=detail)
        pending.tokens[sink_id] = tokens
        await record(
            row(
                sink_id,
                VerificationStatus.LIVE,
                verified_by="pagerduty:oauth-pkce",
                approved_by=who,
                detail="token expires "
                + (tokens.expires_at.isoformat() if tokens.expires_at else "(not said)"),
            )
        )
        return HandshakeAnswer(
            ok=True, sink_id=sink_id, status="live", message="PagerDuty authorized EyeTok."
        )

    async def reverify(at: datetime, client: httpx.AsyncClient) -> None:
        """Every sink whose verification is older than its cadence runs its handshake
        again: the TXT record is looked up again, the PagerDuty token refreshed; Slack and
        email need a person, so they are marked due and the gate keeps refusing."""
        for sink_id, config in settings.sinks.items():
            current = latest.get(sink_id)
            kind = sink_type_of(config)
            if current is None or current.status not in (
                VerificationStatus.LIVE,
                VerificationStatus.RENEWED,
            ):
                continue
            if at - current.handshake_at < CADENCE[kind] - timedelta(days=1):
                continue
            match config:
                case WebhookSinkConfig():
                    host, port = deps.dns_server
                    name = txt.record_name(config.url)
                    try:
                        values = await txt.lookup_txt(name, nameserver=host, port=port)
                    except txt.DnsLookupError as exc:
                        values, problem = [], str(exc)
                    else:
                        problem = f"nonce no longer at {name}"
                    held = txt.holds_nonce(values, current.nonce_hash)
                    await record(
                        row(
                            sink_id,
                            VerificationStatus.RENEWED if held else VerificationStatus.FAILED,
                            verified_by=f"dns:{name}",
                            approved_by="schedule:reverify",
                            nonce_hash=current.nonce_hash,
                            detail="TXT record still holds the nonce" if held else problem,
                        )
                    )
                case PagerDutySinkConfig():
                    tokens = pending.tokens.get(sink_id)
                    if tokens is None or tokens.refresh_token is None:
                        await record(
                            row(
                                sink_id,
                                VerificationStatus.PENDING,
                                approved_by="schedule:reverify",
                                detail="re-verification due: authorize again",
                            )
                        )
                        continue
                    try:
                        renewed = await refresh(
                            config, refresh_token=tokens.refresh_token, client=client, now=at
                        )
                    except OAuthError as exc:
                        await record(
                            row(
                                sink_id,
                                VerificationStatus.FAILED,
                                approved_by="schedule:reverify",
                                detail=f"token refresh refused: {exc}",
                            )
                        )
                        continue
                    pending.tokens[sink_id] = renewed
                    await record(
                        row(
                            sink_id,
                            VerificationStatus.RENEWED,
                            verified_by="pagerduty:oauth-refresh",
                            approved_by="schedule:reverify",
                            detail="OAuth token refreshed",
                        )
                    )
                case _:
                    await record(
                        row(
                            sink_id,
                            VerificationStatus.PENDING,
                            approved_by="schedule:reverify",
                            detail=f"re-verification due: run `eyetok verify {sink_id}`",
                        )
                    )

    async def reconfigured(message: TenantConfigChanged) -> None:
        """A tenant wrote or removed sinks: follow the new settings. A sink whose address
        changed under a verification must prove ownership again (the gate refuses it from
        now on), so a verified webhook cannot be pointed somewhere else."""
        nonlocal settings
        before = settings
        settings = message.settings
        follow_api_sinks(message.sinks)
        for sink_id in message.sinks:
            current = latest.get(sink_id)
            old, new = before.sinks.get(sink_id), settings.sinks.get(sink_id)
            if current is None or old == new or current.status is VerificationStatus.ROTATED:
                continue
            config = new or old
            assert config is not None
            await record(
                Verification(
                    sink_id=sink_id,
                    sink_type=sink_type_of(config),
                    tenant=config.tenant,
                    status=VerificationStatus.ROTATED,
                    handshake_at=clock.now(),
                    approved_by=f"tenant-api:{message.tenant}",
                    audit_log_link=f"{deps.public_url}/api/v1/sinks/{sink_id}/verification",
                    detail="changed through the tenant API; verify it again"
                    if new is not None
                    else "removed through the tenant API",
                )
            )

    try:
        async with (
            httpx.AsyncClient(transport=deps.http_transport, timeout=15.0) as client,
            trio.open_nursery() as nursery,
        ):
            task_status.started()
            async for message in inbox:
                match message:
                    case StartVerification():
                        message.reply.send(await start(message, nursery))
                    case SlackMessageSeen():
                        try:
                            await slack_message(message)
                        except SinkRemovedError as exc:
                            dropped(exc)
                    case EmailLinkOpened():
                        try:
                            message.reply.send(await email_link(message))
                        except SinkRemovedError as exc:
                            message.reply.send(gone(exc))
                    case OAuthCallback():
                        try:
                            message.reply.send(await oauth_callback(message, client))
                        except SinkRemovedError as exc:
                            message.reply.send(gone(exc))
                    case ReverifyDue(at=at):
                        await reverify(at, client)
                    case ListVerifications(reply=reply):
                        reply.send(tuple(latest[k] for k in sorted(latest)))
                    case TenantConfigChanged():
                        await reconfigured(message)
                    case _:
                        assert_never(message)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            for made in built:
                await made.aclose()
