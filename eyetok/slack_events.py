"""Slack's Events API request signature (v0), pure.

``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<raw body>">`` keyed with
the app's signing secret; ``X-Slack-Request-Timestamp`` must be within five minutes of
now, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from eyetok.errors import SignatureError

WINDOW_S = 300


def sign(body: bytes, timestamp: int, signing_secret: str) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    body: bytes, *, timestamp: str | None, signature: str | None, signing_secret: str, now: int
) -> None:
    """Raise :class:`SignatureError` unless the request is Slack's and fresh."""
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        shown = timestamp if len(timestamp) <= 40 else timestamp[:40] + "..."
        raise SignatureError(f"X-Slack-Request-Timestamp {shown!r} is not Unix seconds")
    stamp = int(timestamp)
    if abs(now - stamp) > WINDOW_S:
        raise SignatureError("X-Slack-Request-Timestamp is outside the 5-minute window")
    expected = sign(body, stamp, signing_secret).encode("ascii")
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise SignatureError("X-Slack-Signature does not match")


class Headers(Protocol):
    def get(self, key: str) -> str | None: ...


def verify_request(body: bytes, headers: Headers, *, secret: str, now: int) -> None:
    """:func:`verify` with the request's ``X-Slack-Request-Timestamp`` and
    ``X-Slack-Signature`` headers."""
    verify(
        body,
        timestamp=headers.get("x-slack-request-timestamp"),
        signature=headers.get("x-slack-signature"),
        signing_secret=secret,
        now=now,
    )
