"""The verification actor: the one owner of pending ownership handshakes.

Four handshakes, one per sink type (the seed's reference recipes):

- Slack: a 32-byte nonce the customer sends to the EyeTok app in a direct message; it
  arrives through the Events API. Seen in a channel instead, it is burnt and refused.
- webhook: a 16-byte nonce in a DNS TXT record at ``_eyetok-verify.<host>``, polled.
- email: a magic link with a 32-byte token; opening it binds the address for 12 months.
- PagerDuty: OAuth 2.0 authorization code with PKCE (S256).

Every step is a verification-log row (history) and every change of a sink's standing
goes to the delivery gate. A handshake under way is a :class:`PendingHandshake` row
(history, journalled before its nonce, link or URL is handed out; mirrored to Postgres):
on every (re)start this actor rebuilds them, resumes the TXT polls, and closes those that
expired or whose sink is gone, so a restart or a fresh dyno completes what a human
started. A nonce, link or state that matches nothing is logged (``handshake_unmatched``:
the sink type and a prefix of its hash, never the secret) and answered as such.

A Slack verification is bound to the workspace of the sink's bot token (``auth.test``):
the DM must come from that team, and a tenant's sink whose token is in the operator's
workspace is refused (``actors/sinks/slack/verify.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import assert_never

import httpx
import msgspec
import trio

from actors.sinks.base import Delivered, Sink
from actors.sinks.email.config import LINK_TTL
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
    AUTHORIZATION_TTL,
    OAuthError,
    OAuthTokens,
    begin_authorization,
    challenge,
    exchange_code,
    refresh,
    seal_verifier,
    unseal_verifier,
)
from actors.sinks.slack import verify as slack_verify
from actors.sinks.webhook import verify as txt
from actors.tenants import api_sinks, effective_settings
from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Settings, sink_type_of
from eyetok.messages import (
    EmailLinkOpened,
    FlushHistory,
    HandshakeAnswer,
    HandshakeRecorded,
    HistoryMessage,
    ListVerifications,
    OAuthCallback,
    RefreshTokenRequested,
    Reply,
    ReverifyDue,
    RotationStanding,
    SlackMessageSeen,
    StartVerification,
    TenantConfigChanged,
    VerificationChanged,
    VerificationMessage,
    VerificationRecorded,
)
from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.verification import (
    CADENCE,
    HandshakeEvent,
    PendingHandshake,
    Verification,
    VerificationStatus,
    expiry,
    nonce_hash,
    standing,
)
from state.history import queries
from state.history.store import HistoryStore

JOURNAL_TIMEOUT_S = 10.0  # a handshake's secret is handed out only once it is journalled


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
    """Handshakes under way, by the hash of what will come back to complete them."""

    open: dict[str, PendingHandshake] = field(default_factory=dict)
    email_used: set[str] = field(default_factory=set)  # token hashes redeemed (this run)
    tokens: dict[str, OAuthTokens] = field(default_factory=dict)  # sink -> PagerDuty tokens


def _binding(handshake: PendingHandshake) -> PendingBinding:
    return PendingBinding(
        sink_id=handshake.sink_id,
        address=handshake.address,
        token_hash=handshake.key,
        issued_at=handshake.opened_at,
        link_expires_at=handshake.expires_at,
    )


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
    workspaces = slack_verify.Workspaces(settings.slack_api_url)

    def dropped(exc: SinkRemovedError) -> None:
        logger.warning("handshake_dropped", sink=exc.sink_id, reason=str(exc))

    def gone(exc: SinkRemovedError) -> HandshakeAnswer:
        dropped(exc)
        return HandshakeAnswer(ok=False, sink_id=exc.sink_id, status="refused", message=str(exc))

    def refused(sink_id: str, message: str, status: str = "refused") -> HandshakeAnswer:
        return HandshakeAnswer(ok=False, sink_id=sink_id, status=status, message=message)

    def unmatched(sink_type: str, key: str, reason: str, **fields: object) -> None:
        logger.warning(
            "handshake_unmatched", sink_type=sink_type, key_prefix=key[:12], reason=reason, **fields
        )

    async def opened(handshake: PendingHandshake) -> bool:
        """Journal an opened handshake and wait for the commit (False: not in time)."""
        committed: Reply[bool] = Reply()
        await to_history.send(
            HandshakeRecorded(
                event=HandshakeEvent.OPENED, handshake=handshake, at=clock.now(), reply=committed
            )
        )
        with trio.move_on_after(JOURNAL_TIMEOUT_S):
            await committed.wait()
            pending.open[handshake.key] = handshake
            logger.info(
                "handshake_opened",
                sink=handshake.sink_id,
                sink_type=handshake.sink_type,
                tenant=handshake.tenant,
                key_prefix=handshake.key[:12],
                expires_at=handshake.expires_at.isoformat(),
            )
            return True
        logger.error(
            "handshake_not_journalled", sink=handshake.sink_id, key_prefix=handshake.key[:12]
        )
        return False

    async def closed(handshake: PendingHandshake, reason: str) -> None:
        pending.open.pop(handshake.key, None)
        logger.info(
            "handshake_closed",
            sink=handshake.sink_id,
            sink_type=handshake.sink_type,
            key_prefix=handshake.key[:12],
            reason=reason,
        )
        await to_history.send(
            HandshakeRecorded(
                event=HandshakeEvent.CLOSED, handshake=handshake, at=clock.now(), reason=reason
            )
        )

    def new_handshake(
        sink_id: str, kind: str, key: str, who: str, ttl: timedelta, **fields: str
    ) -> PendingHandshake:
        config = settings.sinks[sink_id]
        now = clock.now()
        return PendingHandshake(
            key=key,
            sink_id=sink_id,
            sink_type=kind,
            tenant=config.tenant,
            requested_by=who,
            opened_at=now,
            expires_at=now + ttl,
            **fields,
        )

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
            workspace=v.workspace or None,
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

    async def open_pending(
        handshake: PendingHandshake, who: str, detail: str, **fields: object
    ) -> HandshakeAnswer | None:
        """Journal ``handshake`` (a secret is handed out only once it survives a crash) and
        record its sink ``pending``; an answer only when it could not be journalled."""
        if not await opened(handshake):
            return refused(
                handshake.sink_id, "the handshake could not be journalled; try again", "failed"
            )
        await record(
            row(
                handshake.sink_id,
                VerificationStatus.PENDING,
                approved_by=who,
                detail=detail,
                **fields,
            )
        )
        return None

    async def start_slack(sink_id: str, config: SlackSinkConfig, who: str) -> HandshakeAnswer:
        token = settings.sink_secrets.get(sink_id)
        if token is None:
            return refused(sink_id, f"sink {sink_id!r} has no bot token ({config.token_env})")
        try:
            team = await workspaces.team_of(token)
        except slack_verify.WorkspaceError as exc:
            return refused(sink_id, f"cannot tell the workspace of {sink_id!r}: {exc}", "failed")
        refusal = await workspaces.refusal(settings, sink_id, config, token)
        if refusal is not None:
            logger.warning(
                "slack_workspace_refused", sink=sink_id, tenant=config.tenant, workspace=team
            )
            failed = VerificationStatus.FAILED
            await record(row(sink_id, failed, approved_by=who, workspace=team, detail=refusal))
            return refused(sink_id, refusal)
        nonce = slack_verify.new_nonce()
        started = new_handshake(
            sink_id, "slack", nonce_hash(nonce), who, slack_verify.NONCE_TTL, workspace=team
        )
        not_opened = await open_pending(
            started,
            who,
            f"waiting for the nonce in a DM in workspace {team}",
            nonce_hash=started.key,
            workspace=team,
        )
        if not_opened is not None:
            return not_opened
        return HandshakeAnswer(
            ok=True,
            sink_id=sink_id,
            status="pending",
            nonce=nonce,
            message="Send this nonce to the EyeTok app in a direct message (not in a channel) "
            f"in workspace {team}, within 24 hours: {nonce}",
        )

    async def start(message: StartVerification, nursery: trio.Nursery) -> HandshakeAnswer:
        sink_id = message.sink_id
        config = settings.sinks.get(sink_id)
        if config is None:
            return refused(sink_id, f"no sink named {sink_id!r}")
        who = message.requested_by
        match config:
            case SlackSinkConfig():
                return await start_slack(sink_id, config, who)
            case WebhookSinkConfig():
                nonce = txt.new_nonce()
                try:
                    name = txt.record_name(config.url)
                except ValueError as exc:  # an IP address: no domain to prove ownership of
                    return refused(sink_id, str(exc))
                polled = new_handshake(
                    sink_id,
                    "webhook",
                    nonce_hash(nonce),
                    who,
                    timedelta(seconds=deps.txt_for_s),
                    txt_name=name,
                )
                not_opened = await open_pending(
                    polled, who, f"polling TXT {name}", nonce_hash=polled.key
                )
                if not_opened is not None:
                    return not_opened
                nursery.start_soon(poll, polled)
                return HandshakeAnswer(
                    ok=True,
                    sink_id=sink_id,
                    status="pending",
                    nonce=nonce,
                    message=f"Publish a DNS TXT record {name} with the value {nonce}; EyeTok "
                    f"checks every {deps.txt_every_s:.0f}s for {deps.txt_for_s / 3600:.0f}h.",
                )
            case EmailSinkConfig():
                return await send_magic_link(sink_id, config, who)
            case PagerDutySinkConfig():
                try:
                    authorization, url = begin_authorization(
                        config, sink_id=sink_id, now=clock.now()
                    )
                except (OAuthError, ValueError) as exc:
                    return refused(sink_id, str(exc))
                state, verifier = authorization.state, authorization.verifier
                authorizing = new_handshake(
                    sink_id,
                    "pagerduty",
                    nonce_hash(state),
                    who,
                    AUTHORIZATION_TTL,
                    sealed_verifier=seal_verifier(verifier, state),
                    challenge=challenge(verifier),
                )
                not_opened = await open_pending(authorizing, who, "waiting for the OAuth callback")
                if not_opened is not None:
                    return not_opened
                return HandshakeAnswer(
                    ok=True,
                    sink_id=sink_id,
                    status="pending",
                    url=url,
                    message=f"Open {url} as the PagerDuty account owner and approve EyeTok "
                    "within the hour.",
                )
            case _:
                assert_never(config)

    async def send_magic_link(sink_id: str, config: EmailSinkConfig, who: str) -> HandshakeAnswer:
        sink = sinks.get(sink_id)
        if sink is None:
            return refused(
                sink_id, f"sink {sink_id!r} has no SMTP credentials ({config.smtp_url_env})"
            )
        token = new_token()
        key = token_hash(token)
        binding = new_handshake(sink_id, "email", key, who, LINK_TTL, address=config.to)
        if not await opened(binding):  # journalled first: a link that works survives a crash
            return refused(sink_id, "the handshake could not be journalled", "failed")
        link = magic_link(deps.public_url, token)
        spec = link_message(
            config, link, expires_at=binding.expires_at, issued_at=binding.opened_at
        )
        sent = await sink.send(spec, idempotency_key="verify_" + binding.key[:24])
        if not isinstance(sent, Delivered):
            await closed(binding, f"not sent: {sent.reason}")
            return refused(sink_id, f"the magic link could not be sent: {sent.reason}", "failed")
        await record(
            row(
                sink_id,
                VerificationStatus.PENDING,
                approved_by=who,
                nonce_hash=binding.key,
                detail=f"magic link sent to {config.to}",
            )
        )
        return HandshakeAnswer(
            ok=True,
            sink_id=sink_id,
            status="pending",
            message=f"A magic link went to {config.to}; it must be opened within 24 hours.",
        )

    async def poll(polled: PendingHandshake) -> None:
        """Poll the TXT record until it holds the nonce or the handshake expires (a poll
        resumed after a restart polls for what is left of it)."""
        host, port = deps.dns_server
        left = max(0.0, (polled.expires_at - clock.now()).total_seconds())
        verdict = await txt.poll_txt_hash(
            polled.txt_name,
            polled.key,
            nameserver=host,
            port=port,
            every_s=deps.txt_every_s,
            for_s=left,
        )
        if polled.key not in pending.open:  # closed meanwhile (the sink changed)
            return
        await closed(polled, "verified" if verdict.verified else "not found in time")
        status = VerificationStatus.LIVE if verdict.verified else VerificationStatus.FAILED
        try:
            await record(
                row(
                    polled.sink_id,
                    status,
                    verified_by=f"dns:{polled.txt_name}",
                    approved_by=polled.requested_by,
                    nonce_hash=polled.key,
                    detail=verdict.detail,
                )
            )
        except SinkRemovedError as exc:
            dropped(exc)

    def matching(kind: str, key: str) -> PendingHandshake | None:
        found = pending.open.get(key)
        return found if found is not None and found.sink_type == kind else None

    async def slack_message(message: SlackMessageSeen) -> None:
        candidates = slack_verify.nonce_candidates(message.text)
        if not candidates:
            logger.info(
                "slack_message_ignored",
                reason="no nonce in it",
                channel_type=message.channel_type,
                workspace=message.team_id,
            )
        for candidate in candidates:
            key = nonce_hash(candidate)
            found = matching("slack", key)
            if found is None:
                unmatched("slack", key, "no Slack handshake under way has this nonce")
                continue
            if found.expired(clock.now()):
                await closed(found, "expired")
                unmatched("slack", key, "the nonce expired", sink=found.sink_id)
                continue
            await closed(found, "answered")
            if message.channel_type != "im":
                await record(
                    row(
                        found.sink_id,
                        VerificationStatus.FAILED,
                        approved_by=found.requested_by,
                        nonce_hash=key,
                        detail=f"nonce seen in a {message.channel_type} ({message.channel}), "
                        "not a DM: it is burnt; start again",
                    )
                )
                continue
            if message.team_id != found.workspace:
                logger.warning(
                    "slack_workspace_mismatch",
                    sink=found.sink_id,
                    expected=found.workspace,
                    got=message.team_id,
                )
                await record(
                    row(
                        found.sink_id,
                        VerificationStatus.FAILED,
                        approved_by=found.requested_by,
                        nonce_hash=key,
                        workspace=found.workspace,
                        detail=f"nonce DM'd in workspace {message.team_id or '(none)'}, but the "
                        f"sink's token is in workspace {found.workspace}: it is burnt; start again",
                    )
                )
                continue
            await record(
                row(
                    found.sink_id,
                    VerificationStatus.LIVE,
                    verified_by=f"slack:{message.user}",
                    approved_by=found.requested_by,
                    nonce_hash=key,
                    workspace=message.team_id,
                    detail=f"nonce DM'd in workspace {message.team_id}",
                )
            )

    async def email_link(message: EmailLinkOpened) -> HandshakeAnswer:
        key = token_hash(message.token)
        found = matching("email", key)
        waiting = {} if found is None else {key: _binding(found)}
        try:
            binding = redeem(message.token, waiting, now=clock.now(), used=pending.email_used)
        except MagicLinkError as exc:
            unmatched("email", key, exc.reason)
            if found is not None and exc.reason == "expired":
                await closed(found, "expired")
            return refused("", str(exc))
        assert found is not None
        await closed(found, "opened")
        verification = msgspec.structs.replace(
            row(
                binding.sink_id,
                VerificationStatus.LIVE,
                verified_by=f"email:{binding.address}",
                approved_by=found.requested_by,
                nonce_hash=key,
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
        key = nonce_hash(message.state) if message.state else ""
        found = matching("pagerduty", key) if key else None
        if found is None:
            unmatched("pagerduty", key, "no PagerDuty authorization under way has this state")
            return refused("", "invalid_state: no pending PagerDuty authorization has this state")
        await closed(found, "called back")  # one callback per state, whatever it says
        if found.expired(clock.now()):
            unmatched("pagerduty", key, "the authorization expired", sink=found.sink_id)
            return refused(found.sink_id, "invalid_state: this authorization expired; start again")
        sink_id, who = found.sink_id, found.requested_by
        config = settings.sinks.get(sink_id)
        if config is None:
            return gone(SinkRemovedError(sink_id))
        assert isinstance(config, PagerDutySinkConfig)
        if message.error or not message.code:
            detail = f"authorization refused: {message.error or 'no code'}"
            await record(row(sink_id, VerificationStatus.FAILED, approved_by=who, detail=detail))
            return refused(sink_id, detail, "failed")
        try:
            verifier = unseal_verifier(
                found.sealed_verifier, state=message.state, expected_challenge=found.challenge
            )
            tokens = await exchange_code(
                config,
                code=message.code,
                verifier=verifier,
                client=client,
                now=clock.now(),
            )
        except OAuthError as exc:
            detail = f"token exchange refused: {exc}"
            await record(row(sink_id, VerificationStatus.FAILED, approved_by=who, detail=detail))
            return refused(sink_id, detail, "failed")
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

    async def recheck_workspaces() -> None:
        """A tenant's Slack sink verified before workspaces were checked, whose token is
        in the operator's workspace, is failed now (it could post into the operator's
        channels). Runs beside the inbox: Slack may be slow to answer."""
        for sink_id, config in sorted(settings.sinks.items()):
            current = latest.get(sink_id)
            if not isinstance(config, SlackSinkConfig) or current is None:
                continue
            if current.status not in (VerificationStatus.LIVE, VerificationStatus.RENEWED):
                continue
            token = settings.sink_secrets.get(sink_id)
            refusal = await workspaces.refusal(settings, sink_id, config, token)
            if refusal is not None and latest.get(sink_id) is current:
                logger.warning("slack_workspace_refused", sink=sink_id, tenant=config.tenant)
                with contextlib.suppress(SinkRemovedError):
                    failed = VerificationStatus.FAILED
                    await record(row(sink_id, failed, approved_by="start", detail=refusal))

    async def resume(nursery: trio.Nursery) -> None:
        """The handshakes the history holds open: those still good are taken up again
        (a TXT poll resumes), the expired ones and those of removed sinks are closed."""
        flushed: Reply[bool] = Reply()  # what is journalled but not yet in the tables too
        await to_history.send(FlushHistory(reply=flushed))
        with trio.move_on_after(JOURNAL_TIMEOUT_S):
            await flushed.wait()
        now = clock.now()
        resumed: dict[str, int] = {}
        for found in (await deps.store.read(queries.open_handshakes)).values():
            if found.sink_id not in settings.sinks:
                await closed(found, "sink removed")
            elif found.expired(now):
                await closed(found, "expired")
            else:
                pending.open[found.key] = found
                resumed[found.sink_type] = resumed.get(found.sink_type, 0) + 1
                if found.sink_type == "webhook":
                    nursery.start_soon(poll, found)
        if resumed:
            logger.info("handshakes_resumed", **resumed)

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
        for under_way in [h for h in pending.open.values() if h.sink_id in message.sinks]:
            await closed(under_way, "the sink changed through the tenant API")
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
            await resume(nursery)
            nursery.start_soon(recheck_workspaces)
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
                    case RefreshTokenRequested(sink_id=sink_id, reply=reply):
                        held = pending.tokens.get(sink_id)
                        reply.send(held.refresh_token or "" if held is not None else "")
                    case RotationStanding():
                        fields: dict[str, object] = {"approved_by": message.approved_by}
                        if message.verified_by:
                            fields["verified_by"] = message.verified_by
                        if message.expires_at is not None:
                            fields["expires_at"] = message.expires_at
                        said = row(message.sink_id, message.status, detail=message.detail, **fields)
                        await record(said)
                        message.reply.send(said)
                    case _:
                        assert_never(message)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            for made in built:
                await made.aclose()
