"""Webhook sink configuration lives in :mod:`eyetok.sinks.webhook` (``WebhookSinkConfig``);
this module re-exports it and names the defaults the webhook sink relies on."""

from __future__ import annotations

from eyetok.sinks.webhook import WebhookSinkConfig, parse_rotated_at
from eyetok.standard_webhooks import DEFAULT_TOLERANCE_S, ROTATION_OVERLAP

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_TOLERANCE_S",
    "DNS_TIMEOUT_S",
    "ROTATION_OVERLAP",
    "TXT_POLL_EVERY_S",
    "TXT_POLL_FOR_S",
    "USER_AGENT",
    "VERIFY_LABEL",
    "WebhookSinkConfig",
    "parse_rotated_at",
]

USER_AGENT = "EyeTok-Webhooks/1"
CONNECT_TIMEOUT_S = 5.0  # the connect phase never waits longer than this (or timeout_s)

# The DNS TXT ownership handshake (verify.py).
VERIFY_LABEL = "_eyetok-verify"  # the record lives at _eyetok-verify.<the URL's host>
TXT_POLL_EVERY_S = 300.0  # check every 5 minutes ...
TXT_POLL_FOR_S = 86400.0  # ... for a day, then the handshake has failed
DNS_TIMEOUT_S = 3.0  # one lookup, all tries included
