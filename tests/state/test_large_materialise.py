"""A backlog materialised at once (a restart's journal replay, or the rows a burst of
batched hooks journalled while the last materialisation ran) goes in whole, in order: one
JSON insert of every row once parsed a text DuckDB's memory limit refused ("failed to
allocate data of size 256.0 MiB") and the history actor crashed; the appenders flush a
bounded number of rows at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from state.history import journal
from state.history.journal import AuditRow, append_tables
from state.history.store import HistoryStore

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _rows(n: int) -> list[AuditRow]:
    return [
        AuditRow(
            logged_at=AT,
            tenant="acme",
            event="signal_audit_only",
            detail=f"{i:08d} " + "x" * 2000,
            incident_id=None,
            signal_id=f"sig_{i:08d}",
        )
        for i in range(n)
    ]


async def test_a_backlog_larger_than_the_memory_limit_allows_in_one_text_goes_in_whole(
    tmp_path: Path,
) -> None:
    store = HistoryStore(tmp_path / "history.duckdb")
    rows = _rows(40_000)  # about 85 MB of JSON: one statement's parse wanted 256 MiB
    try:
        await store.write(lambda con: append_tables(con, [rows]))
        got = await store.read(
            lambda con: con.execute(
                "SELECT count(*), min(signal_id), max(signal_id) FROM audit_log"
            ).fetchall()
        )
        assert got == [(40_000, "sig_00000000", "sig_00039999")]
    finally:
        store.close()


async def test_rows_split_over_flushes_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "FLUSH_ROWS", 7)  # 15 flushes
    store = HistoryStore(tmp_path / "history.duckdb")
    rows = _rows(101)
    try:
        await store.write(lambda con: append_tables(con, [rows]))
        got = await store.read(
            lambda con: con.execute("SELECT signal_id FROM audit_log ORDER BY rowid").fetchall()
        )
        assert [r[0] for r in got] == [r.signal_id for r in rows]
    finally:
        store.close()
