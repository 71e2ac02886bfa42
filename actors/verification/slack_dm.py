"""The Slack handshake: a 32-byte nonce the customer sends to the EyeTok app in a direct
message; it arrives through the Events API. Seen in a channel instead, it is burnt and
refused.

It is bound to the workspace of the sink's bot token (``auth.test``): the DM must come
from that team, and a tenant's sink whose token is in the operator's workspace is refused
(``actors/sinks/slack/verify.py``), when the handshake starts and, for sinks verified
before workspaces were checked, on every start of the actor.
"""

from __future__ import annotations

import contextlib

from actors.sinks.slack import verify as slack_verify
from actors.verification.ledger import Ledger, SinkRemovedError, refused
from eyetok.messages import HandshakeAnswer, SlackMessageSeen
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.verification import VerificationStatus, nonce_hash


async def start(ledger: Ledger, sink_id: str, config: SlackSinkConfig, who: str) -> HandshakeAnswer:
    token = ledger.settings.sink_secrets.get(sink_id)
    if token is None:
        return refused(sink_id, f"sink {sink_id!r} has no bot token ({config.token_env})")
    try:
        team = await ledger.workspaces.team_of(token)
    except slack_verify.WorkspaceError as exc:
        return refused(sink_id, f"cannot tell the workspace of {sink_id!r}: {exc}", "failed")
    refusal = await ledger.workspaces.refusal(ledger.settings, sink_id, config, token)
    if refusal is not None:
        ledger.logger.warning(
            "slack_workspace_refused", sink=sink_id, tenant=config.tenant, workspace=team
        )
        failed = VerificationStatus.FAILED
        await ledger.record(
            ledger.row(sink_id, failed, approved_by=who, workspace=team, detail=refusal)
        )
        return refused(sink_id, refusal)
    nonce = slack_verify.new_nonce()
    started = ledger.new_handshake(
        sink_id, "slack", nonce_hash(nonce), who, slack_verify.NONCE_TTL, workspace=team
    )
    not_opened = await ledger.open_pending(
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


async def message_seen(ledger: Ledger, message: SlackMessageSeen) -> None:
    """A message the Events API delivered: each nonce in it completes (a DM from the
    token's workspace), burns (a channel, another workspace) or matches nothing."""
    candidates = slack_verify.nonce_candidates(message.text)
    if not candidates:
        ledger.logger.info(
            "slack_message_ignored",
            reason="no nonce in it",
            channel_type=message.channel_type,
            workspace=message.team_id,
        )
    for candidate in candidates:
        key = nonce_hash(candidate)
        found = ledger.matching("slack", key)
        if found is None:
            ledger.unmatched("slack", key, "no Slack handshake under way has this nonce")
            continue
        if found.expired(ledger.clock.now()):
            await ledger.closed(found, "expired")
            ledger.unmatched("slack", key, "the nonce expired", sink=found.sink_id)
            continue
        await ledger.closed(found, "answered")
        if message.channel_type != "im":
            await ledger.record(
                ledger.row(
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
            ledger.logger.warning(
                "slack_workspace_mismatch",
                sink=found.sink_id,
                expected=found.workspace,
                got=message.team_id,
            )
            await ledger.record(
                ledger.row(
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
        await ledger.record(
            ledger.row(
                found.sink_id,
                VerificationStatus.LIVE,
                verified_by=f"slack:{message.user}",
                approved_by=found.requested_by,
                nonce_hash=key,
                workspace=message.team_id,
                detail=f"nonce DM'd in workspace {message.team_id}",
            )
        )


async def recheck_workspaces(ledger: Ledger) -> None:
    """A tenant's Slack sink verified before workspaces were checked, whose token is in
    the operator's workspace, is failed now (it could post into the operator's channels).
    Runs beside the inbox: Slack may be slow to answer."""
    for sink_id, config in sorted(ledger.settings.sinks.items()):
        current = ledger.latest.get(sink_id)
        if not isinstance(config, SlackSinkConfig) or current is None:
            continue
        if current.status not in (VerificationStatus.LIVE, VerificationStatus.RENEWED):
            continue
        token = ledger.settings.sink_secrets.get(sink_id)
        refusal = await ledger.workspaces.refusal(ledger.settings, sink_id, config, token)
        if refusal is not None and ledger.latest.get(sink_id) is current:
            ledger.logger.warning("slack_workspace_refused", sink=sink_id, tenant=config.tenant)
            with contextlib.suppress(SinkRemovedError):
                failed = VerificationStatus.FAILED
                await ledger.record(
                    ledger.row(sink_id, failed, approved_by="start", detail=refusal)
                )
