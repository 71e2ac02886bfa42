"""The ticket trail's memory of the playbooks' audit lines: each is offered once, in the
order recorded (lines of one instant too), only since the trail began noting them, and
a line noted (in the plan's transaction) is not offered again, as after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb

from state.history import ticket_trail as tables
from state.history.store import HistoryStore

NOW = datetime(2026, 12, 4, 18, tzinfo=UTC)


def _audit(con: duckdb.DuckDBPyConnection, at: datetime, event: str, detail: str) -> None:
    con.execute(
        "INSERT INTO audit_log VALUES (?, 'operator', ?, ?, 'inc_1', NULL)", [at, event, detail]
    )


async def test_each_playbook_line_is_offered_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    store = HistoryStore(path)
    await store.write(tables.create)
    since = await store.write(partial(tables.audit_since, now=NOW))
    assert since == NOW

    def recorded(con: duckdb.DuckDBPyConnection) -> None:
        _audit(con, NOW - timedelta(hours=1), "playbook_approved", "before the trail began")
        _audit(con, NOW, "playbook_proposed", "fix proposes restart (proposal prp_1)")
        _audit(con, NOW + timedelta(seconds=1), "playbook_approved", "approved (proposal prp_1)")
        _audit(con, NOW + timedelta(seconds=1), "playbook_run_started", "started (proposal prp_1)")
        _audit(con, NOW + timedelta(seconds=1), "incident_acknowledged", "not a playbook's")
        _audit(con, NOW + timedelta(seconds=2), "playbook_run_finished", "ok (proposal prp_1)")

    await store.write(recorded)
    lines = await store.read(partial(tables.playbook_lines, since=since))
    assert [line.event for line in lines] == [
        "playbook_proposed",
        "playbook_approved",
        "playbook_run_started",
        "playbook_run_finished",
    ]
    assert len({line.line_key for line in lines}) == 4
    await store.write(partial(tables.plan, ops=[], upto=0, noted=[lines[0].line_key]))
    await store.write(partial(tables.plan, ops=[], upto=0, noted=[lines[0].line_key]))  # again
    store.close()

    reopened = HistoryStore(path)  # a restart: the same beginning, the same memory
    assert await reopened.write(partial(tables.audit_since, now=NOW + timedelta(days=1))) == NOW
    left = await reopened.read(partial(tables.playbook_lines, since=since))
    assert [line.line_key for line in left] == [line.line_key for line in lines[1:]]
    reopened.close()
