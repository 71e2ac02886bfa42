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

from eyetok import log
from eyetok.errors import StateError
from state.history.schema import SCHEMA_VERSION, STATEMENTS

T = TypeVar("T")
MEMORY_LIMIT = "256MB"  # DuckDB's buffer pool (state/history/buffers.py restores it)
# DuckDB's own checkpoint in a COMMIT is off (its threshold: past any WAL we write); a
# write checkpoints after its COMMIT once the WAL holds this much. At DuckDB's default
# (16 MB: about 7,000 Alertmanager signals) materialising a batched burst cost 68-72 us
# of CPU per signal, checkpoints included; at 64 MB, 56-59 us (4 runs each, 1,500 rows
# per commit, bench/batched.py's rows). Opening after a crash replays at most this much
# WAL (and one write's): 0.5 s of CPU for 63 MB here.
CHECKPOINT_EVERY = 64 * 2**20
NO_AUTOMATIC_CHECKPOINT = "1TB"
# The memory limit of that checkpoint. Under the store's limit it filled the buffer pool
# with the row groups it rewrote: +170 MB RSS inside one COMMIT, the peak of a batched
# burst (bench/batched.py --source alertmanager -r 2000: 480 MB). Its blocks go to the
# file as it goes and nothing it needs is lost by evicting them. A checkpoint that runs
# out of memory is fatal to DuckDB (the database is invalidated; no retry is possible),
# so it gets 4x what the batched burst's checkpoints were seen to need (16 MB passed,
# 8 MB killed the daemon), and only when DuckDB could first evict down to
# HELD_AFTER_WRITE (what stays pinned is small); else it runs under MEMORY_LIMIT, logged.
CHECKPOINT_MEMORY = "64MB"
# What DuckDB may keep in memory once a write transaction is done. Appends live in its
# buffer pool until a checkpoint (up to CHECKPOINT_EVERY of WAL: 24 MB per 5,000
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
            # The limits from the first moment: opening a file a crash left replays its WAL
            # (up to CHECKPOINT_EVERY and one write) and checkpoints it inside connect(),
            # which otherwise ran under DuckDB's default limit, 80 % of the machine's RAM.
            # One worker thread and a small buffer pool: the history is append-mostly and
            # shares two cores with the HTTP front.
            config: dict[str, str | bool | int | float | list[str]] = {
                "memory_limit": MEMORY_LIMIT,
                "threads": 1,
                "checkpoint_threshold": NO_AUTOMATIC_CHECKPOINT,
            }
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.is_new = not self.path.exists()
                self._con = duckdb.connect(str(self.path), config=config)
            else:
                self.is_new = True
                self._con = duckdb.connect(":memory:", config=config)
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
        self._after_write(self._wal_bytes() >= CHECKPOINT_EVERY)
        return result

    def _after_write(self, checkpoint: bool) -> None:
        """Lower the memory limit to :data:`HELD_AFTER_WRITE` for a moment (the buffer
        manager evicts down to it), CHECKPOINT if asked (:func:`checkpoint_under`
        :data:`CHECKPOINT_MEMORY`), and restore it. Nothing is pinned between
        transactions; should DuckDB refuse to evict anyway, the write stands and the limit
        is restored all the same."""
        try:
            if checkpoint:
                checkpoint_under(self._con, CHECKPOINT_MEMORY)
            else:
                _evict(self._con)
                self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        except duckdb.Error as exc:
            raise StateError(f"history checkpoint failed: {exc}") from exc

    def _wal_bytes(self) -> int:
        if self.path is None:  # in memory: no WAL, nothing to checkpoint
            return 0
        try:
            return self.path.with_name(self.path.name + ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Checkpoint what the WAL holds the same way as a write does (DuckDB's own on
        close would run under :data:`MEMORY_LIMIT`), then close."""
        with contextlib.suppress(StateError):  # then DuckDB's own checkpoint tries
            if self._wal_bytes():
                self._after_write(checkpoint=True)
        self._con.close()


def checkpoint_under(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """CHECKPOINT under the memory limit ``limit``, then the store's limit restored.

    Only once DuckDB has evicted down to :data:`HELD_AFTER_WRITE`: a checkpoint that runs
    out of memory is fatal to DuckDB (it invalidates the database, so it cannot be run
    again under more), and what stays pinned must leave the checkpoint its room. Should
    DuckDB not evict that far, the checkpoint runs under :data:`MEMORY_LIMIT`, logged."""
    refused = _evict(con)
    failed: duckdb.Error | None = None
    try:
        if not refused:
            con.execute(f"SET memory_limit = '{limit}'")
        else:
            log.get("history").warning(
                "history_checkpoint_under_full_limit",
                limit=MEMORY_LIMIT,
                refused=refused,
                why=f"DuckDB could not evict down to {HELD_AFTER_WRITE}: a checkpoint "
                f"out of memory under {limit} would be fatal",
            )
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        failed = exc
    try:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    except duckdb.Error:
        if failed is None:
            raise
    if failed is not None:
        raise failed


def _evict(con: duckdb.DuckDBPyConnection) -> str:
    """The memory limit lowered to :data:`HELD_AFTER_WRITE` (DuckDB evicts down to it or
    refuses); "" if it did, else its refusal. The limit is left lowered."""
    try:
        con.execute(f"SET memory_limit = '{HELD_AFTER_WRITE}'")
    except duckdb.Error as exc:
        return str(exc).splitlines()[0] or type(exc).__name__
    return ""
