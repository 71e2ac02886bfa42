"""DKIM signing of the email sink's mail (dkimpy), with the selector and key the secret
store holds (``eyetok rotate email`` replaces both; see eyetok/rotation/material.py)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage

SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id")


class DkimKey:
    """One selector's private key (PEM) for one signing domain. ``repr`` hides the key."""

    def __init__(self, *, selector: str, domain: str, private_key: str) -> None:
        # dkimpy (and dnspython under it) is loaded by the first key, not by every daemon.
        import dkim  # type: ignore[import-untyped]

        self._dkim_sign = dkim.sign
        self.selector = selector
        self.domain = domain
        self._key = private_key.encode()

    def __repr__(self) -> str:
        return f"DkimKey({self.selector}._domainkey.{self.domain})"

    def sign(self, message: EmailMessage) -> bytes:
        """The message as SMTP bytes with a ``DKIM-Signature`` header on top."""
        raw = message.as_bytes(policy=policy.SMTP)
        signature = self._dkim_sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            self._key,
            include_headers=list(SIGNED_HEADERS),
        )
        return bytes(signature) + raw
