"""Sink ownership verification: the facts and the one question the gate asks.

A sink is delivered to only while its latest verification is ``live`` or ``renewed`` and
not older than its cadence (30 days; email 12 months). The verification log is
append-only; its columns are the seed recipe's. Only nonce hashes are ever stored.

A handshake under way is a :class:`PendingHandshake`: state like any other row (the
history's ``handshakes`` table, the mirror's ``pending_handshakes``), so a restart or a
fresh dyno still completes it until it expires. It is found again by ``key``, the
SHA-256 of the secret that comes back (the Slack nonce, the email link's token, the
OAuth ``state``, the TXT nonce), never by the secret itself.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

CADENCE: dict[str, timedelta] = {
    "slack": timedelta(days=30),
    "webhook": timedelta(days=30),
    "email": timedelta(days=365),
    "pagerduty": timedelta(days=30),
}


class VerificationStatus(enum.StrEnum):
    PENDING = "pending"
    LIVE = "live"
    RENEWED = "renewed"
    ROTATED = "rotated"
    FAILED = "failed"


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the verification log."""

    sink_id: str
    sink_type: str
    tenant: str
    status: VerificationStatus
    handshake_at: datetime
    expires_at: datetime | None = None
    verified_by: str = ""
    approved_by: str = ""
    nonce_hash: str = ""
    audit_log_link: str = ""
    detail: str = ""
    workspace: str = ""  # Slack: the team id the nonce was DM'd in (= the token's)


class HandshakeEvent(enum.StrEnum):
    OPENED = "opened"
    CLOSED = "closed"  # completed, failed, burnt or expired: it matches nothing any more


class PendingHandshake(msgspec.Struct, frozen=True, kw_only=True):
    """A handshake between its start and what completes it.

    ``key`` is :func:`nonce_hash` of the secret that will come back. Per sink type:
    Slack keeps ``workspace`` (the team id of the sink's token: the DM must come from
    it); webhook ``txt_name`` (the record polled until ``expires_at``); email ``address``;
    PagerDuty ``sealed_verifier`` and ``challenge`` (see
    ``actors/sinks/pagerduty/verify.py``: the PKCE verifier, sealed under the ``state``)."""

    key: str
    sink_id: str
    sink_type: str
    tenant: str
    requested_by: str
    opened_at: datetime
    expires_at: datetime
    workspace: str = ""
    txt_name: str = ""
    address: str = ""
    sealed_verifier: str = ""
    challenge: str = ""

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def fold_handshakes(
    events: Iterable[tuple[HandshakeEvent, PendingHandshake]],
) -> dict[str, PendingHandshake]:
    """Opened and closed rows, oldest first, folded: key -> the handshake still open."""
    current: dict[str, PendingHandshake] = {}
    for event, handshake in events:
        if event is HandshakeEvent.OPENED:
            current[handshake.key] = handshake
        else:
            current.pop(handshake.key, None)
    return current


def expiry(sink_type: str, at: datetime) -> datetime:
    return at + CADENCE[sink_type]


def standing(previous: Verification | None, new: Verification) -> Verification:
    """The row the gate goes by once ``new`` is recorded. A handshake started again on a
    sink that is live does not suspend it: a ``pending`` row never displaces a
    ``live``/``renewed`` one; only a decisive row (live, renewed, failed, rotated) does."""
    if (
        new.status is VerificationStatus.PENDING
        and previous is not None
        and previous.status in (VerificationStatus.LIVE, VerificationStatus.RENEWED)
    ):
        return previous
    return new


def refusal(verification: Verification | None, now: datetime) -> str | None:
    """Why a delivery to this sink must be refused, or None when it may go."""
    if verification is None:
        return "never verified"
    match verification.status:
        case VerificationStatus.PENDING:
            return "verification pending since " + verification.handshake_at.isoformat(
                timespec="seconds"
            )
        case VerificationStatus.FAILED | VerificationStatus.ROTATED:
            return f"verification {verification.status.value}: {verification.detail}".rstrip(": ")
        case VerificationStatus.LIVE | VerificationStatus.RENEWED:
            if verification.expires_at is None or verification.expires_at <= now:
                return "verification expired at " + (
                    verification.expires_at.isoformat(timespec="seconds")
                    if verification.expires_at
                    else "an unknown time"
                )
            return None
