"""The ticket trail's own DuckDB tables: its outbox, its cursor in the incident
snapshots, the FreeScout conversation of each ticketed incident, and the playbooks'
audit lines it has noted (by a digest of the line: the audit log has no sequence).

A batch of snapshots becomes outbox rows and the cursor moves past it in one DuckDB
transaction (:func:`plan`), before any FreeScout call: a crash at any point either
replans the same batch (nothing of it was written) or finds its rows pending.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import msgspec

from eyetok.messages import Incident
from eyetok.ticket_trail import TrailOp

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ticket_trail_cursor (seq BIGINT)""",
    """CREATE TABLE IF NOT EXISTS ticket_trail (
        op_id VARCHAR, incident_id VARCHAR, tenant VARCHAR, kind VARCHAR, text VARCHAR,
        planned_at TIMESTAMPTZ, incident_json VARCHAR, status VARCHAR, attempts INTEGER,
        finished_at TIMESTAMPTZ, detail VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS ticket_conversations (
        incident_id VARCHAR, tenant VARCHAR, conversation_id BIGINT, number BIGINT,
        opened_at TIMESTAMPTZ)""",
    # when the trail began noting the playbooks' audit lines (it never notes older ones)
    """CREATE TABLE IF NOT EXISTS ticket_trail_audit_since (since_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS ticket_trail_audit_noted (line_key VARCHAR PRIMARY KEY)""",
)
# the playbooks actor's audit events a ticket notes (approvals, rejections, runs)
PLAYBOOK_EVENTS = (
    "playbook_proposed",
    "playbook_approved",
    "playbook_rejected",
    "playbook_run_held",
    "playbook_run_started",
    "playbook_run_finished",
    "playbook_run_interrupted",
)


class AuditLine(msgspec.Struct, frozen=True, kw_only=True):
    """One playbook audit line of an incident, not yet noted."""

    line_key: str  # md5 of the line's time, event, incident and detail
    incident_id: str
    event: str
    detail: str


_encode = msgspec.json.Encoder().encode
_incident = msgspec.json.Decoder(Incident)


def create(con: duckdb.DuckDBPyConnection) -> None:
    for statement in SCHEMA:
        con.execute(statement)


def cursor(con: duckdb.DuckDBPyConnection) -> int | None:
    """The last snapshot seq the trail has planned from (None: it never ran here)."""
    row = con.execute("SELECT max(seq) FROM ticket_trail_cursor").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def start_at_now(con: duckdb.DuckDBPyConnection) -> int:
    """A first start: the trail begins after the last snapshot (it never tickets the
    past). The cursor it starts from."""
    row = con.execute("SELECT coalesce(max(seq), 0) FROM incident_snapshots").fetchone()
    seq = int(row[0]) if row else 0
    con.execute("INSERT INTO ticket_trail_cursor VALUES (?)", [seq])
    return seq


def snapshots_after(
    con: duckdb.DuckDBPyConnection, seq: int, limit: int = 500
) -> list[tuple[int, Incident]]:
    """The next snapshots in journal order."""
    rows = con.execute(
        "SELECT seq, snapshot_json FROM incident_snapshots WHERE seq > ? ORDER BY seq LIMIT ?",
        [seq, limit],
    ).fetchall()
    return [(int(s), _incident.decode(j)) for s, j in rows]


def last_seen(con: duckdb.DuckDBPyConnection, upto: int) -> dict[str, Incident]:
    """Every unresolved incident as of snapshot ``upto`` (what the next snapshots are
    compared with)."""
    rows = con.execute(
        """SELECT snapshot_json FROM (
               SELECT snapshot_json, status, row_number() OVER (
                   PARTITION BY incident_id ORDER BY seq DESC) AS rn
               FROM incident_snapshots WHERE seq <= ?) WHERE rn = 1 AND status <> 'resolved'""",
        [upto],
    ).fetchall()
    return {i.incident_id: i for i in (_incident.decode(r[0]) for r in rows)}


def audit_since(con: duckdb.DuckDBPyConnection, now: datetime) -> datetime:
    """When the trail began noting playbook lines (``now`` on its first start)."""
    row = con.execute("SELECT epoch_us(min(since_at)) FROM ticket_trail_audit_since").fetchone()
    if row is not None and row[0] is not None:
        return datetime.fromtimestamp(row[0] / 1_000_000, UTC)
    con.execute("INSERT INTO ticket_trail_audit_since VALUES (?)", [now])
    return now


def playbook_lines(
    con: duckdb.DuckDBPyConnection, since: datetime, limit: int = 500
) -> list[AuditLine]:
    """The playbooks' audit lines since ``since`` the trail has not noted, oldest first
    (lines of one instant in the order they were recorded)."""
    rows = con.execute(
        f"""SELECT key, incident_id, event, detail FROM (
               SELECT md5(concat_ws('|', epoch_us(logged_at), event, incident_id, detail))
                      AS key, incident_id, event, detail, logged_at, rowid AS n
               FROM audit_log
               WHERE event IN ({", ".join("?" for _ in PLAYBOOK_EVENTS)})
                 AND incident_id IS NOT NULL AND logged_at >= ?)
           WHERE key NOT IN (SELECT line_key FROM ticket_trail_audit_noted)
           ORDER BY logged_at, n LIMIT ?""",
        [*PLAYBOOK_EVENTS, since, limit],
    ).fetchall()
    return [AuditLine(line_key=k, incident_id=i, event=e, detail=d) for k, i, e, d in rows]


def plan(
    con: duckdb.DuckDBPyConnection, ops: list[TrailOp], upto: int, noted: list[str] | None = None
) -> None:
    """The ops as pending rows, the cursor past ``upto`` and the audit lines ``noted``,
    in one transaction."""
    for op in ops:
        con.execute(
            "INSERT INTO ticket_trail VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, NULL, NULL)",
            [
                op.op_id,
                op.incident.incident_id,
                op.incident.tenant,
                op.kind,
                op.text,
                op.planned_at,
                _encode(op.incident).decode(),
            ],
        )
    con.execute("UPDATE ticket_trail_cursor SET seq = ?", [upto])
    for key in noted or ():
        con.execute("INSERT OR IGNORE INTO ticket_trail_audit_noted VALUES (?)", [key])


def pending(con: duckdb.DuckDBPyConnection) -> list[TrailOp]:
    rows = con.execute(
        """SELECT op_id, kind, text, epoch_ms(planned_at), incident_json FROM ticket_trail
           WHERE status = 'pending' ORDER BY op_id"""
    ).fetchall()
    return [
        TrailOp(
            op_id=o,
            kind=k,
            text=t,
            planned_at=datetime.fromtimestamp(ms / 1000, UTC),
            incident=_incident.decode(j),
        )
        for o, k, t, ms, j in rows
    ]


def ticketed(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The incidents whose opening was planned (whatever became of it)."""
    rows = con.execute("SELECT DISTINCT incident_id FROM ticket_trail WHERE kind = 'open'")
    return {r[0] for r in rows.fetchall()}


def conversations(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute("SELECT incident_id, conversation_id FROM ticket_conversations")
    return {i: int(c) for i, c in rows.fetchall()}


def finish(
    con: duckdb.DuckDBPyConnection,
    op: TrailOp,
    *,
    status: str,
    attempts: int,
    at: datetime,
    detail: str = "",
    conversation: tuple[int, int | None] | None = None,
) -> None:
    """Close an op (delivered, refused or dead), with the conversation it opened."""
    con.execute(
        """UPDATE ticket_trail SET status = ?, attempts = ?, finished_at = ?, detail = ?
           WHERE op_id = ?""",
        [status, attempts, at, detail, op.op_id],
    )
    if conversation is not None:
        con.execute(
            "INSERT INTO ticket_conversations VALUES (?, ?, ?, ?, ?)",
            [op.incident.incident_id, op.incident.tenant, conversation[0], conversation[1], at],
        )


def adopt(con: duckdb.DuckDBPyConnection, incidents: list[Incident], at: datetime) -> None:
    """Incidents whose snapshot names a conversation this history has no row of (a fresh
    dyno, rehydrated from Postgres): their trail goes on in that conversation."""
    for incident in incidents:
        assert incident.freescout_conversation_id is not None
        con.execute(
            "INSERT INTO ticket_trail VALUES (?, ?, ?, 'open', '', ?, ?, 'delivered', 0, ?, ?)",
            [
                f"fs_adopted_{incident.incident_id}",
                incident.incident_id,
                incident.tenant,
                at,
                _encode(incident).decode(),
                at,
                "adopted: the incident's snapshot names the conversation (rehydrated)",
            ],
        )
        con.execute(
            "INSERT INTO ticket_conversations VALUES (?, ?, ?, NULL, ?)",
            [incident.incident_id, incident.tenant, incident.freescout_conversation_id, at],
        )


def trail(con: duckdb.DuckDBPyConnection, incident_id: str) -> list[dict[str, object]]:
    """An incident's rows, in order (for tests and the operator)."""
    cur = con.execute(
        """SELECT op_id, kind, text, status, attempts, detail FROM ticket_trail
           WHERE incident_id = ? ORDER BY op_id""",
        [incident_id],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
