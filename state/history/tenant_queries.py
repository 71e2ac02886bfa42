"""The tenant-scoped store API: every query of a tenant's rows carries the tenant.

A :class:`TenantScope` cannot be made without a tenant id, and each of its queries binds
that id in its ``WHERE``; the rows it builds for writing are stamped with it, and a row
of another tenant handed to it is refused (:class:`CrossTenantError`). This is the
second of the three layers that keep one tenant out of another's configuration (the
API token's tenant before it, Postgres row-level security on the mirror after it).

The two ``root_`` functions read every tenant at once: only the start-up rebuild of the
tenant configuration (a root operation) calls them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

import duckdb
import msgspec

from eyetok.errors import CrossTenantError
from eyetok.messages import Incident, TenantConfigEntry, TenantToken

_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_incident = msgspec.json.Decoder(Incident)
_token = msgspec.json.Decoder(TenantToken)


_entry = msgspec.json.Decoder(TenantConfigEntry)


class TenantScope:
    """One tenant's view of the history store. Call its query methods through
    :meth:`HistoryStore.read` (they take the connection)."""

    __slots__ = ("tenant",)

    def __init__(self, tenant: str) -> None:
        if not isinstance(tenant, str) or not _TENANT_ID.match(tenant):
            raise CrossTenantError(f"a tenant scope needs a tenant id, not {tenant!r}")
        self.tenant = tenant

    # --- reads --------------------------------------------------------------------------

    def incidents(
        self, con: duckdb.DuckDBPyConnection, *, status: str | None = None, limit: int = 100
    ) -> list[Incident]:
        """The tenant's incidents, newest first (``status``: open, acknowledged,
        resolved; None: all)."""
        sql = "SELECT snapshot_json FROM incidents WHERE tenant = ?"
        params: list[object] = [self.tenant]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY opened_at DESC, incident_id LIMIT ?"
        params.append(max(1, min(limit, 1000)))
        return [_incident.decode(r[0]) for r in con.execute(sql, params).fetchall()]

    def incident(self, con: duckdb.DuckDBPyConnection, incident_id: str) -> Incident | None:
        row = con.execute(
            "SELECT snapshot_json FROM incidents WHERE tenant = ? AND incident_id = ?",
            [self.tenant, incident_id],
        ).fetchone()
        return _incident.decode(row[0]) if row else None

    def config_entries(self, con: duckdb.DuckDBPyConnection) -> list[TenantConfigEntry]:
        """The tenant's configuration changes, oldest first."""
        rows = con.execute(
            """SELECT entry_json FROM tenant_config_log WHERE tenant = ?
               ORDER BY recorded_at, rowid""",
            [self.tenant],
        ).fetchall()
        return [_entry.decode(r[0]) for r in rows]

    def tokens(self, con: duckdb.DuckDBPyConnection) -> list[TenantToken]:
        """The tenant's token rows (issues and revocations), oldest first."""
        rows = con.execute(
            """SELECT token_json FROM tenant_tokens WHERE tenant = ?
               ORDER BY coalesce(revoked_at, issued_at), rowid""",
            [self.tenant],
        ).fetchall()
        return [_token.decode(r[0]) for r in rows]

    # --- writes (rows for the history actor to journal) --------------------------------

    def entry(
        self, *, kind: str, key: str, value_json: str, at: datetime, by: str
    ) -> TenantConfigEntry:
        """A configuration entry of this tenant (the only kind this scope makes)."""
        return TenantConfigEntry(
            tenant=self.tenant,
            kind=kind,
            key=key,
            value_json=value_json,
            recorded_at=at,
            recorded_by=by,
        )

    def checked(
        self, entries: Iterable[TenantConfigEntry] = (), tokens: Iterable[TenantToken] = ()
    ) -> tuple[tuple[TenantConfigEntry, ...], tuple[TenantToken, ...]]:
        """The rows to write, if every one is this tenant's; else :class:`CrossTenantError`."""
        entries, tokens = tuple(entries), tuple(tokens)
        for owner in [e.tenant for e in entries] + [t.tenant for t in tokens]:
            if owner != self.tenant:
                raise CrossTenantError(
                    f"tenant {self.tenant!r} cannot write a row of tenant {owner!r}"
                )
        return entries, tokens


def root_config_entries(con: duckdb.DuckDBPyConnection) -> list[TenantConfigEntry]:
    """Every tenant's configuration changes, oldest first (the start-up rebuild)."""
    rows = con.execute(
        "SELECT entry_json FROM tenant_config_log ORDER BY recorded_at, rowid"
    ).fetchall()
    return [_entry.decode(r[0]) for r in rows]


def root_tokens(con: duckdb.DuckDBPyConnection) -> list[TenantToken]:
    """Every tenant's token rows, oldest first (the start-up rebuild)."""
    rows = con.execute(
        "SELECT token_json FROM tenant_tokens ORDER BY coalesce(revoked_at, issued_at), rowid"
    ).fetchall()
    return [_token.decode(r[0]) for r in rows]
