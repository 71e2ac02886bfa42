"""The PagerDuty sink against a local Events API v2 fake that validates as PagerDuty does."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest

from actors.sinks.base import Delivered, Permanent, Retry, Sink
from actors.sinks.pagerduty.config import MAX_DEDUP_KEY, MAX_SUMMARY, events_url
from actors.sinks.pagerduty.deliver import PagerDutySink, classify, retry_after_s
from actors.sinks.pagerduty.render import (
    PagerDutyEvent,
    dedup_key,
    notice_dedup_key,
    pd_severity,
    render,
)
from eyetok import guard
from eyetok.errors import ConfigError
from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    SevChannel,
    Severity,
)
from eyetok.sinks.pagerduty import EVENTS_URL_ENV, PagerDutySinkConfig
from harness.peers.pagerduty import FakePagerDuty, Scripted, validate_event

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, as PagerDuty's integration keys
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TENANTS = ("operator", "acme", "globex")


def make_incident(**changes: object) -> Incident:
    base = Incident(
        incident_id="inc_0123456789abcdef",
        tenant="acme",
        dedup_key="sentry-issue-4711",
        title="TypeError: cannot read property 'id' of undefined",
        severity=Severity.HIGH,
        sev_channel=SevChannel.SEV2,
        rule="error-new-unhandled-prod",
        status="open",
        opened_at=T0,
        last_seen_at=T0,
        event_count=1,
        url="https://sentry.example.com/organizations/acme/issues/4711/",
        culprit="app/checkout.py in pay",
        environment="production",
        project="checkout",
    )
    return msgspec.structs.replace(base, **changes)


def make_deliver(
    incident: Incident,
    action: IncidentAction = IncidentAction.OPEN,
    *,
    notice: str | None = None,
    delivery_id: str = "dlv_000000000001",
    tenant: str | None = None,
) -> Deliver:
    return Deliver(
        delivery_id=delivery_id,
        tenant=tenant or incident.tenant,
        destination=Destination(sink_id="pd", sink_type="pagerduty", target="acme-service"),
        incident=incident,
        action=action,
        rule=incident.rule,
        planned_at=incident.last_seen_at,
        received_at=incident.last_seen_at,
        notice=notice,
    )


def body_of(event: PagerDutyEvent) -> dict[str, object]:
    """The event as it goes on the wire (and as the delivery actor's guard sees it)."""
    body = msgspec.json.decode(msgspec.json.encode(event))
    assert isinstance(body, dict)
    assert body == json.loads(json.dumps(msgspec.to_builtins(event)))
    return body


def config_for(url: str, *, timeout_s: float = 10.0) -> PagerDutySinkConfig:
    return PagerDutySinkConfig(
        tenant="acme", routing_key_env="PD_ROUTING_KEY", events_url=url, timeout_s=timeout_s
    )


@pytest.fixture
def fake_pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(routing_key=KEY, strict_key_length=True) as fake:
        yield fake


@pytest.fixture
async def sink(fake_pd: FakePagerDuty) -> AsyncIterator[PagerDutySink]:
    instance = PagerDutySink(sink_id="pd", routing_key=KEY, config=config_for(fake_pd.events_url))
    yield instance
    await instance.aclose()


async def deliver_via(sink: PagerDutySink, deliver: Deliver) -> Delivered | Retry | Permanent:
    return await sink.send(
        sink.render(deliver, thread_ref=None), idempotency_key=deliver.delivery_id
    )


# --- the sink contract -----------------------------------------------------------------


async def test_sink_contract(sink: PagerDutySink) -> None:
    as_sink: Sink = sink
    assert as_sink.sink_type == "pagerduty"
    assert as_sink.sink_id == "pd"
    assert as_sink.rate_per_target is None
    assert as_sink.threads() is False


# --- trigger, acknowledge, resolve -----------------------------------------------------


async def test_trigger_acknowledge_resolve_share_one_dedup_key(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    opened = make_incident()
    acked = msgspec.structs.replace(
        opened, status="acknowledged", event_count=2, last_seen_at=T0 + timedelta(minutes=1)
    )
    resolved = msgspec.structs.replace(
        acked, status="resolved", resolved_at=T0 + timedelta(minutes=5)
    )
    key = "eyetok:acme:inc_0123456789abcdef"

    steps = [
        (make_deliver(opened, IncidentAction.OPEN), "trigger", "triggered"),
        (
            make_deliver(acked, IncidentAction.UPDATE, delivery_id="dlv_2"),
            "acknowledge",
            "acknowledged",
        ),
        (
            make_deliver(resolved, IncidentAction.RESOLVE, delivery_id="dlv_3"),
            "resolve",
            "resolved",
        ),
    ]
    for deliver, action, state in steps:
        event = sink.render(deliver, thread_ref=None)
        assert event.event_action == action
        assert event.dedup_key == key
        outcome = await sink.send(event, idempotency_key=deliver.delivery_id)
        assert outcome == Delivered(external_ref=key)  # the dedup_key PagerDuty echoes
        assert fake_pd.state(key) == state

    assert fake_pd.history(key) == ["triggered", "acknowledged", "resolved"]
    events = fake_pd.wait_for(3)
    assert [e.event_action for e in events] == ["trigger", "acknowledge", "resolve"]
    assert all(e.applied for e in events)
    # acknowledge and resolve carry only the keys, as the API's examples do
    assert set(events[1].body) == {"routing_key", "dedup_key", "event_action"}
    assert set(events[2].body) == {"routing_key", "dedup_key", "event_action"}
    [alert] = fake_pd.alerts
    assert alert.triggers == 1


async def test_update_is_a_trigger_that_folds_into_the_open_alert(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    opened = make_incident()
    updated = msgspec.structs.replace(opened, event_count=7, last_seen_at=T0 + timedelta(minutes=3))
    assert await deliver_via(sink, make_deliver(opened)) == Delivered(
        external_ref=dedup_key(opened)
    )
    update = make_deliver(updated, IncidentAction.UPDATE, delivery_id="dlv_2")
    event = sink.render(update, thread_ref=None)
    assert event.event_action == "trigger"
    assert event.payload is not None
    assert "seen 7 times" in event.payload.summary
    assert isinstance(await sink.send(event, idempotency_key="dlv_2"), Delivered)

    [alert] = fake_pd.alerts  # one alert, re-triggered: PagerDuty dedups by dedup_key
    assert alert.triggers == 2
    assert alert.status == "triggered"
    assert "seen 7 times" in alert.summary


async def test_a_resent_event_does_not_page_twice(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    opened = make_incident()
    resolved = msgspec.structs.replace(opened, status="resolved", resolved_at=T0)
    for _ in range(2):  # a retry after a crash re-sends the same delivery
        assert isinstance(await deliver_via(sink, make_deliver(opened)), Delivered)
    assert len(fake_pd.alerts) == 1
    for _ in range(2):
        resolve = make_deliver(resolved, IncidentAction.RESOLVE, delivery_id="dlv_r")
        assert isinstance(await deliver_via(sink, resolve), Delivered)
    assert [e.applied for e in fake_pd.events] == [True, True, True, False]  # 2nd resolve dropped
    assert fake_pd.history(dedup_key(opened)) == ["triggered", "resolved"]


async def test_escalation_recommendation_rides_on_the_update(sink: PagerDutySink) -> None:
    incident = make_incident(
        severity=Severity.MEDIUM,
        sev_channel=SevChannel.SEV3,
        escalation_recommended=SevChannel.SEV2,
        event_count=3,
    )
    event = sink.render(make_deliver(incident, IncidentAction.UPDATE), thread_ref=None)
    assert event.payload is not None
    assert "escalation_recommended: SEV2" in event.payload.summary
    assert event.payload.custom_details is not None
    assert event.payload.custom_details.escalation_recommended == "SEV2"


# --- severity and shape ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.CRITICAL, "critical"),
        (Severity.HIGH, "error"),
        (Severity.MEDIUM, "warning"),
        (Severity.LOW, "warning"),
        (Severity.INFO, "info"),
    ],
)
async def test_severity_mapping(
    severity: Severity, expected: str, sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    assert pd_severity(severity) == expected
    incident = make_incident(severity=severity)
    event = sink.render(make_deliver(incident), thread_ref=None)
    assert event.payload is not None
    assert event.payload.severity == expected
    assert isinstance(await sink.send(event, idempotency_key="dlv"), Delivered)
    [accepted] = fake_pd.wait_for(1)
    assert accepted.payload["severity"] == expected


def test_trigger_body_has_the_documented_fields() -> None:
    incident = make_incident()
    body = body_of(render(make_deliver(incident), routing_key=KEY))
    assert body["routing_key"] == KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "eyetok:acme:inc_0123456789abcdef"
    assert body["client"] == "EyeTok"
    assert body["links"] == [{"href": incident.url, "text": "Issue"}]
    payload = body["payload"]
    assert isinstance(payload, dict)
    assert payload["summary"] == f"[SEV2] {incident.title} (production)"
    assert payload["source"] == "eyetok/acme"
    assert payload["severity"] == "error"
    assert payload["component"] == "checkout"
    assert payload["group"] == "production"
    assert payload["class"] == "error-new-unhandled-prod"
    assert payload["timestamp"] == "2026-11-23T12:00:00.000+00:00"
    assert payload["custom_details"] == {
        "incident_id": "inc_0123456789abcdef",
        "rule": "error-new-unhandled-prod",
        "sev_channel": "SEV2",
        "event_count": 1,
        "severity": "high",
    }
    # one event per body: nothing list-shaped but the links
    assert not any(k in body for k in ("events", "alerts", "incidents", "batch"))


def _renders() -> list[tuple[str, Deliver]]:
    opened = make_incident()
    acked = msgspec.structs.replace(opened, status="acknowledged")
    resolved = msgspec.structs.replace(opened, status="resolved", resolved_at=T0)
    bare = make_incident(title="", url="", environment="", project="", culprit="", sev_channel=None)
    long = make_incident(
        title="x" * 5000, incident_id="inc_" + "f" * 400, tenant="a" * 63, url="not a url"
    )
    return [
        ("open", make_deliver(opened)),
        ("update", make_deliver(opened, IncidentAction.UPDATE)),
        ("update-acked", make_deliver(acked, IncidentAction.UPDATE)),
        ("update-resolved", make_deliver(resolved, IncidentAction.UPDATE)),
        ("resolve", make_deliver(resolved, IncidentAction.RESOLVE)),
        ("audit", make_deliver(opened, IncidentAction.AUDIT)),
        ("bare", make_deliver(bare)),
        ("long", make_deliver(long)),
        ("notice", make_deliver(opened, notice="delivery dead", tenant="operator")),
        ("long-notice", make_deliver(long, notice="y" * 3000, delivery_id="d" * 300)),
    ]


@pytest.mark.parametrize(("name", "deliver"), _renders(), ids=[n for n, _ in _renders()])
def test_every_render_passes_pagerdutys_validation_and_the_guard(
    name: str, deliver: Deliver
) -> None:
    body = body_of(render(deliver, routing_key=KEY))
    assert validate_event(body, routing_key=KEY, strict_key_length=True) == []
    dedup = body["dedup_key"]
    assert isinstance(dedup, str)
    assert 0 < len(dedup) <= MAX_DEDUP_KEY
    payload = body.get("payload")
    if isinstance(payload, dict):
        assert 0 < len(payload["summary"]) <= MAX_SUMMARY
    guard.check(body, tenant=deliver.tenant, tenants=TENANTS, operator_tenant="operator")


async def test_every_render_is_accepted_by_the_fake(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    renders = _renders()
    for _, deliver in renders:
        outcome = await deliver_via(sink, deliver)
        assert isinstance(outcome, Delivered), outcome
    assert len(fake_pd.wait_for(len(renders))) == len(renders)
    assert all(call.status == 202 for call in fake_pd.calls)


async def test_the_fake_refuses_a_broken_payload(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    """The fake validates for real, so 'accepted by the fake' means something."""
    good = body_of(render(make_deliver(make_incident()), routing_key=KEY))
    payload = good["payload"]
    assert isinstance(payload, dict)
    broken = {**good, "payload": {k: v for k, v in payload.items() if k != "severity"}}
    async with httpx.AsyncClient() as client:
        response = await client.post(fake_pd.events_url, json=broken)
        assert response.status_code == 400
        answer = response.json()
        assert answer["status"] == "invalid event"
        assert answer["message"] == "Event object is invalid"
        assert any("payload.severity" in e for e in answer["errors"])

        for bad in (
            {**good, "event_action": "escalate"},
            {**good, "routing_key": ""},
            {**good, "routing_key": "short"},
            {**good, "dedup_key": "k" * 256},
            {**good, "payload": {**payload, "severity": "high"}},
            {**good, "payload": {**payload, "summary": "s" * 1025}},
            {"routing_key": KEY, "event_action": "resolve"},
        ):
            assert (await client.post(fake_pd.events_url, json=bad)).status_code == 400, bad
        form = await client.post(fake_pd.events_url, data={"routing_key": KEY})
        assert form.status_code == 400
    assert fake_pd.events == []

    # through the sink: PagerDuty's own message comes back as a Permanent outcome
    event = render(make_deliver(make_incident()), routing_key=KEY)
    assert event.payload is not None
    no_summary = msgspec.structs.replace(
        event, payload=msgspec.structs.replace(event.payload, summary=" ")
    )
    outcome = await sink.send(no_summary, idempotency_key="dlv")
    assert isinstance(outcome, Permanent)
    assert "HTTP 400" in outcome.reason
    assert "Event object is invalid" in outcome.reason
    assert "payload.summary" in outcome.reason


async def test_a_wrong_routing_key_is_permanent(fake_pd: FakePagerDuty) -> None:
    other = "X" * 32
    wrong = PagerDutySink(sink_id="pd", routing_key=other, config=config_for(fake_pd.events_url))
    try:
        outcome = await deliver_via(wrong, make_deliver(make_incident()))
    finally:
        await wrong.aclose()
    assert isinstance(outcome, Permanent)
    assert "Invalid routing key" in outcome.reason
    assert other not in outcome.reason


def test_no_ip_literal_leaves_in_a_render() -> None:
    incident = make_incident(
        title="connection refused by 192.0.2.17:5432 (fallback 2001:db8::17)",
        culprit="db at 192.0.2.17",
        environment="prod-192.0.2.17",
        project="192.0.2.17",
        url="http://192.0.2.17/issues/1",
    )
    for deliver in (
        make_deliver(incident),
        make_deliver(incident, IncidentAction.UPDATE),
        make_deliver(incident, notice="dead delivery for 192.0.2.17", tenant="operator"),
    ):
        body = body_of(render(deliver, routing_key=KEY))
        text = json.dumps(body)
        assert "192.0.2.17" not in text
        assert "2001:db8::17" not in text
        assert guard.ip_literals(text) == []
        guard.check(body, tenant=deliver.tenant, tenants=TENANTS, operator_tenant="operator")
        assert "links" not in body  # a scrubbed URL leads nowhere: left out
    payload = body_of(render(make_deliver(incident), routing_key=KEY))["payload"]
    assert isinstance(payload, dict)
    assert "[ip]" in payload["summary"]


# --- dedup keys --------------------------------------------------------------------------


def test_dedup_key_is_stable_and_tenant_scoped() -> None:
    incident = make_incident()
    later = msgspec.structs.replace(incident, event_count=9, title="changed", status="acknowledged")
    assert dedup_key(incident) == dedup_key(later) == "eyetok:acme:inc_0123456789abcdef"
    other_tenant = msgspec.structs.replace(incident, tenant="globex")
    assert dedup_key(other_tenant) != dedup_key(incident)
    huge = make_incident(incident_id="inc_" + "9" * 600)
    assert len(dedup_key(huge)) <= MAX_DEDUP_KEY
    assert dedup_key(huge) == dedup_key(msgspec.structs.replace(huge, event_count=2))
    assert dedup_key(huge).startswith("eyetok:acme:")


async def test_operator_notice_is_a_trigger_keyed_by_its_delivery(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    incident = make_incident(severity=Severity.CRITICAL, sev_channel=SevChannel.SEV1)
    notice = make_deliver(
        incident, notice=":skull: Delivery dead for tenant `acme`", tenant="operator"
    )
    event = sink.render(notice, thread_ref=None)
    assert event.event_action == "trigger"
    assert event.dedup_key == "eyetok:operator:notice:dlv_000000000001"
    assert event.dedup_key == notice_dedup_key(notice)
    assert event.payload is not None
    assert event.payload.summary == ":skull: Delivery dead for tenant `acme`"
    assert event.payload.source == "eyetok/operator"
    assert event.payload.custom_details is not None
    assert event.payload.custom_details.kind == "operator_notice"
    assert await sink.send(event, idempotency_key="dlv") == Delivered(external_ref=event.dedup_key)
    assert fake_pd.state(event.dedup_key) == "triggered"


# --- classification ----------------------------------------------------------------------


async def test_429_is_retry_with_retry_after(sink: PagerDutySink, fake_pd: FakePagerDuty) -> None:
    fake_pd.fail_next(Scripted.rate_limited(7), Scripted.rate_limited(None))
    first = await deliver_via(sink, make_deliver(make_incident()))
    assert isinstance(first, Retry)
    assert first.after == 7.0
    assert "429" in first.reason
    second = await deliver_via(sink, make_deliver(make_incident()))
    assert isinstance(second, Retry)
    assert second.after is None  # no Retry-After: the delivery actor's backoff decides
    assert fake_pd.events == []
    assert isinstance(await deliver_via(sink, make_deliver(make_incident())), Delivered)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retry(status: int, sink: PagerDutySink, fake_pd: FakePagerDuty) -> None:
    fake_pd.fail_next(Scripted.server_error(status, retry_after=3 if status == 503 else None))
    outcome = await deliver_via(sink, make_deliver(make_incident()))
    assert isinstance(outcome, Retry)
    assert f"HTTP {status}" in outcome.reason
    assert outcome.after == (3.0 if status == 503 else None)


async def test_400_is_permanent_with_pagerdutys_message(
    sink: PagerDutySink, fake_pd: FakePagerDuty
) -> None:
    fake_pd.fail_next(Scripted.invalid("Length of 'routing_key' is incorrect"))
    outcome = await deliver_via(sink, make_deliver(make_incident()))
    assert outcome == Permanent(
        reason="PagerDuty refused the event (HTTP 400): Event object is invalid: "
        "Length of 'routing_key' is incorrect"
    )


async def test_connection_refused_is_retry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = PagerDutySink(
        sink_id="pd", routing_key=KEY, config=config_for(f"http://127.0.0.1:{port}/v2/enqueue")
    )
    try:
        outcome = await deliver_via(closed, make_deliver(make_incident()))
    finally:
        await closed.aclose()
    assert isinstance(outcome, Retry)
    assert "cannot reach PagerDuty" in outcome.reason
    assert "127.0.0.1" not in outcome.reason


async def test_no_answer_in_time_is_retry() -> None:
    with socket.socket() as silent:  # the kernel accepts; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        slow = PagerDutySink(
            sink_id="pd",
            routing_key=KEY,
            config=config_for(f"http://127.0.0.1:{port}/v2/enqueue", timeout_s=0.2),
        )
        try:
            outcome = await deliver_via(slow, make_deliver(make_incident()))
        finally:
            await slow.aclose()
    assert isinstance(outcome, Retry)
    assert "in time" in outcome.reason


def test_classify_table() -> None:
    echoed = b'{"status":"success","message":"Event processed","dedup_key":"k1"}'
    assert classify(202, {}, echoed) == Delivered(external_ref="k1")
    assert classify(202, {}, b"", sent_dedup_key="mine") == Delivered(external_ref="mine")
    assert classify(429, {"Retry-After": "12"}, b"") == Retry(
        reason="rate limited by PagerDuty (HTTP 429)", after=12.0
    )
    assert isinstance(classify(408, {}, b""), Retry)
    assert isinstance(classify(504, {}, b"<html>gateway</html>"), Retry)
    assert isinstance(classify(403, {}, b""), Permanent)
    assert isinstance(classify(404, {}, b"not found"), Permanent)
    assert isinstance(classify(302, {"Location": "/elsewhere"}, b""), Permanent)
    leaky = b'{"status":"invalid event","message":"bad host 192.0.2.17","errors":[]}'
    outcome = classify(400, {}, leaky)
    assert isinstance(outcome, Permanent)
    assert "192.0.2.17" not in outcome.reason


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
        ("nan", None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header) == seconds


# --- configuration -------------------------------------------------------------------------


def test_config_decodes_by_its_tag_and_refuses_unknown_keys() -> None:
    raw = {"type": "pagerduty", "routing_key_env": "PD_KEY", "tenant": "acme"}
    config = msgspec.convert(raw, PagerDutySinkConfig)
    assert config.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert config.oauth_authorize_url == "https://identity.pagerduty.com/oauth/authorize"
    assert config.oauth_token_url == "https://identity.pagerduty.com/oauth/token"
    assert config.timeout_s == 10.0
    with pytest.raises(msgspec.ValidationError, match="unknown field `bogus`"):
        msgspec.convert({**raw, "bogus": 1}, PagerDutySinkConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"type": "pagerduty"}, PagerDutySinkConfig)  # routing_key_env required


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("events_url", "ftp://events.pagerduty.com/v2/enqueue"),
        ("events_url", "https:///v2/enqueue"),
        ("events_url", "events.pagerduty.com/v2/enqueue"),
        ("oauth_authorize_url", "javascript:alert(1)"),
        ("oauth_token_url", "http://[::1/oauth/token"),
        ("oauth_redirect_uri", "/callback"),
        ("routing_key_env", "PD KEY"),
        ("tenant", "Not A Tenant"),
        ("timeout_s", 0.0),
        ("oauth_client_id", "  "),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    raw = {"type": "pagerduty", "routing_key_env": "PD_KEY", field: value}
    with pytest.raises(ConfigError) as caught:
        PagerDutySinkConfig(**{k: v for k, v in raw.items() if k != "type"})
    assert caught.value.field == field


def test_events_url_env_override() -> None:
    config = PagerDutySinkConfig(routing_key_env="PD_KEY")
    assert events_url(config, {}) == config.events_url
    assert events_url(config, {EVENTS_URL_ENV: "http://127.0.0.1:9/v2/enqueue"}) == (
        "http://127.0.0.1:9/v2/enqueue"
    )
    with pytest.raises(ConfigError) as caught:
        events_url(config, {EVENTS_URL_ENV: "nope"})
    assert caught.value.field == EVENTS_URL_ENV


def test_an_empty_routing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        PagerDutySink(sink_id="pd", routing_key=" ", config=config_for("http://127.0.0.1:9/"))
    assert caught.value.field == "PD_ROUTING_KEY"
