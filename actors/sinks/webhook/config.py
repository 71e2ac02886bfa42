"""The defaults the webhook sink relies on. What the config file says about a webhook sink
(``WebhookSinkConfig``) is :mod:`eyetok.sinks.webhook`, where :mod:`eyetok.config` can take
it without importing ``actors/``; the signature's tolerance and rotation overlap are
:mod:`eyetok.standard_webhooks`."""

from __future__ import annotations

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DNS_TIMEOUT_S",
    "TXT_POLL_EVERY_S",
    "TXT_POLL_FOR_S",
    "USER_AGENT",
    "VERIFY_LABEL",
]

USER_AGENT = "EyeTok-Webhooks/1"
CONNECT_TIMEOUT_S = 5.0  # the connect phase never waits longer than this (or timeout_s)

# The DNS TXT ownership handshake (verify.py).
VERIFY_LABEL = "_eyetok-verify"  # the record lives at _eyetok-verify.<the URL's host>
TXT_POLL_EVERY_S = 300.0  # check every 5 minutes ...
TXT_POLL_FOR_S = 86400.0  # ... for a day, then the handshake has failed
DNS_TIMEOUT_S = 3.0  # one lookup, all tries included
