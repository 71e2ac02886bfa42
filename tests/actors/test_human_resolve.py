"""A human resolve (the Slack modal, PagerDuty) under MockClock: it closes the incident,
stops SEV1's escalation, is audited with who and the note, and tells the route's Slack
(the thread, the first post rewritten) and PagerDuty (``resolve``). A decision sent for
one tenant never touches another tenant's incident."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

import actors.sinks.pagerduty.render as pagerduty_render
from actors.incidents import acknowledged, resolved_by_human
from actors.router import step_plan, step_records
from actors.sinks.slack.render import render as slack_render
from eyetok.clock import TrioWallClock
from eyetok.config import Settings
from eyetok.messages import (
    AcknowledgeIncident,
    AuditRecorded,
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    IncidentStepped,
    Reply,
    ResolveIncident,
    SevChannel,
    Severity,
)
from tests.actors.test_sev1_loop import ANCHOR, _History, _Pipeline
from tests.actors.test_sev1_loop import CONFIG as SEV1_CONFIG
from tests.conftest import daemon_settings

PD_CONFIG = """
sinks:
  slack: {type: slack}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
  acme-pd: {type: pagerduty, tenant: acme, routing_key_env: ACME_PD_KEY}
tenants:
  acme:
    tier: team
    policy:
      routes:
        SEV1: [{sink: acme-pd, target: acme}, {sink: acme-slack, target: "#acme-pager"}]
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The SEV1 loop's daemon settings (its config, as in test_sev1_loop)."""
    return daemon_settings(tmp_path, None, config=SEV1_CONFIG)


def _acme_incident(channel: SevChannel) -> Incident:
    return Incident(
        incident_id="inc_0123456789abcdef",
        tenant="acme",
        dedup_key="db-down",
        title="Database unreachable",
        severity=Severity.CRITICAL if channel is SevChannel.SEV1 else Severity.HIGH,
        sev_channel=channel,
        rule="fatal" if channel is SevChannel.SEV1 else "high",
        status="open",
        opened_at=ANCHOR,
        last_seen_at=ANCHOR,
        event_count=1,
    )


async def _decide(
    pipeline: _Pipeline, message_of: type[AcknowledgeIncident] | type[ResolveIncident], **kw: str
) -> tuple[Incident | None, bool]:
    assert pipeline.ingest is not None
    reply: Reply[tuple[Incident | None, bool]] = Reply()
    flushed: Reply[bool] = Reply()
    await pipeline.ingest.send(
        message_of(at=pipeline.clock.now(), reply=reply, flushed=flushed, **kw)  # type: ignore[arg-type]
    )
    answer = await reply.wait()
    if answer[0] is not None:
        await flushed.wait()
    return answer


@asynccontextmanager
async def _a_sev1(settings: Settings) -> AsyncIterator[tuple[_Pipeline, _History, str]]:
    """The incidents and router actors running, one SEV1 open; stopped on the way out."""
    history = _History()
    pipeline = _Pipeline(settings, history, TrioWallClock(ANCHOR))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        yield pipeline, history, await pipeline.open_sev1()
        nursery.cancel_scope.cancel()


async def test_a_human_resolve_closes_the_incident_and_stops_the_escalation(
    settings: Settings, autojump_clock: trio.testing.MockClock
) -> None:
    async with _a_sev1(settings) as (pipeline, history, incident_id):
        await trio.sleep(120)
        incident, counted = await _decide(
            pipeline,
            ResolveIncident,
            incident_id=incident_id,
            by="pagerduty:Tenex Engineer (PLH1HKV)",
            by_id="pagerduty:PLH1HKV",
            note="failed over to the replica",
        )
        assert counted
        assert incident is not None
        assert (incident.status, incident.resolved_by, incident.resolved_by_id) == (
            "resolved",
            "pagerduty:Tenex Engineer (PLH1HKV)",
            "pagerduty:PLH1HKV",
        )
        assert incident.resolved_at == datetime(2026, 11, 24, 3, 2, tzinfo=UTC)
        # resolved already: nothing open has this id any more
        again = await _decide(pipeline, ResolveIncident, incident_id=incident_id, by="cli:sam")
        assert again == (None, False)
        await trio.sleep(4 * 3600)  # past both delays: neither step may follow
    assert history.audits() == ["resolved_by_human"]
    [audit] = [m for m in history.messages if isinstance(m, AuditRecorded)]
    assert 'with the note "failed over to the replica"' in audit.detail
    assert "pagerduty:Tenex Engineer (PLH1HKV)" in audit.detail
    [told] = history.plans()
    assert [(d.destination.target, d.action, d.step) for d in told.deliveries] == [
        ("#raxx-ops-alert-SEV1", IncidentAction.RESOLVE, "resolved")
    ]
    assert history.snapshots[incident_id].status == "resolved"


async def test_a_decision_for_one_tenant_never_touches_another_tenants_incident(
    settings: Settings, autojump_clock: trio.testing.MockClock
) -> None:
    async with _a_sev1(settings) as (pipeline, history, incident_id):  # the operator's
        for message_of in (AcknowledgeIncident, ResolveIncident):
            answer = await _decide(
                pipeline, message_of, incident_id=incident_id, by="pagerduty:x", tenants=("acme",)
            )
            assert answer == (None, False)
    assert history.audits() == []
    assert history.snapshots[incident_id].status == "open"


def test_a_resolve_tells_slack_in_the_thread_and_pagerduty_resolve(tmp_path: Path) -> None:
    settings = daemon_settings(tmp_path, None, config=PD_CONFIG)
    opened = _acme_incident(SevChannel.SEV1)
    decision = ResolveIncident(
        incident_id=opened.incident_id,
        by="slack:dana (U0DANA)",
        by_id="slack:U0DANA",
        note="restarted the <pool>",
        at=ANCHOR,
    )
    resolved = resolved_by_human(opened, decision)
    stepped = IncidentStepped(incident=resolved, step="resolved", at=ANCHOR)
    plan = step_plan(stepped, settings, settings.sink_types())
    assert [d.destination.sink_id for d in plan] == ["acme-pd", "acme-slack"]
    event = pagerduty_render.render(plan[0], routing_key="rk")
    assert msgspec.to_builtins(event)["event_action"] == "resolve"
    message = slack_render(plan[1], thread_ts="1700000000.000100", options=settings.slack)
    assert message.thread_ts == "1700000000.000100"
    assert message.text.startswith("Resolved by slack:dana (U0DANA) at ")
    assert "restarted the &lt;pool&gt;" in message.text  # escaped: no mention, no link
    assert message.update is not None  # the first post says who resolved it, button gone
    first = msgspec.json.encode(message.update.blocks).decode()
    assert "Resolved by slack:dana (U0DANA)" in first
    assert "eyetok_acknowledge" not in first
    assert "eyetok_resolve_with_note" not in first
    records = step_records(stepped, settings, settings.sink_types())
    [audit] = [r for r in records if isinstance(r, AuditRecorded)]
    assert audit.event == "resolved_by_human"


@pytest.mark.parametrize("channel", [SevChannel.SEV2, SevChannel.SEV2_5, SevChannel.SEV3])
def test_a_decision_made_in_pagerduty_rewrites_any_channels_first_post(
    tmp_path: Path, channel: SevChannel
) -> None:
    settings = daemon_settings(tmp_path, None, config=PD_CONFIG)
    opened = _acme_incident(channel)
    by = "pagerduty:Tenex Engineer (PLH1HKV)"
    acked = acknowledged(opened, by, ANCHOR, by_id="pagerduty:PLH1HKV")
    resolved = resolved_by_human(
        acked, ResolveIncident(incident_id=opened.incident_id, by=by, at=ANCHOR)
    )
    for incident, step, said in (
        (acked, "acknowledged", "Acknowledged by"),
        (resolved, "resolved", "Resolved by"),
    ):
        deliver = Deliver(
            delivery_id="dlv_1",
            tenant="acme",
            destination=Destination(sink_id="acme-slack", sink_type="slack", target="#acme-pager"),
            incident=incident,
            action=IncidentAction.RESOLVE if step == "resolved" else IncidentAction.UPDATE,
            rule="high",
            planned_at=ANCHOR,
            received_at=ANCHOR,
            step=step,  # type: ignore[arg-type]
        )
        message = slack_render(deliver, thread_ts="1700000000.000100", options=settings.slack)
        assert message.update is not None
        first = msgspec.json.encode(message.update.blocks).decode()
        assert f"{said} {by}" in first
        assert "Needs a human" not in first  # a human has it now
