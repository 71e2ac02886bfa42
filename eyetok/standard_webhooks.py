"""Standard Webhooks signatures (https://www.standardwebhooks.com), pure: no I/O, no clock.

The scheme (spec ``standard-webhooks.md``, "Signature scheme" and "Webhook headers"):

- a secret is ``whsec_`` + base64 of random bytes; the HMAC key is the decoded bytes;
- the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, the body exactly as
  sent (bytes, not re-serialised JSON);
- a signature is ``v1,`` + base64 of HMAC-SHA256 over that content;
- ``webhook-signature`` is a *space*-separated list of signatures, so during a secret
  rotation a message is signed with the new and the old secret and a receiver holding
  either one accepts it; entries of other schemes (``v1a,`` is ed25519) are skipped;
- ``webhook-timestamp`` is integer Unix seconds of the *attempt*; a receiver rejects
  one outside its tolerance (5 minutes here) either way, against replays;
- ``webhook-id`` is stable across retries of one message: the receiver's dedupe key.
  Neither the id nor the timestamp may contain ``.`` (it would shift the signed fields).

Exceptions::

    EyeTokError
    +-- WebhookVerificationError   a received webhook does not verify; ``reason`` says why
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from eyetok.errors import EyeTokError

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300
ROTATION_OVERLAP = timedelta(days=30)  # both secrets sign for this long after a rotation
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24  # the spec's floor for HMAC secrets (192 bits)
MAX_SECRET_BYTES = 64  # and its ceiling (512 bits)

MAX_TIMESTAMP_DIGITS = 12  # Unix seconds have 10 digits until the year 2286
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class WebhookVerificationError(EyeTokError):
    """A received webhook does not verify. ``reason`` is one of ``missing-header``,
    ``bad-timestamp``, ``stale-timestamp``, ``future-timestamp``, ``no-valid-signature``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret. Raises ``ValueError`` if malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is base64 after its prefix") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _check_field(name: str, value: str) -> None:
    # str.split() cuts at exactly the characters str.isspace() names: a value without
    # whitespace splits into itself alone
    if "." in value or value.split() != [value]:
        raise ValueError(f"{name} must be non-empty, without '.' or whitespace: {value!r}")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{msg_id}.{timestamp}.".encode() + body
    # not hmac.digest(): that one-shot call lets go of the GIL for any length, and taking
    # it back behind the daemon's other threads cost 10x the hash (measured)
    return hmac.new(key, content, hashlib.sha256).digest()


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = _digest(key, msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` under ``secret``."""
    _check_field("msg_id", msg_id)
    return _signature(decode_secret(secret), msg_id, timestamp, body)


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    if not secrets:
        raise ValueError("at least one secret signs a webhook")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature_header(secrets, msg_id, timestamp, body),
    }


def webhook_headers_by_keys(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """:func:`webhook_headers` from the secrets' keys, decoded once (:func:`decode_secret`)
    by a sender that signs every attempt: the same headers."""
    if not keys:
        raise ValueError("at least one secret signs a webhook")
    _check_field("msg_id", msg_id)
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join([_signature(key, msg_id, timestamp, body) for key in keys]),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError("missing-header", f"no {name} header")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise :class:`WebhookVerificationError` unless ``body`` with ``headers`` is signed by
    ``secret`` at a timestamp within ``tolerance_s`` of ``now`` (Unix seconds).

    Header names are matched case-insensitively. A malformed ``secret`` is the caller's
    configuration error and raises ``ValueError``.
    """
    key = decode_secret(secret)
    msg_id = _header(headers, HEADER_ID)
    raw_timestamp = _header(headers, HEADER_TIMESTAMP).strip()
    raw_signatures = _header(headers, HEADER_SIGNATURE)
    if (
        not raw_timestamp.isascii()
        or not raw_timestamp.isdigit()
        or len(raw_timestamp) > MAX_TIMESTAMP_DIGITS
    ):
        shown = raw_timestamp if len(raw_timestamp) <= 40 else raw_timestamp[:40] + "..."
        raise WebhookVerificationError(
            "bad-timestamp", f"{shown!r} ({len(raw_timestamp)} characters) is not Unix seconds"
        )
    timestamp = int(raw_timestamp)
    if timestamp < now - tolerance_s:
        raise WebhookVerificationError(
            "stale-timestamp", f"{now - timestamp}s old, tolerance {tolerance_s}s"
        )
    if timestamp > now + tolerance_s:
        raise WebhookVerificationError(
            "future-timestamp", f"{timestamp - now}s ahead, tolerance {tolerance_s}s"
        )
    if not msg_id or "." in msg_id:
        raise WebhookVerificationError("no-valid-signature", f"unusable {HEADER_ID} {msg_id!r}")
    expected = _digest(key, msg_id, timestamp, body)
    for entry in raw_signatures.split(" "):
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue  # an empty entry, or another scheme (v1a is ed25519)
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except ValueError:  # binascii.Error, or a character outside ASCII
            continue
        if hmac.compare_digest(candidate, expected):
            return
    raise WebhookVerificationError("no-valid-signature", "no v1 signature matches this secret")


def _as_utc(moment: date) -> datetime:
    if isinstance(moment, datetime):
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def active_secrets(
    new: str, previous: str | None, rotated_at: date | None, now: datetime
) -> list[str]:
    """The secrets that sign at ``now``: the new one, and the previous one until
    :data:`ROTATION_OVERLAP` after ``rotated_at`` (a date is midnight UTC; a naive
    datetime is UTC). Signing with both also before ``rotated_at`` is deliberate: the
    receiver may hold either secret until the overlap is over."""
    if previous is None:
        return [new]
    if rotated_at is None:
        raise ValueError("a previous secret needs the date its rotation started")
    if _as_utc(now) < _as_utc(rotated_at) + ROTATION_OVERLAP:
        return [new, previous]
    return [new]
