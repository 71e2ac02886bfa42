"""A journalled signal keeps one copy of its incident: the snapshot (issue 20). The
``signals.incident_json`` column stays, written NULL; a journal frame written before,
which still carries it, replays into it unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from actors.history import Frame, HistoryDeps, run_history
from eyetok.clock import FixedClock
from eyetok.messages import (
    FlushHistory,
    Incident,
    IncidentAction,
    JournalSignal,
    Reply,
    Routing,
    Severity,
    Signal,
    SignalKind,
)
from state.history.journal import SignalRow, snapshot_row
from state.history.store import HistoryStore
from state.history.wal import Journal
from tests.actors.deliveries import deliver

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _signal(n: int) -> tuple[Signal, Routing]:
    signal = Signal(
        signal_id=f"sig_acme_{n}",
        tenant="acme",
        source="alertmanager",
        resource="alertmanager",
        action="firing",
        kind=SignalKind.ALERT,
        dedup_key=f"probe:acme:{n}",
        title=f"acme alert {n}",
        received_at=NOW,
    )
    return signal, Routing(severity=Severity.HIGH, rule="r", sev_channel=None, business_hours=True)


def _signal_row(
    signal: Signal, routing: Routing, incident_id: str, incident_json: str | None = None
) -> SignalRow:
    """The row of ``signal`` as the history actor writes it (``incident_json``: as a build
    from before issue 20 wrote it)."""
    return SignalRow(
        signal_id=signal.signal_id,
        tenant=signal.tenant,
        source=signal.source,
        resource=signal.resource,
        action=signal.action,
        kind=signal.kind.value,
        dedup_key=signal.dedup_key,
        title=signal.title,
        level=signal.level,
        received_at=NOW,
        journalled_at=NOW,
        severity=routing.severity.value,
        rule=routing.rule,
        sev_channel=None,
        business_hours=True,
        incident_action=IncidentAction.OPEN.value,
        incident_id=incident_id,
        cluster_key=None,
        signal_json=msgspec.json.encode(signal).decode(),
        incident_json=incident_json,
    )


async def _run(store: HistoryStore, journal: Journal, messages: list[Any]) -> None:
    """Start the history actor on ``journal``, journal ``messages``, materialise, stop."""
    history_tx, history_rx = trio.open_memory_channel[Any](16)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Any](16)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(run_history, clock=FixedClock(NOW)),
            HistoryDeps(store=store, journal=journal),
            history_rx,
            delivery_tx,
            mirror_tx,
        )
        flushed = Reply[bool]()
        for message in [*messages, FlushHistory(reply=flushed)]:
            await history_tx.send(message)
        with trio.fail_after(10):
            assert await flushed.wait()
        nursery.cancel_scope.cancel()


async def test_a_signal_row_leaves_its_incident_to_the_snapshot_of_its_commit(
    store: HistoryStore, tmp_path: Path
) -> None:
    incidents: list[Incident] = []
    messages: list[Any] = []
    for n in (1, 2):
        signal, routing = _signal(n)
        d = deliver("acme", n, at=NOW, signal=signal.signal_id)
        incidents.append(d.incident)
        messages.append(
            JournalSignal(
                signal=signal,
                routing=routing,
                action=IncidentAction.OPEN,
                incident=d.incident,
                deliveries=(d,),
            )
        )
    journal = Journal(tmp_path / "journal")
    await _run(store, journal, messages)
    journal.close()

    rows = await store.read(
        lambda con: con.execute(
            """SELECT s.signal_id, s.incident_json, i.snapshot_json
               FROM signals s JOIN incident_snapshots i
                 ON i.incident_id = s.incident_id AND i.recorded_at = s.journalled_at
               ORDER BY s.signal_id"""
        ).fetchall()
    )
    assert [(signal_id, incident_json) for signal_id, incident_json, _ in rows] == [
        ("sig_acme_1", None),
        ("sig_acme_2", None),
    ]
    assert [msgspec.json.decode(snap, type=Incident) for _, _, snap in rows] == incidents


async def test_a_frame_journalled_with_the_incident_copy_replays_it(
    store: HistoryStore, tmp_path: Path
) -> None:
    signal, routing = _signal(7)
    incident = deliver("acme", 7, at=NOW).incident
    incident_json = msgspec.json.encode(incident).decode()
    older = _signal_row(signal, routing, incident.incident_id, incident_json)
    frame = Frame(signals=[older], snapshots=[snapshot_row(incident, recorded_at=NOW, seq=1)])
    journal = Journal(tmp_path / "journal")
    journal.append(msgspec.msgpack.encode(frame))  # a crash before it reached DuckDB
    journal.close()

    journal = Journal(tmp_path / "journal")
    await _run(store, journal, [])
    journal.close()

    replayed = await store.read(
        lambda con: con.execute("SELECT signal_id, incident_json FROM signals").fetchall()
    )
    assert replayed == [(signal.signal_id, incident_json)]


class _SignalRowBefore(msgspec.Struct, frozen=True):
    """SignalRow as a build from before issue 20 decodes it: ``incident_json`` required."""

    signal_id: str
    incident_json: str | None


def test_a_frame_journalled_now_still_decodes_in_a_build_from_before() -> None:
    signal, routing = _signal(3)
    row = _signal_row(signal, routing, "inc_acme_3")
    payload = msgspec.msgpack.encode(Frame(signals=[row]))
    before = msgspec.msgpack.decode(payload, type=dict[str, list[_SignalRowBefore]])
    assert before["signals"] == [_SignalRowBefore(signal_id=signal.signal_id, incident_json=None)]
