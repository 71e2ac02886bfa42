"""The history's checkpoints: never inside a COMMIT; after a write once the WAL holds
CHECKPOINT_EVERY, and at close, under CHECKPOINT_MEMORY (the store's MEMORY_LIMIT when
DuckDB could not first evict down to HELD_AFTER_WRITE, logged: a checkpoint out of memory
is fatal to DuckDB); the store's limit restored after each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
import structlog

from eyetok.errors import StateError
from state.history import store as store_module
from state.history.store import HistoryStore

INSERT = """INSERT INTO audit_log SELECT now(), 'acme', 'bench_row',
    md5(i::VARCHAR) || repeat('x', 300), NULL, NULL FROM range({n}) r(i)"""
COUNT = "SELECT count(*) FROM audit_log"


def _shown(limit: str) -> Any:
    """How DuckDB shows a memory limit (64MB is "61.0 MiB")."""
    scratch = duckdb.connect(":memory:")
    scratch.execute(f"SET memory_limit = '{limit}'")
    return scratch.execute("SELECT current_setting('memory_limit')").fetchone()


class Watched:
    """The store's connection, noting the memory limit each COMMIT and CHECKPOINT runs
    under, and refusing the statements in ``refuse`` as DuckDB would."""

    def __init__(self, con: duckdb.DuckDBPyConnection, refuse: dict[str, Exception]) -> None:
        self.con, self.refuse = con, refuse
        self.seen: list[tuple[str, Any]] = []

    def execute(self, sql: str, *args: Any) -> Any:
        if sql in ("COMMIT", "CHECKPOINT"):
            self.seen.append((sql, self.limit()))
        if sql in self.refuse:
            raise self.refuse[sql]
        return self.con.execute(sql, *args)

    def limit(self) -> Any:
        return self.con.execute("SELECT current_setting('memory_limit')").fetchone()

    def close(self) -> None:
        self.con.close()


def _watch(store: HistoryStore, refuse: dict[str, Exception] | None = None) -> Watched:
    watched = Watched(store._con, dict(refuse or {}))
    store._con = watched  # type: ignore[assignment]
    return watched


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_commit_never_checkpoints_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY", 2**40)  # none of the store's
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    watched = _watch(store)
    try:
        for _ in range(3):  # each under a row group: its rows go to the WAL, not the file
            await store.write(lambda con: con.execute(INSERT.format(n=100_000)))
        # ~100 MB of WAL: past DuckDB's default threshold (16 MB) and the store's 64 MB
        assert _wal(path) > 64 * 2**20
        assert [sql for sql, _ in watched.seen] == ["COMMIT"] * 3
    finally:
        store.close()


async def test_a_write_that_fills_the_wal_checkpoints_under_checkpoint_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY", 2**20)
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    watched = _watch(store)
    try:
        full = watched.limit()

        def small(con: duckdb.DuckDBPyConnection) -> str:
            con.execute(INSERT.format(n=100))
            return "small"

        assert await store.write(small) == "small"
        assert _wal(path) > 0  # below the 1 MiB: no checkpoint
        await store.write(lambda con: con.execute(INSERT.format(n=20_000)))
        assert watched.seen == [
            ("COMMIT", full),
            ("COMMIT", full),
            ("CHECKPOINT", _shown(store_module.CHECKPOINT_MEMORY)),
        ]
        assert _wal(path) == 0
        assert watched.limit() == full == _shown(store_module.MEMORY_LIMIT)
        assert await store.read(lambda con: con.execute(COUNT).fetchall()) == [(20_100,)]
    finally:
        store.close()


async def test_when_duckdb_cannot_evict_first_the_checkpoint_gets_the_full_limit_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY", 2**20)
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    held = f"SET memory_limit = '{store_module.HELD_AFTER_WRITE}'"
    refusal = duckdb.OutOfMemoryException("Failed to change memory limit to 16000000")
    watched = _watch(store, {held: refusal})
    try:
        with structlog.testing.capture_logs() as logs:
            await store.write(lambda con: con.execute(INSERT.format(n=20_000)))
        full = _shown(store_module.MEMORY_LIMIT)
        assert watched.seen == [("COMMIT", full), ("CHECKPOINT", full)]
        [line] = [e for e in logs if e["event"] == "history_checkpoint_under_full_limit"]
        assert line["log_level"] == "warning"
        assert "16000000" in line["refused"]
        assert _wal(path) == 0
        assert watched.limit() == full
        assert await store.read(lambda con: con.execute(COUNT).fetchall()) == [(20_000,)]
    finally:
        store.close()


async def test_a_checkpoint_that_fails_is_a_state_error_and_the_limit_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY", 2**20)
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    watched = _watch(store, {"CHECKPOINT": duckdb.IOException("disk full")})
    try:
        with pytest.raises(StateError, match="history checkpoint failed: disk full"):
            await store.write(lambda con: con.execute(INSERT.format(n=20_000)))
        assert watched.limit() == _shown(store_module.MEMORY_LIMIT)
        # the write itself stands (committed before the checkpoint)
        assert await store.read(lambda con: con.execute(COUNT).fetchall()) == [(20_000,)]
        watched.refuse.clear()  # and close checkpoints it
    finally:
        store.close()


async def test_close_checkpoints_under_checkpoint_memory_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    watched = _watch(store)
    await store.write(lambda con: con.execute(INSERT.format(n=1_000)))
    assert _wal(path) > 0
    store.close()
    assert watched.seen[-1] == ("CHECKPOINT", _shown(store_module.CHECKPOINT_MEMORY))
    assert _wal(path) == 0
    store = HistoryStore(path)
    try:
        assert await store.read(lambda con: con.execute(COUNT).fetchall()) == [(1_000,)]
    finally:
        store.close()


async def test_a_file_a_crash_left_opens_under_the_stores_limits(tmp_path: Path) -> None:
    """A WAL a crash left (no checkpoint ran) is replayed when the store opens the file:
    every row is there, and the store's limits hold (connect() itself gets them, so the
    replay does not run under DuckDB's default of 80 % of the machine's RAM)."""
    store = HistoryStore(tmp_path / "history.duckdb")
    await store.write(lambda con: con.execute(INSERT.format(n=2_000)))
    wal = tmp_path / "history.duckdb.wal"
    assert wal.stat().st_size > 0  # no checkpoint in the COMMIT: the rows wait in the WAL
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("history.duckdb", "history.duckdb.wal"):  # the files as a kill -9 leaves them
        (crashed / name).write_bytes((tmp_path / name).read_bytes())
    store.close()
    reopened = HistoryStore(crashed / "history.duckdb")
    settings = reopened._con.execute(
        """SELECT current_setting('memory_limit'), current_setting('threads'),
                  (SELECT count(*) FROM audit_log)"""
    ).fetchone()
    assert settings == (_shown(store_module.MEMORY_LIMIT)[0], 1, 2_000)
    reopened.close()
