"""``eyetok test-alert``: a clearly labelled synthetic Sentry alert for a chosen SEV channel.

The payload is a Sentry integration platform ``event_alert``, shaped so the canonical
severity table puts it where asked (SEV1: level fatal; SEV2: an unhandled error, new, in
production, with a user, which lands on SEV2 or SEV2.5 by ET business hours; SEV3: a
warning). The command signs it with the operator's Sentry client secret and posts it to
``/hooks/sentry`` of a running daemon, so it goes the real path: signature, journal,
router, delivery gate, the sink.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime

from eyetok.messages import SevChannel

LABEL = "[EyeTok test alert]"
TEST_CHANNELS = ("SEV1", "SEV2", "SEV3")


def alert_body(sev: str, *, by: str, at: datetime) -> bytes:
    """The Sentry ``event_alert`` body of one test alert (a fresh issue id each time, so
    each test alert is its own incident)."""
    issue_id = str(900_000_000_000 + secrets.randbelow(99_999_999_999))
    level = {"SEV1": "fatal", "SEV2": "error", "SEV3": "warning"}[sev]
    title = f"{LABEL} synthetic {sev} alert sent by {by}: no action needed"
    event: dict[str, object] = {
        "event_id": secrets.token_hex(16),
        "issue_id": issue_id,
        "title": title,
        "message": title,
        "metadata": {"title": title},
        "level": level,
        "culprit": "eyetok test-alert",
        "environment": "production",
        "datetime": at.isoformat(),
        "tags": [["eyetok.test_alert", "true"], ["environment", "production"]],
        "web_url": f"https://sentry.io/issues/{issue_id}/",
    }
    if sev == "SEV2":
        event |= {
            "is_new": True,
            "user": {"id": "eyetok-test-alert"},
            "exception": {
                "values": [
                    {
                        "type": "EyeTokTestAlert",
                        "value": "a synthetic error from eyetok test-alert",
                        "mechanism": {"type": "eyetok", "handled": False},
                    }
                ]
            },
        }
    payload = {
        "action": "triggered",
        "data": {"event": event, "triggered_rule": "EyeTok test alert"},
    }
    return json.dumps(payload).encode()


def expected_channels(sev: str) -> tuple[SevChannel, ...]:
    """Where the test alert may land (SEV2 splits by ET business hours)."""
    match sev:
        case "SEV1":
            return (SevChannel.SEV1,)
        case "SEV2":
            return (SevChannel.SEV2, SevChannel.SEV2_5)
        case _:
            return (SevChannel.SEV3,)
