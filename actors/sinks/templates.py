"""Every message template EyeTok can send, rendered from deliberately nasty samples.

``eyetok check`` (in CI) runs the payload-shape guard (:func:`eyetok.guard.check`, design
section 5) over each of them, so a renderer that lets an upstream IP literal, a piece of
EyeTok's own machinery or another tenant's id through fails the build instead of a real
incident's delivery.

The templates, for each of the four sink types and each SEV channel: an incident opened,
updated (plain, with ``escalation_recommended``, and with the incident acknowledged) and
resolved; for Slack every reply both in its thread and at the top level (when the first
message never landed); plus the operator's notice (``Deliver.notice``) of a dead
delivery, as :func:`actors.delivery.dead_notice` writes it. Each is rendered from every
sample incident below. ``tests/`` is not shipped, so the samples live here: titles with an
upstream IP (Heroku's ``fwd="..."``), IPv6 literals, markup, a 2,000-character title
with IP literals where renderers cut, and non-ASCII text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec

import actors.sinks.email.render as email_render
import actors.sinks.pagerduty.render as pagerduty_render
import actors.sinks.slack.render as slack_render
import actors.sinks.webhook.render as webhook_render
from actors.delivery import DeliveryDeps, dead_notice
from eyetok import guard
from eyetok.config import OPERATOR_TENANT, DeliveryOptions, SlackOptions
from eyetok.errors import PayloadRejectedError
from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    SevChannel,
    Severity,
)
from eyetok.playbooks.posts import sample_posts
from state.history.store import HistoryStore

__all__ = [
    "SAMPLE_TENANTS",
    "SINK_TYPES",
    "TemplateCase",
    "TemplateFailure",
    "check_case",
    "guard_tenants",
    "check_templates",
    "every_template",
]

SINK_TYPES = ("slack", "webhook", "email", "pagerduty")
SAMPLE_TENANTS = ("acme", "globex")  # the samples' tenants: each is foreign to the other


@dataclass(frozen=True)
class TemplateCase:
    """One rendered template: ``payload`` is what the sink would send, as JSON-like
    builtins (``msgspec.to_builtins``), exactly what the guard sees at send time."""

    name: str  # sink/variant/channel/sample, e.g. "slack/open/SEV1/h12-fwd"
    tenant: str  # whose payload it is (the operator's, for a notice)
    payload: object


@dataclass(frozen=True)
class TemplateFailure:
    name: str
    rule: str  # the guard rule that refused it: one-event, no-ip-literal, ...
    detail: str


@dataclass(frozen=True)
class _Sample:
    key: str
    tenant: str
    title: str
    culprit: str
    url: str
    environment: str
    project: str


def _long_title() -> str:
    """2,000 characters, with IP literals straddling the places renderers and notices cut
    text (120, 150, 200, 1,024): a cut before the scrub would leave a shorter IP behind."""
    text = "RecursionError while rendering the order summary: "
    # the dead notice quotes title[:120], which would end in "198.51.100.2": still an IP
    for start in (108, 143, 193, 1017):
        text = text.ljust(start - 1, "x") + " 198.51.100.250 "
    text += 'upstream fwd="203.0.113.9, 2001:db8:4::2a" '
    return text.ljust(2000, "y")


def _digits(text: str, zero: int) -> str:
    """``text`` with its ASCII digits in another script (``zero``: the code point of its
    zero): Arabic-Indic or fullwidth digits match ``\\d`` but make no IP address."""
    return text.translate({ord("0") + i: zero + i for i in range(10)})


_SAMPLES = (
    _Sample(
        key="h12-fwd",
        tenant="acme",
        title=(
            'at=error code=H12 desc="Request timeout" method=POST path="/api/v1/orders/bulk" '
            'host=raxx-raptor-prod.herokuapp.com fwd="192.0.2.17" dyno=web.2 connect=0ms '
            "service=30000ms status=503 bytes=0 protocol=https"
        ),
        culprit="heroku.router in emit (from 10.1.2.3:5432)",
        url="https://acme.sentry.io/issues/6120480017/?peer=192.0.2.17",
        environment="production",
        project="raptor-api",
    ),
    _Sample(
        key="ipv6",
        tenant="globex",
        title=(
            "ConnectionRefusedError: [Errno 111] connect to [2001:db8::17]:5432 "
            "(via ::ffff:192.0.2.33, link fe80::1%eth0, loopback ::1)"
        ),
        culprit="ledger.db.pool in connect",
        url="http://[2001:db8::17]:9000/organizations/globex/issues/42/",
        environment="staging",
        project="ledger",
    ),
    _Sample(
        key="markup",
        tenant="acme",
        title=(
            '<script>alert(document.cookie)</script> & <img src=x onerror="alert(1)"> '
            "in `checkout` *bold* _it_ <!channel> <@U0ADMIN> {{7*7}} ${jndi:ldap://x}"
        ),
        culprit="shop/views.py in <lambda>",
        url="javascript:alert(1)",
        environment="<b>prod</b>",
        project="shop&co",
    ),
    _Sample(
        key="long-title",
        tenant="globex",
        title=_long_title(),
        culprit="x" * 500,
        url="https://globex.sentry.io/issues/" + "9" * 300 + "/",
        environment="production",
        project="p" * 200,
    ),
    _Sample(
        key="non-ascii",
        tenant="acme",
        title=(
            "Ошибка оплаты: 支付失败 — Zahlung für Müller fehlgeschlagen 🚨 "
            f"(réf. {_digits('192.0.2.17', 0x660)} / {_digits('192.0.2.17', 0xFF10)}) "
            "\u202eevil\u202c zero\u200bwidth\r\nBcc: x@example.com"
        ),
        culprit="café.handlers in naïve_charge",
        url="https://acme.sentry.io/issues/7/?q=%E2%9C%93",
        environment="prod-ü",
        project="项目",
    ),
)

# Which severity and rule put an incident in each channel (design section 3).
_CHANNELS: dict[SevChannel, tuple[Severity, str]] = {
    SevChannel.SEV1: (Severity.CRITICAL, "fatal"),
    SevChannel.SEV2: (Severity.HIGH, "heroku-h12"),
    SevChannel.SEV2_5: (Severity.HIGH, "heroku-h12"),
    SevChannel.SEV3: (Severity.MEDIUM, "default"),
}

_OPENED = datetime(2026, 11, 24, 3, 0, 12, tzinfo=UTC)
_LAST_SEEN = _OPENED + timedelta(minutes=17, seconds=3)
_RESOLVED = _OPENED + timedelta(hours=1, minutes=2)
_THREAD_TS = "1764000000.000200"
_DESTINATIONS = {
    "slack": Destination(sink_id="slack", sink_type="slack", target="#alerts-sev1"),
    "webhook": Destination(
        sink_id="hooks", sink_type="webhook", target="https://hooks.example.com/eyetok"
    ),
    "email": Destination(sink_id="mail", sink_type="email", target="oncall@example.com"),
    "pagerduty": Destination(
        sink_id="pd", sink_type="pagerduty", target="R0UT1NGKEY0000000000000000000000"
    ),
}
_ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
_DEAD_DETAIL = "gave up after 8 attempts: HTTP 503 from the destination"


def _variants(incident: Incident) -> Iterator[tuple[str, IncidentAction, Incident]]:
    """Each routed action and the incident snapshot it carries."""
    yield "open", IncidentAction.OPEN, incident
    updated = msgspec.structs.replace(incident, event_count=7, last_seen_at=_LAST_SEEN)
    yield "update", IncidentAction.UPDATE, updated
    louder = SevChannel.SEV2 if incident.sev_channel is SevChannel.SEV1 else SevChannel.SEV1
    escalated = msgspec.structs.replace(updated, escalation_recommended=louder)
    yield "update-escalated", IncidentAction.UPDATE, escalated
    acknowledged = msgspec.structs.replace(
        updated,
        status="acknowledged",
        acknowledged_by="slack:dana (U0DANA)",
        acknowledged_at=_LAST_SEEN,
    )
    yield "update-acknowledged", IncidentAction.UPDATE, acknowledged
    yield "step-acknowledged", IncidentAction.UPDATE, acknowledged
    renotified = msgspec.structs.replace(updated, renotified_at=_LAST_SEEN)
    yield "step-renotify", IncidentAction.UPDATE, renotified
    escalated_to = msgspec.structs.replace(renotified, escalated_at=_LAST_SEEN)
    yield "step-escalated", IncidentAction.OPEN, escalated_to
    resolved = msgspec.structs.replace(
        updated, status="resolved", resolved_at=_RESOLVED, last_seen_at=_RESOLVED
    )
    yield "resolve", IncidentAction.RESOLVE, resolved
    by_a_human = msgspec.structs.replace(
        resolved,
        resolved_by="pagerduty:Tenex Engineer (PLH1HKV)",
        resolution_note="failed over to the replica",
    )
    yield "step-resolved", IncidentAction.RESOLVE, by_a_human


def _incident(sample: _Sample, channel: SevChannel) -> Incident:
    severity, rule = _CHANNELS[channel]
    return Incident(
        incident_id="inc_" + "0f3a9c2e7b1d4e56",
        tenant=sample.tenant,
        dedup_key=f"sentry:{sample.key}",
        title=sample.title,
        severity=severity,
        sev_channel=channel,
        rule=rule,
        status="open",
        opened_at=_OPENED,
        last_seen_at=_OPENED,
        event_count=1,
        url=sample.url,
        culprit=sample.culprit,
        environment=sample.environment,
        project=sample.project,
        level="fatal" if severity is Severity.CRITICAL else "error",
    )


def _deliver(sink_type: str, action: IncidentAction, incident: Incident) -> Deliver:
    return Deliver(
        delivery_id=f"dlv_{sink_type}_{action.value}_0123456789abcdef",
        tenant=incident.tenant,
        destination=_DESTINATIONS[sink_type],
        incident=incident,
        action=action,
        rule=incident.rule,
        planned_at=incident.last_seen_at,
        received_at=incident.last_seen_at,
    )


def _render(
    deliver: Deliver, *, thread_ts: str | None, slack_options: SlackOptions
) -> msgspec.Struct:
    match deliver.destination.sink_type:
        case "slack":
            return slack_render.render(deliver, thread_ts=thread_ts, options=slack_options)
        case "webhook":
            return webhook_render.render(deliver)
        case "email":
            return email_render.render(deliver)
        case "pagerduty":
            return pagerduty_render.render(deliver, routing_key=_ROUTING_KEY)
    raise ValueError(f"unknown sink type {deliver.destination.sink_type!r}")


def _case(name: str, tenant: str, payload: msgspec.Struct) -> TemplateCase:
    return TemplateCase(name=name, tenant=tenant, payload=msgspec.to_builtins(payload))


def _notice_deps(operator_tenant: str, sink_type: str) -> DeliveryDeps:
    # dead_notice reads only the operator tenant and the notices destination.
    return DeliveryDeps(
        store=cast(HistoryStore, None),
        sinks={},
        options=DeliveryOptions(),
        operator_tenant=operator_tenant,
        notices=_DESTINATIONS[sink_type],
    )


def every_template(
    *,
    operator_tenant: str = OPERATOR_TENANT,
    slack_options: SlackOptions | None = None,
) -> Iterator[TemplateCase]:
    """Every template of every sink type, rendered from every sample incident.

    ``slack_options`` are the configured ones (the SOP link and on-call user go into
    SEV1/SEV2 messages); ``operator_tenant`` owns the notices."""
    options = slack_options if slack_options is not None else SlackOptions()
    for sample in _SAMPLES:
        for sink_type in SINK_TYPES:
            for channel in SevChannel:
                for variant, action, incident in _variants(_incident(sample, channel)):
                    deliver = _deliver(sink_type, action, incident)
                    if variant.startswith("step-"):  # a step of SEV1's human loop
                        deliver = msgspec.structs.replace(
                            deliver, step=variant.removeprefix("step-")
                        )
                    threads: tuple[tuple[str, str | None], ...] = ((variant, None),)
                    if sink_type == "slack" and action is not IncidentAction.OPEN:
                        # a reply in its thread, and at the top level when the first
                        # message never landed
                        threads = ((variant, _THREAD_TS), (f"{variant}-unthreaded", None))
                    for label, thread_ts in threads:
                        payload = _render(deliver, thread_ts=thread_ts, slack_options=options)
                        name = f"{sink_type}/{label}/{channel.value}/{sample.key}"
                        yield _case(name, sample.tenant, payload)
            if sink_type == "slack":  # a playbook posts in the thread of the route's Slack
                for channel in (SevChannel.SEV2, SevChannel.SEV3):
                    about = _incident(sample, channel)
                    for label, post in sample_posts(about):
                        deliver = msgspec.structs.replace(
                            _deliver(sink_type, IncidentAction.UPDATE, about),
                            step="playbook",
                            post=post,
                        )
                        payload = _render(deliver, thread_ts=_THREAD_TS, slack_options=options)
                        name = f"slack/playbook-{label}/{channel.value}/{sample.key}"
                        yield _case(name, sample.tenant, payload)
            dead = _deliver(sink_type, IncidentAction.OPEN, _incident(sample, SevChannel.SEV1))
            notice = dead_notice(
                dead, _DEAD_DETAIL, _notice_deps(operator_tenant, sink_type), _RESOLVED
            )
            payload = _render(notice, thread_ts=None, slack_options=options)
            yield _case(f"{sink_type}/notice/{sample.key}", notice.tenant, payload)


def check_case(
    case: TemplateCase, *, tenants: Iterable[str], operator_tenant: str
) -> TemplateFailure | None:
    """The guard's verdict on one rendered template: None when it may be sent."""
    try:
        guard.check(
            case.payload, tenant=case.tenant, tenants=tenants, operator_tenant=operator_tenant
        )
    except PayloadRejectedError as exc:
        return TemplateFailure(name=case.name, rule=exc.rule, detail=exc.detail)
    return None


def guard_tenants(tenants: Iterable[str], operator_tenant: str) -> tuple[str, ...]:
    """The configured tenant ids plus the samples' and the operator's, sorted."""
    return tuple(sorted({*tenants, *SAMPLE_TENANTS, operator_tenant}))


def check_templates(
    *,
    tenants: Iterable[str],
    operator_tenant: str,
    slack_options: SlackOptions | None = None,
) -> list[TemplateFailure]:
    """The guard over :func:`every_template`: every failure (an empty list: all pass).
    ``tenants`` are the configured tenant ids; the sample tenants are added."""
    known = guard_tenants(tenants, operator_tenant)
    failures = []
    for case in every_template(operator_tenant=operator_tenant, slack_options=slack_options):
        failure = check_case(case, tenants=known, operator_tenant=operator_tenant)
        if failure is not None:
            failures.append(failure)
    return failures
