"""The history actor says, when it stops, what DuckDB's buffer manager held (issue 20:
print what the actors hold)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from actors.history import HistoryDeps, run_history
from eyetok.clock import FixedClock
from state.history.store import HistoryStore
from state.history.wal import Journal

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_the_history_actor_says_what_duckdb_held_at_stop(
    store: HistoryStore, tmp_path: Path
) -> None:
    rows = [(NOW, "acme", "bench_row", "x" * 400, None, None) for _ in range(5000)]
    await store.write(
        lambda con: con.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)", rows)
    )
    _history_tx, history_rx = trio.open_memory_channel[Any](16)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Any](16)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](16)
    journal = Journal(tmp_path / "journal")
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(run_history, clock=FixedClock(NOW)),
                HistoryDeps(store=store, journal=journal),
                history_rx,
                delivery_tx,
                mirror_tx,
            )
            nursery.cancel_scope.cancel()
    journal.close()
    [held] = [entry for entry in logs if entry["event"] == "history_held_at_stop"]
    sizes = {k: v for k, v in held.items() if k.startswith("duckdb_")}
    assert sizes, held
    assert all(k.endswith("_kib") and isinstance(v, int) and v > 0 for k, v in sizes.items())
    # the 5,000 rows of about 450 bytes are in DuckDB's buffers, not yet checkpointed
    assert sum(sizes.values()) >= 1024
