"""The PagerDuty handshake: OAuth 2.0 authorization code with PKCE (S256). The verifier
is kept sealed under the ``state`` in the journalled handshake, so a callback that comes
back after a restart still completes it; the tokens it yields are held for the
re-verification sweep (a refresh) and the credential rotation."""

from __future__ import annotations

import httpx

from actors.sinks.pagerduty.verify import (
    AUTHORIZATION_TTL,
    OAuthError,
    begin_authorization,
    challenge,
    exchange_code,
    seal_verifier,
    unseal_verifier,
)
from actors.verification.ledger import Ledger, SinkRemovedError, refused
from eyetok.messages import HandshakeAnswer, OAuthCallback
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.verification import VerificationStatus, nonce_hash


async def start(
    ledger: Ledger, sink_id: str, config: PagerDutySinkConfig, who: str
) -> HandshakeAnswer:
    try:
        authorization, url = begin_authorization(config, sink_id=sink_id, now=ledger.clock.now())
    except (OAuthError, ValueError) as exc:
        return refused(sink_id, str(exc))
    state, verifier = authorization.state, authorization.verifier
    authorizing = ledger.new_handshake(
        sink_id,
        "pagerduty",
        nonce_hash(state),
        who,
        AUTHORIZATION_TTL,
        sealed_verifier=seal_verifier(verifier, state),
        challenge=challenge(verifier),
    )
    not_opened = await ledger.open_pending(authorizing, who, "waiting for the OAuth callback")
    if not_opened is not None:
        return not_opened
    return HandshakeAnswer(
        ok=True,
        sink_id=sink_id,
        status="pending",
        url=url,
        message=f"Open {url} as the PagerDuty account owner and approve EyeTok within the hour.",
    )


async def called_back(
    ledger: Ledger, message: OAuthCallback, client: httpx.AsyncClient
) -> HandshakeAnswer:
    key = nonce_hash(message.state) if message.state else ""
    found = ledger.matching("pagerduty", key) if key else None
    if found is None:
        ledger.unmatched("pagerduty", key, "no PagerDuty authorization under way has this state")
        return refused("", "invalid_state: no pending PagerDuty authorization has this state")
    await ledger.closed(found, "called back")  # one callback per state, whatever it says
    if found.expired(ledger.clock.now()):
        ledger.unmatched("pagerduty", key, "the authorization expired", sink=found.sink_id)
        return refused(found.sink_id, "invalid_state: this authorization expired; start again")
    sink_id, who = found.sink_id, found.requested_by
    config = ledger.settings.sinks.get(sink_id)
    if config is None:
        return ledger.gone(SinkRemovedError(sink_id))
    assert isinstance(config, PagerDutySinkConfig)
    if message.error or not message.code:
        detail = f"authorization refused: {message.error or 'no code'}"
        await ledger.record(
            ledger.row(sink_id, VerificationStatus.FAILED, approved_by=who, detail=detail)
        )
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
            now=ledger.clock.now(),
        )
    except OAuthError as exc:
        detail = f"token exchange refused: {exc}"
        await ledger.record(
            ledger.row(sink_id, VerificationStatus.FAILED, approved_by=who, detail=detail)
        )
        return refused(sink_id, detail, "failed")
    ledger.tokens[sink_id] = tokens
    await ledger.record(
        ledger.row(
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
