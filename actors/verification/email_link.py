"""The email handshake: a magic link with a 32-byte token, sent through the sink itself;
opening it binds the address for 12 months."""

from __future__ import annotations

import msgspec

from actors.sinks.base import Delivered
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
from actors.verification.ledger import Ledger, refused
from eyetok.messages import EmailLinkOpened, HandshakeAnswer
from eyetok.sinks.email import EmailSinkConfig
from eyetok.verification import PendingHandshake, VerificationStatus


def _binding(handshake: PendingHandshake) -> PendingBinding:
    return PendingBinding(
        sink_id=handshake.sink_id,
        address=handshake.address,
        token_hash=handshake.key,
        issued_at=handshake.opened_at,
        link_expires_at=handshake.expires_at,
    )


async def start(ledger: Ledger, sink_id: str, config: EmailSinkConfig, who: str) -> HandshakeAnswer:
    """Journal the handshake, then send the magic link through the sink."""
    sink = ledger.sinks.get(sink_id)
    if sink is None:
        return refused(sink_id, f"sink {sink_id!r} has no SMTP credentials ({config.smtp_url_env})")
    token = new_token()
    key = token_hash(token)
    binding = ledger.new_handshake(sink_id, "email", key, who, LINK_TTL, address=config.to)
    if not await ledger.opened(binding):  # journalled first: a link that works survives a crash
        return refused(sink_id, "the handshake could not be journalled", "failed")
    link = magic_link(ledger.deps.public_url, token)
    spec = link_message(config, link, expires_at=binding.expires_at, issued_at=binding.opened_at)
    sent = await sink.send(spec, idempotency_key="verify_" + binding.key[:24])
    if not isinstance(sent, Delivered):
        await ledger.closed(binding, f"not sent: {sent.reason}")
        return refused(sink_id, f"the magic link could not be sent: {sent.reason}", "failed")
    await ledger.record(
        ledger.row(
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


async def link_opened(ledger: Ledger, message: EmailLinkOpened) -> HandshakeAnswer:
    key = token_hash(message.token)
    found = ledger.matching("email", key)
    waiting = {} if found is None else {key: _binding(found)}
    try:
        binding = redeem(message.token, waiting, now=ledger.clock.now(), used=ledger.email_used)
    except MagicLinkError as exc:
        ledger.unmatched("email", key, exc.reason)
        if found is not None and exc.reason == "expired":
            await ledger.closed(found, "expired")
        return refused("", str(exc))
    assert found is not None
    await ledger.closed(found, "opened")
    verification = msgspec.structs.replace(
        ledger.row(
            binding.sink_id,
            VerificationStatus.LIVE,
            verified_by=f"email:{binding.address}",
            approved_by=found.requested_by,
            nonce_hash=key,
            detail="magic link opened",
        ),
        expires_at=binding.expires_at,
    )
    await ledger.record(verification)
    return HandshakeAnswer(
        ok=True,
        sink_id=binding.sink_id,
        status="live",
        message=f"{binding.address} now receives these alerts until "
        f"{binding.expires_at.date().isoformat()}.",
    )
