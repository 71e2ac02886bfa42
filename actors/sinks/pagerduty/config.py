"""The defaults and the limits of the Events API v2 the PagerDuty sink relies on, and where
it posts. What the config file says about a PagerDuty sink (``PagerDutySinkConfig``, its
default URLs) is :mod:`eyetok.sinks.pagerduty`, where :mod:`eyetok.config` can take it
without importing ``actors/``."""

from __future__ import annotations

from collections.abc import Mapping

from eyetok.sinks.pagerduty import EVENTS_URL_ENV, PagerDutySinkConfig, check_url

__all__ = [
    "CLIENT_NAME",
    "DEFAULT_SCOPE",
    "MAX_DEDUP_KEY",
    "MAX_SUMMARY",
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
