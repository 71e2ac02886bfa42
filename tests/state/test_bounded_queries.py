"""The start-up and review queries bounded for a large history (issue 19) answer exactly
what the views over all history answer, on a mixed history: pending, delivered and failed
notifications, incidents open, resolved, resolved long ago and reopened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import msgspec

from state.history import queries, routines
from state.history.journal import append_rows, snapshot_row
from state.history.store import HistoryStore
from tests.actors.history_rows import delivered_signal_rows
from tests.state.test_retention import _incident

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _history() -> list[msgspec.Struct]:
    rows: list[msgspec.Struct] = []
    for n in range(60):
        at = NOW - n * 7 * HOUR
        signal, planned, outcome = delivered_signal_rows(f"t{n % 4}", n, at=at)
        rows += [signal, planned]
        if n % 5 == 1:
            continue  # still pending
        dead = n % 7 == 0
        rows.append(
            msgspec.structs.replace(
                outcome, outcome="dead" if dead else "delivered", thread_ref=f"17000.{n}"
            )
        )
        incident = f"inc_{n}"
        rows.append(snapshot_row(_incident(incident, at=at), recorded_at=at, seq=2 * n))
        if n % 3 == 0:  # resolved an hour later; every ninth reopened after that
            done = _incident(incident, at=at + HOUR, status="resolved", resolved=at + HOUR)
            rows.append(snapshot_row(done, recorded_at=at + HOUR, seq=2 * n + 1))
            if n % 9 == 0:
                again = _incident(incident, at=at + 2 * HOUR)
                rows.append(snapshot_row(again, recorded_at=at + 2 * HOUR, seq=10_000 + n))
    return rows


def _view(con: duckdb.DuckDBPyConnection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(args)).fetchall()


async def test_the_bounded_queries_answer_as_the_views_do(tmp_path: Any) -> None:
    store = HistoryStore(tmp_path / "history.duckdb")
    try:
        await store.write(lambda con: append_rows(con, _history()))
        con = store._con
        since = NOW - 100 * HOUR
        pending = _view(
            con,
            "SELECT deliver_json FROM notifications WHERE status = 'pending' ORDER BY planned_at",
        )
        assert len(pending) == 12
        assert [d.delivery_id for d in queries.pending_deliveries(con)] == [
            msgspec.json.decode(r[0])["delivery_id"] for r in pending
        ]
        open_view = _view(
            con, "SELECT snapshot_json FROM incidents WHERE status <> 'resolved' ORDER BY opened_at"
        )
        assert sorted(i.incident_id for i in queries.open_incidents(con)) == sorted(
            msgspec.json.decode(r[0])["incident_id"] for r in open_view
        )
        resolved_view = _view(
            con,
            "SELECT tenant, dedup_key, max(epoch_us(resolved_at)) FROM incidents "
            "WHERE status = 'resolved' AND resolved_at >= ? GROUP BY 1, 2",
            since,
        )
        assert resolved_view
        got = queries.resolved_since(con, since)
        assert {(t, k): int(v.timestamp() * 1e6) for (t, k), v in got.items()} == {
            (t, k): us for t, k, us in resolved_view
        }
        threads_view = _view(
            con,
            """SELECT sink_id, target, incident_id, thread_ref FROM notifications
               WHERE status = 'delivered' AND thread_ref <> '' AND planned_at >= ?""",
            since,
        )
        assert threads_view
        assert queries.thread_refs(con, since=since) == {
            (s, t, i): ref for s, t, i, ref in threads_view
        }
        stream_view = _view(
            con,
            """SELECT tenant, sink_id, status, count(*) FROM notifications
               WHERE planned_at >= ? AND planned_at < ? GROUP BY ALL ORDER BY 1, 2, 3""",
            since,
            NOW,
        )
        stream = routines.stream(con, since, NOW)
        assert sorted((s.tenant, s.sink_id, s.outcome, s.count) for s in stream) == stream_view
        failed_view = _view(
            con,
            """SELECT delivery_id FROM notifications WHERE status = 'dead'
               AND finished_at >= ? AND finished_at < ? ORDER BY finished_at""",
            since,
            NOW + HOUR,
        )
        assert failed_view
        failed = routines.failed_deliveries(con, since, NOW + HOUR)
        assert [f[0] for f in failed] == [r[0] for r in failed_view]
    finally:
        store.close()
