"""Backpressure at the front door: a full ingest queue is an explicit 503, never a drop."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.topology import build
from eyetok.clock import SystemClock
from eyetok.errors import OverloadedError
from eyetok.messages import Signal, SignalKind
from state.history.store import HistoryStore
from state.history.wal import Journal
from tests.conftest import daemon_settings


def _signal(n: int) -> Signal:
    return Signal(
        signal_id=f"sig_{n}",
        tenant="operator",
        source="sentry",
        resource="event_alert",
        action="triggered",
        kind=SignalKind.ALERT,
        dedup_key=str(n),
        title=f"signal {n}",
        received_at=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
        level="fatal",
    )


async def test_a_full_ingest_queue_is_overloaded_with_retry_after(tmp_path: Path) -> None:
    settings = daemon_settings(tmp_path, None, config="ingest_queue: 1\n")
    journal = Journal(tmp_path / "journal")
    topology = build(settings, HistoryStore(":memory:"), journal, SystemClock())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(topology.submit, _signal(1))  # queued; no actor is reading
        await trio.testing.wait_all_tasks_blocked()
        assert topology.backlog() == 1
        with pytest.raises(OverloadedError, match="ingest queue is full") as refused:
            await topology.submit(_signal(2))
        assert refused.value.retry_after == 1
        assert refused.value.status == 503
        nursery.cancel_scope.cancel()
    journal.close()


async def test_an_unconfirmed_journal_is_overloaded_not_accepted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """No 202 without the journal's word: a signal that is never confirmed is a 503."""
    settings = daemon_settings(tmp_path, None)
    journal = Journal(tmp_path / "journal")
    topology = build(settings, HistoryStore(":memory:"), journal, SystemClock())
    with pytest.raises(OverloadedError, match="did not confirm"):
        await topology.submit(_signal(1))
    journal.close()
