"""The mutes' Postgres mirror (migration 0012): one row per tenant, its latest mute,
upserted when it starts and when it ends, and read back on start, so a fresh dyno keeps
an active mute. Blocking; the mutes actor calls it from a worker thread, one call at a
time. Each row is its tenant's (row-level security, as every mirror table)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from eyetok.errors import StateError
from state.mirror.connection import LazyConnection

_SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"
_UPSERT = """
INSERT INTO mutes (tenant_id, muted_by, muted_at, until, incident_id, ended_by, changed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id) DO UPDATE SET
    muted_by = EXCLUDED.muted_by, muted_at = EXCLUDED.muted_at, until = EXCLUDED.until,
    incident_id = EXCLUDED.incident_id, ended_by = EXCLUDED.ended_by,
    changed_at = EXCLUDED.changed_at
WHERE mutes.changed_at <= EXCLUDED.changed_at
"""
_OF_TENANT = """
SELECT muted_by, muted_at, until, incident_id, ended_by, changed_at FROM mutes
WHERE tenant_id = %s
"""


class MuteRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's latest mute as recorded: active while ``until`` is ahead."""

    tenant: str
    by: str
    muted_at: datetime
    until: datetime
    changed_at: datetime  # when it started, or ended
    incident_id: str = ""
    ended_by: str | None = None  # who ended it early ("unmute"), or "expired"


class MutesMirror:
    """One lazily opened connection to the mirror database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pg = LazyConnection(dsn, "eyetok-mutes")

    def save(self, records: Iterable[MuteRecord]) -> None:
        """Upsert each tenant's latest mute (an older change never overwrites a newer
        one), one transaction per tenant. Raises :class:`StateError`."""
        import psycopg  # on first use (tests/test_lazy_imports.py)

        try:
            conn = self._pg.get()
            for r in records:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(_SET_TENANT, [r.tenant])
                    cur.execute(
                        _UPSERT,
                        [
                            r.tenant,
                            r.by,
                            r.muted_at,
                            r.until,
                            r.incident_id or None,
                            r.ended_by,
                            r.changed_at,
                        ],
                    )
        except psycopg.Error as exc:
            self._pg.discard()
            raise StateError(f"mutes not mirrored: {exc}") from exc

    def load(self, tenants: Iterable[str]) -> list[MuteRecord]:
        """Each of ``tenants``' latest mute, as the mirror knows it."""
        found: list[MuteRecord] = []
        import psycopg  # on first use (tests/test_lazy_imports.py)

        try:
            conn = self._pg.get()
            for tenant in tenants:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(_SET_TENANT, [tenant])
                    cur.execute(_OF_TENANT, [tenant])
                    for by, muted_at, until, incident_id, ended_by, changed_at in cur.fetchall():
                        found.append(
                            MuteRecord(
                                tenant=tenant,
                                by=by,
                                muted_at=muted_at,
                                until=until,
                                changed_at=changed_at,
                                incident_id=incident_id or "",
                                ended_by=ended_by,
                            )
                        )
        except psycopg.Error as exc:
            self._pg.discard()
            raise StateError(f"mutes not read from the mirror: {exc}") from exc
        return found

    def close(self) -> None:
        self._pg.discard()
