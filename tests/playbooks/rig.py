"""The playbooks actor run for real (its ledger file, the fake APIs on 127.0.0.1); what
it sends the history is collected; an incarnation can be killed (cancelled) and another
started on the same ledger, as a restart would."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
import trio.testing

from actors.playbooks import PlaybooksDeps, run_playbooks
from eyetok.clock import SystemClock
from eyetok.config import Settings
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    HistoryMessage,
    Incident,
    IncidentAction,
    IncidentChanged,
    IngestMessage,
    PlanDeliveries,
    PlaybookClick,
    PlaybookMessage,
    PromoteIncident,
    Reply,
    Routing,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
)

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def incident(
    incident_id: str = "inc_h12",
    *,
    channel: SevChannel = SevChannel.SEV2,
    rule: str = "heroku-h12",
    title: str = 'at=error code=H12 desc="Request timeout"',
    recommended: SevChannel | None = None,
) -> Incident:
    return Incident(
        incident_id=incident_id,
        tenant="operator",
        dedup_key="6120480017",
        title=title,
        severity=Severity.HIGH if channel is not SevChannel.SEV3 else Severity.MEDIUM,
        sev_channel=channel,
        rule=rule,
        status="open",
        opened_at=NOW,
        last_seen_at=NOW,
        event_count=1,
        escalation_recommended=recommended,
    )


def change(
    opened: Incident,
    action: IncidentAction = IncidentAction.OPEN,
    *,
    tags: tuple[tuple[str, str], ...] = (),
) -> IncidentChanged:
    signal = Signal(
        signal_id=f"sig_{opened.incident_id}_{opened.event_count}",
        tenant=opened.tenant,
        source="sentry",
        resource="event_alert",
        action="triggered",
        kind=SignalKind.ALERT,
        dedup_key=opened.dedup_key,
        title=opened.title,
        received_at=NOW,
        tags=tags,
    )
    routing = Routing(
        severity=opened.severity,
        rule=opened.rule,
        sev_channel=opened.escalation_recommended or opened.sev_channel,
        business_hours=False,
    )
    return IncidentChanged(signal=signal, routing=routing, action=action, incident=opened)


@dataclass
class Rig:
    settings: Settings
    ledger: Path
    history: list[HistoryMessage] = field(default_factory=list)
    inbox: trio.MemorySendChannel[PlaybookMessage] | None = None
    scope: trio.CancelScope | None = None
    database_url: str | None = None
    promotions: list[PromoteIncident] = field(default_factory=list)  # to the incidents actor

    async def start(self, nursery: trio.Nursery) -> None:
        inbox_tx, inbox_rx = trio.open_memory_channel[PlaybookMessage](16)
        out_tx, out_rx = trio.open_memory_channel[HistoryMessage](math.inf)
        incidents_tx, incidents_rx = trio.open_memory_channel[IngestMessage](math.inf)
        scope = trio.CancelScope()
        deps = PlaybooksDeps(
            settings=self.settings,
            ledger_path=self.ledger,
            database_url=self.database_url,
            incidents=incidents_tx,
        )

        async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope, out_tx, incidents_tx:
                await run_playbooks(
                    deps, inbox_rx, out_tx, clock=SystemClock(), task_status=task_status
                )

        async def collect() -> None:
            async for message in out_rx:
                self.history.append(message)

        async def promoted() -> None:
            async for message in incidents_rx:
                assert isinstance(message, PromoteIncident)
                self.promotions.append(message)

        nursery.start_soon(collect)  # ends when the actor's outbox closes
        nursery.start_soon(promoted)
        await nursery.start(run)
        self.inbox, self.scope = inbox_tx, scope

    def kill(self) -> None:
        assert self.scope is not None
        self.scope.cancel()

    async def tell(self, message: IncidentChanged) -> None:
        assert self.inbox is not None
        await self.inbox.send(message)

    async def click(self, action: Any, target: str, by: str) -> str:
        assert self.inbox is not None
        reply: Reply[str] = Reply()
        await self.inbox.send(
            PlaybookClick(action=action, target=target, by=by, at=NOW, reply=reply)
        )
        with trio.fail_after(15):
            return await reply.wait()

    async def settle(self) -> None:
        """Wait until the actor has taken everything sent so far (a click is answered
        after everything before it; calls it started may still be under way)."""
        await self.click("approve", "prp_none", "slack:nobody (U0NOBODY)")

    async def until(self, holds: Callable[[], object]) -> None:
        """Wait for what the actor's calls (in flight) lead to: ``holds()`` true, and then
        for every task to be blocked, so that what the actor sends right after (an event's
        audit line and its thread posts are two sends) has reached the history too."""
        with trio.fail_after(15):
            while not holds():  # noqa: ASYNC110 - the actor answers through the history
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()

    def audited(self, event: str, incident_id: str | None = None) -> int:
        return sum(
            1
            for a in self.audits
            if a.event == event and (incident_id is None or a.incident_id == incident_id)
        )

    @property
    def deliveries(self) -> list[Deliver]:
        return [d for m in self.history if isinstance(m, PlanDeliveries) for d in m.deliveries]

    @property
    def posts(self) -> list[str]:
        return [d.post.text for d in self.deliveries if d.post is not None]

    @property
    def audits(self) -> list[AuditRecorded]:
        return [m for m in self.history if isinstance(m, AuditRecorded)]

    def proposal_ids(self) -> list[str]:
        return [
            b.value.removeprefix("proposal:")
            for d in self.deliveries
            if d.post is not None
            for b in d.post.buttons
            if b.action_id == "eyetok_playbook_approve"
        ]
