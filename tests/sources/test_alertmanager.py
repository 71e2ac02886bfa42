"""The Alertmanager source, fed the webhook body in Alertmanager's documented field names
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eyetok.errors import MalformedPayloadError
from eyetok.messages import Severity, SignalKind
from eyetok.recognisers import Recognisers
from eyetok.severity import classify
from eyetok.sources.alertmanager import SEVERITY_LABELS, normalise, severity_of

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alertmanager"
RECEIVED_AT = datetime(2026, 11, 23, 16, 5, 46, tzinfo=UTC)

DOCUMENTED_TOP_LEVEL = {
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
}
DOCUMENTED_ALERT = {
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
}


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def decode(body: bytes):
    counter = itertools.count(1)
    return normalise(
        body,
        tenant="acme",
        received_at=RECEIVED_AT,
        new_id=lambda: f"sig_{next(counter)}",
        recognisers=Recognisers(),
    )


@pytest.mark.parametrize("name", ["group_firing", "group_firing_and_resolved"])
def test_the_fixtures_use_exactly_the_documented_field_names(name: str) -> None:
    body: dict[str, Any] = json.loads(fixture(name))
    assert set(body) == DOCUMENTED_TOP_LEVEL
    assert body["version"] == "4"
    for alert in body["alerts"]:
        assert set(alert) == DOCUMENTED_ALERT


def test_a_firing_group_gives_one_signal_per_alert() -> None:
    critical, warning = decode(fixture("group_firing"))
    assert (critical.source, critical.resource, critical.action) == (
        "alertmanager",
        "alertmanager",
        "firing",
    )
    assert critical.kind is SignalKind.ALERT
    assert critical.dedup_key == "am:8d1f6b0e3c2a4f57"
    assert critical.title == "raptor-api 192.0.2.11:8080: 5xx rate 12.4%"
    assert critical.message.startswith("5xx responses are 12.4% of requests")
    assert critical.url.startswith("http://prometheus.raxx.example:9090/graph?g0.expr=")
    assert critical.culprit == "192.0.2.11:8080"
    assert critical.environment == "production"
    assert critical.is_metric_alert
    assert dict(critical.tags) == {
        "alertname": "APIHighErrorRate",
        "env": "production",
        "instance": "192.0.2.11:8080",
        "job": "raptor-api",
        "severity": "critical",
    }
    assert critical.level == "fatal"
    assert classify(critical).severity is Severity.CRITICAL
    assert warning.dedup_key == "am:2b7e95c4a0d81f36"
    assert warning.level == "warning"
    assert classify(warning).severity is Severity.LOW
    assert [critical.signal_id, warning.signal_id] == ["sig_1", "sig_2"]


def test_a_resolved_alert_is_a_resolve_with_the_firing_alerts_key() -> None:
    [firing, _] = decode(fixture("group_firing"))
    resolved, still_firing = decode(fixture("group_firing_and_resolved"))
    assert resolved.kind is SignalKind.RESOLVE
    assert resolved.action == "resolved"
    assert resolved.dedup_key == firing.dedup_key
    assert still_firing.kind is SignalKind.ALERT


def test_the_watchdog_without_a_fingerprint_is_audit_only_with_a_label_hash() -> None:
    [watchdog] = decode(fixture("watchdog_no_fingerprint"))
    assert watchdog.dedup_key.startswith("am:")
    assert len(watchdog.dedup_key) == len("am:") + 16
    assert watchdog.title.startswith("An alert that should always be firing")
    assert classify(watchdog).rule == "info-debug-audit"
    body = json.loads(fixture("watchdog_no_fingerprint"))
    labels = body["alerts"][0]["labels"]
    body["alerts"][0]["labels"] = dict(reversed(labels.items()))
    [again] = decode(json.dumps(body).encode())
    assert again.dedup_key == watchdog.dedup_key  # label order does not matter


@pytest.mark.parametrize(
    ("label", "severity", "rule"),
    [
        ("critical", Severity.CRITICAL, "fatal"),
        ("Page", Severity.CRITICAL, "fatal"),
        ("high", Severity.HIGH, "declared-high"),
        ("error", Severity.HIGH, "declared-high"),
        ("medium", Severity.MEDIUM, "error-regression-or-performance"),
        ("something-else", Severity.MEDIUM, "error-regression-or-performance"),
        (None, Severity.MEDIUM, "error-regression-or-performance"),
        ("warning", Severity.LOW, "warning"),
        ("info", Severity.INFO, "info-debug-audit"),
        ("none", Severity.INFO, "info-debug-audit"),
    ],
)
def test_the_severity_label_decides_the_level(
    label: str | None, severity: Severity, rule: str
) -> None:
    labels = {"alertname": "DiskFull"} | ({"severity": label} if label else {})
    body = {"alerts": [{"status": "firing", "labels": labels, "fingerprint": "f"}]}
    [signal] = decode(json.dumps(body).encode())
    routing = classify(signal)
    assert (routing.severity, routing.rule) == (severity, rule)
    assert signal.title == "DiskFull"  # no summary annotation: the alert name


def test_every_severity_label_is_lower_case() -> None:
    assert all(label == label.lower() for label in SEVERITY_LABELS)
    assert severity_of({"severity": " CRITICAL "}) is Severity.CRITICAL


def test_the_recognisers_read_the_labels() -> None:
    body = {
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LoginProbe",
                    "severity": "warning",
                    "check.type": "synthetic",
                },
                "fingerprint": "f",
            }
        ]
    }
    [signal] = decode(json.dumps(body).encode())
    assert signal.marks == frozenset({"synthetic_check"})
    assert classify(signal).rule == "synthetic-check-failure"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda b: b["alerts"][1].update(status="pending"),
            "alertmanager webhook: unexpected value 'pending' for $.alerts[1].status",
        ),
        (
            lambda b: b["alerts"][0].pop("labels"),
            "alertmanager webhook: $.alerts[0].labels is missing",
        ),
        (
            lambda b: b["alerts"][0]["labels"].update(severity=2),
            "alertmanager webhook: expected str for $.alerts[0].labels[...], got int",
        ),
        (
            lambda b: b.update(truncatedAlerts="0"),
            "alertmanager webhook: expected int | null for $.truncatedAlerts, got str",
        ),
        (lambda b: b.pop("alerts"), "alertmanager webhook: $.alerts is missing"),
        (
            lambda b: b.update(alerts={}),
            "alertmanager webhook: expected array for $.alerts, got object",
        ),
    ],
)
def test_a_wrong_shape_is_refused_naming_the_field(change: Any, message: str) -> None:
    body = json.loads(fixture("group_firing"))
    change(body)
    with pytest.raises(MalformedPayloadError) as caught:
        decode(json.dumps(body).encode())
    assert str(caught.value) == message


def test_malformed_json_is_refused_naming_the_position() -> None:
    body = fixture("group_firing")[:200]
    with pytest.raises(MalformedPayloadError) as caught:
        decode(body)
    assert str(caught.value) == (
        "alertmanager webhook: malformed JSON at byte 200 (the body ends early)"
    )
    with pytest.raises(MalformedPayloadError) as caught:
        decode(b'{"alerts": [}')
    assert str(caught.value).startswith("alertmanager webhook: malformed JSON at byte 12")
