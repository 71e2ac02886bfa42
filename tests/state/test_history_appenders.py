"""Rows go into DuckDB through one appender per table and connection: every row type reads
back field for field (quotes, backslashes, JSON text, non-ASCII, NULLs, an instant given
in another UTC offset), a failed write leaves nothing behind for the next one, and a
reopened history gets appenders of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from eyetok.errors import StateError
from state.history import journal
from state.history.journal import AuditRow, SnapshotRow, append_rows
from state.history.store import HistoryStore

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
AT = datetime(2026, 12, 5, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
TEXT = 'it\'s "quoted" \\ {"json": ["x", 1]} é ☃ 😀'


def _value(info: Any, i: int, *, none: bool) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        if none:
            return None
        info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    match info:
        case msgspec.inspect.StrType():
            return f"{TEXT} {i}"
        case msgspec.inspect.BoolType():
            return i % 2 == 0
        case msgspec.inspect.IntType():
            return 40 + i
        case msgspec.inspect.FloatType():
            return 12.5 + i
        case msgspec.inspect.DateTimeType():
            return AT + timedelta(minutes=i, microseconds=i)
    raise AssertionError(f"no sample for {info}")


def _row(row_type: type[msgspec.Struct], *, none: bool) -> msgspec.Struct:
    info = msgspec.inspect.type_info(row_type)
    assert isinstance(info, msgspec.inspect.StructType)
    return row_type(**{f.name: _value(f.type, i, none=none) for i, f in enumerate(info.fields)})


def _read_back(con: duckdb.DuckDBPyConnection, row_type: type[msgspec.Struct]) -> list[tuple]:
    """The table's rows with every TIMESTAMPTZ as microseconds since the epoch."""
    table = journal._TABLES[row_type]
    columns = [
        f"epoch_us({name})" if typ == "TIMESTAMP WITH TIME ZONE" else name
        for name, typ in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]
    return con.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid").fetchall()


def _expected(row: msgspec.Struct) -> tuple:
    return tuple(
        (v - EPOCH) // timedelta(microseconds=1) if isinstance(v, datetime) else v
        for v in msgspec.structs.astuple(row)
    )


async def test_every_row_type_reads_back_field_for_field(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.duckdb")
    rows = [_row(t, none=none) for t in journal._TABLES for none in (False, True)]
    try:
        await store.write(lambda con: append_rows(con, rows))
        for row_type in journal._TABLES:
            got = await store.read(lambda con, t=row_type: _read_back(con, t))
            assert got == [_expected(r) for r in rows if type(r) is row_type], row_type
    finally:
        store.close()


def _snapshot(event_count: int) -> SnapshotRow:
    row = _row(SnapshotRow, none=False)
    assert isinstance(row, SnapshotRow)
    return msgspec.structs.replace(row, event_count=event_count)


async def test_a_failed_write_leaves_nothing_for_the_next(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.duckdb")
    audit = _row(AuditRow, none=True)
    try:
        with pytest.raises(StateError):
            # event_count is an INTEGER column: the second row does not fit
            await store.write(lambda con: append_rows(con, [audit, _snapshot(1), _snapshot(2**40)]))
        await store.write(lambda con: append_rows(con, [_snapshot(3)]))
        counts = await store.read(
            lambda con: con.execute(
                "SELECT (SELECT count(*) FROM audit_log), "
                "(SELECT list(event_count) FROM incident_snapshots)"
            ).fetchall()
        )
        assert counts == [(0, [3])]
    finally:
        store.close()


async def test_a_reopened_history_gets_appenders_of_its_own(tmp_path: Path) -> None:
    for n in (1, 2):
        store = HistoryStore(tmp_path / "history.duckdb")
        try:
            await store.write(lambda con, n=n: append_rows(con, [_snapshot(n)]))
            got = await store.read(
                lambda con: con.execute(
                    "SELECT list(event_count ORDER BY rowid) FROM incident_snapshots"
                ).fetchall()
            )
            assert got == [([1, 2][:n],)]
        finally:
            store.close()


async def test_rows_go_in_after_a_result_left_unfinished(tmp_path: Path) -> None:
    """An appender refuses to flush while a result of execute() is unfinished (a
    fetchone() of the caller's, in the same transaction, as rehydration's check does)."""
    store = HistoryStore(tmp_path / "history.duckdb")

    def check_then_append(con: duckdb.DuckDBPyConnection) -> None:
        assert con.execute("SELECT count(*) FROM incident_snapshots").fetchone() == (0,)
        append_rows(con, [_snapshot(5)])

    try:
        await store.write(check_then_append)
        got = await store.read(
            lambda con: con.execute("SELECT list(event_count) FROM incident_snapshots").fetchall()
        )
        assert got == [([5],)]
    finally:
        store.close()


async def test_rows_handed_over_frame_by_frame_go_in_in_order_across_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A materialisation hands each table's rows over one journal frame at a time; each
    table keeps their order, through the flushes every FLUSH_ROWS rows and at the end."""
    monkeypatch.setattr(journal, "FLUSH_ROWS", 3)
    store = HistoryStore(tmp_path / "history.duckdb")
    audit = _row(AuditRow, none=True)

    def frame_by_frame(con: duckdb.DuckDBPyConnection) -> None:
        appends = journal.Appends(con)
        for first in range(0, 10, 2):  # five frames of two snapshots and one audit row
            appends.add([_snapshot(first), _snapshot(first + 1)])
            appends.add([msgspec.structs.replace(audit, event=str(first))])
        appends.add([_snapshot(n) for n in range(10, 17)])  # one frame past two flushes
        appends.flush()

    try:
        await store.write(frame_by_frame)
        got = await store.read(
            lambda con: con.execute(
                "SELECT (SELECT list(event_count ORDER BY rowid) FROM incident_snapshots), "
                "(SELECT list(event ORDER BY rowid) FROM audit_log)"
            ).fetchall()
        )
        assert got == [(list(range(17)), ["0", "2", "4", "6", "8"])]
    finally:
        store.close()
