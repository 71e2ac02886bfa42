"""A delivery held for its sink's verification says, in every sink's payload, how late it
is and why; one that was not held says nothing of the kind."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from actors.sinks.email.render import render as email
from actors.sinks.pagerduty.render import render as pagerduty
from actors.sinks.slack.render import render as slack
from actors.sinks.webhook.render import render as webhook
from eyetok.config import SlackOptions
from tests.actors.deliveries import deliver

LATE = "delayed 12 min: sink `acme-hook` was awaiting verification"


def _payloads(late: str | None) -> list[str]:
    d = msgspec.structs.replace(
        deliver("acme", 1, at=datetime(2026, 12, 1, 15, tzinfo=UTC)), late=late
    )
    notice = msgspec.structs.replace(d, notice="Delivery dead: something")
    return [
        str(msgspec.to_builtins(slack(d, thread_ts=None, options=SlackOptions()))),
        str(msgspec.to_builtins(slack(notice, thread_ts=None, options=SlackOptions()))),
        msgspec.json.encode(webhook(d)).decode(),
        msgspec.json.encode(webhook(notice)).decode(),
        email(d).text,
        email(notice).text,
        msgspec.json.encode(pagerduty(d, routing_key="k")).decode(),
        msgspec.json.encode(pagerduty(notice, routing_key="k")).decode(),
    ]


def test_every_sink_says_how_late_a_held_delivery_is() -> None:
    for payload in _payloads(LATE):
        assert LATE in payload, payload


def test_a_delivery_that_was_not_held_says_nothing_of_it() -> None:
    for payload in _payloads(None):
        assert "awaiting verification" not in payload
        assert '"late"' not in payload
