"""PagerDuty sink configuration: one Events API v2 integration (routing key from the
environment) and, for the ownership handshake, the OAuth 2.0 client that runs PKCE.

The routing key is a secret and is never in the file: ``routing_key_env`` names the
environment variable that holds it. ``events_url`` may be overridden by the environment
(``PAGERDUTY_EVENTS_URL``); whoever reads the environment resolves that, this shape only
keeps the field. Every URL must be ``http``/``https`` with a host; a bad one is a
:class:`ConfigError` naming the field.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from eyetok.errors import ConfigError

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_EVENTS_URL",
    "DEFAULT_TOKEN_URL",
    "EVENTS_URL_ENV",
    "PagerDutySinkConfig",
    "check_url",
]

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_AUTHORIZE_URL = "https://identity.pagerduty.com/oauth/authorize"
DEFAULT_TOKEN_URL = "https://identity.pagerduty.com/oauth/token"
EVENTS_URL_ENV = "PAGERDUTY_EVENTS_URL"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_url(field: str, value: str) -> str:
    """``value`` if it is an absolute ``http``/``https`` URL with a host, else a
    :class:`ConfigError` naming ``field``."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(field, f"{value!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise ConfigError(field, f"{value!r} must be an http or https URL")
    if not host:
        raise ConfigError(field, f"{value!r} has no host")
    if any(ch.isspace() for ch in value):
        raise ConfigError(field, f"{value!r} contains whitespace")
    return value


class PagerDutySinkConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="pagerduty",
    tag_field="type",
):
    """One PagerDuty service integration (Events API v2) owned by one tenant."""

    tenant: str = "operator"  # the owner of the sink
    routing_key_env: str  # env var holding the 32-character integration (routing) key
    events_url: str = DEFAULT_EVENTS_URL  # env PAGERDUTY_EVENTS_URL overrides it
    oauth_client_id: str | None = None  # the registered app that runs the PKCE handshake
    oauth_authorize_url: str = DEFAULT_AUTHORIZE_URL
    oauth_token_url: str = DEFAULT_TOKEN_URL
    oauth_redirect_uri: str | None = None  # registered with the app; where PagerDuty returns
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not _TENANT_ID.match(self.tenant):
            raise ConfigError("tenant", "tenant ids are [a-z0-9_-], at most 63")
        if not _ENV_NAME.match(self.routing_key_env):
            raise ConfigError(
                "routing_key_env", f"{self.routing_key_env!r} is not an environment variable name"
            )
        check_url("events_url", self.events_url)
        check_url("oauth_authorize_url", self.oauth_authorize_url)
        check_url("oauth_token_url", self.oauth_token_url)
        if self.oauth_redirect_uri is not None:
            check_url("oauth_redirect_uri", self.oauth_redirect_uri)
        if self.oauth_client_id is not None and not self.oauth_client_id.strip():
            raise ConfigError("oauth_client_id", "must not be blank (leave it out instead)")
        if not self.timeout_s > 0:
            raise ConfigError("timeout_s", "must be a positive number of seconds")
