"""The words of a thread reply, and which Events API bodies are thread replies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eyetok.business_hours import BusinessWindow
from eyetok.config import parse_file_config, settings_from
from eyetok.messages import Severity
from eyetok.severity import RuleMiss, Why
from eyetok.thread_verbs import (
    HELP,
    Command,
    Verb,
    help_line,
    parse,
    thread_message_of,
    why_line,
)

AT = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "verb"),
    [
        ("ack", Verb.ACK),
        ("<@U0EYETOKBOT> ack", Verb.ACK),
        ("Acknowledge.", Verb.ACK),
        ("resolve!", Verb.RESOLVE),
        ("<@U0EYETOKBOT|eyetok>   WHY?", Verb.WHY),
        ("status", Verb.STATUS),
        ("", Verb.HELP),
        ("ack the other one", Verb.HELP),
        ("why is this so loud", Verb.HELP),
        ("please fix it", Verb.HELP),
    ],
)
def test_verbs(text: str, verb: Verb) -> None:
    assert parse(text).verb is verb


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("mute", timedelta(hours=1)),
        ("mute 1h", timedelta(hours=1)),
        ("<@U0EYETOKBOT> mute 30m", timedelta(minutes=30)),
        ("mute 2 hours", timedelta(hours=2)),
        ("mute 24h", timedelta(hours=24)),
    ],
)
def test_mute_spans(text: str, span: timedelta) -> None:
    assert parse(text) == Command(verb=Verb.MUTE, mute_for=span)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mute 25h", "a mute lasts from 1 minute to 24 hours"),
        ("mute 0m", "a mute lasts from 1 minute to 24 hours"),
        ("mute forever", "`mute forever` is not a span like 1h or 30m"),
        # what a human wrote is quoted back, never as a mention or a link
        ("mute <!channel>", "`mute &lt;!channel&gt;` is not a span like 1h or 30m"),
    ],
)
def test_a_mute_out_of_bounds_gets_help_that_says_why(text: str, problem: str) -> None:
    command = parse(text)
    assert command.verb is Verb.HELP
    assert command.problem == problem
    assert help_line(command) == f"{problem}. {HELP}"


def _body(event: dict[str, object], **envelope: object) -> bytes:
    return json.dumps(
        {"type": "event_callback", "event_id": "Ev1", "team_id": "T1", "event": event} | envelope
    ).encode()


REPLY = {
    "type": "message",
    "user": "U1",
    "text": "ack",
    "ts": "2.0",
    "thread_ts": "1.0",
    "channel": "C1",
}


def test_a_human_reply_in_a_thread_is_one() -> None:
    seen = thread_message_of(_body(REPLY), AT)
    assert seen is not None
    assert (seen.event_id, seen.user, seen.text, seen.thread_ts, seen.ts) == (
        "Ev1",
        "U1",
        "ack",
        "1.0",
        "2.0",
    )
    assert thread_message_of(_body(REPLY | {"type": "app_mention"}), AT) is not None


@pytest.mark.parametrize(
    "body",
    [
        _body(REPLY | {"bot_id": "B1"}),  # our own posts
        _body(REPLY | {"subtype": "message_changed"}),  # an edit
        _body(REPLY | {"subtype": "bot_message"}),
        _body({k: v for k, v in REPLY.items() if k != "thread_ts"}),  # top level
        _body(REPLY | {"thread_ts": "2.0"}),  # the thread's parent itself
        _body(REPLY | {"type": "reaction_added"}),
        _body(REPLY, type="url_verification"),
        _body(REPLY, event_id=""),
        b"not json",
    ],
)
def test_what_is_not_a_thread_reply(body: bytes) -> None:
    assert thread_message_of(body, AT) is None


def test_the_readme_digest_example_is_valid_configuration() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The digest reader") :]
    [example] = re.findall(r"`(escalation: \{[^`]*\})`", section[: section.index("\n## ")])
    config = "tenants:\n  operator:\n    tier: operator\n    " + example + "\n"
    escalation = settings_from(parse_file_config(config), {}).tenants["operator"].escalation
    assert escalation.digest_escalate_s == 900
    assert escalation.secondary is not None
    assert (escalation.secondary.sink, escalation.secondary.target) == (
        "slack",
        "#oncall-secondary",
    )


def test_why_quotes_payload_values_inertly() -> None:
    found = Why(
        rule="error-new-unhandled-production",
        severity=Severity.HIGH,
        held=('environment is "<!channel> production"',),
        louder_misses=(
            RuleMiss(rule="fatal", severity=Severity.CRITICAL, failed='level is "<@U1>"'),
        ),
    )
    line = why_line(found, received_at=AT, window=BusinessWindow(), channel="SEV2", business=False)
    assert "<!channel>" not in line
    assert "<@U1>" not in line
    assert 'environment is "&lt;!channel&gt; production"' in line
    assert '`fatal` (critical): level is "&lt;@U1&gt;"' in line
    assert "outside business hours (America/New_York, mon/tue/wed/thu/fri 08:00-18:30)" in line
