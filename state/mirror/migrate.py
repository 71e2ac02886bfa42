"""Versioned SQL migrations for the Postgres mirror.

Files in ``state/mirror/migrations/`` are named ``NNNN_name.sql`` and applied in version
order, each at most once. Each runs in its own transaction that first takes
``pg_advisory_xact_lock(MIGRATION_LOCK)``, so processes starting together serialise (the
second finds the work done), then records itself in ``eyetok_schema_migrations``. A
migration that fails rolls back whole and raises :class:`StateError` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

from eyetok.errors import StateError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# An arbitrary constant bigint: the advisory lock every EyeTok migrator takes.
MIGRATION_LOCK = 0x45_59_45_54_4F_4B_4D_31  # "EYETOKM1"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """CREATE TABLE IF NOT EXISTS eyetok_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file in ``directory``, in version order."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise StateError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise StateError(f"two migrations have version {version}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied_versions(conn: psycopg.Connection[TupleRow]) -> list[int]:
    """The versions recorded as applied (empty if the bookkeeping table is missing)."""
    with conn.transaction():
        row = conn.execute("SELECT to_regclass('eyetok_schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return []
        rows = conn.execute("SELECT version FROM eyetok_schema_migrations ORDER BY version")
        return [int(r[0]) for r in rows.fetchall()]


def migrate(
    conn: psycopg.Connection[TupleRow], migrations: list[Migration] | None = None
) -> list[int]:
    """Apply the migrations not applied yet; return the versions this call applied.

    ``conn`` must be idle (no transaction open). A migration the server refuses raises
    :class:`StateError` naming it; connection trouble propagates as ``psycopg.Error``
    (the writer maps it).
    """
    import psycopg

    todo = load_migrations() if migrations is None else migrations
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        conn.execute(_BOOTSTRAP)
    applied: list[int] = []
    for migration in todo:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
                done = conn.execute(
                    "SELECT 1 FROM eyetok_schema_migrations WHERE version = %s",
                    [migration.version],
                ).fetchone()
                if done is not None:
                    continue
                conn.execute(migration.sql.encode())  # no parameters: may hold many statements
                conn.execute(
                    "INSERT INTO eyetok_schema_migrations (version, name, applied_at)"
                    " VALUES (%s, %s, now())",
                    [migration.version, migration.name],
                )
        except psycopg.OperationalError:
            raise  # the connection, not the migration: the caller decides
        except psycopg.Error as exc:
            raise StateError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        applied.append(migration.version)
    return applied
