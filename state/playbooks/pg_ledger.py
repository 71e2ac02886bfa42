"""The playbooks ledger in Postgres (migration 0006): what a fresh dyno starts from.

Blocking (psycopg), one lazily opened connection, used from one worker thread at a time
(the playbooks actor's). Every write and read is scoped to one tenant, under row-level
security (``eyetok.tenant``), as the rest of the mirror is. Failures are
:class:`~eyetok.errors.StateError`; the caller decides what they stop (a run's intent
not committed here does not run; anything else is retried with the next write).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

from eyetok.errors import StateError
from eyetok.playbooks.ledger import PlaybookEvent
from state.mirror.migrate import migrate

_SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"
_INSERT = """
INSERT INTO playbook_events (event_id, tenant_id, incident_id, event, recorded_at, body)
VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (event_id) DO NOTHING
"""
_SELECT = "SELECT body::text FROM playbook_events WHERE tenant_id = %s ORDER BY seq"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(PlaybookEvent).decode


class PgLedger:
    def __init__(self, dsn: str, *, connect_timeout_s: int = 5) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[TupleRow] | None = None

    def _connection(self) -> psycopg.Connection[TupleRow]:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=False,
                connect_timeout=max(2, self.connect_timeout_s),
                application_name="eyetok-playbooks",
            )
            migrate(conn)  # advisory-locked and idempotent: whoever starts first applies it
        except psycopg.Error as exc:
            raise StateError(f"cannot reach the playbooks ledger in Postgres: {exc}") from exc
        self._conn = conn
        return conn

    def _discard(self) -> None:
        import psycopg

        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def append(self, events: Sequence[PlaybookEvent]) -> None:
        """Commit ``events`` (in order, one transaction; already there: skipped)."""
        import psycopg

        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                for tenant, group in groupby(events, key=lambda e: e.incident.tenant):
                    cur.execute(_SET_TENANT, [tenant])
                    cur.executemany(
                        _INSERT,
                        [
                            (
                                e.event_id,
                                tenant,
                                e.incident.incident_id,
                                e.event,
                                e.at,
                                _encode(e).decode(),
                            )
                            for e in group
                        ],
                    )
        except psycopg.Error as exc:
            self._discard()
            raise StateError(f"the playbooks ledger write to Postgres failed: {exc}") from exc

    def load(self, tenants: Iterable[str]) -> list[PlaybookEvent]:
        """Every tenant's events, each tenant's in recording order (tenant by tenant: a
        proposal, a run, a recommendation each belong to one tenant's incident)."""
        import psycopg

        conn = self._connection()
        events: list[PlaybookEvent] = []
        try:
            with conn.transaction(), conn.cursor() as cur:
                for tenant in tenants:
                    cur.execute(_SET_TENANT, [tenant])
                    cur.execute(_SELECT, [tenant])
                    events += [_decode(row[0]) for row in cur.fetchall()]
        except psycopg.Error as exc:
            self._discard()
            raise StateError(f"cannot read the playbooks ledger in Postgres: {exc}") from exc
        return events

    def close(self) -> None:
        self._discard()
