"""The secret store's Postgres mirror (migration 0009): written by the rotation actor
(in a worker thread) after each change, read back on a fresh dyno. Values arrive sealed.
Every statement runs under its tenant's ``eyetok.tenant`` (row-level security)."""

from __future__ import annotations

from eyetok.errors import StateError
from state.history.credential_store import (
    ROTATION_COLUMNS,
    VERSION_COLUMNS,
    StoredRotation,
    StoredVersion,
    rotation_of,
    values,
    version_of,
)
from state.mirror.migrate import migrate

_SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"
_UPSERT_VERSION = """
INSERT INTO sink_credential_versions
    (sink_id, version, sink_type, tenant_id, state, sealed, created_at, created_by, changed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (sink_id, version) DO UPDATE
    SET state = EXCLUDED.state, sealed = EXCLUDED.sealed, changed_at = EXCLUDED.changed_at
"""
_UPSERT_ROTATION = """
INSERT INTO sink_rotations
    (rotation_id, sink_id, sink_type, tenant_id, from_version, to_version, state, started_at,
     started_by, ended_at, ended_by, prior_json, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (rotation_id) DO UPDATE
    SET state = EXCLUDED.state, ended_at = EXCLUDED.ended_at, ended_by = EXCLUDED.ended_by,
        detail = EXCLUDED.detail
"""

__all__ = ["load", "save"]


def save(dsn: str, changed: list[StoredVersion], rotation: StoredRotation | None) -> None:
    """Write the changed versions and the rotation row, each under its tenant."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            migrate(conn)
            with conn.transaction():
                for v in changed:
                    conn.execute(_SET_TENANT, [v.tenant_id])
                    conn.execute(_UPSERT_VERSION, values(v))
                if rotation is not None:
                    conn.execute(_SET_TENANT, [rotation.tenant_id])
                    conn.execute(_UPSERT_ROTATION, values(rotation))
    except psycopg.Error as exc:
        raise StateError(f"secret store mirror write failed: {exc}") from exc


def load(dsn: str, tenants: list[str]) -> tuple[list[StoredVersion], list[StoredRotation]]:
    """Every tenant's versions and rotations, as the DuckDB tables hold them."""
    import psycopg

    found_versions: list[StoredVersion] = []
    found_rotations: list[StoredRotation] = []
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            migrate(conn)
            with conn.transaction():
                for tenant in tenants:
                    conn.execute(_SET_TENANT, [tenant])
                    found_versions += [
                        version_of(tuple(row))
                        for row in conn.execute(
                            f"SELECT {VERSION_COLUMNS} FROM sink_credential_versions "
                            "WHERE tenant_id = %s",
                            [tenant],
                        ).fetchall()
                    ]
                    found_rotations += [
                        rotation_of(tuple(row))
                        for row in conn.execute(
                            f"SELECT {ROTATION_COLUMNS} FROM sink_rotations WHERE tenant_id = %s",
                            [tenant],
                        ).fetchall()
                    ]
    except psycopg.Error as exc:
        raise StateError(f"secret store mirror read failed: {exc}") from exc
    return found_versions, found_rotations
