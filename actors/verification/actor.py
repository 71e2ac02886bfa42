"""The verification actor: the one owner of pending ownership handshakes.

Four handshakes, one per sink type (the seed's reference recipes), one module each:

- Slack (``slack_dm.py``): a 32-byte nonce the customer sends to the EyeTok app in a
  direct message; it arrives through the Events API. Seen in a channel instead, it is
  burnt and refused.
- webhook (``dns_txt.py``): a 16-byte nonce in a DNS TXT record at
  ``_eyetok-verify.<host>``, polled.
- email (``email_link.py``): a magic link with a 32-byte token; opening it binds the
  address for 12 months.
- PagerDuty (``oauth_pkce.py``): OAuth 2.0 authorization code with PKCE (S256).

Every step is a verification-log row (history) and every change of a sink's standing
goes to the delivery gate (``ledger.py``). A handshake under way is a
:class:`PendingHandshake` row (history, journalled before its nonce, link or URL is handed
out; mirrored to Postgres): on every (re)start this actor rebuilds them, resumes the TXT
polls, and closes those that expired or whose sink is gone (``sweeps.py``), so a restart
or a fresh dyno completes what a human started. A nonce, link or state that matches
nothing is logged (``handshake_unmatched``: the sink type and a prefix of its hash, never
the secret) and answered as such.

A Slack verification is bound to the workspace of the sink's bot token (``auth.test``):
the DM must come from that team, and a tenant's sink whose token is in the operator's
workspace is refused (``actors/sinks/slack/verify.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import httpx
import trio

from actors.sinks.base import Sink
from actors.sinks.slack import verify as slack_verify
from actors.tenants import api_sinks, effective_settings
from actors.verification import dns_txt, email_link, oauth_pkce, slack_dm, sweeps
from actors.verification.ledger import Ledger, SinkRemovedError, refused
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings, sink_type_of
from eyetok.messages import (
    EmailLinkOpened,
    HandshakeAnswer,
    HistoryMessage,
    ListVerifications,
    OAuthCallback,
    RefreshTokenRequested,
    ReverifyDue,
    RotationStanding,
    SlackMessageSeen,
    StartVerification,
    TenantConfigChanged,
    VerificationChanged,
    VerificationMessage,
)
from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.tls import OnDemandClient
from eyetok.verification import Verification, VerificationStatus
from state.history import queries
from state.history.store import HistoryStore


@dataclass(frozen=True)
class VerificationDeps:
    settings: Settings  # the file's; the tenants' API sinks are added on start and on change
    store: HistoryStore
    sinks: dict[str, Sink]
    public_url: str  # where magic links and OAuth callbacks point
    # where TXT records are looked up; None: the host's resolver, read at the first lookup
    dns_server: tuple[str, int] | None = ("127.0.0.1", 53)
    txt_every_s: float = 300.0
    txt_for_s: float = 86_400.0
    http_transport: httpx.AsyncBaseTransport | None = None


async def run_verification(
    deps: VerificationDeps,
    inbox: trio.MemoryReceiveChannel[VerificationMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    to_delivery: trio.MemorySendChannel[VerificationChanged],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    settings = await effective_settings(deps.settings, deps.store)
    ledger = Ledger(
        deps=deps,
        settings=settings,
        sinks=dict(deps.sinks),
        latest={},
        workspaces=slack_verify.Workspaces(settings.slack_api_url),
        clock=clock,
        to_history=to_history,
        to_delivery=to_delivery,
        logger=log.get("verification"),
    )
    built: list[Sink] = []  # clients made here for API sinks (closed when the actor stops)

    def follow_api_sinks(changed: tuple[str, ...] | None) -> None:
        wanted = [
            s
            for s in ledger.settings.sinks
            if s not in deps.sinks and (changed is None or s in changed)
        ]
        fresh = api_sinks(ledger.settings, wanted, clock)
        for sink_id in changed or ():
            if sink_id not in deps.sinks:
                ledger.sinks.pop(sink_id, None)
        ledger.sinks.update(fresh)
        built.extend(fresh.values())

    follow_api_sinks(None)
    ledger.latest.update(await deps.store.read(queries.latest_verifications))

    async def start(message: StartVerification, nursery: trio.Nursery) -> HandshakeAnswer:
        sink_id = message.sink_id
        config = ledger.settings.sinks.get(sink_id)
        if config is None:
            return refused(sink_id, f"no sink named {sink_id!r}")
        who = message.requested_by
        match config:
            case SlackSinkConfig():
                return await slack_dm.start(ledger, sink_id, config, who)
            case WebhookSinkConfig():
                return await dns_txt.start(ledger, sink_id, config, who, nursery)
            case EmailSinkConfig():
                return await email_link.start(ledger, sink_id, config, who)
            case PagerDutySinkConfig():
                return await oauth_pkce.start(ledger, sink_id, config, who)
            case _:
                assert_never(config)

    async def reconfigured(message: TenantConfigChanged) -> None:
        """A tenant wrote or removed sinks: follow the new settings. A sink whose address
        changed under a verification must prove ownership again (the gate refuses it from
        now on), so a verified webhook cannot be pointed somewhere else."""
        before = ledger.settings
        ledger.settings = message.settings
        follow_api_sinks(message.sinks)
        under_way = [h for h in ledger.open_handshakes.values() if h.sink_id in message.sinks]
        for handshake in under_way:
            await ledger.closed(handshake, "the sink changed through the tenant API")
        for sink_id in message.sinks:
            current = ledger.latest.get(sink_id)
            old, new = before.sinks.get(sink_id), ledger.settings.sinks.get(sink_id)
            if current is None or old == new or current.status is VerificationStatus.ROTATED:
                continue
            config = new or old
            assert config is not None
            await ledger.record(
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
            OnDemandClient(transport=deps.http_transport, timeout=15.0) as client,
            trio.open_nursery() as nursery,
        ):
            await sweeps.resume(ledger, nursery)
            nursery.start_soon(slack_dm.recheck_workspaces, ledger)
            task_status.started()
            async for message in inbox:
                match message:
                    case StartVerification():
                        message.reply.send(await start(message, nursery))
                    case SlackMessageSeen():
                        try:
                            await slack_dm.message_seen(ledger, message)
                        except SinkRemovedError as exc:
                            ledger.dropped(exc)
                    case EmailLinkOpened():
                        try:
                            message.reply.send(await email_link.link_opened(ledger, message))
                        except SinkRemovedError as exc:
                            message.reply.send(ledger.gone(exc))
                    case OAuthCallback():
                        try:
                            message.reply.send(
                                await oauth_pkce.called_back(ledger, message, client())
                            )
                        except SinkRemovedError as exc:
                            message.reply.send(ledger.gone(exc))
                    case ReverifyDue(at=at):
                        await sweeps.reverify(ledger, at, client)
                    case ListVerifications(reply=reply):
                        latest = ledger.latest
                        reply.send(tuple(latest[k] for k in sorted(latest)))
                    case TenantConfigChanged():
                        await reconfigured(message)
                    case RefreshTokenRequested(sink_id=sink_id, reply=reply):
                        held = ledger.tokens.get(sink_id)
                        reply.send(held.refresh_token or "" if held is not None else "")
                    case RotationStanding():
                        fields: dict[str, object] = {"approved_by": message.approved_by}
                        if message.verified_by:
                            fields["verified_by"] = message.verified_by
                        if message.expires_at is not None:
                            fields["expires_at"] = message.expires_at
                        said = ledger.row(
                            message.sink_id, message.status, detail=message.detail, **fields
                        )
                        await ledger.record(said)
                        message.reply.send(said)
                    case _:
                        assert_never(message)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            for made in built:
                await made.aclose()
