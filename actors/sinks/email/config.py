"""The defaults the email sink relies on. What the config file says about an email sink
(``EmailSinkConfig``, the SMTP URL parser) is :mod:`eyetok.sinks.email`, where
:mod:`eyetok.config` can take it without importing ``actors/``."""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "BINDING_TTL",
    "LINK_TTL",
    "MESSAGE_ID_DOMAIN",
    "RATE_PER_RECIPIENT",
    "WORKER_THREADS",
]

WORKER_THREADS = 4  # concurrent SMTP sessions across all email sinks of one process
RATE_PER_RECIPIENT = 1.0  # messages per second per recipient address
MESSAGE_ID_DOMAIN = "eyetok"  # Message-ID: <{delivery_id}@eyetok>
LINK_TTL = timedelta(hours=24)  # a magic link is good for this long after it is sent
BINDING_TTL = timedelta(days=365)  # a verified address stays bound this long (12 months)
