"""What the conversation actor reads from the history: which incident a Slack thread
belongs to, the signal that opened it, and the thread events already answered."""

from __future__ import annotations

from datetime import datetime

import duckdb
import msgspec

from eyetok.messages import Incident, Signal

_incident = msgspec.json.Decoder(Incident)
_signal = msgspec.json.Decoder(Signal)


class ThreadOwner(msgspec.Struct, frozen=True, kw_only=True):
    """The incident whose first Slack post opened a thread, and where that post went."""

    incident: Incident
    sink_id: str
    target: str


def thread_owner(con: duckdb.DuckDBPyConnection, thread_ts: str) -> ThreadOwner | None:
    row = con.execute(
        """SELECT n.sink_id, n.target, i.snapshot_json FROM notifications n
           JOIN incidents i USING (incident_id)
           WHERE n.sink_type = 'slack' AND n.status = 'delivered' AND n.action = 'open'
             AND n.external_ref = ?
           ORDER BY n.finished_at LIMIT 1""",
        [thread_ts],
    ).fetchone()
    if row is None:
        return None
    return ThreadOwner(incident=_incident.decode(row[2]), sink_id=row[0], target=row[1])


def first_signal(con: duckdb.DuckDBPyConnection, incident_id: str) -> tuple[Signal, str] | None:
    """The signal that opened ``incident_id`` and the rule it was routed by then."""
    row = con.execute(
        """SELECT signal_json, rule FROM signals WHERE incident_id = ?
           ORDER BY received_at LIMIT 1""",
        [incident_id],
    ).fetchone()
    return (_signal.decode(row[0]), str(row[1])) if row else None


def answered_events(con: duckdb.DuckDBPyConnection, since: datetime) -> list[str]:
    """The Slack event ids (and ``msg:<channel>:<ts>`` message keys) of the thread
    messages answered since ``since``."""
    rows = con.execute(
        """SELECT json_extract_string(detail, '$.event_id'),
                  json_extract_string(detail, '$.message')
           FROM audit_log WHERE event = 'thread_verb' AND logged_at >= ?""",
        [since],
    ).fetchall()
    return [str(key) for row in rows for key in row if key]
