"""Email sink configuration: the recipient, the sender, and where the SMTP server is.

The server and its credentials are not in the file: ``smtp_url_env`` names an environment
variable holding ``smtp://user:pass@host:port`` (STARTTLS when the server offers it) or
``smtps://user:pass@host:port`` (TLS from the first byte). :func:`parse_smtp_url` turns
that into an :class:`SmtpEndpoint`; a bad URL is a :class:`ConfigError` that never
echoes the password.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import msgspec

from eyetok.errors import ConfigError

__all__ = [
    "DEFAULT_PORTS",
    "EmailSinkConfig",
    "SmtpEndpoint",
    "is_address",
    "parse_smtp_url",
]

# scheme -> (default port, implicit TLS). ``smtp`` defaults to the submission port.
DEFAULT_PORTS: dict[str, tuple[int, bool]] = {"smtp": (587, False), "smtps": (465, True)}

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_MAX_ADDRESS = 254  # RFC 5321 path limit, minus the angle brackets


def is_address(text: str) -> bool:
    """Whether ``text`` is a plain ASCII ``local@domain`` address (no display name, no
    IP-literal domain, no whitespace)."""
    return len(text) <= _MAX_ADDRESS and _ADDRESS.fullmatch(text) is not None


class EmailSinkConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="email",
    tag_field="type",
):
    """One recipient address reached through one SMTP server (URL from the environment)."""

    tenant: str = "operator"  # the owner of the sink
    to: str  # the recipient address; bound by the magic-link handshake
    sender: str = "eyetok@localhost"
    smtp_url_env: str = "SMTP_URL"
    timeout_s: float = 15.0
    # DKIM: mail is signed with the key in ``dkim_key_env`` (PEM), published at
    # ``<dkim_selector>._domainkey.<sender's domain>``; ``eyetok rotate email`` replaces both
    dkim_selector: str | None = None
    dkim_key_env: str | None = None

    @property
    def dkim_domain(self) -> str:
        """The signing domain: the sender's."""
        return self.sender.rsplit("@", 1)[1].lower()

    def __post_init__(self) -> None:
        if not is_address(self.to):
            raise ConfigError("to", f"{self.to!r} is not an email address (local@domain)")
        if not is_address(self.sender):
            raise ConfigError("sender", f"{self.sender!r} is not an email address (local@domain)")
        if not self.smtp_url_env:
            raise ConfigError("smtp_url_env", "must name an environment variable")
        if not self.timeout_s > 0:
            raise ConfigError("timeout_s", "must be a positive number of seconds")
        if (self.dkim_selector is None) != (self.dkim_key_env is None):
            field = "dkim_key_env" if self.dkim_selector is not None else "dkim_selector"
            raise ConfigError(field, "dkim_selector and dkim_key_env are given together")
        if self.dkim_selector is not None and not re.fullmatch(
            r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})", self.dkim_selector
        ):
            raise ConfigError("dkim_selector", f"{self.dkim_selector!r} is not a DNS label")


class SmtpEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to submit mail. ``repr`` hides the password."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False  # smtps: TLS from the first byte; smtp: STARTTLS if offered

    def __repr__(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        who = f"{self.username}:***@" if self.username else ""
        return f"SmtpEndpoint({scheme}://{who}{self.host}:{self.port})"

    __str__ = __repr__


def parse_smtp_url(url: str, *, field: str = "SMTP_URL") -> SmtpEndpoint:
    """``smtp[s]://[user[:pass]@]host[:port]`` -> :class:`SmtpEndpoint`.

    ``field`` names the culprit in a :class:`ConfigError` (the environment variable).
    User and password are percent-decoded. Error messages never contain the password.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        # urlsplit's message may quote the netloc, password and all: say less.
        raise ConfigError(field, "not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(field, f"the scheme must be smtp or smtps, not {scheme or 'missing'!r}")
    default_port, implicit_tls = DEFAULT_PORTS[scheme]
    host = parts.hostname
    if not host:
        raise ConfigError(field, "no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(field, "the port is not a number from 0 to 65535") from None
    if port == 0:
        raise ConfigError(field, "the port must not be 0")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(field, "an SMTP URL has no path, query or fragment")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ConfigError(field, "a password needs a user name")
    if username and not password:
        raise ConfigError(field, "a user name needs a password (smtp://user:pass@host)")
    return SmtpEndpoint(
        host=host,
        port=port or default_port,
        username=username,
        password=password,
        implicit_tls=implicit_tls,
    )
