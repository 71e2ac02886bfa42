"""Configuration of a generic webhook sink (Standard Webhooks, design section 5).

Lives in ``eyetok/`` (the domain never imports ``actors/``) so :mod:`eyetok.config` can
take it into the ``SinkConfig`` union; ``actors/sinks/webhook/config.py`` holds the
runtime defaults.
Secrets are never in the file: ``secret_env`` names the environment variable holding the
``whsec_…`` secret. During a rotation ``previous_secret_env`` holds the old one and
``rotated_at`` says when the rotation started; both sign for 30 days after it.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import msgspec

from eyetok.errors import ConfigError


def parse_rotated_at(value: str) -> datetime:
    """An ISO date (midnight UTC) or datetime (naive is UTC). Raises ``ValueError``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class WebhookSinkConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="webhook",
    tag_field="type",
):
    """One HTTP(S) endpoint that receives signed JSON events."""

    tenant: str = "operator"  # the owner
    url: str
    secret_env: str  # environment variable holding the whsec_ secret
    previous_secret_env: str | None = None  # the old secret, during a rotation
    rotated_at: str | None = None  # ISO date the rotation started
    timeout_s: float = 10.0
    rate_per_second: float | None = None

    def __post_init__(self) -> None:
        _check_url(self.url)
        if not self.secret_env.strip():
            raise ConfigError("secret_env", "names the environment variable of the secret")
        if self.previous_secret_env is not None and not self.previous_secret_env.strip():
            raise ConfigError("previous_secret_env", "must name an environment variable")
        if (self.previous_secret_env is None) != (self.rotated_at is None):
            field = "rotated_at" if self.previous_secret_env is not None else "previous_secret_env"
            raise ConfigError(
                field, "previous_secret_env and rotated_at are given together (a rotation)"
            )
        if self.rotated_at is not None:
            try:
                parse_rotated_at(self.rotated_at)
            except ValueError as exc:
                raise ConfigError("rotated_at", f"{self.rotated_at!r} is not an ISO date") from exc
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ConfigError("timeout_s", "must be a positive number of seconds")
        if self.rate_per_second is not None and not (
            math.isfinite(self.rate_per_second) and self.rate_per_second > 0
        ):
            raise ConfigError("rate_per_second", "must be positive (or absent: unlimited)")

    @property
    def rotation_started(self) -> datetime | None:
        """``rotated_at`` as an aware datetime, or None outside a rotation."""
        return None if self.rotated_at is None else parse_rotated_at(self.rotated_at)

    @property
    def host(self) -> str:
        """The URL's host, lower-case: the domain the DNS handshake verifies."""
        host = urlsplit(self.url).hostname
        assert host is not None  # checked in __post_init__
        return host


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ConfigError("url", f"{url!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ConfigError("url", f"{url!r} is not http(s)")
    if not parts.hostname:
        raise ConfigError("url", f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("url", "credentials do not belong in the URL (they would be logged)")
    if any(c.isspace() for c in url):
        raise ConfigError("url", f"{url!r} contains whitespace")
