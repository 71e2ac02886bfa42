"""Email sink configuration lives in :mod:`eyetok.sinks.email` (``EmailSinkConfig``); this
module re-exports it and names the defaults the email sink relies on."""

from __future__ import annotations

from datetime import timedelta

from eyetok.sinks.email import EmailSinkConfig, SmtpEndpoint, is_address, parse_smtp_url

__all__ = [
    "BINDING_TTL",
    "EmailSinkConfig",
    "LINK_TTL",
    "MESSAGE_ID_DOMAIN",
    "RATE_PER_RECIPIENT",
    "SmtpEndpoint",
    "WORKER_THREADS",
    "is_address",
    "parse_smtp_url",
]

WORKER_THREADS = 4  # concurrent SMTP sessions across all email sinks of one process
RATE_PER_RECIPIENT = 1.0  # messages per second per recipient address
MESSAGE_ID_DOMAIN = "eyetok"  # Message-ID: <{delivery_id}@eyetok>
LINK_TTL = timedelta(hours=24)  # a magic link is good for this long after it is sent
BINDING_TTL = timedelta(days=365)  # a verified address stays bound this long (12 months)
