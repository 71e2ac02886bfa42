"""The DuckDB history store: one connection, used from worker threads one call at a time.

The history actor is the only writer of new rows. Other actors read through
:meth:`HistoryStore.read` when they (re)start, to rebuild their state; the daily prune
(state/history/retention.py) deletes through :meth:`HistoryStore.write`, one bounded batch
per call. Every call goes through the same ``CapacityLimiter(1)`` so the connection is
never used by two threads at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb
import trio

from eyetok.errors import StateError
from state.history.schema import SCHEMA_VERSION, STATEMENTS

T = TypeVar("T")
CHECKPOINT_THRESHOLD = "64MB"
MEMORY_LIMIT = "256MB"  # DuckDB's buffer pool (state/history/buffers.py restores it)
# What DuckDB may keep in memory once a write transaction is done. Appends live in its
# buffer pool until a checkpoint (up to CHECKPOINT_THRESHOLD of WAL: 24 MB per 5,000
# webhooks, ~75 MB before the first checkpoint, and the checkpointed blocks stay cached
# after it); past this they go to its temporary directory (history.duckdb.tmp) and the
# cached table blocks are dropped. Not the memory limit itself: the start-up reads of a
# 1 M-signal history need more room (an anti-join ran out of memory at a 16 MB limit,
# bench/history_growth.py) and keep it. Peak RSS through the 5,000-webhook burst -10 MB
# at 16 MB; the rows of 10,000 and 20,000 webhooks replayed: -31 MB and -51 MB; CPU per
# row within noise. 8 MB: 4.9 MB lower peak through that burst than 16 MB (seven
# interleaved pairs: 127.4-130.1 -> 121.6-128.2 MB), server CPU per request 1,209 vs
# 1,179 us on average and its other threads (DuckDB's) 439 vs 433 us: a replay of rows
# alone had measured 10-20 % more CPU per row, not seen per request. 4 MB held no less.
HELD_AFTER_WRITE = "8MB"


class HistoryStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.is_new = not self.path.exists()
                self._con = duckdb.connect(str(self.path))
            else:
                self.is_new = True
                self._con = duckdb.connect(":memory:")
            # One worker thread and a small buffer pool: the history is append-mostly and
            # shares two cores with the HTTP front.
            self._con.execute("SET threads = 1")
            self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            # DuckDB checkpoints its own WAL into the file past this size. At the default
            # (16 MB: about 7,000 Alertmanager signals) materialising a batched burst
            # cost 68-72 us of CPU per signal, checkpoints included; at 64 MB, 56-59 us
            # (4 runs each, 1,500 rows per commit, bench/batched.py's rows). Opening
            # after a crash replays at most this much WAL: 0.5 s of CPU for 63 MB here.
            self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            for statement in STATEMENTS:
                self._con.execute(statement)
            if not self._con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0]:
                self._con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION])
        except duckdb.Error as exc:
            raise StateError(f"cannot open history at {path}: {exc}") from exc
        self._limiter = trio.CapacityLimiter(1)

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run a query function on the connection in a worker thread."""
        return await trio.to_thread.run_sync(self._guarded, fn, limiter=self._limiter)

    async def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` inside one transaction (the history actor's group commit)."""
        return await trio.to_thread.run_sync(self._transaction, fn, limiter=self._limiter)

    def _guarded(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        try:
            return fn(self._con)
        except duckdb.Error as exc:
            raise StateError(f"history query failed: {exc}") from exc

    def _transaction(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        try:
            self._con.execute("BEGIN TRANSACTION")
            try:
                result = fn(self._con)
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
        except duckdb.Error as exc:
            raise StateError(f"history write failed: {exc}") from exc
        self._give_back_buffers()
        return result

    def _give_back_buffers(self) -> None:
        """Lower the memory limit to :data:`HELD_AFTER_WRITE` for a moment (the buffer
        manager evicts down to it) and restore it. Nothing is pinned between
        transactions; should DuckDB refuse anyway, the write stands and the limit is
        restored all the same."""
        with contextlib.suppress(duckdb.Error):
            self._con.execute(f"SET memory_limit = '{HELD_AFTER_WRITE}'")
        try:
            self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        except duckdb.Error as exc:
            raise StateError(f"history memory limit not restored: {exc}") from exc

    def close(self) -> None:
        self._con.close()
