"""A batch hook's decisions are logged a line per tenant and ``DECIDED_PER_LINE`` signals,
each entry the line a signal of its own gets (its event and fields); a single signal
still gets its own line. The incidents actor runs for real; the router's inbox is read
and dropped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog
import trio
import trio.testing

from actors.incidents import DECIDED_PER_LINE, IncidentsDeps, run_incidents
from eyetok.clock import TrioWallClock
from eyetok.messages import (
    IncidentChanged,
    IncidentsChanged,
    IncidentStepped,
    IngestMessage,
    Signal,
    SignalKind,
    SignalReceived,
    SignalsReceived,
)
from state.history import queries
from state.history.store import HistoryStore
from tests.conftest import daemon_settings

AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


class _EmptyHistory:
    async def read(self, fn: Callable[..., Any]) -> Any:
        return [] if fn is queries.open_incidents else {}  # recently resolved: none


def _signal(n: int, *, kind: SignalKind = SignalKind.ALERT, key: str | None = None) -> Signal:
    return Signal(
        signal_id=f"sig_{n}",
        tenant="operator",
        source="alertmanager",
        resource="alertmanager",
        action="resolved" if kind is SignalKind.RESOLVE else "firing",
        kind=kind,
        dedup_key=key or f"am:{n:04d}",
        title=f"Pod {n} is crash looping",
        received_at=AT,
        level="fatal",
    )


async def _decide(tmp_path: Path, *messages: IngestMessage) -> list[dict[str, Any]]:
    settings = daemon_settings(tmp_path, None)
    ingest_tx, ingest_rx = trio.open_memory_channel[IngestMessage](16)
    router_tx, router_rx = trio.open_memory_channel[
        IncidentChanged | IncidentsChanged | IncidentStepped
    ](16)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:

            async def drop() -> None:
                async for _ in router_rx:
                    pass

            nursery.start_soon(drop)
            await nursery.start(
                lambda task_status: run_incidents(
                    IncidentsDeps(settings=settings, store=cast(HistoryStore, _EmptyHistory())),
                    ingest_rx,
                    router_tx,
                    clock=TrioWallClock(AT),
                    task_status=task_status,
                )
            )
            for message in messages:
                await ingest_tx.send(message)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    return [dict(line) for line in logs if line["event"] != "incidents_held_at_stop"]


async def test_a_batch_is_logged_a_line_per_twenty_signals_and_says_every_decision(
    tmp_path: Path,
) -> None:
    opened = [_signal(n) for n in range(41)]
    again = _signal(41, key="am:0000")  # an update of the first: no line of its own, as alone
    nothing = _signal(42, kind=SignalKind.RESOLVE, key="am:nothing")
    closed = _signal(43, kind=SignalKind.RESOLVE, key="am:0001")
    batch = (*opened, again, nothing, closed)
    lines = await _decide(tmp_path, SignalsReceived(signals=batch))

    assert {line["event"] for line in lines} == {"incidents_rehydrated", "incidents_decided"}
    decided = [line for line in lines if line["event"] == "incidents_decided"]
    assert [len(line["decisions"]) for line in decided] == [DECIDED_PER_LINE] * 2 + [3]
    assert all(line["tenant"] == "operator" and line["batch"] == len(batch) for line in decided)
    entries = [entry for line in decided for entry in line["decisions"]]
    assert [e["signal_id"] for e in entries] == [
        *(s.signal_id for s in opened),
        nothing.signal_id,
        closed.signal_id,
    ]
    assert [e["event"] for e in entries] == [
        *["incident_opened"] * 41,
        "resolve_of_nothing_open",
        "incident_resolved",
    ]
    first = entries[0]
    assert set(first) == {
        "event",
        "incident_id",
        "severity",
        "sev_channel",
        "rule",
        "known_to_eyetok",
        "dedup_key",
        "signal_id",
    }
    assert (first["severity"], first["sev_channel"], first["dedup_key"]) == (
        "critical",
        "SEV1",
        "am:0000",
    )
    assert entries[-1]["incident_id"] == entries[1]["incident_id"]  # am:0001, closed
    assert entries[-2]["reason"]  # why a resolve of nothing open sends nothing
    counts = [(line["opened"], line["resolved"], line["nothing_open"]) for line in decided]
    assert counts == [(20, 0, 0), (20, 0, 0), (1, 1, 1)]


async def test_a_single_signal_still_gets_its_own_line(tmp_path: Path) -> None:
    lines = await _decide(tmp_path, SignalReceived(signal=_signal(1)))
    [opened] = [line for line in lines if line["event"] == "incident_opened"]
    assert opened["tenant"] == "operator"
    assert opened["signal_id"] == "sig_1"
    assert opened["severity"] == "critical"
    assert not [line for line in lines if line["event"] == "incidents_decided"]
