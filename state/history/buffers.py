"""Giving back the table blocks DuckDB cached while the actors rebuilt their state.

The start-up reads (the outbox anti-join, the open incidents, the thread refs) scan the
whole history, and DuckDB's buffer manager keeps every block they read until its memory
limit is reached: with 1 M signals that stayed resident for the life of the process
(``bench/history_growth.py``: about 130 MB of a 295 MB peak RSS once ready). Lowering the
limit for a moment evicts the unpinned blocks (appends not yet checkpointed go to the
temporary directory instead) and the limit comes back at once, so later queries keep
the room they had.
"""

from __future__ import annotations

import duckdb

from state.history.store import MEMORY_LIMIT

RELEASE_TO = "4MB"


def held_kib(con: duckdb.DuckDBPyConnection) -> int:
    """What DuckDB's buffer manager holds now, in KiB."""
    row = con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone()
    return int(row[0]) // 1024 if row else 0


def release_cached_blocks(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Evict the cached blocks (the memory limit lowered to :data:`RELEASE_TO`, then set
    back to the store's); what the buffer manager held before and after, in KiB."""
    before = held_kib(con)
    con.execute(f"SET memory_limit = '{RELEASE_TO}'")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    return before, held_kib(con)
