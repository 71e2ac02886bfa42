"""The generic source: the documented alert shape, its severity mapping and its errors."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eyetok.errors import MalformedPayloadError
from eyetok.messages import Severity, SignalKind
from eyetok.recognisers import Recognisers
from eyetok.severity import classify
from eyetok.sources.generic import SEVERITY_FACTS, normalise

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "generic"
RECEIVED_AT = datetime(2026, 11, 23, 16, 5, 46, tzinfo=UTC)


def decode(body: bytes, recognisers: Recognisers | None = None):
    counter = itertools.count(1)
    return normalise(
        body,
        tenant="acme",
        received_at=RECEIVED_AT,
        new_id=lambda: f"sig_{next(counter)}",
        recognisers=recognisers or Recognisers(),
    )


def test_a_high_alert_carries_every_documented_field() -> None:
    [signal] = decode((FIXTURES / "high_firing.json").read_bytes())
    assert (signal.source, signal.resource, signal.action) == ("generic", "generic", "firing")
    assert signal.kind is SignalKind.ALERT
    assert signal.dedup_key == "checkout-latency-p95"
    assert signal.title == "Checkout p95 latency over 2 s"
    assert signal.message.startswith("p95 latency of POST /checkout is 2.4 s")
    assert signal.url == "https://grafana.raxx.example/d/checkout/latency?viewPanel=4"
    assert signal.environment == "production"
    assert signal.tags == (("service", "checkout"), ("team", "payments"))
    assert signal.cluster_key is None
    routing = classify(signal)
    assert (routing.severity, routing.rule) == (Severity.HIGH, "declared-high")


def test_resolved_is_a_resolve_with_the_same_key() -> None:
    [firing] = decode((FIXTURES / "high_firing.json").read_bytes())
    [resolved] = decode((FIXTURES / "high_resolved.json").read_bytes())
    assert resolved.kind is SignalKind.RESOLVE
    assert resolved.action == "resolved"
    assert resolved.dedup_key == firing.dedup_key


def test_each_declared_severity_lands_on_that_severity_in_the_canonical_table() -> None:
    signals = decode((FIXTURES / "batch.json").read_bytes())
    assert [(classify(s).severity.value, classify(s).rule) for s in signals] == [
        ("critical", "fatal"),
        ("high", "declared-high"),
        ("medium", "default"),
        ("low", "warning"),
        ("info", "info-debug-audit"),
        # no severity: the level, then the recognisers, decide
        ("low", "warning"),
        ("high", "synthetic-check-failure"),
    ]
    assert [s.level for s in signals] == [
        "fatal",
        "error",
        "error",
        "warning",
        "info",
        "warning",
        "error",
    ]
    assert all(s.kind is SignalKind.ALERT for s in signals)


@pytest.mark.parametrize("severity", list(Severity))
def test_the_severity_facts_yield_the_severity(severity: Severity) -> None:
    body = json.dumps({"title": "t", "dedup_key": "k", "severity": severity.value}).encode()
    [signal] = decode(body)
    assert (signal.level, signal.marks) == SEVERITY_FACTS[severity]
    assert classify(signal).severity is severity


def test_a_declared_severity_is_not_second_guessed_by_the_recognisers() -> None:
    body = {"title": "H12 Request timeout on /api/orders", "dedup_key": "h12", "severity": "low"}
    [declared] = decode(json.dumps(body).encode())
    assert declared.marks == frozenset()
    assert classify(declared).severity is Severity.LOW
    del body["severity"]
    [undeclared] = decode(json.dumps(body).encode())
    assert undeclared.marks == frozenset({"h12"})
    assert classify(undeclared).rule == "heroku-h12"


@pytest.mark.parametrize(("level", "read_as"), [("critical", "fatal"), ("warn", "warning")])
def test_level_aliases(level: str, read_as: str) -> None:
    [signal] = decode(json.dumps({"title": "t", "dedup_key": "k", "level": level}).encode())
    assert signal.level == read_as


def test_the_minimal_alert_is_a_firing_error() -> None:
    [signal] = decode(b'{"title": "Something broke", "dedup_key": "broke"}')
    assert signal.kind is SignalKind.ALERT
    assert signal.action == "firing"
    assert signal.level == "error"
    assert (signal.message, signal.url, signal.environment, signal.tags) == ("", "", "", ())
    assert classify(signal).rule == "default"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"dedup_key": "k"}', "generic alert: $.title is missing"),
        (b'{"title": "t"}', "generic alert: $.dedup_key is missing"),
        (
            b'{"title": "t", "dedup_key": ""}',
            "generic alert: expected `str` of length >= 1 for $.dedup_key",
        ),
        (
            b'{"title": "t", "dedup_key": "k", "severity": "urgent"}',
            "generic alert: unexpected value 'urgent' for $.severity",
        ),
        (
            b'{"title": "t", "dedup_key": "k", "status": "acknowledged"}',
            "generic alert: unexpected value 'acknowledged' for $.status",
        ),
        (
            b'{"title": "t", "dedup_key": "k", "tags": {"team": 7}}',
            "generic alert: expected str for $.tags[...], got int",
        ),
        (
            b'[{"title": "t", "dedup_key": "k"}, {"title": 1, "dedup_key": "k"}]',
            "generic alert: expected str for $[1].title, got int",
        ),
        (b'{"title": "t",, "dedup_key": "k"}', "generic alert: malformed JSON at byte 14"),
    ],
)
def test_a_wrong_shape_is_refused_naming_the_field_or_position(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        decode(body)
    assert str(caught.value).startswith(message)
