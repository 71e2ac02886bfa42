"""Read-side queries over the history: what actors need to rebuild their state on start,
and what the operator's commands show. Each takes the connection; call through
:meth:`HistoryStore.read`."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import msgspec

from eyetok.messages import Deliver, Incident
from eyetok.verification import Verification, standing
from state.history.wal import Position

_incident = msgspec.json.Decoder(Incident)
_deliver = msgspec.json.Decoder(Deliver)
_verification = msgspec.json.Decoder(Verification)


def wal_applied(con: duckdb.DuckDBPyConnection) -> Position:
    """How far the write-ahead journal has been applied to these tables."""
    row = con.execute(
        'SELECT segment, "offset" FROM wal_applied ORDER BY segment DESC, "offset" DESC LIMIT 1'
    ).fetchone()
    return Position(int(row[0]), int(row[1])) if row else Position(0, 0)


def latest_verifications(con: duckdb.DuckDBPyConnection) -> dict[str, Verification]:
    """Each sink's standing: its verification log folded with :func:`standing`."""
    rows = con.execute(
        "SELECT verification_json FROM verification_log ORDER BY recorded_at, handshake_at"
    ).fetchall()
    current: dict[str, Verification] = {}
    for (text,) in rows:
        row = _verification.decode(text)
        current[row.sink_id] = standing(current.get(row.sink_id), row)
    return current


def open_incidents(con: duckdb.DuckDBPyConnection) -> list[Incident]:
    rows = con.execute(
        "SELECT snapshot_json FROM incidents WHERE status <> 'resolved' ORDER BY opened_at"
    ).fetchall()
    return [_incident.decode(r[0]) for r in rows]


def last_snapshot_seq(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(seq), 0) FROM incident_snapshots").fetchone()
    return int(row[0]) if row else 0


def pending_deliveries(con: duckdb.DuckDBPyConnection) -> list[Deliver]:
    rows = con.execute(
        "SELECT deliver_json FROM notifications WHERE status = 'pending' ORDER BY planned_at"
    ).fetchall()
    return [_deliver.decode(r[0]) for r in rows]


def thread_refs(
    con: duckdb.DuckDBPyConnection, *, since: datetime
) -> dict[tuple[str, str, str], str]:
    """(sink_id, target, incident_id) -> the thread its first message opened."""
    rows = con.execute(
        """SELECT sink_id, target, incident_id, thread_ref FROM notifications
           WHERE status = 'delivered' AND thread_ref <> '' AND planned_at >= ?
           ORDER BY finished_at""",
        [since],
    ).fetchall()
    refs: dict[tuple[str, str, str], str] = {}
    for sink_id, target, incident_id, ref in rows:
        refs.setdefault((sink_id, target, incident_id), ref)
    return refs


def thread_lookback(now: datetime) -> datetime:
    return now - timedelta(days=30)
