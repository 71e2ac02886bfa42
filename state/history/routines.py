"""Read-side queries of the operator's routines: the review's counts, the anomaly journal,
the schedules' last runs and the credentials on record. Each takes the connection; call
through :meth:`HistoryStore.read`. Times leave DuckDB as epoch microseconds (the driver
would need pytz to hand out aware datetimes) and come back aware, in UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb

from eyetok.review import (
    AUDIT_ANOMALIES,
    BASELINE,
    FAILED_OUTCOMES,
    Anomaly,
    Baseline,
    StreamCount,
)

SCHEDULE_EVENTS = ("schedule_ran", "schedule_registered")
DRILL_STARTED = "drill_started"  # a monthly drill began: its slot and scenario (flavour)
CREDENTIAL_EVENT = "credential_seen"


def _at(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, UTC)


def _must(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def stream(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> list[StreamCount]:
    """Notifications planned in the window by tenant, sink, severity and outcome."""
    # Bounded to the window on both tables (a delivery planned in it closes after its
    # start), not the notifications view over all history: bench/history_growth.py.
    rows = con.execute(
        """WITH planned AS (
               SELECT DISTINCT ON (delivery_id) delivery_id, tenant, sink_id, deliver_json
               FROM deliveries WHERE planned_at >= ? AND planned_at < ?),
           closed AS (
               SELECT DISTINCT ON (delivery_id) delivery_id, outcome
               FROM delivery_outcomes WHERE finished_at >= ?)
           SELECT tenant, sink_id,
                  coalesce(json_extract_string(deliver_json, '$.incident.severity'), '?'),
                  coalesce(outcome, 'pending'), count(*)
           FROM planned LEFT JOIN closed USING (delivery_id)
           GROUP BY ALL ORDER BY 1, 2, 3, 4""",
        [since, until, since],
    ).fetchall()
    return [
        StreamCount(tenant=t, sink_id=s, severity=sev, outcome=o, count=int(n))
        for t, s, sev, o, n in rows
    ]


def hourly_alerts(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> list[tuple[str, datetime, int]]:
    """(tenant, hour start, alerts received) for every hour of the window with alerts."""
    rows = con.execute(
        """SELECT tenant, (epoch_us(received_at) // 3600000000) * 3600000000 AS hour, count(*)
           FROM signals WHERE received_at >= ? AND received_at < ? AND kind = 'alert'
           GROUP BY ALL ORDER BY 2, 1""",
        [since, until],
    ).fetchall()
    return [(t, _must(int(h)), int(n)) for t, h, n in rows]


def baseline_alerts(con: duckdb.DuckDBPyConnection, before: datetime) -> Baseline:
    """Each tenant's alerts in the 7 days before ``before``, and how many of those hours
    the history covers (it starts at its first signal: a fresh install has none)."""
    rows = con.execute(
        """SELECT tenant, count(*) FROM signals
           WHERE received_at >= ? AND received_at < ? AND kind = 'alert' GROUP BY 1""",
        [before - BASELINE, before],
    ).fetchall()
    [(first,)] = con.execute("SELECT epoch_us(min(received_at)) FROM signals").fetchall()
    start = max(before - BASELINE, _at(first) or before)
    hours = max(0.0, (before - start).total_seconds() / 3600)
    return Baseline(alerts={t: int(n) for t, n in rows}, hours=hours)


def failed_deliveries(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> list[tuple[str, str, str, str, str, datetime, str]]:
    rows = con.execute(
        f"""WITH closed AS (
                SELECT DISTINCT ON (delivery_id) delivery_id, outcome, finished_at, detail
                FROM delivery_outcomes
                WHERE finished_at >= ? AND finished_at < ?
                  AND outcome IN ({", ".join("?" for _ in FAILED_OUTCOMES)}))
            SELECT c.delivery_id, d.tenant, d.sink_id, d.target, c.outcome,
                   epoch_us(c.finished_at), coalesce(c.detail, '')
            FROM closed c JOIN (
                SELECT DISTINCT ON (delivery_id) delivery_id, tenant, sink_id, target
                FROM deliveries WHERE delivery_id IN (SELECT delivery_id FROM closed)) d
            USING (delivery_id)
            ORDER BY c.finished_at""",
        [since, until, *FAILED_OUTCOMES],
    ).fetchall()
    return [(d, t, s, tg, o, _must(int(f)), det) for d, t, s, tg, o, f, det in rows]


def anomalous_audit(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> list[tuple[datetime, str, str, str]]:
    events = tuple(AUDIT_ANOMALIES)
    rows = con.execute(
        f"""SELECT epoch_us(logged_at), tenant, event, coalesce(detail, '') FROM audit_log
            WHERE event IN ({", ".join("?" for _ in events)})
              AND logged_at >= ? AND logged_at < ?
            ORDER BY logged_at""",
        [*events, since, until],
    ).fetchall()
    return [(_must(int(at)), t, e, d) for at, t, e, d in rows]


_ANOMALY_COLUMNS = """anomaly_id, kind, tenant, subject, detail, epoch_us(occurred_at),
    verdict, note, noted_by, epoch_us(noted_at)"""


def _anomaly(row: tuple[object, ...]) -> Anomaly:
    aid, kind, tenant, subject, detail, occurred, verdict, note, by, noted = row
    return Anomaly(
        anomaly_id=str(aid),
        kind=str(kind),
        tenant=str(tenant),
        subject=str(subject),
        detail=str(detail),
        occurred_at=_must(int(occurred)),  # type: ignore[call-overload]
        verdict=None if verdict is None else str(verdict),
        note=None if note is None else str(note),
        noted_by=None if by is None else str(by),
        noted_at=_at(None if noted is None else int(noted)),  # type: ignore[call-overload]
    )


def anomalies(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Anomaly]:
    """The journal's rows (with their latest verdict) for these ids."""
    if not ids:
        return {}
    rows = con.execute(
        f"SELECT {_ANOMALY_COLUMNS} FROM anomaly_journal WHERE anomaly_id IN "
        f"(SELECT unnest(?::VARCHAR[]))",
        [ids],
    ).fetchall()
    return {str(r[0]): _anomaly(r) for r in rows}


def last_schedule_runs(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    """Each schedule's latest slot on record (run, or registered when first seen)."""
    rows = con.execute(
        """SELECT json_extract_string(detail, '$.schedule') AS schedule,
                  max(epoch_us(json_extract_string(detail, '$.slot')::TIMESTAMPTZ))
           FROM audit_log WHERE event IN (?, ?) GROUP BY 1""",
        list(SCHEDULE_EVENTS),
    ).fetchall()
    return {str(name): _must(int(us)) for name, us in rows if name is not None}


def last_monthly_drill(con: duckdb.DuckDBPyConnection) -> tuple[datetime, str] | None:
    """The latest monthly drill on record: (its slot, the scenario it ran)."""
    row = con.execute(
        """SELECT epoch_us(json_extract_string(detail, '$.slot')::TIMESTAMPTZ) AS slot,
                  json_extract_string(detail, '$.scenario')
           FROM audit_log WHERE event = ? ORDER BY slot DESC, logged_at DESC LIMIT 1""",
        [DRILL_STARTED],
    ).fetchone()
    return None if row is None else (_must(int(row[0])), str(row[1]))


def credentials_on_record(
    con: duckdb.DuckDBPyConnection,
) -> tuple[dict[str, tuple[str, datetime]], datetime | None]:
    """Each credential's current fingerprint and when it was first seen, and when the
    records begin (an age that starts there is "at least")."""
    rows = con.execute(
        "SELECT epoch_us(logged_at), detail FROM audit_log WHERE event = ? ORDER BY logged_at",
        [CREDENTIAL_EVENT],
    ).fetchall()
    current: dict[str, tuple[str, datetime]] = {}
    first: datetime | None = None
    for us, detail in rows:
        at = _must(int(us))
        first = first or at
        seen = json.loads(detail)
        name, print_ = str(seen["credential"]), str(seen["fingerprint"])
        if name not in current or current[name][0] != print_:
            current[name] = (print_, at)
    return current, first
