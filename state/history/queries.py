"""Read-side queries over the history: what actors need to rebuild their state on start,
and what the operator's commands show. Each takes the connection; call through
:meth:`HistoryStore.read`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import msgspec

from eyetok.messages import Deliver, Incident
from eyetok.verification import (
    HandshakeEvent,
    PendingHandshake,
    Verification,
    fold_handshakes,
    standing,
)
from state.history.wal import Position

_incident = msgspec.json.Decoder(Incident)
_deliver = msgspec.json.Decoder(Deliver)
_verification = msgspec.json.Decoder(Verification)
_handshake = msgspec.json.Decoder(PendingHandshake)


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


def open_handshakes(con: duckdb.DuckDBPyConnection) -> dict[str, PendingHandshake]:
    """The handshakes opened and not closed since (expired ones included), by key."""
    rows = con.execute(
        "SELECT event, handshake_json FROM handshakes ORDER BY recorded_at, event DESC"
    ).fetchall()
    return fold_handshakes((HandshakeEvent(e), _handshake.decode(j)) for e, j in rows)


def open_incidents(con: duckdb.DuckDBPyConnection) -> list[Incident]:
    # each incident's latest snapshot by a join on max(seq), not the incidents view's
    # window over every snapshot (bench/history_growth.py: 1.1 s -> 0.15 s at 1 M signals)
    rows = con.execute(
        """SELECT s.snapshot_json FROM incident_snapshots s
           JOIN (SELECT incident_id, max(seq) AS seq FROM incident_snapshots GROUP BY 1)
           USING (incident_id, seq)
           WHERE s.status <> 'resolved' ORDER BY s.opened_at"""
    ).fetchall()
    return [_incident.decode(r[0]) for r in rows]


def incidents(
    con: duckdb.DuckDBPyConnection,
    *,
    open_only: bool = False,
    tenant: str | None = None,
    limit: int = 200,
) -> list[Incident]:
    """Every tenant's incidents (the operator's view), newest first; ``open_only``: those
    not resolved (open or acknowledged)."""
    sql = "SELECT snapshot_json FROM incidents WHERE true"
    params: list[object] = []
    if open_only:
        sql += " AND status <> 'resolved'"
    if tenant is not None:
        sql += " AND tenant = ?"
        params.append(tenant)
    sql += " ORDER BY opened_at DESC, incident_id LIMIT ?"
    params.append(max(1, min(limit, 5000)))
    return [_incident.decode(r[0]) for r in con.execute(sql, params).fetchall()]


def resolved_since(
    con: duckdb.DuckDBPyConnection, since: datetime
) -> dict[tuple[str, str], datetime]:
    """(tenant, dedup_key) -> when it was last resolved, for incidents resolved since
    ``since`` (what EyeTok still knows of; see ``eyetok.incidents.knows``)."""
    # Only incidents snapshotted since ``since`` can have resolved since: their latest
    # snapshot is among those, so the window bounds the scan (bench/history_growth.py).
    rows = con.execute(
        """SELECT s.tenant, s.dedup_key, max(epoch_us(s.resolved_at)) FROM incident_snapshots s
           JOIN (SELECT incident_id, max(seq) AS seq FROM incident_snapshots
                 WHERE recorded_at >= ? GROUP BY 1) USING (incident_id, seq)
           WHERE s.status = 'resolved' AND epoch_us(s.resolved_at) >= ?
           GROUP BY s.tenant, s.dedup_key""",
        [since, int(since.timestamp() * 1_000_000)],
    ).fetchall()
    return {(str(t), str(k)): _from_epoch_us(int(us)) for t, k, us in rows}


def last_snapshot_seq(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(seq), 0) FROM incident_snapshots").fetchone()
    return int(row[0]) if row else 0


def pending_deliveries(con: duckdb.DuckDBPyConnection) -> list[Deliver]:
    # an anti-join on the outcomes, then the few survivors deduplicated: the notifications
    # view folds every delivery ever planned (bench/history_growth.py: 13.8 s -> 0.24 s
    # at 1 M signals, the bulk of a restart's time)
    rows = con.execute(
        """SELECT deliver_json FROM (
               SELECT DISTINCT ON (delivery_id) delivery_id, planned_at, deliver_json
               FROM deliveries d WHERE NOT EXISTS (
                   SELECT 1 FROM delivery_outcomes o WHERE o.delivery_id = d.delivery_id))
           ORDER BY planned_at"""
    ).fetchall()
    return [_deliver.decode(r[0]) for r in rows]


def thread_refs(
    con: duckdb.DuckDBPyConnection, *, since: datetime
) -> dict[tuple[str, str, str], str]:
    """(sink_id, target, incident_id) -> the thread its first message opened."""
    # bounded to the look-back on both tables, not the notifications view over all history
    rows = con.execute(
        """WITH planned AS (
               SELECT DISTINCT ON (delivery_id) delivery_id, sink_id, target, incident_id
               FROM deliveries WHERE planned_at >= ?),
           closed AS (
               SELECT DISTINCT ON (delivery_id) delivery_id, outcome, finished_at, thread_ref
               FROM delivery_outcomes WHERE finished_at >= ?)
           SELECT sink_id, target, incident_id, thread_ref FROM planned JOIN closed
           USING (delivery_id)
           WHERE outcome = 'delivered' AND thread_ref <> ''
           ORDER BY finished_at""",
        [since, since],
    ).fetchall()
    refs: dict[tuple[str, str, str], str] = {}
    for sink_id, target, incident_id, ref in rows:
        refs.setdefault((sink_id, target, incident_id), ref)
    return refs


def posted_ref(con: duckdb.DuckDBPyConnection, delivery_id: str) -> str | None:
    """The external ref (a Slack ts) outbox row ``delivery_id`` was delivered as."""
    row = con.execute(
        """SELECT external_ref FROM delivery_outcomes
           WHERE delivery_id = ? AND outcome = 'delivered' AND external_ref <> '' LIMIT 1""",
        [delivery_id],
    ).fetchone()
    return str(row[0]) if row is not None else None


def thread_lookback(now: datetime) -> datetime:
    return now - timedelta(days=30)


class ActiveCluster(msgspec.Struct, frozen=True, kw_only=True):
    cluster_id: str
    cluster_key: str
    tenants: list[str]
    withheld: int
    fired_at: datetime


def active_suppressions(con: duckdb.DuckDBPyConnection) -> list[ActiveCluster]:
    """Clusters that fired and have not cleared (the suppression actor resumes them)."""
    rows = con.execute(
        """SELECT cluster_id, cluster_key, tenants, withheld, epoch_us(fired_at)
           FROM suppressions WHERE cleared_at IS NULL ORDER BY fired_at"""
    ).fetchall()
    return [
        ActiveCluster(
            cluster_id=r[0],
            cluster_key=r[1],
            tenants=msgspec.json.decode(r[2], type=list[str]),
            withheld=int(r[3]),
            fired_at=_from_epoch_us(r[4]),
        )
        for r in rows
    ]


def suppressions(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """Every cluster, newest first, as the operator's API shows it."""
    cursor = con.execute(
        """SELECT * REPLACE (epoch_us(fired_at) AS fired_at, epoch_us(cleared_at) AS cleared_at,
                             epoch_us(acked_at) AS acked_at)
           FROM suppressions ORDER BY fired_at DESC"""
    )
    names = [d[0] for d in cursor.description]
    out: list[dict[str, object]] = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        item["tenants"] = msgspec.json.decode(str(item["tenants"]), type=list[str])
        for key in ("fired_at", "cleared_at", "acked_at"):
            value = item[key]
            item[key] = _from_epoch_us(value).isoformat() if isinstance(value, int) else None
        out.append(item)
    return out


def _from_epoch_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


class BudgetSpent(msgspec.Struct, frozen=True, kw_only=True):
    admitted: dict[str, list[str]]  # tenant -> signal ids delivered within budget
    capped: list[str]  # tenants whose cap event was already announced


def budget_spent(con: duckdb.DuckDBPyConnection, *, since: datetime) -> BudgetSpent:
    """What the budgets actor had spent this hour before a restart: the signals whose
    deliveries went out (or were tried; not those a mute held back before the budget), and
    the tenants already announced as capped."""
    # A bounded window, not the notifications view (which folds every delivery ever
    # planned): a delivery of a signal received since ``since`` was planned, and closed,
    # after it (bench/history_growth.py: 0 -> 1 M signals no longer grows this look-up).
    rows = con.execute(
        """WITH planned AS (
               SELECT DISTINCT ON (delivery_id) delivery_id, tenant, signal_id
               FROM deliveries WHERE planned_at >= ?),
           closed AS (
               SELECT DISTINCT ON (delivery_id) delivery_id, outcome
               FROM delivery_outcomes WHERE finished_at >= ?)
           SELECT DISTINCT p.tenant, p.signal_id FROM planned p
           LEFT JOIN closed c USING (delivery_id) JOIN signals s USING (signal_id)
           WHERE s.received_at >= ?
             AND coalesce(c.outcome, 'pending')
                 NOT IN ('pending', 'digested', 'suppressed', 'muted')""",
        [since, since, since],
    ).fetchall()
    admitted: dict[str, list[str]] = {}
    for tenant, signal_id in rows:
        admitted.setdefault(tenant, []).append(signal_id)
    capped = con.execute(
        "SELECT DISTINCT tenant FROM audit_log WHERE event = 'budget_capped' AND logged_at >= ?",
        [since],
    ).fetchall()
    return BudgetSpent(admitted=admitted, capped=[r[0] for r in capped])
