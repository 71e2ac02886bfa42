"""PagerDuty v3 webhooks decoded: the signature (several ``v1=`` values, constant time),
the event types EyeTok acts on, and how an event finds EyeTok's incident (the
``incident_key`` is the dedup key EyeTok sent in Events API v2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from actors.sinks.pagerduty.render import dedup_key
from eyetok.errors import MalformedPayloadError, SignatureError
from eyetok.messages import Incident, SevChannel, Severity
from eyetok.sources import pagerduty
from harness.peers.pagerduty_webhooks import PagerDutyUser, incident_event, sign

AT = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
TENEX = PagerDutyUser(id="PLH1HKV", name="Tenex Engineer")


def _body(event_type: str, key: str, agent: PagerDutyUser | None = TENEX) -> bytes:
    event = incident_event(
        event_type,
        number=2,
        incident_key=key,
        status=event_type.removeprefix("incident."),
        title="[SEV1] Database unreachable",
        agent=agent,
        occurred_at=AT,
    )
    return json.dumps(event).encode()


def test_one_matching_v1_value_is_enough_and_nothing_else_is() -> None:
    body = _body("incident.acknowledged", "eyetok:acme:inc_0123456789abcdef")
    pagerduty.verify(body, sign(body, ("s3cret",)), ("s3cret",))
    pagerduty.verify(body, sign(body, ("old", "s3cret")), ("s3cret",))  # a rotation
    pagerduty.verify(body, "v0=abc, " + pagerduty.sign(body, "s3cret"), ("s3cret",))
    for header in (None, "", "v0=abc", sign(body, ("wrong",)), sign(body + b" ", ("s3cret",))):
        with pytest.raises(SignatureError):
            pagerduty.verify(body, header, ("s3cret",))
    tampered = body.replace(b"acknowledged", b"resolved")
    with pytest.raises(SignatureError, match="does not match"):
        pagerduty.verify(tampered, sign(body, ("s3cret",)), ("s3cret",))


def test_the_incident_key_is_the_dedup_key_eyetok_sent() -> None:
    incident = Incident(
        incident_id="inc_0123456789abcdef",
        tenant="acme",
        dedup_key="sentry:db-down",
        title="Database unreachable",
        severity=Severity.CRITICAL,
        sev_channel=SevChannel.SEV1,
        rule="fatal",
        status="open",
        opened_at=AT,
        last_seen_at=AT,
        event_count=1,
    )
    key = dedup_key(incident)
    assert pagerduty.incident_of(key, "acme") == "inc_0123456789abcdef"
    assert pagerduty.incident_of(key, "other") is None
    assert pagerduty.incident_of(key, "acm") is None
    assert pagerduty.incident_of("eyetok:acme:notice:dlv_1", "acme") is None
    assert pagerduty.incident_of("d3640fbd41094207a1c11e58e46b1662", "acme") is None
    assert pagerduty.incident_of(None, "acme") is None


@pytest.mark.parametrize(
    ("event_type", "decision"),
    [("incident.acknowledged", "acknowledge"), ("incident.resolved", "resolve")],
)
def test_an_acknowledgement_or_a_resolve_names_the_agent(event_type: str, decision: str) -> None:
    found = pagerduty.decode(_body(event_type, "eyetok:acme:inc_0123456789abcdef"), "acme")
    assert isinstance(found, pagerduty.PagerDutyDecision)
    assert found.decision == decision
    assert found.incident_id == "inc_0123456789abcdef"
    assert found.by == "pagerduty:Tenex Engineer (PLH1HKV)"
    assert found.by_id == "pagerduty:PLH1HKV"
    assert found.pagerduty_incident == "PINC0002"


def test_an_event_by_pagerduty_itself_has_no_person() -> None:
    found = pagerduty.decode(
        _body("incident.resolved", "eyetok:acme:inc_0123456789abcdef", agent=None), "acme"
    )
    assert isinstance(found, pagerduty.PagerDutyDecision)
    assert (found.by, found.by_id) == ("pagerduty", None)


@pytest.mark.parametrize(
    ("event_type", "key", "why"),
    [
        ("incident.unacknowledged", "eyetok:acme:inc_0123456789abcdef", "acts only on"),
        ("incident.triggered", "eyetok:acme:inc_0123456789abcdef", "acts only on"),
        ("incident.acknowledged", "eyetok:other:inc_0123456789abcdef", "not one EyeTok sent"),
        ("incident.acknowledged", "d3640fbd41094207a1c11e58e46b1662", "not one EyeTok sent"),
    ],
)
def test_what_eyetok_does_not_act_on_says_why(event_type: str, key: str, why: str) -> None:
    found = pagerduty.decode(_body(event_type, key), "acme")
    assert isinstance(found, pagerduty.NotForUs)
    assert found.event_type == event_type
    assert why in found.reason


def test_a_service_event_is_not_acted_on() -> None:
    body = {"event": {"id": "01BRB", "event_type": "service.updated", "agent": None, "data": {}}}
    found = pagerduty.decode(json.dumps(body).encode(), "acme")
    assert isinstance(found, pagerduty.NotForUs)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"event": 3}', b'{"event": {"data": {}}}', b"\xff\xfe"],
)
def test_a_body_that_is_not_a_v3_webhook_is_a_typed_400(body: bytes) -> None:
    with pytest.raises(MalformedPayloadError, match="a PagerDuty v3 webhook"):
        pagerduty.decode(body, "acme")
