"""SEV1's human loop under MockClock: an acknowledgement stops the escalation; nobody
acknowledging re-notifies at 5 minutes and escalates to the secondary at 30; a restart in
between (the same history) neither repeats nor loses a step. The incidents and router
actors run for real; the history is a list of what they journalled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import trio
import trio.testing

import actors.sinks.pagerduty.render as pagerduty_render
from actors.incidents import IncidentsDeps, acknowledged, run_incidents
from actors.router import RouterDeps, run_router, step_plan, step_records
from eyetok.clock import TrioWallClock
from eyetok.config import Settings
from eyetok.errors import ConfigError
from eyetok.messages import (
    AcknowledgeIncident,
    AuditRecorded,
    FlushHistory,
    HistoryMessage,
    Incident,
    IncidentAction,
    IncidentRecorded,
    IncidentStepped,
    IngestMessage,
    JournalSignal,
    PlanDeliveries,
    Reply,
    RouterMessage,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
    SignalReceived,
)
from state.history import queries
from state.history.store import HistoryStore
from tests.conftest import daemon_settings

ANCHOR = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # a Monday night in New York
CONFIG = """
tenants:
  operator:
    tier: operator
    escalation: {secondary: {sink: slack, target: "#oncall-secondary"}}
"""


class _History:
    """What the history actor would keep: every message, the latest snapshot per id."""

    def __init__(self) -> None:
        self.messages: list[HistoryMessage] = []
        self.snapshots: dict[str, Incident] = {}

    async def read(self, fn: Callable[..., Any]) -> Any:
        if fn is queries.open_incidents:
            return [i for i in self.snapshots.values() if i.status != "resolved"]
        return {}  # recently resolved: none

    def take(self, message: HistoryMessage) -> None:
        self.messages.append(message)
        match message:
            case (
                JournalSignal(incident=Incident() as incident) | IncidentRecorded(incident=incident)
            ):
                self.snapshots[incident.incident_id] = incident
            case FlushHistory(reply=reply):
                reply.send(True)
            case _:
                pass

    def audits(self) -> list[str]:
        return [m.event for m in self.messages if isinstance(m, AuditRecorded)]

    def plans(self) -> list[PlanDeliveries]:
        return [m for m in self.messages if isinstance(m, PlanDeliveries)]


class _Pipeline:
    """The incidents and router actors, startable and killable (a restart)."""

    def __init__(self, settings: Settings, history: _History, clock: TrioWallClock) -> None:
        self.settings, self.history, self.clock = settings, history, clock
        self.ingest: trio.MemorySendChannel[IngestMessage] | None = None

    async def run(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        ingest_tx, ingest_rx = trio.open_memory_channel[IngestMessage](16)
        router_tx, router_rx = trio.open_memory_channel[RouterMessage](16)
        history_tx, history_rx = trio.open_memory_channel[HistoryMessage](16)
        store = cast(HistoryStore, self.history)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def drain() -> None:
                    async for message in history_rx:
                        self.history.take(message)

                nursery.start_soon(drain)
                await nursery.start(
                    lambda task_status: run_router(
                        RouterDeps(settings=self.settings),
                        router_rx,
                        history_tx,
                        clock=self.clock,
                        task_status=task_status,
                    )
                )
                await nursery.start(
                    lambda task_status: run_incidents(
                        IncidentsDeps(settings=self.settings, store=store),
                        ingest_rx,
                        router_tx,
                        clock=self.clock,
                        task_status=task_status,
                    )
                )
                self.ingest = ingest_tx
                task_status.started(scope)

    async def open_sev1(self) -> str:
        assert self.ingest is not None
        signal = Signal(
            signal_id="sig_1",
            tenant="operator",
            source="sentry",
            resource="event_alert",
            action="triggered",
            kind=SignalKind.ALERT,
            dedup_key="db-down",
            title="Database unreachable",
            received_at=self.clock.now(),
            level="fatal",
        )
        await self.ingest.send(SignalReceived(signal=signal))
        await trio.testing.wait_all_tasks_blocked()
        [opened] = [
            m
            for m in self.history.messages
            if isinstance(m, JournalSignal) and m.action is IncidentAction.OPEN
        ]
        assert opened.incident is not None
        assert opened.incident.sev_channel is not None
        assert opened.incident.sev_channel.value == "SEV1"
        return opened.incident.incident_id

    async def acknowledge(self, incident_id: str, by: str) -> tuple[Incident | None, bool]:
        assert self.ingest is not None
        reply: Reply[tuple[Incident | None, bool]] = Reply()
        flushed: Reply[bool] = Reply()
        await self.ingest.send(
            AcknowledgeIncident(
                incident_id=incident_id, by=by, at=self.clock.now(), reply=reply, flushed=flushed
            )
        )
        answer = await reply.wait()
        if answer[0] is not None:
            await flushed.wait()
        return answer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return daemon_settings(tmp_path, None, config=CONFIG)


async def test_an_acknowledgement_stops_the_escalation(
    settings: Settings, autojump_clock: trio.testing.MockClock
) -> None:
    history = _History()
    pipeline = _Pipeline(settings, history, TrioWallClock(ANCHOR))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        incident_id = await pipeline.open_sev1()
        await trio.sleep(60)
        incident, counted = await pipeline.acknowledge(incident_id, "slack:dana (U0DANA)")
        assert counted
        assert incident is not None
        assert incident.status == "acknowledged"
        assert incident.acknowledged_by == "slack:dana (U0DANA)"
        assert incident.acknowledged_at == datetime(2026, 11, 24, 3, 1, tzinfo=UTC)
        again, counted_again = await pipeline.acknowledge(incident_id, "cli:sam")
        assert not counted_again
        assert again is not None
        assert again.acknowledged_by == "slack:dana (U0DANA)"
        assert await pipeline.acknowledge("inc_nope", "cli:sam") == (None, False)
        await trio.sleep(4 * 3600)
        nursery.cancel_scope.cancel()
    assert history.audits() == ["incident_acknowledged"]
    [told] = history.plans()
    assert [(d.destination.target, d.action, d.step) for d in told.deliveries] == [
        ("#raxx-ops-alert-SEV1", IncidentAction.UPDATE, "acknowledged")
    ]
    assert history.snapshots[incident_id].status == "acknowledged"


async def test_no_ack_renotifies_at_5_and_escalates_at_30_minutes(
    settings: Settings, autojump_clock: trio.testing.MockClock
) -> None:
    history = _History()
    pipeline = _Pipeline(settings, history, TrioWallClock(ANCHOR))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        incident_id = await pipeline.open_sev1()
        await trio.sleep(299)
        assert history.audits() == []
        await trio.sleep(2)
        assert history.audits() == ["renotified"]
        await trio.sleep(1800 - 301 - 2)
        assert history.audits() == ["renotified"]
        await trio.sleep(3)
        assert history.audits() == ["renotified", "escalated"]
        await trio.sleep(4 * 3600)
        nursery.cancel_scope.cancel()
    assert history.audits() == ["renotified", "escalated"]
    renotify, escalate = history.plans()
    assert [(d.destination.target, d.action, d.step) for d in renotify.deliveries] == [
        ("#raxx-ops-alert-SEV1", IncidentAction.UPDATE, "renotify")
    ]
    assert [(d.destination.target, d.action, d.step) for d in escalate.deliveries] == [
        ("#oncall-secondary", IncidentAction.OPEN, "escalated")
    ]
    snapshot = history.snapshots[incident_id]
    assert snapshot.renotified_at == datetime(2026, 11, 24, 3, 5, tzinfo=UTC)
    assert snapshot.escalated_at == datetime(2026, 11, 24, 3, 30, tzinfo=UTC)
    assert snapshot.status == "open"  # no autonomous action: it waits for a human


@pytest.mark.parametrize("restart_at_s", [100, 301, 1801])
async def test_a_restart_neither_repeats_nor_loses_a_step(
    settings: Settings, autojump_clock: trio.testing.MockClock, restart_at_s: int
) -> None:
    history = _History()
    clock = TrioWallClock(ANCHOR)
    async with trio.open_nursery() as nursery:
        first = _Pipeline(settings, history, clock)
        scope = await nursery.start(first.run)
        await first.open_sev1()
        await trio.sleep(restart_at_s)
        scope.cancel()  # killed; the next incarnation rehydrates from the same history
        await trio.sleep(5)
        second = _Pipeline(settings, history, clock)
        await nursery.start(second.run)
        await trio.sleep(4 * 3600)
        nursery.cancel_scope.cancel()
    assert history.audits() == ["renotified", "escalated"]


async def test_an_acknowledgement_after_a_restart_still_stops_the_escalation(
    settings: Settings, autojump_clock: trio.testing.MockClock
) -> None:
    history = _History()
    clock = TrioWallClock(ANCHOR)
    async with trio.open_nursery() as nursery:
        first = _Pipeline(settings, history, clock)
        scope = await nursery.start(first.run)
        incident_id = await first.open_sev1()
        await trio.sleep(400)
        await first.acknowledge(incident_id, "cli:sam")
        scope.cancel()
        second = _Pipeline(settings, history, clock)
        await nursery.start(second.run)
        await trio.sleep(4 * 3600)
        nursery.cancel_scope.cancel()
    assert history.audits() == ["renotified", "incident_acknowledged"]


def test_the_delays_and_the_secondary_are_validated(tmp_path: Path) -> None:
    bad_order = "tenants: {operator: {tier: operator, escalation: {ack_renotify_s: 60, ack_escalate_s: 30}}}"  # noqa: E501
    with pytest.raises(ConfigError, match=r"tenants\.operator\.escalation"):
        daemon_settings(tmp_path, None, config=bad_order)
    unknown_sink = (
        "tenants: {operator: {tier: operator, escalation: {secondary: {sink: nope, target: x}}}}"
    )
    with pytest.raises(ConfigError, match=r"escalation\.secondary\.sink"):
        daemon_settings(tmp_path, None, config=unknown_sink)
    unknown_key = "tenants: {operator: {tier: operator, escalation: {after: 5}}}"
    with pytest.raises(ConfigError):
        daemon_settings(tmp_path, None, config=unknown_key)
    short = (
        "tenants: {operator: {tier: operator, escalation: {ack_renotify_s: 2, ack_escalate_s: 4}}}"
    )
    tenant = daemon_settings(tmp_path, None, config=short).tenants["operator"]
    assert (tenant.escalation.ack_renotify_s, tenant.escalation.ack_escalate_s) == (2, 4)


def test_an_acknowledgement_reaches_pagerduty_as_acknowledge(tmp_path: Path) -> None:
    config = """
sinks:
  slack: {type: slack}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
  acme-pd: {type: pagerduty, tenant: acme, routing_key_env: ACME_PD_KEY}
  acme-mail: {type: email, tenant: acme, to: oncall@acme.example, smtp_url_env: SMTP_URL}
tenants:
  acme:
    tier: team
    policy:
      routes:
        SEV1: [{sink: acme-pd, target: acme}, {sink: acme-slack, target: "#acme-pager"},
               {sink: acme-mail, target: oncall@acme.example}]
"""
    settings = daemon_settings(tmp_path, None, config=config)
    opened = Incident(
        incident_id="inc_1",
        tenant="acme",
        dedup_key="db-down",
        title="Database unreachable",
        severity=Severity.CRITICAL,
        sev_channel=SevChannel.SEV1,
        rule="fatal",
        status="open",
        opened_at=ANCHOR,
        last_seen_at=ANCHOR,
        event_count=1,
    )
    acked = acknowledged(opened, "cli:sam", ANCHOR)
    stepped = IncidentStepped(incident=acked, step="acknowledged", at=ANCHOR)
    plan = step_plan(stepped, settings, settings.sink_types())
    # the email would only repeat the incident: Slack and PagerDuty hear of it
    assert [d.destination.sink_id for d in plan] == ["acme-pd", "acme-slack"]
    event = pagerduty_render.render(plan[0], routing_key="rk")
    assert msgspec.to_builtins(event)["event_action"] == "acknowledge"
    renotified = IncidentStepped(incident=opened, step="renotify", at=ANCHOR)
    [pd, _] = step_plan(renotified, settings, settings.sink_types())
    assert (
        msgspec.to_builtins(pagerduty_render.render(pd, routing_key="rk"))["event_action"]
        == "trigger"
    )
    # no secondary configured: the escalation is audited as sending nothing
    escalated = IncidentStepped(incident=opened, step="escalated", at=ANCHOR)
    records = step_records(escalated, settings, settings.sink_types())
    [audit] = [r for r in records if isinstance(r, AuditRecorded)]
    assert audit.event == "escalated"
    assert "nothing was sent" in audit.detail
    assert not [r for r in records if isinstance(r, PlanDeliveries)]
