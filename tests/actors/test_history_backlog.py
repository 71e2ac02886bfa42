"""The history actor holds at most its bound of journalled frames in memory for DuckDB
(issue 20: under a sustained burst of batched hooks the backlog grew without bound while
a materialisation ran); past it the frames wait in the journal files, and every row
still reaches DuckDB, in order, at a flush, at the stop or on the next start."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
import trio
import trio.testing

from actors.history import Frame, HistoryDeps, _file_signal, run_history
from eyetok.clock import FixedClock
from eyetok.messages import (
    Accepted,
    FlushHistory,
    IncidentAction,
    JournalSignal,
    Reply,
    Routing,
    Severity,
    Signal,
    SignalKind,
)
from state.history.backlog import Backlog
from state.history.journal import snapshot_row
from state.history.store import HistoryStore
from state.history.wal import Journal, segments
from tests.actors.deliveries import deliver

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIMIT = 6_000  # bytes of frames: two or three one-signal frames


def _signal(n: int, reply: Reply[Accepted] | None = None) -> JournalSignal:
    signal = Signal(
        signal_id=f"sig_acme_{n:03d}",
        tenant="acme",
        source="alertmanager",
        resource="alertmanager",
        action="firing",
        kind=SignalKind.ALERT,
        dedup_key=f"probe:acme:{n}",
        title=f"acme alert {n}",
        received_at=NOW,
    )
    return JournalSignal(
        signal=signal,
        routing=Routing(severity=Severity.HIGH, rule="r", sev_channel=None, business_hours=True),
        action=IncidentAction.OPEN,
        incident=deliver("acme", n, at=NOW).incident,
        deliveries=(),
        reply=reply,
    )


async def _signal_ids(store: HistoryStore) -> list[str]:
    rows = await store.read(
        lambda con: con.execute("SELECT signal_id FROM signals ORDER BY rowid").fetchall()
    )
    return [r[0] for r in rows]


async def _transactions(store: HistoryStore) -> int:
    rows = await store.read(lambda con: con.execute("SELECT count(*) FROM wal_applied").fetchall())
    return int(rows[0][0])


async def test_past_its_bound_the_backlog_waits_in_the_journal_and_reaches_duckdb_in_order(
    store: HistoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[int] = []  # the bytes held after each frame journalled
    spills: list[int] = []  # the frames that started a spill, by number
    add = Backlog.add

    def add_and_look(self: Backlog[Frame], frame: Frame, size: int, end: Any) -> bool:
        started = add(self, frame, size, end)
        if started:
            spills.append(len(held))
        held.append(self.held_bytes)
        return started

    monkeypatch.setattr(Backlog, "add", add_and_look)
    history_tx, history_rx = trio.open_memory_channel[Any](16)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Any](16)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](16)
    journal = Journal(tmp_path / "journal")
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(run_history, clock=FixedClock(NOW)),
                # no materialisation but the flushes: DuckDB "falls behind" at will
                HistoryDeps(
                    store=store,
                    journal=journal,
                    materialise_every_s=math.inf,
                    backlog_bytes=LIMIT,
                ),
                history_rx,
                delivery_tx,
                mirror_tx,
            )

            async def journal_one(n: int) -> None:
                """One signal, one frame: the next is sent once this one's 202 is out."""
                accepted = Reply[Accepted]()
                await history_tx.send(_signal(n, accepted))
                with trio.fail_after(10):
                    await accepted.wait()

            async def flush() -> None:
                flushed = Reply[bool]()
                await history_tx.send(FlushHistory(reply=flushed))
                with trio.fail_after(10):
                    assert await flushed.wait()

            for n in range(30):
                await journal_one(n)
            assert max(held) <= LIMIT
            first = spills[0]  # the frames before it were held until it passed the bound
            assert 0 < first < 30
            assert held[first - 1] > 0
            # a frame past the bound leaves every one held in the journal with it; those
            # after it are held again (they follow it in the journal)
            last = max(i for i, h in enumerate(held) if h == 0)
            assert held[first] == 0
            assert last < 29
            assert held[-1] > 0
            assert await _signal_ids(store) == []
            await flush()
            assert await _signal_ids(store) == [f"sig_acme_{n:03d}" for n in range(30)]
            before = await _transactions(store)
            # caught up: held in memory again, then left in the journal past the bound again
            for n in range(30, 40):
                await journal_one(n)
            assert held[30] > 0
            assert max(held) <= LIMIT
            nursery.cancel_scope.cancel()  # the stop materialises the rest
    journal.close()

    assert await _signal_ids(store) == [f"sig_acme_{n:03d}" for n in range(40)]
    seqs = await store.read(
        lambda con: con.execute("SELECT seq FROM incident_snapshots ORDER BY rowid").fetchall()
    )
    assert [s for (s,) in seqs] == sorted(s for (s,) in seqs)
    # the frames read back went in by the bound's worth, one transaction each
    assert before >= (last + 1) * held[0] // LIMIT  # held[0]: one frame's bytes
    spilled = [e for e in logs if e["event"] == "history_backlog_spilled"]
    caught_up = [e for e in logs if e["event"] == "history_backlog_caught_up"]
    assert len(spilled) == len(caught_up) == 2  # one line each way per spill, not per frame
    assert all(e["limit_bytes"] == LIMIT and e["held_bytes"] <= LIMIT for e in spilled)
    assert caught_up[0]["frames"] == last + 1  # the frames left in the journal
    assert spilled[0]["frame_bytes"] + spilled[0]["held_bytes"] > LIMIT


async def test_a_backlog_left_by_a_crash_is_replayed_a_bound_at_a_time_in_order(
    store: HistoryStore, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    for n in range(20):  # journalled, then the process died before DuckDB had them
        message = _signal(n)
        assert message.incident is not None
        frame = Frame(snapshots=[snapshot_row(message.incident, recorded_at=NOW, seq=n + 1)])
        journal.append(msgspec.msgpack.encode(frame))
    journal.close()

    journal = Journal(tmp_path / "journal")
    _history_tx, history_rx = trio.open_memory_channel[Any](16)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Any](16)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](16)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(run_history, clock=FixedClock(NOW)),
                HistoryDeps(store=store, journal=journal, backlog_bytes=2_000),
                history_rx,
                delivery_tx,
                mirror_tx,
            )
            nursery.cancel_scope.cancel()
    journal.close()

    rows = await store.read(
        lambda con: con.execute(
            "SELECT incident_id, seq FROM incident_snapshots ORDER BY rowid"
        ).fetchall()
    )
    assert rows == [(f"inc_acme_{n}", n + 1) for n in range(20)]
    assert await _transactions(store) >= 20 * 1_000 // 2_000
    [replayed] = [e for e in logs if e["event"] == "journal_replayed"]
    assert replayed["rows"] == 20
    assert not [e for e in logs if e["event"].startswith("history_backlog_")]
    assert segments(tmp_path / "journal") == [journal.position.segment]  # the old one is gone


async def test_it_materialises_once_enough_is_held_or_a_while_after_the_last_time(
    store: HistoryStore, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """A DuckDB transaction costs milliseconds of CPU whatever its size: the actor looks
    every ``materialise_every_s`` but writes only once ``materialise_bytes`` of frames are
    held or ``materialise_wait_s`` has passed since the last write (it wrote at every look
    before, a handful of webhooks per transaction at a modest rate)."""
    one = Frame()
    _file_signal(one, _signal(0), NOW, 1)
    frame_bytes = len(msgspec.msgpack.encode(one))  # one signal's frame, as journalled
    history_tx, history_rx = trio.open_memory_channel[Any](16)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Any](16)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](16)
    journal = Journal(tmp_path / "journal")

    async def journal_one(n: int) -> None:
        accepted = Reply[Accepted]()
        await history_tx.send(_signal(n, accepted))
        with trio.fail_after(10):
            await accepted.wait()

    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(run_history, clock=FixedClock(NOW)),
            HistoryDeps(
                store=store,
                journal=journal,
                materialise_every_s=0.25,
                materialise_bytes=2 * frame_bytes,
                materialise_wait_s=10.0,
            ),
            history_rx,
            delivery_tx,
            mirror_tx,
        )
        await journal_one(0)
        await trio.sleep(5)  # twenty looks, one frame held: nothing written
        assert await _signal_ids(store) == []
        assert await _transactions(store) == 0
        await trio.sleep(6)  # ten seconds after the start: written
        assert await _signal_ids(store) == ["sig_acme_000"]
        await journal_one(1)
        await journal_one(2)  # two frames held: written at the next look
        await trio.sleep(0.5)
        assert await _signal_ids(store) == ["sig_acme_000", "sig_acme_001", "sig_acme_002"]
        assert await _transactions(store) == 2
        nursery.cancel_scope.cancel()
    journal.close()
