"""Retention on a real DuckDB file: the policy at its boundaries under MockClock, a prune
stopped half-way and resumed after a restart, and the day-by-day Parquet archive read
back with DuckDB."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
import structlog
import trio
import trio.testing

from eyetok.clock import TrioWallClock
from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError, StateError
from eyetok.messages import Incident, Severity
from eyetok.retention import RetentionOptions
from state.history import retention
from state.history import store as store_module
from state.history.journal import AuditRow, TenantConfigRow, append_rows, snapshot_row
from state.history.store import HistoryStore
from tests.actors.history_rows import delivered_signal_rows

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    history = HistoryStore(tmp_path / "history.duckdb")
    yield history
    history.close()


def _incident(
    incident_id: str, *, at: datetime, status: str = "open", resolved: datetime | None = None
) -> Incident:
    return Incident(
        incident_id=incident_id,
        tenant="acme",
        dedup_key=incident_id,
        title="db down",
        severity=Severity.HIGH,
        sev_channel=None,
        rule="r",
        status=status,
        opened_at=T0,
        last_seen_at=at,
        event_count=1,
        resolved_at=resolved,
    )


def _audit(event: str, at: datetime) -> AuditRow:
    return AuditRow(
        logged_at=at, tenant="operator", event=event, detail="{}", incident_id=None, signal_id=None
    )


def _setting(at: datetime, value: str) -> TenantConfigRow:
    return TenantConfigRow(
        tenant="acme",
        kind="sink",
        key="acme-hook",
        value_json=value,
        recorded_at=at,
        recorded_by="root",
        entry_json="{}",
    )


async def _count(store: HistoryStore, sql: str, *args: Any) -> int:
    rows = await store.read(lambda con: con.execute(sql, list(args)).fetchall())
    return int(rows[0][0])


async def _signal_ids(store: HistoryStore) -> set[str]:
    rows = await store.read(lambda con: con.execute("SELECT signal_id FROM signals").fetchall())
    return {str(r[0]) for r in rows}


async def test_the_policy_holds_at_its_boundaries(
    store: HistoryStore, mock_clock: trio.testing.MockClock
) -> None:
    clock = TrioWallClock(T0)
    seed: list[msgspec.Struct] = [
        # an incident open since T0 (re-snapshotted on day 95), and one resolved on day 5,
        # one on day 20
        snapshot_row(_incident("inc_open", at=T0), recorded_at=T0, seq=1),
        snapshot_row(_incident("inc_open", at=T0 + 95 * DAY), recorded_at=T0 + 95 * DAY, seq=9),
        snapshot_row(_incident("inc_r5", at=T0), recorded_at=T0, seq=2),
        snapshot_row(
            _incident("inc_r5", at=T0 + 5 * DAY, status="resolved", resolved=T0 + 5 * DAY),
            recorded_at=T0 + 5 * DAY,
            seq=3,
        ),
        snapshot_row(
            _incident("inc_r20", at=T0 + 20 * DAY, status="resolved", resolved=T0 + 20 * DAY),
            recorded_at=T0 + 20 * DAY,
            seq=4,
        ),
        # signals (each with a delivered notification) on either side of day 10
        *delivered_signal_rows("acme", 1, at=T0),
        *delivered_signal_rows("acme", 2, at=T0 + 10 * DAY - timedelta(seconds=1)),
        *delivered_signal_rows("acme", 3, at=T0 + 10 * DAY),
        *delivered_signal_rows("acme", 4, at=T0 + 95 * DAY),
        _audit("signal_audit_only", T0),
        _audit("schedule_ran", T0),
        _audit("credential_seen", T0),
        _setting(T0, '{"v": 1}'),
        _setting(T0 + DAY, '{"v": 2}'),
    ]
    # a notification planned on day 0 that never closed: the outbox keeps it
    pending = delivered_signal_rows("acme", 5, at=T0)[1]
    await store.write(lambda con: append_rows(con, [*seed, pending]))

    mock_clock.jump((100 * DAY).total_seconds())
    report = await retention.prune(store, RetentionOptions(batch_rows=100), clock.now)
    assert report is not None
    assert clock.now() == T0 + 100 * DAY

    # signals older than 90 days go, to the second; the open incident's do too
    assert {s.rsplit("_", 1)[-1] for s in await _signal_ids(store)} == {"3", "4"}
    assert report.removed["signals"] == 2
    # the incident open for 100 days stays (its latest snapshot); the one resolved on
    # day 5 (95 days ago) goes whole; the one resolved on day 20 (80 days ago) stays
    incidents = await store.read(
        lambda con: con.execute("SELECT incident_id, status FROM incidents ORDER BY 1").fetchall()
    )
    assert incidents == [("inc_open", "open"), ("inc_r20", "resolved")]
    assert await _count(store, "SELECT count(*) FROM incident_snapshots") == 2
    assert report.removed["incident_snapshots"] == 3  # inc_r5's two, inc_open's superseded one
    # closed notifications go with their outcomes; the pending one stays in the outbox
    statuses = await store.read(
        lambda con: con.execute(
            "SELECT delivery_id, status FROM notifications ORDER BY 1"
        ).fetchall()
    )
    assert statuses == [
        ("dlv_acme_3_hook", "delivered"),
        ("dlv_acme_4_hook", "delivered"),
        ("dlv_acme_5_hook", "pending"),
    ]
    # audit rows go at 90 days, but not what the routines read back
    events = await store.read(
        lambda con: con.execute("SELECT event FROM audit_log ORDER BY 1").fetchall()
    )
    assert events == [("credential_seen",), ("schedule_ran",)]
    # both settings are within 400 days
    assert await _count(store, "SELECT count(*) FROM tenant_config_log") == 2

    # 11 more days: inc_r20 resolved 91 days ago now goes; the open one stays (111 days)
    mock_clock.jump((11 * DAY).total_seconds())
    later = await retention.prune(store, RetentionOptions(), clock.now)
    assert later is not None
    assert later.removed["incident_snapshots"] == 1
    assert await _count(store, "SELECT count(*) FROM incidents WHERE status = 'open'") == 1

    # past 400 days the older setting goes; the current one stays however old
    mock_clock.jump((300 * DAY).total_seconds())
    await retention.prune(store, RetentionOptions(), clock.now)
    values = await store.read(
        lambda con: con.execute("SELECT value_json FROM tenant_config_log").fetchall()
    )
    assert values == [('{"v": 2}',)]
    assert await _count(store, "SELECT count(*) FROM audit_log WHERE event = 'schedule_ran'") == 0
    assert (
        await _count(store, "SELECT count(*) FROM audit_log WHERE event = 'credential_seen'") == 1
    )


class PowerCut(Exception):
    """The process stops between two batches of a prune."""


class CutAfter(HistoryStore):
    """A history whose process stops after ``writes`` more transactions."""

    writes = 10**9

    async def write(self, fn: Any) -> Any:
        if self.writes == 0:
            raise PowerCut
        self.writes -= 1
        return await super().write(fn)


async def test_a_restart_in_the_middle_of_a_prune_resumes_it(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    clock = TrioWallClock(T0 + 100 * DAY)
    path = tmp_path / "history.duckdb"
    old = [row for n in range(1000) for row in delivered_signal_rows("acme", n, at=T0)]
    # a signal the interrupted run's horizon keeps, but a later one would not
    edge = delivered_signal_rows("acme", 5000, at=T0 + 10 * DAY + timedelta(hours=12))
    first = CutAfter(path)
    await first.write(lambda con: append_rows(con, [*old, *edge]))
    first.writes = 4  # the run's start, then three batches of signals
    with pytest.raises(PowerCut):
        await retention.prune(first, RetentionOptions(batch_rows=100), clock.now)
    first.close()
    half_way = HistoryStore(path)
    try:
        assert await _count(half_way, "SELECT count(*) FROM signals") == 1001 - 300
        mock_clock.jump(DAY.total_seconds())  # the restart comes the next day
        # a prune that only resumes: no new run unless one was stopped
        report = await retention.prune(
            half_way, RetentionOptions(batch_rows=100), clock.now, resume_only=True
        )
        assert report is not None
        assert report.resumed
        assert report.horizons.signals == T0 + 10 * DAY  # the stopped run's, not today's
        assert report.removed["signals"] == 1000  # both halves, counted once each
        assert report.removed["deliveries"] == 1000
        assert await _signal_ids(half_way) == {"sig_acme_5000"}
        assert (
            await retention.prune(half_way, RetentionOptions(), clock.now, resume_only=True) is None
        )
    finally:
        half_way.close()


async def test_the_archive_holds_each_pruned_day_as_parquet(
    store: HistoryStore, tmp_path: Path
) -> None:
    now = T0 + 100 * DAY
    days = {T0 + d * DAY + timedelta(hours=h): 0 for d in range(3) for h in (1, 13, 23)}
    rows = [row for n, at in enumerate(days) for row in delivered_signal_rows("acme", n, at=at)]
    await store.write(lambda con: append_rows(con, rows))
    archive = tmp_path / "archive"
    report = await retention.prune(store, RetentionOptions(archive_dir=str(archive)), lambda: now)
    assert report is not None
    assert report.archived["signals"] == report.removed["signals"] == 9
    con = duckdb.connect()
    per_day = con.execute(
        f"""SELECT day::VARCHAR, count(*), count(DISTINCT signal_id)
            FROM read_parquet('{archive}/signals/*/*.parquet', hive_partitioning = true)
            GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    assert per_day == [("2026-01-01", 3, 3), ("2026-01-02", 3, 3), ("2026-01-03", 3, 3)]
    [(outcomes,)] = con.execute(
        f"SELECT count(*) FROM read_parquet('{archive}/delivery_outcomes/*/*.parquet')"
    ).fetchall()
    assert outcomes == report.removed["delivery_outcomes"] == 9
    assert await _count(store, "SELECT count(*) FROM signals") == 0


def test_the_readme_retention_example_is_valid_configuration() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [example] = [
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "retention:" in b
    ]
    settings = settings_from(parse_file_config(example), {})
    assert settings.retention == RetentionOptions(archive_dir="/var/lib/eyetok/archive")


def test_a_bad_retention_names_its_field() -> None:
    with pytest.raises(ConfigError) as error:
        settings_from(parse_file_config("retention:\n  signals_days: 0\n"), {})
    assert error.value.field == "retention.signals_days"


async def test_the_space_of_pruned_rows_is_freed_for_new_ones(store: HistoryStore) -> None:
    rows = [row for n in range(3000) for row in delivered_signal_rows("acme", n, at=T0)]
    await store.write(lambda con: append_rows(con, rows))
    await store.read(retention.checkpoint)
    report = await retention.prune(store, RetentionOptions(), lambda: T0 + 100 * DAY)
    assert report is not None
    assert report.removed["signals"] == 3000
    # the file does not shrink by itself, but its blocks are free for the next rows
    assert report.free_bytes > 0
    assert report.bytes_after >= report.free_bytes


async def test_an_archive_that_cannot_be_written_stops_the_prune_before_any_delete(
    store: HistoryStore,
) -> None:
    rows = delivered_signal_rows("acme", 1, at=T0)
    await store.write(lambda con: append_rows(con, rows))
    options = RetentionOptions(archive_dir="/proc/eyetok-archive")
    with pytest.raises(StateError, match="/proc/eyetok-archive"):
        await retention.prune(store, options, lambda: T0 + 100 * DAY)
    assert await _count(store, "SELECT count(*) FROM signals") == 1


async def test_the_prune_checkpoint_runs_under_its_own_memory_limit_and_restores_the_store_s(
    store: HistoryStore,
) -> None:
    def limit(con: duckdb.DuckDBPyConnection) -> Any:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()

    rows = [row for n in range(3000) for row in delivered_signal_rows("acme", n, at=T0)]
    await store.write(lambda con: append_rows(con, rows))
    await store.read(retention.checkpoint)
    before = await store.read(limit)
    seen: list[Any] = []
    real = retention.checkpoint

    class Watched:  # the connection, noting the memory limit a CHECKPOINT runs under
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self.con = con

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "CHECKPOINT":
                seen.append(limit(self.con))
            return self.con.execute(sql, *args)

    def checkpoint(con: duckdb.DuckDBPyConnection) -> int:
        return real(Watched(con))  # type: ignore[arg-type]

    retention_checkpoint, retention.checkpoint = retention.checkpoint, checkpoint
    try:
        report = await retention.prune(store, RetentionOptions(), lambda: T0 + 100 * DAY)
    finally:
        retention.checkpoint = retention_checkpoint
    assert report is not None
    assert report.free_bytes > 0
    scratch = duckdb.connect(":memory:")
    scratch.execute(f"SET memory_limit = '{retention.CHECKPOINT_MEMORY}'")
    assert seen == [limit(scratch)]  # (DuckDB shows 32MB as "30.5 MiB")
    assert seen != [before]
    assert await store.read(limit) == before


def test_a_prune_checkpoint_runs_under_the_store_s_limit_when_duckdb_cannot_evict_first() -> None:
    # A checkpoint out of memory is fatal to DuckDB (the database invalidated): it is never
    # tried under the low limit unless DuckDB could evict down to HELD_AFTER_WRITE first.
    held = f"SET memory_limit = '{store_module.HELD_AFTER_WRITE}'"

    class Con:
        def __init__(self) -> None:
            self.statements: list[str] = []

        def execute(self, sql: str, *args: Any) -> Any:
            self.statements.append(sql)
            if sql == held:
                raise duckdb.OutOfMemoryException("Failed to change memory limit")
            return self

        def fetchone(self) -> tuple[int]:
            return (4096,)

    con = Con()
    with structlog.testing.capture_logs() as logs:
        assert retention.checkpoint(con) == 4096  # type: ignore[arg-type]
    assert con.statements[:4] == [
        held,
        f"SET memory_limit = '{store_module.MEMORY_LIMIT}'",
        "CHECKPOINT",
        f"SET memory_limit = '{store_module.MEMORY_LIMIT}'",
    ]
    assert "CHECKPOINT" not in con.statements[4:]
    assert [e["event"] for e in logs] == ["history_checkpoint_under_full_limit"]
