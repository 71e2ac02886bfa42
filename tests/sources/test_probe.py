"""The probe source: decoding one verdict or a batch, and the Signal each becomes."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eyetok.errors import MalformedPayloadError
from eyetok.messages import SevChannel, Severity, SignalKind
from eyetok.severity import classify
from eyetok.sources.probe import normalise

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "probe"
RECEIVED_AT = datetime(2026, 11, 23, 16, 5, 46, tzinfo=UTC)  # a Monday, 11:05 ET


def _ids() -> itertools.count[int]:
    return itertools.count(1)


def decode(body: bytes):
    counter = _ids()
    return normalise(
        body, tenant="acme", received_at=RECEIVED_AT, new_id=lambda: f"sig_{next(counter)}"
    )


def test_one_failing_verdict_is_a_high_synthetic_check_failure_with_a_cluster_key() -> None:
    [signal] = decode((FIXTURES / "verdict_down.json").read_bytes())
    assert signal.signal_id == "sig_1"
    assert signal.tenant == "acme"
    assert (signal.source, signal.resource, signal.action) == ("probe", "probe", "down")
    assert signal.kind is SignalKind.ALERT
    assert signal.dedup_key == "probe:registry.npmjs.org:tls_handshake"
    assert signal.level == "error"
    assert signal.marks == frozenset({"synthetic_check"})
    assert signal.cluster_key == "tls_handshake|13335|npm"
    assert signal.title == "registry.npmjs.org down: tls_handshake (AS13335, npm, us-east-1)"
    assert signal.culprit == "registry.npmjs.org"
    assert signal.received_at == RECEIVED_AT
    assert dict(signal.tags) == {
        "server": "registry.npmjs.org",
        "verdict": "down",
        "error_kind": "tls_handshake",
        "asn": "13335",
        "registry": "npm",
        "region": "us-east-1",
        "observed_at": "2026-11-23T16:05:41+00:00",
    }
    routing = classify(signal)
    assert routing.rule == "synthetic-check-failure"
    assert routing.severity is Severity.HIGH
    assert routing.sev_channel is SevChannel.SEV2_5


def test_a_batch_gives_one_signal_per_verdict_in_order() -> None:
    signals = decode((FIXTURES / "batch.json").read_bytes())
    assert [s.signal_id for s in signals] == [f"sig_{i}" for i in range(1, 6)]
    assert [(s.action, s.kind) for s in signals] == [
        ("down", SignalKind.ALERT),
        ("timeout", SignalKind.ALERT),
        ("degraded", SignalKind.ALERT),
        ("ok", SignalKind.RESOLVE),
        ("ok", SignalKind.RESOLVE),
    ]
    # error_kind, ASN ("AS13335" or 13335) and registry make the key, lower-cased: the
    # first two verdicts are the same registry-wide outage seen from two regions.
    assert [s.cluster_key for s in signals] == [
        "tls_handshake|13335|npm",
        "tls_handshake|13335|npm",
        "slow_first_byte|54113|pypi",
        None,
        None,
    ]
    assert [s.dedup_key for s in signals] == [
        "probe:registry.npmjs.org:tls_handshake",
        "probe:registry.yarnpkg.com:TLS_Handshake",
        "probe:pypi.org:slow_first_byte",
        "probe:index.crates.io:dns_nxdomain",
        "probe:proxy.golang.org:",
    ]
    assert signals[1].title == (
        "registry.yarnpkg.com timeout: TLS_Handshake (AS13335, NPM, eu-west-1)"
    )
    assert dict(signals[2].tags)["observed_at"] == "2026-11-23T11:05:44-05:00"
    assert [s.marks for s in signals[3:]] == [frozenset(), frozenset()]
    assert [s.level for s in signals[3:]] == ["info", "info"]
    assert signals[4].title == "proxy.golang.org ok (AS15169, go, us-west-2)"


def test_the_verdict_is_read_case_insensitively() -> None:
    body = json.loads((FIXTURES / "verdict_down.json").read_bytes())
    [signal] = decode(json.dumps(body | {"verdict": "OK"}).encode())
    assert signal.kind is SignalKind.RESOLVE
    assert signal.action == "ok"
    assert signal.dedup_key == "probe:registry.npmjs.org:tls_handshake"
    assert signal.cluster_key is None


def test_an_empty_batch_is_no_signals() -> None:
    assert decode(b"[]") == []


def _verdict(**changes: object) -> bytes:
    body = json.loads((FIXTURES / "verdict_down.json").read_bytes())
    return json.dumps(body | changes).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_verdict(asn=13.5), "probe verdict: expected int | str for $.asn, got float"),
        (_verdict(server=7), "probe verdict: expected str for $.server, got int"),
        (_verdict(server=""), "probe verdict: expected `str` of length >= 1 for $.server"),
        (
            _verdict(observed_at="2026-11-23T16:05:41"),
            "probe verdict: expected `datetime` with a timezone component for $.observed_at",
        ),
        (
            _verdict(error_kind=None),
            "probe verdict: $.error_kind is missing (a 'down' verdict names its error_kind)",
        ),
        (b'{"server": "a.example"}', "probe verdict: $.verdict is missing"),
        (b"[1]", "probe verdict: expected object for $[0], got int"),
        (b'"down"', "probe verdict: expected object | array for $, got str"),
    ],
)
def test_a_wrong_shape_is_refused_naming_the_field(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        decode(body)
    assert str(caught.value) == message


def test_an_error_in_a_batch_names_its_index() -> None:
    verdicts = json.loads((FIXTURES / "batch.json").read_bytes())
    verdicts[3]["region"] = ["ap-southeast-2"]
    with pytest.raises(MalformedPayloadError) as caught:
        decode(json.dumps(verdicts).encode())
    assert str(caught.value) == "probe verdict: expected str for $[3].region, got array"
    del verdicts[3]["region"]
    verdicts[2]["error_kind"] = ""
    verdicts[3]["region"] = "x"
    with pytest.raises(MalformedPayloadError) as caught:
        decode(json.dumps(verdicts).encode())
    assert "$[2].error_kind is missing" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"server": "a", "verdict" "down"}', "probe verdict: malformed JSON at byte 26"),
        (b'[{"server": "a"', "probe verdict: malformed JSON at byte 15 (the body ends early)"),
        (b"", "probe verdict: the body is empty (expected JSON)"),
    ],
)
def test_malformed_json_is_refused_naming_the_position(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        decode(body)
    assert str(caught.value).startswith(message)
