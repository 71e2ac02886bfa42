"""Sink ownership verification: the facts and the one question the gate asks.

A sink is delivered to only while its latest verification is ``live`` or ``renewed`` and
not older than its cadence (30 days; email 12 months). The verification log is
append-only; its columns are the seed recipe's. Only nonce hashes are ever stored.
"""

from __future__ import annotations

import enum
import hashlib
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


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


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
