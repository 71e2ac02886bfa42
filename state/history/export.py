"""``eyetok history export``: the history of a window as Parquet files, one per table,
written by DuckDB's own ``COPY (...) TO ... (FORMAT parquet)``.

Each table is copied in its own call through the store's ``CapacityLimiter(1)``, so the
history actor's materialiser waits for one table's copy at most. The files are written
by the daemon (it holds the history), on its machine, into a directory it can write.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path

import duckdb
import msgspec

from eyetok.errors import StateError
from state.history.retention import literal, quoted
from state.history.store import HistoryStore

# Every table with history in it, and the column that places a row in time.
STAMPS: dict[str, str] = {
    "signals": "received_at",
    "signal_routed": "routed_at",
    "incident_snapshots": "recorded_at",
    "deliveries": "planned_at",
    "delivery_outcomes": "finished_at",
    "audit_log": "logged_at",
    "suppression_log": "logged_at",
    "verification_log": "recorded_at",
    "handshakes": "recorded_at",
    "drill_receipts": "recorded_at",
    "anomalies": "flagged_at",
    "anomaly_notes": "noted_at",
    "tenant_config_log": "recorded_at",
}


class ExportedTable(msgspec.Struct, frozen=True, kw_only=True):
    table: str
    path: str
    rows: int


def export_table(
    con: duckdb.DuckDBPyConnection, table: str, since: datetime, until: datetime, to: Path
) -> ExportedTable:
    try:
        to.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot write the export to {to}: {exc.strerror or exc}") from exc
    stamp = STAMPS[table]
    path = to / f"{table}.parquet"
    [(rows,)] = con.execute(
        f"""COPY (SELECT * FROM {table}
                  WHERE {stamp} >= {literal(since)} AND {stamp} < {literal(until)}
                  ORDER BY {stamp})
            TO {quoted(path)} (FORMAT parquet)"""
    ).fetchall()
    return ExportedTable(table=table, path=str(path), rows=int(rows))


class ParquetArchive:
    """The history's export, as the HTTP API reaches it."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    async def export(self, since: datetime, until: datetime, to: str) -> list[ExportedTable]:
        """Raises :class:`StateError` naming the directory when it cannot be written."""
        directory = Path(to)
        return [
            await self._store.read(
                partial(export_table, table=t, since=since, until=until, to=directory)
            )
            for t in STAMPS
        ]
