"""A lane's attempt: a send with no answer within ``ATTEMPT_DEADLINE_S`` is a retry, and a
drain that comes during an attempt waits for the attempt and the record of its outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio
import trio.testing

from actors.delivery import ATTEMPT_DEADLINE_S, DeliveryDeps, run_delivery
from actors.sinks.base import Delivered, Outcome
from eyetok.clock import SystemClock
from eyetok.config import DeliveryOptions
from eyetok.messages import (
    Deliver,
    DeliveryFinished,
    DeliveryMessage,
    HistoryMessage,
    VerificationChanged,
)
from eyetok.verification import Verification, VerificationStatus
from state.history.store import HistoryStore
from tests.actors.deliveries import deliver, drain

SINK = "acme-hook"


class _SlowSink:
    """Answers each send after the next of ``delays`` (seconds; ``inf``: never)."""

    sink_id = SINK
    sink_type = "webhook"
    rate_per_target: float | None = None

    def __init__(self, *delays: float) -> None:
        self.delays = list(delays)
        self.sent: list[str] = []
        self.started = trio.Event()

    def threads(self) -> bool:
        return False

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> object:
        return {"title": deliver.incident.title}

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        self.started.set()
        await trio.sleep(self.delays.pop(0))
        self.sent.append(idempotency_key)
        return Delivered(external_ref=idempotency_key)

    async def aclose(self) -> None:
        return None


async def _start(
    nursery: trio.Nursery, store: HistoryStore, sink: _SlowSink
) -> tuple[
    trio.MemorySendChannel[DeliveryMessage],
    trio.MemoryReceiveChannel[HistoryMessage],
    trio.CancelScope,
]:
    inbox_tx, inbox_rx = trio.open_memory_channel[DeliveryMessage](16)
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](16)
    deps = DeliveryDeps(
        store=store,
        sinks={SINK: sink},  # type: ignore[dict-item]
        options=DeliveryOptions(base_backoff_s=1.0, max_backoff_s=1.0),
        operator_tenant="operator",
        notices=None,
        tenants=frozenset({"acme"}),
    )
    scope = trio.CancelScope()

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await run_delivery(
                deps, inbox_rx, history_tx, clock=SystemClock(), task_status=task_status
            )

    await nursery.start(run)
    now = datetime.now(UTC)
    live = Verification(
        sink_id=SINK,
        sink_type="webhook",
        tenant="acme",
        status=VerificationStatus.LIVE,
        handshake_at=now,
        expires_at=now + timedelta(days=30),
    )
    await inbox_tx.send(VerificationChanged(verification=live))
    return inbox_tx, history_rx, scope


def _finished(messages: list[HistoryMessage]) -> list[DeliveryFinished]:
    return [m for m in messages if isinstance(m, DeliveryFinished)]


async def test_a_send_without_an_answer_in_time_is_retried_and_then_delivered(
    nursery: trio.Nursery, store: HistoryStore, mock_clock: trio.testing.MockClock
) -> None:
    sink = _SlowSink(float("inf"), 0.0)
    inbox, history, _ = await _start(nursery, store, sink)
    alert = deliver("acme", 1, at=datetime.now(UTC))
    await inbox.send(alert)
    await trio.sleep(ATTEMPT_DEADLINE_S - 0.5)
    assert _finished(drain(history)) == []  # still waiting for the first answer
    await trio.sleep(5.0)  # past the deadline, and past the backoff (1 s at most)
    [done] = _finished(drain(history))
    assert (done.delivery_id, done.outcome, done.attempts) == (alert.delivery_id, "delivered", 2)
    assert sink.sent == [alert.delivery_id]  # the first send never finished


async def test_a_drain_during_an_attempt_waits_for_it_and_its_record(
    nursery: trio.Nursery, store: HistoryStore, mock_clock: trio.testing.MockClock
) -> None:
    sink = _SlowSink(3.0)
    inbox, history, scope = await _start(nursery, store, sink)
    alert = deliver("acme", 2, at=datetime.now(UTC))
    await inbox.send(alert)
    await sink.started.wait()
    scope.cancel()  # the drain
    await trio.sleep(4.0)
    [done] = _finished(drain(history))
    assert (done.delivery_id, done.outcome, done.attempts) == (alert.delivery_id, "delivered", 1)
    assert sink.sent == [alert.delivery_id]


async def test_the_deliveries_waiting_in_the_inbox_are_laned_before_a_lane_sends(
    nursery: trio.Nursery, store: HistoryStore
) -> None:
    # the inbox is read as the pipeline's actors read theirs (actors/forward.py): what
    # waits there goes onto its lanes without a schedule point per message, so the
    # lanes send once all are laned (a schedule point per message let the first lane
    # send while the rest still waited in the inbox)
    sink = _SlowSink(*[0.0] * 8)
    inbox, history, _ = await _start(nursery, store, sink)
    waiting_at_send: list[int] = []
    send = sink.send
    all_sent = trio.Event()

    async def counting_send(payload: object, *, idempotency_key: str) -> Outcome:
        waiting_at_send.append(inbox.statistics().current_buffer_used)
        outcome = await send(payload, idempotency_key=idempotency_key)
        if len(sink.sent) == len(alerts):
            all_sent.set()
        return outcome

    sink.send = counting_send  # type: ignore[method-assign]
    alerts = [deliver("acme", n, at=datetime.now(UTC)) for n in range(8)]
    for alert in alerts:
        inbox.send_nowait(alert)
    with trio.fail_after(5):
        await all_sent.wait()
    assert sorted(sink.sent) == sorted(a.delivery_id for a in alerts)  # a lane each
    assert waiting_at_send == [0] * len(alerts)
    assert len(_finished(drain(history))) == len(alerts)
