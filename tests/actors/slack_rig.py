"""The delivery actor alone, with the real Slack sink talking to the fake Slack: what the
tests of the delivery discipline drive (the history actor's part is played by a pump that
records what it is told and sends planned notices back, as the pipeline does)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import trio

from actors.delivery import DeliveryDeps, run_delivery
from actors.sinks.slack.deliver import SlackSink
from eyetok.clock import Clock
from eyetok.config import DeliveryOptions, SlackOptions
from eyetok.health import HealthBoard, SinkBoard
from eyetok.messages import (
    AuditRecorded,
    Deliver,
    DeliveryFinished,
    DeliveryMessage,
    Destination,
    HistoryMessage,
    IncidentAction,
    PlanDeliveries,
    SevChannel,
    Severity,
    VerificationChanged,
)
from eyetok.verification import Verification, VerificationStatus
from harness.peers.slack import FakeSlack
from state.history.store import HistoryStore
from tests.actors.deliveries import deliver

OPERATOR_CHANNEL = "#eyetok-operator"
# where the rigs' wall clocks start: a Tuesday, 10:00 in New York (business hours)
ANCHOR = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@dataclass
class SlackRig:
    inbox: trio.MemorySendChannel[DeliveryMessage]
    clock: Clock
    fake: FakeSlack
    health: HealthBoard
    board: SinkBoard
    finished: list[DeliveryFinished] = field(default_factory=list)
    audits: list[AuditRecorded] = field(default_factory=list)
    planned: list[Deliver] = field(default_factory=list)
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def send(self, *delivers: Deliver) -> None:
        for d in delivers:
            await self.inbox.send(d)

    async def verify(self, sink_id: str = "slack") -> None:
        now = self.clock.now()
        await self.inbox.send(
            VerificationChanged(
                verification=Verification(
                    sink_id=sink_id,
                    sink_type="slack",
                    tenant="operator",
                    status=VerificationStatus.LIVE,
                    handshake_at=now,
                    expires_at=now + timedelta(days=30),
                )
            )
        )

    def outcomes(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in self.finished:
            out.setdefault(f.delivery_id, []).append(f.outcome)
        return out

    async def until(self, done: object, *, within: float, every: float = 10.0) -> None:
        """Wait (trio time) until ``done()`` holds, looking ``every`` seconds (coarse under
        MockClock: each look costs a clock jump)."""
        assert callable(done)
        with trio.fail_after(within):
            while not done():  # noqa: ASYNC110 - polls what a peer thread records
                await trio.sleep(every)


def slack_alert(
    tenant: str,
    n: int,
    *,
    at: datetime,
    action: IncidentAction = IncidentAction.OPEN,
    incident: str | None = None,
) -> Deliver:
    """An alert of ``tenant`` for its own Slack channel (``#<tenant>-alerts``)."""
    base = deliver(tenant, n, at=at, action=action, incident=incident, sink="slack")
    incident_snapshot = msgspec.structs.replace(
        base.incident, severity=Severity.CRITICAL, sev_channel=SevChannel.SEV1
    )
    return msgspec.structs.replace(
        base,
        delivery_id=f"dlv_{tenant}_{n}_{action.value}",
        destination=Destination(sink_id="slack", sink_type="slack", target=f"#{tenant}-alerts"),
        incident=incident_snapshot,
    )


async def start_rig(
    nursery: trio.Nursery,
    store: HistoryStore,
    fake: FakeSlack,
    clock: Clock,
    *,
    options: DeliveryOptions,
    timeout_s: float = 10.0,
    verified: bool = True,
    sink_ids: tuple[str, ...] = ("slack",),
) -> SlackRig:
    """The actor with a Slack sink for each of ``sink_ids`` (the operator's notices go to
    ``slack``), ``slack`` verified unless told otherwise."""
    sinks = {
        sink_id: SlackSink(
            sink_id=sink_id,
            token=fake.token,
            api_url=fake.base_url,
            options=SlackOptions(request_timeout_s=timeout_s),
            rate=1.0,
            clock=clock,
        )
        for sink_id in sink_ids
    }
    health, board = HealthBoard(), SinkBoard()
    deps = DeliveryDeps(
        store=store,
        sinks=dict(sinks),
        options=options,
        operator_tenant="operator",
        notices=Destination(sink_id="slack", sink_type="slack", target=OPERATOR_CHANNEL),
        tenants=frozenset({"acme", "raxx", "operator"}),
        health=health,
        sink_board=board,
    )
    inbox_tx, inbox_rx = trio.open_memory_channel[DeliveryMessage](1000)
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](1000)
    rig = SlackRig(inbox=inbox_tx, clock=clock, fake=fake, health=health, board=board)

    async def pump() -> None:
        async for message in history_rx:
            match message:
                case DeliveryFinished():
                    rig.finished.append(message)
                case AuditRecorded():
                    rig.audits.append(message)
                case PlanDeliveries():
                    rig.planned.extend(message.deliveries)
                    for d in message.deliveries:
                        await inbox_tx.send(d)

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with rig.cancel:
                async with trio.open_nursery() as inner:
                    inner.start_soon(pump)
                    await inner.start(
                        functools.partial(run_delivery, clock=clock), deps, inbox_rx, history_tx
                    )
                    task_status.started()
        finally:
            for sink in sinks.values():  # their kept-alive connections, as the daemon does
                with trio.CancelScope(shield=True):
                    await sink.aclose()

    await nursery.start(run)
    if verified:
        await rig.verify()
    return rig
