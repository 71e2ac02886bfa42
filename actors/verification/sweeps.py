"""The verification actor's sweeps: on every (re)start the handshakes the history holds
open are taken up again or closed; when re-verification is due every sink older than its
cadence runs its handshake again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import trio

from actors.sinks.pagerduty.verify import OAuthError, refresh
from actors.sinks.webhook import verify as txt
from actors.verification import dns_txt
from actors.verification.ledger import JOURNAL_TIMEOUT_S, Ledger
from eyetok.config import sink_type_of
from eyetok.messages import FlushHistory, Reply
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.verification import CADENCE, VerificationStatus
from state.history import queries


async def resume(ledger: Ledger, nursery: trio.Nursery) -> None:
    """The handshakes the history holds open: those still good are taken up again
    (a TXT poll resumes), the expired ones and those of removed sinks are closed."""
    flushed: Reply[bool] = Reply()  # what is journalled but not yet in the tables too
    await ledger.to_history.send(FlushHistory(reply=flushed))
    with trio.move_on_after(JOURNAL_TIMEOUT_S):
        await flushed.wait()
    now = ledger.clock.now()
    resumed: dict[str, int] = {}
    for found in (await ledger.deps.store.read(queries.open_handshakes)).values():
        if found.sink_id not in ledger.settings.sinks:
            await ledger.closed(found, "sink removed")
        elif found.expired(now):
            await ledger.closed(found, "expired")
        else:
            ledger.open_handshakes[found.key] = found
            resumed[found.sink_type] = resumed.get(found.sink_type, 0) + 1
            if found.sink_type == "webhook":
                nursery.start_soon(dns_txt.poll, ledger, found)
    if resumed:
        ledger.logger.info("handshakes_resumed", **resumed)


async def reverify(ledger: Ledger, at: datetime, client: Callable[[], httpx.AsyncClient]) -> None:
    """Every sink whose verification is older than its cadence runs its handshake
    again: the TXT record is looked up again, the PagerDuty token refreshed; Slack and
    email need a person, so they are marked due and the gate keeps refusing. ``client``
    makes the HTTP client on its first call: only a token refresh needs one."""
    record, row = ledger.record, ledger.row
    for sink_id, config in ledger.settings.sinks.items():
        current = ledger.latest.get(sink_id)
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
                host, port = txt.nameserver(ledger.deps.dns_server)
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
                tokens = ledger.tokens.get(sink_id)
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
                        config, refresh_token=tokens.refresh_token, client=client(), now=at
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
                ledger.tokens[sink_id] = renewed
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
