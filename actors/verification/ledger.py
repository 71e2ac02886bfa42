"""What the verification actor holds while it runs, and the moves every handshake makes.

The :class:`Ledger` keeps the handshakes under way (by the hash of what will come back to
complete them), the latest verification of each sink, and the settings in force. A
handshake is journalled before its nonce, link or URL is handed out (:meth:`Ledger.opened`
waits for the commit) and journalled again when it matches nothing any more
(:meth:`Ledger.closed`); every change of a sink's standing is a verification-log row sent
to the history and to the delivery gate (:meth:`Ledger.record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors.sinks.base import Sink
from actors.sinks.pagerduty.verify import OAuthTokens
from actors.sinks.slack import verify as slack_verify
from eyetok.clock import Clock
from eyetok.config import Settings, sink_type_of
from eyetok.messages import (
    HandshakeAnswer,
    HandshakeRecorded,
    HistoryMessage,
    Reply,
    VerificationChanged,
    VerificationRecorded,
)
from eyetok.verification import (
    HandshakeEvent,
    PendingHandshake,
    Verification,
    VerificationStatus,
    expiry,
    standing,
)

if TYPE_CHECKING:
    from actors.verification.actor import VerificationDeps

JOURNAL_TIMEOUT_S = 10.0  # a handshake's secret is handed out only once it is journalled


class SinkRemovedError(Exception):
    """A handshake came back for a sink that has since been removed (through the tenant
    API): there is nothing left to verify, so it is dropped."""

    def __init__(self, sink_id: str) -> None:
        super().__init__(f"sink {sink_id!r} was removed while its handshake was under way")
        self.sink_id = sink_id


def refused(sink_id: str, message: str, status: str = "refused") -> HandshakeAnswer:
    return HandshakeAnswer(ok=False, sink_id=sink_id, status=status, message=message)


@dataclass
class Ledger:
    deps: VerificationDeps
    settings: Settings  # the file's and the tenants' API sinks; replaced when a tenant writes
    sinks: dict[str, Sink]  # the delivering sinks (an email handshake sends its link by one)
    latest: dict[str, Verification]  # sink -> its standing
    workspaces: slack_verify.Workspaces
    clock: Clock
    to_history: trio.MemorySendChannel[HistoryMessage]
    to_delivery: trio.MemorySendChannel[VerificationChanged]
    logger: Any
    # handshakes under way, by the hash of what will come back to complete them
    open_handshakes: dict[str, PendingHandshake] = field(default_factory=dict)
    email_used: set[str] = field(default_factory=set)  # token hashes redeemed (this run)
    tokens: dict[str, OAuthTokens] = field(default_factory=dict)  # sink -> PagerDuty tokens

    def dropped(self, exc: SinkRemovedError) -> None:
        self.logger.warning("handshake_dropped", sink=exc.sink_id, reason=str(exc))

    def gone(self, exc: SinkRemovedError) -> HandshakeAnswer:
        self.dropped(exc)
        return HandshakeAnswer(ok=False, sink_id=exc.sink_id, status="refused", message=str(exc))

    def unmatched(self, sink_type: str, key: str, reason: str, **fields: object) -> None:
        self.logger.warning(
            "handshake_unmatched", sink_type=sink_type, key_prefix=key[:12], reason=reason, **fields
        )

    def matching(self, kind: str, key: str) -> PendingHandshake | None:
        found = self.open_handshakes.get(key)
        return found if found is not None and found.sink_type == kind else None

    async def opened(self, handshake: PendingHandshake) -> bool:
        """Journal an opened handshake and wait for the commit (False: not in time)."""
        committed: Reply[bool] = Reply()
        await self.to_history.send(
            HandshakeRecorded(
                event=HandshakeEvent.OPENED,
                handshake=handshake,
                at=self.clock.now(),
                reply=committed,
            )
        )
        with trio.move_on_after(JOURNAL_TIMEOUT_S):
            await committed.wait()
            self.open_handshakes[handshake.key] = handshake
            self.logger.info(
                "handshake_opened",
                sink=handshake.sink_id,
                sink_type=handshake.sink_type,
                tenant=handshake.tenant,
                key_prefix=handshake.key[:12],
                expires_at=handshake.expires_at.isoformat(),
            )
            return True
        self.logger.error(
            "handshake_not_journalled", sink=handshake.sink_id, key_prefix=handshake.key[:12]
        )
        return False

    async def closed(self, handshake: PendingHandshake, reason: str) -> None:
        self.open_handshakes.pop(handshake.key, None)
        self.logger.info(
            "handshake_closed",
            sink=handshake.sink_id,
            sink_type=handshake.sink_type,
            key_prefix=handshake.key[:12],
            reason=reason,
        )
        await self.to_history.send(
            HandshakeRecorded(
                event=HandshakeEvent.CLOSED, handshake=handshake, at=self.clock.now(), reason=reason
            )
        )

    def new_handshake(
        self, sink_id: str, kind: str, key: str, who: str, ttl: timedelta, **fields: str
    ) -> PendingHandshake:
        config = self.settings.sinks[sink_id]
        now = self.clock.now()
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

    async def record(self, v: Verification) -> None:
        self.latest[v.sink_id] = standing(self.latest.get(v.sink_id), v)
        await self.to_history.send(VerificationRecorded(verification=v))
        await self.to_delivery.send(VerificationChanged(verification=self.latest[v.sink_id]))
        log_fn = self.logger.warning if v.status is VerificationStatus.FAILED else self.logger.info
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
        self, sink_id: str, status: VerificationStatus, *, detail: str = "", **fields: object
    ) -> Verification:
        config = self.settings.sinks.get(sink_id)
        if config is None:
            raise SinkRemovedError(sink_id)
        now = self.clock.now()
        live = status in (VerificationStatus.LIVE, VerificationStatus.RENEWED)
        return msgspec.convert(
            {
                "sink_id": sink_id,
                "sink_type": sink_type_of(config),
                "tenant": config.tenant,
                "status": status,
                "handshake_at": now,
                "expires_at": expiry(sink_type_of(config), now) if live else None,
                "audit_log_link": f"{self.deps.public_url}/api/v1/sinks/{sink_id}/verification",
                "detail": detail,
                **fields,
            },
            Verification,
            from_attributes=True,
        )

    async def open_pending(
        self, handshake: PendingHandshake, who: str, detail: str, **fields: object
    ) -> HandshakeAnswer | None:
        """Journal ``handshake`` (a secret is handed out only once it survives a crash) and
        record its sink ``pending``; an answer only when it could not be journalled."""
        if not await self.opened(handshake):
            return refused(
                handshake.sink_id, "the handshake could not be journalled; try again", "failed"
            )
        await self.record(
            self.row(
                handshake.sink_id,
                VerificationStatus.PENDING,
                approved_by=who,
                detail=detail,
                **fields,
            )
        )
        return None
