"""The versioned secret store in the history (DuckDB): every sink credential's versions,
sealed (eyetok/rotation/sealing.py), and the rotations that made them.

A sink keeps its ``current`` version and the ``previous`` two (N=2); older ones are
``discarded`` (their sealed value wiped). A DKIM key waiting for its DNS record is
``pending``; a version a rollback left is ``rolled_back`` (wiped too). At most one rotation
is ``open`` at a time (the rotation actor enforces it). The tables are this module's own;
the rotation actor is their one writer. Times are ISO-8601 text here (timestamptz in the
mirror). Pure SQL functions for :class:`HistoryStore`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import duckdb
import msgspec

KEEP_PREVIOUS = 2

VersionState = Literal["pending", "current", "previous", "discarded", "rolled_back"]
RotationState = Literal["open", "done", "rolled_back"]

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS sink_credential_versions (
        sink_id     TEXT NOT NULL,
        version     INTEGER NOT NULL,
        sink_type   TEXT NOT NULL,
        tenant_id   TEXT NOT NULL,
        state       TEXT NOT NULL,
        sealed      BLOB,
        created_at  TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        changed_at  TEXT NOT NULL,
        PRIMARY KEY (sink_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS sink_rotations (
        rotation_id   TEXT PRIMARY KEY,
        sink_id       TEXT NOT NULL,
        sink_type     TEXT NOT NULL,
        tenant_id     TEXT NOT NULL,
        from_version  INTEGER NOT NULL,
        to_version    INTEGER NOT NULL,
        state         TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        started_by    TEXT NOT NULL,
        ended_at      TEXT,
        ended_by      TEXT,
        prior_json    TEXT NOT NULL,
        detail        TEXT NOT NULL
    )""",
)


class StoredVersion(msgspec.Struct, frozen=True, kw_only=True):
    sink_id: str
    version: int
    sink_type: str
    tenant_id: str
    state: VersionState
    sealed: bytes | None
    created_at: datetime
    created_by: str
    changed_at: datetime


class StoredRotation(msgspec.Struct, frozen=True, kw_only=True):
    rotation_id: str
    sink_id: str
    sink_type: str
    tenant_id: str
    from_version: int  # 0: the sink had no stored version (e.g. mail not yet signed)
    to_version: int
    state: RotationState
    started_at: datetime
    started_by: str
    ended_at: datetime | None = None
    ended_by: str | None = None
    prior_json: str = "null"  # the sink's verification before the rotation (JSON)
    detail: str = ""


VERSION_COLUMNS = (
    "sink_id, version, sink_type, tenant_id, state, sealed, created_at, created_by, changed_at"
)
ROTATION_COLUMNS = (
    "rotation_id, sink_id, sink_type, tenant_id, from_version, to_version, state, started_at, "
    "started_by, ended_at, ended_by, prior_json, detail"
)


def version_of(row: tuple[object, ...]) -> StoredVersion:
    """A row of ``SELECT {VERSION_COLUMNS}`` (DuckDB or Postgres)."""
    return msgspec.convert(
        dict(zip(VERSION_COLUMNS.split(", "), row, strict=True)), StoredVersion, strict=False
    )


def rotation_of(row: tuple[object, ...]) -> StoredRotation:
    """A row of ``SELECT {ROTATION_COLUMNS}`` (DuckDB or Postgres)."""
    return msgspec.convert(
        dict(zip(ROTATION_COLUMNS.split(", "), row, strict=True)), StoredRotation, strict=False
    )


def create(con: duckdb.DuckDBPyConnection) -> None:
    for statement in STATEMENTS:
        con.execute(statement)


def versions(con: duckdb.DuckDBPyConnection) -> list[StoredVersion]:
    rows = con.execute(
        f"SELECT {VERSION_COLUMNS} FROM sink_credential_versions ORDER BY sink_id, version"
    ).fetchall()
    return [version_of(r) for r in rows]


def rotations(con: duckdb.DuckDBPyConnection) -> list[StoredRotation]:
    rows = con.execute(
        f"SELECT {ROTATION_COLUMNS} FROM sink_rotations ORDER BY started_at"
    ).fetchall()
    return [rotation_of(r) for r in rows]


def values(row: StoredVersion | StoredRotation) -> list[object]:
    """The row's values in column order (``VERSION_COLUMNS`` or ``ROTATION_COLUMNS``)."""
    names = VERSION_COLUMNS if isinstance(row, StoredVersion) else ROTATION_COLUMNS
    return [getattr(row, name) for name in names.split(", ")]


def _as_text(row: StoredVersion | StoredRotation) -> list[object]:
    return [v.isoformat() if isinstance(v, datetime) else v for v in values(row)]


def put_versions(con: duckdb.DuckDBPyConnection, rows: list[StoredVersion]) -> None:
    for v in rows:
        con.execute(
            f"INSERT OR REPLACE INTO sink_credential_versions ({VERSION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _as_text(v),
        )


def put_rotation(con: duckdb.DuckDBPyConnection, r: StoredRotation) -> None:
    con.execute(
        f"INSERT OR REPLACE INTO sink_rotations ({ROTATION_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _as_text(r),
    )


def kept(rows: list[StoredVersion], sink_id: str, now: datetime) -> list[StoredVersion]:
    """The sink's rows after a change: its ``previous`` versions beyond the newest
    :data:`KEEP_PREVIOUS` are ``discarded`` and wiped. Only the rows that change."""
    previous = sorted(
        (v for v in rows if v.sink_id == sink_id and v.state == "previous"),
        key=lambda v: v.version,
        reverse=True,
    )
    return [
        msgspec.structs.replace(v, state="discarded", sealed=None, changed_at=now)
        for v in previous[KEEP_PREVIOUS:]
    ]
