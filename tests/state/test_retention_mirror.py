"""The Postgres mirror follows the retention policy (a real Postgres on 127.0.0.1), as the
mirror's own role: not a superuser, owner of the tables, bound by row-level security."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from eyetok.retention import RetentionOptions, horizons
from state.mirror.prune import SET_TENANT, prune_mirror
from state.mirror.writer import MirrorBatch, MirrorWriter
from tests.pg import T0, app_role, incident, snapshotted, verification

DAY = timedelta(days=1)


def test_the_mirror_drops_incidents_resolved_past_the_horizon(pg_dsn: str) -> None:
    with app_role(pg_dsn) as app_dsn:
        _prune_as(app_dsn)


def _prune_as(pg_dsn: str) -> None:
    writer = MirrorWriter(pg_dsn)
    try:
        writer.migrate()
        writer.apply(
            MirrorBatch(
                snapshots=(
                    snapshotted(incident("inc_old_resolved", status="resolved")),
                    snapshotted(incident("inc_old_open")),
                    snapshotted(incident("inc_recent", status="resolved", opened_at=T0 + 20 * DAY)),
                    snapshotted(incident("inc_other", tenant="globex", status="resolved")),
                ),
                verifications=(verification("slack-ops"),),
            )
        )
    finally:
        writer.close()
    now = T0 + 100 * DAY
    removed = prune_mirror(pg_dsn, horizons(RetentionOptions(), now), ["acme"], batch_rows=100)
    assert removed == {"incident_state": 1, "verification_log": 0, "tenant_config_log": 0}
    # the open incident stays however old; globex was not named, so it is not touched
    assert _seen(pg_dsn, "acme", "SELECT incident_id FROM incident_state ORDER BY 1") == [
        ("inc_old_open",),
        ("inc_recent",),
    ]
    assert _seen(pg_dsn, "globex", "SELECT incident_id FROM incident_state") == [("inc_other",)]
    assert _seen(pg_dsn, "acme", "SELECT count(*) FROM verification_log") == [(1,)]
    # a second pass names globex too, and finds its resolved incident past the horizon
    again = prune_mirror(
        pg_dsn, horizons(RetentionOptions(), now), ["acme", "globex"], batch_rows=100
    )
    assert again["incident_state"] == 1
    assert _seen(pg_dsn, "globex", "SELECT incident_id FROM incident_state") == []


def _seen(dsn: str, tenant: str, statement: str) -> list[tuple[object, ...]]:
    """What ``tenant`` sees (row-level security shows nothing without it)."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(SET_TENANT, (tenant,))
        return list(conn.execute(statement).fetchall())
