"""The email ownership handshake: a magic link to the recipient, a 12-month binding.

1. :func:`new_token` makes 32 random bytes (URL-safe base64); only :func:`token_hash` of it
   is ever stored (:class:`PendingBinding`), the token itself lives only in the link.
2. :func:`link_message` is the email that carries :func:`magic_link` to the address; it is
   sent through the email sink like any other message (the only mail an unverified
   address ever gets).
3. The recipient opens the link; :func:`redeem` checks the token against the pending
   bindings (unknown, expired or already used: :class:`MagicLinkError`) and answers a
   :class:`Binding` good for 12 months (:func:`binding_is_live`).

Everything is pure except :func:`new_token` (randomness) and :func:`redeem`, which marks
the token used in the ``used`` set it is given, so check and mark are one step.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Mapping, MutableSet
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from actors.sinks.email.config import BINDING_TTL, LINK_TTL
from actors.sinks.email.render import EmailMessageSpec, message_id
from eyetok.errors import ConfigError, EyeTokError
from eyetok.sinks.email import EmailSinkConfig

__all__ = [
    "Binding",
    "MagicLinkError",
    "PendingBinding",
    "binding_is_live",
    "link_message",
    "magic_link",
    "new_token",
    "redeem",
    "token_hash",
]

# "not given": replaced in __post_init__ by the default derived from another field
_DERIVED = datetime.min.replace(tzinfo=UTC)

MagicLinkProblem = Literal["unknown", "expired", "used"]


class MagicLinkError(EyeTokError):
    """A magic link that cannot bind its address. ``reason``: unknown | expired | used."""

    def __init__(self, reason: MagicLinkProblem, detail: str) -> None:
        super().__init__(f"magic link {reason}: {detail}")
        self.reason: MagicLinkProblem = reason
        self.detail = detail


def new_token() -> str:
    """32 random bytes, URL-safe base64 without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """SHA-256 of the token, hex: the only form in which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def magic_link(base_url: str, token: str) -> str:
    """``{base_url}/verify/email/{token}`` (``base_url``: http(s), trailing slash ignored)."""
    if not base_url.startswith(("https://", "http://")):
        raise ConfigError("base_url", f"{base_url!r} is not an http(s) URL")
    return f"{base_url.rstrip('/')}/verify/email/{token}"


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


class PendingBinding(msgspec.Struct, frozen=True, kw_only=True):
    """A link that was sent and not yet used. ``link_expires_at`` defaults to 24 hours
    after ``issued_at``."""

    sink_id: str
    address: str
    token_hash: str
    issued_at: datetime
    link_expires_at: datetime = _DERIVED

    def __post_init__(self) -> None:
        _require_aware("issued_at", self.issued_at)
        if self.link_expires_at == _DERIVED:
            msgspec.structs.force_setattr(self, "link_expires_at", self.issued_at + LINK_TTL)
        _require_aware("link_expires_at", self.link_expires_at)

    @classmethod
    def issue(
        cls,
        *,
        sink_id: str,
        address: str,
        token: str,
        now: datetime,
        ttl: timedelta = LINK_TTL,
    ) -> PendingBinding:
        """The pending binding for a link carrying ``token``, sent at ``now``."""
        return cls(
            sink_id=sink_id,
            address=address,
            token_hash=token_hash(token),
            issued_at=now,
            link_expires_at=now + ttl,
        )


class Binding(msgspec.Struct, frozen=True, kw_only=True):
    """A verified address. ``expires_at`` defaults to 365 days (12 months) after
    ``bound_at``; ``nonce_hash`` is the redeemed token's hash (the verification log's
    column of that name)."""

    sink_id: str
    address: str
    bound_at: datetime
    expires_at: datetime = _DERIVED
    nonce_hash: str = ""

    def __post_init__(self) -> None:
        _require_aware("bound_at", self.bound_at)
        if self.expires_at == _DERIVED:
            msgspec.structs.force_setattr(self, "expires_at", self.bound_at + BINDING_TTL)
        _require_aware("expires_at", self.expires_at)


def link_message(
    config: EmailSinkConfig,
    link: str,
    *,
    expires_at: datetime,
    issued_at: datetime | None = None,
) -> EmailMessageSpec:
    """The email asking ``config.to`` to confirm, by opening ``link`` before
    ``expires_at``, that it wants ``config.tenant``'s alerts."""
    deadline = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"EyeTok was asked to send alerts for {config.tenant} to {config.to}.\n"
        "\n"
        f"To confirm, open this link before {deadline}:\n"
        "\n"
        f"{link}\n"
        "\n"
        "If you did not expect this, ignore this email: nothing more will be sent to this\n"
        "address unless the link is opened. A confirmation lasts 12 months.\n"
    )
    esc_link = html.escape(link)
    html_body = (
        "<html><body>"
        f"<p>EyeTok was asked to send alerts for {html.escape(config.tenant)} "
        f"to {html.escape(config.to)}.</p>"
        f"<p>To confirm, open this link before {html.escape(deadline)}:</p>"
        f'<p><a href="{esc_link}">{esc_link}</a></p>'
        "<p>If you did not expect this, ignore this email: nothing more will be sent to "
        "this address unless the link is opened. A confirmation lasts 12 months.</p>"
        "</body></html>"
    )
    return EmailMessageSpec(
        to=config.to,
        subject="[EyeTok] Confirm that this address should receive alerts",
        text=text,
        html=html_body,
        message_id=message_id("verify-" + hashlib.sha256(link.encode()).hexdigest()[:24]),
        date=issued_at,
    )


def redeem(
    token: str,
    pending: Mapping[str, PendingBinding],
    *,
    now: datetime,
    used: MutableSet[str],
) -> Binding:
    """Bind the address of the link carrying ``token``.

    ``pending`` maps token hash -> :class:`PendingBinding`; ``used`` holds the hashes of
    tokens already redeemed, and gets this token's hash on success. Raises
    :class:`MagicLinkError` (``used``, ``unknown`` or ``expired``).
    """
    _require_aware("now", now)
    digest = token_hash(token)
    if digest in used:
        raise MagicLinkError("used", "this link was already used; ask for a new one")
    entry = pending.get(digest)
    if entry is None or entry.token_hash != digest:
        raise MagicLinkError(
            "unknown", "no such link (mistyped, already used or expired, or never sent)"
        )
    if now >= entry.link_expires_at:
        raise MagicLinkError(
            "expired",
            f"the link expired at {entry.link_expires_at.isoformat(timespec='seconds')}; "
            "ask for a new one",
        )
    used.add(digest)
    return Binding(sink_id=entry.sink_id, address=entry.address, bound_at=now, nonce_hash=digest)


def binding_is_live(binding: Binding, now: datetime) -> bool:
    """Whether ``binding`` still verifies its address at ``now`` (bound, not expired)."""
    return binding.bound_at <= now < binding.expires_at
