"""The Postgres mirror follows the history's retention policy.

The same horizons as the DuckDB prune (eyetok/retention.py): incidents resolved before
theirs go; the verification log and the tenant configuration log lose rows past the
journals' horizon, except each sink's latest row of each status and each tenant
setting's latest row (what a fresh process restores). The pending outbox is never
pruned (a row there leaves only when its delivery closes). Row-level security shows
one tenant at a time, so the deletes run tenant by tenant, ``batch_rows`` per
transaction, on a connection of their own (the mirror actor's writes never wait on
them: Postgres locks only the rows deleted).

Blocking: call through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable

from eyetok.errors import StateError
from eyetok.retention import Horizons

SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"

# table -> (the rows that go, for one tenant, given its horizon; the horizon's name)
PRUNES: dict[str, tuple[str, str]] = {
    "incident_state": (
        "tenant_id = %(tenant)s AND status = 'resolved' AND resolved_at < %(h)s",
        "incidents",
    ),
    "verification_log": (
        """tenant_id = %(tenant)s AND recorded_at < %(h)s
           AND (sink_id, status, handshake_at) NOT IN (
               SELECT sink_id, status, max(handshake_at) FROM verification_log
               WHERE tenant_id = %(tenant)s GROUP BY sink_id, status)""",
        "journals",
    ),
    "tenant_config_log": (
        """tenant_id = %(tenant)s AND recorded_at < %(h)s
           AND (kind, key, recorded_at) NOT IN (
               SELECT kind, key, max(recorded_at) FROM tenant_config_log
               WHERE tenant_id = %(tenant)s GROUP BY kind, key)""",
        "journals",
    ),
}


def prune_mirror(
    dsn: str, horizons: Horizons, tenants: Iterable[str], *, batch_rows: int
) -> dict[str, int]:
    """Rows removed per mirror table. Raises :class:`StateError` when Postgres fails."""
    import psycopg  # only a deployment with a mirror prunes one (tests/test_lazy_imports.py)

    removed = dict.fromkeys(PRUNES, 0)
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            for tenant in sorted(set(tenants)):
                for table, (where, horizon) in PRUNES.items():
                    params = {"tenant": tenant, "h": getattr(horizons, horizon)}
                    while True:
                        with conn.transaction():
                            conn.execute(SET_TENANT, (tenant,))
                            cursor = conn.execute(
                                f"DELETE FROM {table} WHERE ctid IN ("
                                f"SELECT ctid FROM {table} WHERE {where} LIMIT {int(batch_rows)})",
                                params,
                            )
                            count = cursor.rowcount
                        removed[table] += count
                        if count < batch_rows:
                            break
    except psycopg.Error as exc:
        raise StateError(f"pruning the Postgres mirror failed: {exc}") from exc
    return removed
