"""PagerDuty sink configuration lives in :mod:`eyetok.sinks.pagerduty`
(``PagerDutySinkConfig``); this module re-exports it and names the defaults and the limits
of the Events API v2 the PagerDuty sink relies on."""

from __future__ import annotations

from collections.abc import Mapping

from eyetok.sinks.pagerduty import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_EVENTS_URL,
    DEFAULT_TOKEN_URL,
    EVENTS_URL_ENV,
    PagerDutySinkConfig,
    check_url,
)

__all__ = [
    "CLIENT_NAME",
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_EVENTS_URL",
    "DEFAULT_SCOPE",
    "DEFAULT_TOKEN_URL",
    "EVENTS_URL_ENV",
    "MAX_DEDUP_KEY",
    "MAX_SUMMARY",
    "PagerDutySinkConfig",
    "events_url",
]

# Limits of the Events API v2 (developer.pagerduty.com, "Send an Alert Event").
MAX_DEDUP_KEY = 255  # characters
MAX_SUMMARY = 1024  # characters
CLIENT_NAME = "EyeTok"  # the event's ``client``: the monitoring tool that sent it
DEFAULT_SCOPE = "write"  # Classic User OAuth scope asked for by the PKCE handshake


def events_url(config: PagerDutySinkConfig, environ: Mapping[str, str]) -> str:
    """The Events API URL to post to: ``PAGERDUTY_EVENTS_URL`` when set, else the file's."""
    override = environ.get(EVENTS_URL_ENV)
    if override:
        return check_url(EVENTS_URL_ENV, override)
    return config.events_url
