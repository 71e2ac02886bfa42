"""The generic webhook sink: config, render, and signed delivery to a local receiver that
checks Standard Webhooks signatures on its own (harness/peers/webhook_receiver.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from actors.sinks.base import Delivered, Permanent, Retry, Sink
from actors.sinks.webhook.deliver import WebhookSink, classify, retry_after_s
from actors.sinks.webhook.render import IncidentData, NoticeData, WebhookPayload, iso, render
from eyetok import guard
from eyetok.clock import FixedClock
from eyetok.errors import ConfigError
from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    SevChannel,
    Severity,
)
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.standard_webhooks import new_secret
from harness.peers.webhook_receiver import Answer, WebhookReceiver

OPENED = datetime(2025, 6, 11, 9, 30, tzinfo=UTC)
ROTATED_AT = "2025-06-01"
ROTATION_START = datetime(2025, 6, 1, tzinfo=UTC)
KEY = "dlv_0123456789abcdef01234567"


def make_deliver(
    action: IncidentAction = IncidentAction.OPEN,
    *,
    title: str = "TimeoutError in checkout",
    notice: str | None = None,
    url: str = "https://sentry.example/organizations/acme/issues/42/",
) -> Deliver:
    incident = Incident(
        incident_id="inc_42",
        tenant="acme",
        dedup_key="sentry:42",
        title=title,
        severity=Severity.HIGH,
        sev_channel=SevChannel.SEV2,
        rule="high-during-business-hours",
        status="resolved" if action is IncidentAction.RESOLVE else "open",
        opened_at=OPENED,
        last_seen_at=OPENED + timedelta(minutes=5),
        event_count=3,
        resolved_at=OPENED + timedelta(minutes=9) if action is IncidentAction.RESOLVE else None,
        url=url,
        culprit="app.checkout in pay",
        environment="production",
        project="checkout",
    )
    return Deliver(
        delivery_id=KEY,
        tenant="acme",
        destination=Destination(sink_id="acme-hooks", sink_type="webhook", target="x"),
        incident=incident,
        action=action,
        rule=incident.rule,
        planned_at=OPENED + timedelta(minutes=10),
        received_at=OPENED,
        notice=notice,
    )


def config_for(url: str, **overrides: object) -> WebhookSinkConfig:
    fields: dict[str, object] = {"type": "webhook", "tenant": "acme", "url": url}
    fields["secret_env"] = "ACME_WEBHOOK_SECRET"
    fields.update(overrides)
    return msgspec.convert(fields, WebhookSinkConfig)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(OPENED + timedelta(minutes=10))


@pytest.fixture
def secrets() -> dict[str, str]:
    return {"new": new_secret(), "old": new_secret()}


@pytest.fixture
def receiver(clock: FixedClock, secrets: dict[str, str]) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secrets, now=lambda: clock.now().timestamp()) as peer:
        yield peer


@pytest.fixture
async def sink(
    receiver: WebhookReceiver, clock: FixedClock, secrets: dict[str, str]
) -> AsyncIterator[WebhookSink]:
    webhook = WebhookSink.from_config(
        "acme-hooks",
        config_for(receiver.url),
        {"ACME_WEBHOOK_SECRET": secrets["new"]},
        clock=clock,
    )
    yield webhook
    await webhook.aclose()


async def rotating_sink(
    receiver: WebhookReceiver, clock: FixedClock, secrets: dict[str, str]
) -> WebhookSink:
    return WebhookSink.from_config(
        "acme-hooks",
        config_for(receiver.url, previous_secret_env="OLD_SECRET", rotated_at=ROTATED_AT),
        {"ACME_WEBHOOK_SECRET": secrets["new"], "OLD_SECRET": secrets["old"]},
        clock=clock,
    )


# -- config ---------------------------------------------------------------------------


def test_the_config_is_tagged_webhook_and_strict() -> None:
    config = config_for("https://hooks.acme.example/eyetok", rate_per_second=2.0)
    assert config.host == "hooks.acme.example"
    assert config.timeout_s == 10.0
    assert msgspec.to_builtins(config)["type"] == "webhook"
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        config_for("https://hooks.acme.example/", secret="whsec_inline")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"url": "ftp://hooks.acme.example/"}, "url"),
        ({"url": "https:///no-host"}, "url"),
        ({"url": "hooks.acme.example/eyetok"}, "url"),
        ({"url": "https://user:pw@hooks.acme.example/"}, "url"),
        ({"url": "https://hooks.acme.example:99999/"}, "url"),
        ({"secret_env": " "}, "secret_env"),
        ({"previous_secret_env": "OLD"}, "rotated_at"),
        ({"rotated_at": ROTATED_AT}, "previous_secret_env"),
        ({"previous_secret_env": "OLD", "rotated_at": "June first"}, "rotated_at"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"rate_per_second": -1.0}, "rate_per_second"),
    ],
)
def test_invalid_config_names_the_field(overrides: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "url": "https://hooks.acme.example/eyetok",
        "secret_env": "ACME_WEBHOOK_SECRET",
    }
    fields.update(overrides)
    with pytest.raises(ConfigError) as caught:
        WebhookSinkConfig(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    # Through msgspec (as a config file is read) the same message comes out, with its path.
    with pytest.raises((msgspec.ValidationError, ConfigError), match=f"config {field}: "):
        msgspec.convert({"type": "webhook", **fields}, WebhookSinkConfig)


def test_a_missing_or_malformed_secret_names_the_environment_variable(clock: FixedClock) -> None:
    config = config_for("https://hooks.acme.example/")
    with pytest.raises(ConfigError) as missing:
        WebhookSink.from_config("acme-hooks", config, {}, clock=clock)
    assert missing.value.field == "ACME_WEBHOOK_SECRET"
    with pytest.raises(ConfigError, match="whsec_") as malformed:
        WebhookSink.from_config(
            "acme-hooks", config, {"ACME_WEBHOOK_SECRET": "hunter2"}, clock=clock
        )
    assert malformed.value.field == "ACME_WEBHOOK_SECRET"


# -- render ---------------------------------------------------------------------------


def test_render_has_one_event_and_no_ip_literal() -> None:
    deliver = make_deliver(
        title="Connection refused by 192.0.2.17:5432 (and 2001:db8::17)",
        url="https://sentry.example/issues/42/?host=192.0.2.17",
    )
    payload = render(deliver)
    body = msgspec.json.encode(payload).decode()
    assert "192.0.2.17" not in body
    assert "2001:db8::17" not in body
    document = json.loads(body)
    assert set(document) == {"type", "timestamp", "data"}  # one event, not a list
    assert document["type"] == "incident.opened"
    assert document["timestamp"] == "2025-06-11T09:30:00Z"
    assert document["data"]["title"] == "Connection refused by [ip]:5432 (and [ip])"
    assert document["data"]["url"] == "https://sentry.example/issues/42/?host=[ip]"
    guard.check(document, tenant="acme", tenants=("acme", "globex"), operator_tenant="operator")


def test_render_carries_the_incident_facts() -> None:
    data = render(make_deliver()).data
    assert isinstance(data, IncidentData)
    assert msgspec.to_builtins(data) == {
        "incident_id": "inc_42",
        "tenant": "acme",
        "title": "TimeoutError in checkout",
        "severity": "high",
        "sev_channel": "SEV2",
        "status": "open",
        "rule": "high-during-business-hours",
        "event_count": 3,
        "opened_at": "2025-06-11T09:30:00Z",
        "last_seen_at": "2025-06-11T09:35:00Z",
        "resolved_at": None,
        "url": "https://sentry.example/organizations/acme/issues/42/",
        "environment": "production",
        "project": "checkout",
    }


@pytest.mark.parametrize(
    ("action", "event_type", "timestamp"),
    [
        (IncidentAction.OPEN, "incident.opened", "2025-06-11T09:30:00Z"),
        (IncidentAction.UPDATE, "incident.updated", "2025-06-11T09:35:00Z"),
        (IncidentAction.RESOLVE, "incident.resolved", "2025-06-11T09:39:00Z"),
    ],
)
def test_each_action_has_its_event_type(
    action: IncidentAction, event_type: str, timestamp: str
) -> None:
    payload = render(make_deliver(action))
    assert (payload.type, payload.timestamp) == (event_type, timestamp)


def test_a_notice_is_its_text_alone() -> None:
    payload = render(make_deliver(notice="Delivery dead for 10.1.2.3, see the audit log"))
    assert payload.type == "eyetok.notice"
    assert payload.data == NoticeData(text="Delivery dead for [ip], see the audit log")
    assert msgspec.to_builtins(payload)["data"] == {
        "text": "Delivery dead for [ip], see the audit log"
    }


# -- delivery -------------------------------------------------------------------------


async def test_a_delivery_arrives_signed_and_verifies(
    sink: WebhookSink, receiver: WebhookReceiver, clock: FixedClock
) -> None:
    as_sink: Sink = sink  # the protocol, structurally (checked by mypy)
    assert as_sink.sink_type == "webhook"
    assert sink.threads() is False
    payload = sink.render(make_deliver(), thread_ref=None)
    outcome = await sink.send(payload, idempotency_key=KEY)
    assert outcome == Delivered(external_ref=KEY)
    [got] = receiver.deliveries
    assert got.verified_by == ("new",), got.problem
    assert got.status == 200
    assert got.webhook_id == KEY
    assert got.timestamp == int(clock.now().timestamp())
    assert got.headers["content-type"] == "application/json"
    assert len(got.signatures) == 1
    assert got.body == msgspec.json.encode(payload)
    assert got.json()["data"]["incident_id"] == "inc_42"


async def test_a_retry_keeps_the_webhook_id_and_re_signs_a_new_timestamp(
    sink: WebhookSink, receiver: WebhookReceiver, clock: FixedClock
) -> None:
    receiver.fail_next(Answer.server_error(500))
    payload = sink.render(make_deliver(), thread_ref=None)
    first = await sink.send(payload, idempotency_key=KEY)
    assert isinstance(first, Retry)
    assert "500" in first.reason
    clock.set(clock.now() + timedelta(seconds=90))
    assert await sink.send(payload, idempotency_key=KEY) == Delivered(external_ref=KEY)
    attempts = receiver.by_id(KEY)
    assert [a.status for a in attempts] == [500, 200]
    assert all(a.verified_by == ("new",) for a in attempts)
    assert attempts[0].body == attempts[1].body
    assert attempts[1].timestamp == attempts[0].timestamp + 90  # type: ignore[operator]
    assert attempts[0].signatures != attempts[1].signatures


async def test_during_a_rotation_both_secrets_sign(
    receiver: WebhookReceiver, clock: FixedClock, secrets: dict[str, str]
) -> None:
    clock.set(ROTATION_START + timedelta(days=29, hours=23))
    sink = await rotating_sink(receiver, clock, secrets)
    outcome = await sink.send(render(make_deliver()), idempotency_key=KEY)
    assert isinstance(outcome, Delivered)
    [got] = receiver.deliveries
    assert len(got.signatures) == 2
    assert got.verified_by == ("new", "old")  # each secret verifies on its own
    # A receiver that still only knows the old secret accepts it too.
    with WebhookReceiver({"old": secrets["old"]}, now=lambda: clock.now().timestamp()) as old_only:
        old_sink = WebhookSink.from_config(
            "acme-hooks",
            config_for(old_only.url, previous_secret_env="OLD_SECRET", rotated_at=ROTATED_AT),
            {"ACME_WEBHOOK_SECRET": secrets["new"], "OLD_SECRET": secrets["old"]},
            clock=clock,
        )
        assert isinstance(
            await old_sink.send(render(make_deliver()), idempotency_key=KEY), Delivered
        )
        assert old_only.deliveries[0].verified_by == ("old",)
        await old_sink.aclose()
    await sink.aclose()


async def test_after_thirty_days_only_the_new_secret_signs(
    receiver: WebhookReceiver, clock: FixedClock, secrets: dict[str, str]
) -> None:
    clock.set(ROTATION_START + timedelta(days=30))
    sink = await rotating_sink(receiver, clock, secrets)
    assert isinstance(await sink.send(render(make_deliver()), idempotency_key=KEY), Delivered)
    [got] = receiver.deliveries
    assert len(got.signatures) == 1
    assert got.verified_by == ("new",)
    await sink.aclose()
    # The old secret no longer verifies: a receiver holding only it refuses the delivery.
    with WebhookReceiver({"old": secrets["old"]}, now=lambda: clock.now().timestamp()) as old_only:
        old_sink = WebhookSink.from_config(
            "acme-hooks",
            config_for(old_only.url, previous_secret_env="OLD_SECRET", rotated_at=ROTATED_AT),
            {"ACME_WEBHOOK_SECRET": secrets["new"], "OLD_SECRET": secrets["old"]},
            clock=clock,
        )
        outcome = await old_sink.send(render(make_deliver()), idempotency_key=KEY)
        assert outcome == Permanent(reason="receiver refused with HTTP 401")
        assert old_only.deliveries[0].verified_by == ()
        await old_sink.aclose()


async def test_a_500_is_retried(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    receiver.fail_next(Answer.server_error(503))
    outcome = await sink.send(render(make_deliver()), idempotency_key=KEY)
    assert outcome == Retry(reason="receiver answered HTTP 503", after=None)


async def test_a_429_is_retried_after_its_retry_after(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(Answer.rate_limited(7))
    outcome = await sink.send(render(make_deliver()), idempotency_key=KEY)
    assert isinstance(outcome, Retry)
    assert outcome.after == 7.0
    assert receiver.deliveries[0].status == 429


async def test_a_410_is_permanent(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    receiver.fail_next(Answer.gone())
    outcome = await sink.send(render(make_deliver()), idempotency_key=KEY)
    assert isinstance(outcome, Permanent)
    assert "410" in outcome.reason


async def test_connection_refused_is_retried(clock: FixedClock, secrets: dict[str, str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = WebhookSink.from_config(
        "acme-hooks",
        config_for(f"http://127.0.0.1:{port}/hooks"),
        {"ACME_WEBHOOK_SECRET": secrets["new"]},
        clock=clock,
    )
    outcome = await sink.send(render(make_deliver()), idempotency_key=KEY)
    assert isinstance(outcome, Retry)
    assert "ConnectError" in outcome.reason
    await sink.aclose()


async def test_a_slow_receiver_times_out_into_a_retry(
    receiver: WebhookReceiver, clock: FixedClock, secrets: dict[str, str]
) -> None:
    receiver.delay = 0.5
    sink = WebhookSink.from_config(
        "acme-hooks",
        config_for(receiver.url, timeout_s=0.1),
        {"ACME_WEBHOOK_SECRET": secrets["new"]},
        clock=clock,
    )
    outcome = await sink.send(render(make_deliver()), idempotency_key=KEY)
    assert isinstance(outcome, Retry)
    assert "timed out" in outcome.reason
    await sink.aclose()


async def test_an_unusable_idempotency_key_is_permanent(sink: WebhookSink) -> None:
    outcome = await sink.send(render(make_deliver()), idempotency_key="dlv.1")
    assert isinstance(outcome, Permanent)


async def test_only_webhook_payloads_are_sent(sink: WebhookSink) -> None:
    with pytest.raises(TypeError):
        await sink.send({"type": "incident.opened"}, idempotency_key=KEY)


# -- classify -------------------------------------------------------------------------

NOW = datetime(2025, 6, 11, 9, 40, tzinfo=UTC)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_classify_retries_transient_statuses(status: int) -> None:
    assert isinstance(classify(status, {}, now=NOW), Retry)


@pytest.mark.parametrize("status", [301, 302, 307, 400, 401, 403, 404, 410, 413, 422])
def test_classify_refuses_the_rest(status: int) -> None:
    assert isinstance(classify(status, {}, now=NOW), Permanent)


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert classify(503, {"Retry-After": "120"}, now=NOW) == Retry(
        reason="receiver answered HTTP 503", after=120.0
    )
    verdict = classify(429, {"retry-after": "Wed, 11 Jun 2025 09:41:30 GMT"}, now=NOW)
    assert isinstance(verdict, Retry)
    assert verdict.after == 90.0
    assert retry_after_s("Wed, 11 Jun 2025 09:00:00 GMT", now=NOW) == 0.0  # already past
    assert retry_after_s("soon", now=NOW) is None
    assert retry_after_s("-5", now=NOW) is None
    assert retry_after_s(None, now=NOW) is None


def test_payload_struct_round_trips_as_json() -> None:
    payload = render(make_deliver())
    document = msgspec.json.decode(msgspec.json.encode(payload))
    assert document["data"]["severity"] == "high"
    assert isinstance(payload, WebhookPayload)


@pytest.mark.parametrize(
    ("last_seen", "resolved"),
    [
        (OPENED, OPENED),  # one instant throughout
        (OPENED.astimezone(timezone(timedelta(hours=2))), None),  # the same instant elsewhere
        (OPENED + timedelta(microseconds=1), OPENED + timedelta(microseconds=1)),
        (OPENED + timedelta(minutes=5), OPENED + timedelta(minutes=9)),
        (OPENED.replace(tzinfo=None), OPENED.replace(tzinfo=None)),  # naive: written afresh
    ],
)
def test_every_timestamp_is_its_own_instant_written_once_or_reused(
    last_seen: datetime, resolved: datetime | None
) -> None:
    for action in IncidentAction:
        deliver = make_deliver(action)
        incident = msgspec.structs.replace(
            deliver.incident, last_seen_at=last_seen, resolved_at=resolved
        )
        data = render(msgspec.structs.replace(deliver, incident=incident)).data
        assert isinstance(data, IncidentData)
        assert data.opened_at == iso(OPENED)
        assert data.last_seen_at == iso(last_seen)
        assert data.resolved_at == (iso(resolved) if resolved else None)
