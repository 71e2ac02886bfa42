"""The table blocks DuckDB cached while the actors read the history at start leave the
buffer manager when the daemon is ready, and the memory limit comes back as it was."""

from __future__ import annotations

from pathlib import Path

from state.history.buffers import held_kib, release_cached_blocks
from state.history.store import HistoryStore


async def test_the_blocks_a_scan_read_are_released_and_the_limit_restored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    await store.write(
        lambda con: con.execute(
            """INSERT INTO audit_log SELECT now(), 'acme', 'bench_row',
                   md5(i::VARCHAR) || repeat('x', 300), NULL, NULL FROM range(200000) r(i)"""
        )
    )
    await store.read(lambda con: con.execute("CHECKPOINT"))
    store.close()

    store = HistoryStore(path)  # a start: nothing cached yet
    try:
        limit = await store.read(
            lambda con: con.execute("SELECT current_setting('memory_limit')").fetchone()
        )
        await store.read(
            lambda con: con.execute("SELECT count(DISTINCT detail) FROM audit_log").fetchall()
        )
        cached = await store.read(held_kib)
        assert cached > 8 * 1024  # the scan's blocks stayed (the limit is far above)
        before, after = await store.read(release_cached_blocks)
        assert before == cached
        assert after <= 4000  # 4MB: DuckDB counts in 1000s
        assert (
            await store.read(
                lambda con: con.execute("SELECT current_setting('memory_limit')").fetchone()
            )
            == limit
        )
        # and the history still answers, reading the blocks again
        rows = await store.read(
            lambda con: con.execute("SELECT count(*) FROM audit_log").fetchall()
        )
        assert rows == [(200000,)]
    finally:
        store.close()


async def test_a_write_leaves_at_most_held_after_write_cached_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    try:
        limit = await store.read(
            lambda con: con.execute("SELECT current_setting('memory_limit')").fetchone()
        )
        await store.write(
            lambda con: con.execute(
                """INSERT INTO audit_log SELECT now(), 'acme', 'bench_row',
                       md5(i::VARCHAR) || repeat('x', 300), NULL, NULL FROM range(120000) r(i)"""
            )
        )
        # ~40 MB appended, not checkpointed (below the 64 MB WAL threshold): what stays cached
        # is capped, the rest is in DuckDB's temporary directory
        assert await store.read(held_kib) <= 8_000_000 // 1024
        assert (
            await store.read(
                lambda con: con.execute("SELECT current_setting('memory_limit')").fetchone()
            )
            == limit
        )
        count = "SELECT count(*), count(DISTINCT detail) FROM audit_log"
        assert await store.read(lambda con: con.execute(count).fetchall()) == [(120000, 120000)]
    finally:
        store.close()
    store = HistoryStore(path)  # the appends were in the WAL, and still are
    try:
        assert await store.read(lambda con: con.execute(count).fetchall()) == [(120000, 120000)]
    finally:
        store.close()
