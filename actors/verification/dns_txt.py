"""The webhook handshake: a 16-byte nonce in a DNS TXT record at
``_eyetok-verify.<host>``, polled until it appears or the handshake expires (a poll
resumed after a restart polls for what is left of it)."""

from __future__ import annotations

from datetime import timedelta

import trio

from actors.sinks.webhook import verify as txt
from actors.verification.ledger import Ledger, SinkRemovedError, refused
from eyetok.messages import HandshakeAnswer
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.verification import PendingHandshake, VerificationStatus, nonce_hash


async def start(
    ledger: Ledger, sink_id: str, config: WebhookSinkConfig, who: str, nursery: trio.Nursery
) -> HandshakeAnswer:
    deps = ledger.deps
    nonce = txt.new_nonce()
    try:
        name = txt.record_name(config.url)
    except ValueError as exc:  # an IP address: no domain to prove ownership of
        return refused(sink_id, str(exc))
    polled = ledger.new_handshake(
        sink_id,
        "webhook",
        nonce_hash(nonce),
        who,
        timedelta(seconds=deps.txt_for_s),
        txt_name=name,
    )
    not_opened = await ledger.open_pending(
        polled, who, f"polling TXT {name}", nonce_hash=polled.key
    )
    if not_opened is not None:
        return not_opened
    nursery.start_soon(poll, ledger, polled)
    return HandshakeAnswer(
        ok=True,
        sink_id=sink_id,
        status="pending",
        nonce=nonce,
        message=f"Publish a DNS TXT record {name} with the value {nonce}; EyeTok "
        f"checks every {deps.txt_every_s:.0f}s for {deps.txt_for_s / 3600:.0f}h.",
    )


async def poll(ledger: Ledger, polled: PendingHandshake) -> None:
    """Poll the TXT record until it holds the nonce or the handshake expires (a poll
    resumed after a restart polls for what is left of it)."""
    host, port = txt.nameserver(ledger.deps.dns_server)
    left = max(0.0, (polled.expires_at - ledger.clock.now()).total_seconds())
    verdict = await txt.poll_txt_hash(
        polled.txt_name,
        polled.key,
        nameserver=host,
        port=port,
        every_s=ledger.deps.txt_every_s,
        for_s=left,
    )
    if polled.key not in ledger.open_handshakes:  # closed meanwhile (the sink changed)
        return
    await ledger.closed(polled, "verified" if verdict.verified else "not found in time")
    status = VerificationStatus.LIVE if verdict.verified else VerificationStatus.FAILED
    try:
        await ledger.record(
            ledger.row(
                polled.sink_id,
                status,
                verified_by=f"dns:{polled.txt_name}",
                approved_by=polled.requested_by,
                nonce_hash=polled.key,
                detail=verdict.detail,
            )
        )
    except SinkRemovedError as exc:
        ledger.dropped(exc)
